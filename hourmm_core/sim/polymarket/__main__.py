"""CLI: ``python3 -m hourmm_core.sim.polymarket --port 0 --speed 60 --start-ms MS --hours N --seed S``.

Prints exactly one line ``READY gamma=... clob=... ws=...`` on stdout once listening, then
serves until SIGINT/SIGTERM. Logs go to stderr ("LEVEL | message"). With
``HOURMM_SIM_CLOCK`` set (and no ``--start-ms``) the shared simulated clock is used, so
every process of a simulation agrees on "now".
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from hourmm_core.clock import SIM_CLOCK_ENV, clock_from_env
from hourmm_core.fees import CRYPTO_FEES, NO_FEES, FeeSchedule
from hourmm_core.logsetup import setup_logging
from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m hourmm_core.sim.polymarket", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    p.add_argument("--speed", type=float, default=60.0)
    p.add_argument("--start-ms", type=int, default=None, help="sim start (ms UTC); default: data start")
    p.add_argument("--hours", type=float, default=3.0, help="markets for ceil(hours) hours from the start hour")
    p.add_argument("--seed", type=int, default=7, help="agents/ids seed and synthetic-data seed (as the replay)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--fund-usdc", type=float, default=1000.0, help="USDC credited to each new wallet")
    p.add_argument("--fee-rate", type=float, default=CRYPTO_FEES.rate,
                   help="taker fee rate of the markets (fee = shares*rate*(p(1-p))**exponent; default: crypto 0.07)")
    p.add_argument("--fee-exponent", type=int, default=CRYPTO_FEES.exponent)
    p.add_argument("--no-fees", action="store_true", help="fee-free markets")
    p.add_argument("--heartbeat-timeout-s", type=float, default=10.0)
    p.add_argument("--allow-v1", action="store_true",
                   help="also accept legacy V1-signed orders (default: V2 only, like production since 2026-04-28)")
    p.add_argument("--v2-only", action="store_true",
                   help="reject V1-signed orders with order_version_mismatch (the default; kept for old scripts)")
    p.add_argument("--no-auto-tick", action="store_true",
                   help="keep the tick at 0.01 even when the price nears 0 or 1")
    p.add_argument("--no-agents", action="store_true", help="no background makers/takers")
    p.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return p.parse_args(argv)


def _fee(a: argparse.Namespace) -> FeeSchedule:
    if a.no_fees:
        return NO_FEES
    return FeeSchedule(rate=a.fee_rate, exponent=a.fee_exponent, maker_rebate_rate=CRYPTO_FEES.maker_rebate_rate)


async def amain(a: argparse.Namespace) -> int:
    clock = None
    if a.start_ms is None and os.environ.get(SIM_CLOCK_ENV, "").strip():
        clock = clock_from_env()   # start = the shared clock's "now", like the Binance replay
    cfg = SimConfig(host=a.host, port=a.port, speed=a.speed, start_ms=a.start_ms, hours=a.hours, seed=a.seed,
                    data_dir=a.data_dir, fund_usdc=a.fund_usdc, fee=_fee(a),
                    heartbeat_timeout_s=a.heartbeat_timeout_s, agents=not a.no_agents,
                    allowed_versions=(1, 2) if a.allow_v1 and not a.v2_only else (2,), auto_tick=not a.no_auto_tick)
    sim = PolymarketSim(cfg, clock=clock)
    await sim.start()
    print(sim.ready_line(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # pragma: no cover
            pass
    await stop.wait()
    await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    setup_logging(a.log_level)
    return asyncio.run(amain(a))


if __name__ == "__main__":
    sys.exit(main())
