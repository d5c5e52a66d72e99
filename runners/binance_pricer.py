"""Container A (binance_pricer): wiring only -- settings, logging, clock, PricerService.

``python3 -m runners.binance_pricer``. A bad setting exits with status 2 and a
message naming the variable; SIGTERM/SIGINT stop cleanly.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

from hourmm_core.clock import clock_from_env
from hourmm_core.config import ConfigError, PricerConfig
from hourmm_core.gc_tuning import settle_gc
from hourmm_core.logsetup import setup_logging

log = logging.getLogger("binance_pricer")


async def _run(cfg: PricerConfig) -> int:
    from hourmm_core.pricing.service import PricerService

    service = PricerService(cfg, clock_from_env())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await service.start()
    log.info("GC settled after start-up: %s", settle_gc())   # no full collections of start-up objects
    await stop.wait()
    log.info("Container A stopping")
    await service.stop()
    return 0


def main() -> int:
    try:
        cfg = PricerConfig.from_env()
        setup_logging(cfg.log_level)
        clock_from_env()  # validate HOURMM_SIM_CLOCK before anything starts
    except ConfigError as exc:
        print(f"binance_pricer: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(cfg))
    except OSError as exc:  # e.g. HTTP_PORT already in use
        log.error("Container A failed to start: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
