"""Container B entry point: ``python -m runners.polymarket_trader``. Wiring only.

Settings from the environment (TraderConfig / Credentials), completed by the
secrets file ``HOURMM_SECRETS_FILE`` when set (compose mounts deploy/secrets.env there
read-only, so the wallet key never sits in the container's configuration where
``docker inspect`` would show it; non-empty variables already in the environment win), logging, the clock
(wall, or the simulator's scaled clock), the executor when credentials are given,
then :meth:`hourmm_core.trading.trader.Trader.run` until SIGTERM/SIGINT, which
cancels our orders and closes the journal before exiting 0.
Start-up retries of the venue live in ``hourmm_core.polymarket.executor``.
Exit codes: 0 clean stop, 2 configuration error (message names the variable),
1 venue unreachable at start-up.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys

from hourmm_core.clock import clock_from_env
from hourmm_core.config import ConfigError, Credentials, TraderConfig
from hourmm_core.gc_tuning import settle_gc
from hourmm_core.logsetup import setup_logging

log = logging.getLogger("polymarket_trader")
SECRETS_FILE_ENV = "HOURMM_SECRETS_FILE"


def load_secrets_file() -> None:
    """Fill os.environ from ``$HOURMM_SECRETS_FILE`` (KEY=VALUE lines); a non-empty environment value wins."""
    from hourmm_core.check import load_env_file

    path = os.environ.get(SECRETS_FILE_ENV, "").strip()
    if not path:
        return
    try:
        values = load_env_file(path)
    except IsADirectoryError:
        raise ConfigError(f"{SECRETS_FILE_ENV}={path} is a directory (the file to mount was missing "
                          "on the host, e.g. deploy/secrets.env)") from None
    except OSError as exc:
        raise ConfigError(f"{SECRETS_FILE_ENV}={path} cannot be read: {exc.strerror}") from None
    for k, v in values.items():
        if not os.environ.get(k, "").strip():
            os.environ[k] = v


async def amain() -> int:
    from hourmm_core.polymarket.trader_executor import connect_trader_executor
    from hourmm_core.trading.trader import Trader

    load_secrets_file()
    cfg = TraderConfig.from_env()
    setup_logging(cfg.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the CLOB client's per-request lines
    clock = clock_from_env()
    creds = Credentials.from_env()
    log.info("Container B started (control plane %s:%d, snapshot %s, clock %s)", cfg.control_host,
             cfg.control_port, cfg.snapshot_stream_url or cfg.snapshot_url, type(clock).__name__)
    venue, auth_failed = (None, False)
    if creds is not None:
        try:
            venue, auth_failed = await connect_trader_executor(cfg.clob_url, cfg.chain_id, creds)
        except RuntimeError as exc:
            log.error("%s", exc)
            return 1
    trader = Trader(cfg, clock, creds, venue)  # type: ignore[arg-type]
    if auth_failed:
        trader.core.risk.on_rest(False, clock.now_ms(), auth_failed=True)
    await trader.run(install_signals=True, on_started=lambda: log.info("GC settled after start-up: %s", settle_gc()))
    return 0


def main() -> int:
    try:
        return asyncio.run(amain())
    except ConfigError as exc:
        setup_logging("INFO")
        log.error("Configuration error: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
