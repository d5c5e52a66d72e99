"""``hourmm check``: the operator guide's connection tests as one command.

Runs, in order, with one ``PASS``/``FAIL``/``SKIP`` line each:

1. Binance combined-stream WebSocket (BINANCE_WS_URL): a trade or BBO frame arrives
   and parses.
2. Gamma discovery (GAMMA_URL): the current hour's market ``MARKET_SLUG-<et hour>``
   exists and lists its two CLOB token ids.
3. Polymarket market WebSocket (PM_WS_URL ``/ws/market``): connects and, when a
   token id is known, the subscription answers.
4. With credentials (PM_PRIVATE_KEY, PM_FUNDER, PM_SIGNATURE_TYPE): an order is
   signed with the official CLOB V2 client (``create_order``, never posted) and an
   authenticated read (open orders) succeeds against CLOB_URL.

Why one command: before a deployment the operator wants a yes/no per dependency,
not four scripts. Exit code 0 only when nothing FAILed. No secret is ever printed:
every detail line goes through :func:`hourmm_core.logsetup.redact` and API keys are
not echoed at all. "Now" comes from :func:`hourmm_core.clock.clock_from_env`, so
pointed at the simulators with ``HOURMM_SIM_CLOCK`` it checks the simulated hour.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import aiohttp
import websockets

from hourmm_core.clock import Clock, clock_from_env, hour_start_ms
from hourmm_core.config import ConfigError, Credentials, PricerConfig, TraderConfig
from hourmm_core.logsetup import redact
from hourmm_core.polymarket.slug import market_slug

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass
class CheckResult:
    """Outcome of one connection test; ``detail`` is already safe to print."""

    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status} | {self.name}: {self.detail}"


@dataclass
class MarketInfo:
    """What Gamma discovery found, handed to the later checks."""

    slug: str
    condition_id: str
    token_ids: list[str]
    tick_size: str
    neg_risk: bool


def load_env_file(path: str) -> dict[str, str]:
    """Parse a docker-style env file (KEY=VALUE, # comments); unknown syntax is an error."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[7:].lstrip()
            if "=" not in line:
                raise ConfigError(f"{path}:{n}: expected KEY=VALUE")
            k, v = line.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            out[k.strip()] = v
    return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ws_join(base: str, path: str) -> str:
    return base.rstrip("/") + path


async def check_binance_ws(cfg: PricerConfig, timeout_s: float) -> CheckResult:
    """Connect to the combined trade + bookTicker stream and parse the first frames."""
    name = "Binance WebSocket"
    sym = cfg.binance_symbol.lower()
    url = _ws_join(cfg.binance_ws_url, f"/stream?streams={sym}@trade/{sym}@bookTicker")
    try:
        async with asyncio.timeout(timeout_s):
            async with websockets.connect(url, open_timeout=timeout_s, max_size=2**20) as ws:
                trade = bbo = None
                for _ in range(20):
                    msg = json.loads(await ws.recv())
                    stream = str(msg.get("stream", ""))
                    data = msg.get("data") or {}
                    if stream.endswith("@trade"):
                        trade = (float(data["p"]), float(data["q"]))
                    elif stream.endswith("@bookTicker"):
                        bbo = (float(data["b"]), float(data["a"]))
                    if trade and bbo:
                        break
                if not (trade or bbo):
                    return CheckResult(name, FAIL, f"connected to {url} but no trade/BBO frame arrived")
                parts = []
                if trade:
                    parts.append(f"trade {trade[0]:.2f} x {trade[1]:g}")
                if bbo:
                    parts.append(f"BBO {bbo[0]:.2f} / {bbo[1]:.2f}")
                return CheckResult(name, PASS, f"{url}: " + ", ".join(parts))
    except TimeoutError:
        return CheckResult(name, FAIL, f"{url}: no data within {timeout_s:g}s")
    except (OSError, websockets.WebSocketException) as exc:
        return CheckResult(name, FAIL, f"{url}: cannot connect ({type(exc).__name__}: {exc})")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return CheckResult(name, FAIL, f"{url}: malformed frame ({type(exc).__name__}: {exc})")


def _parse_market(slug: str, events: Any, hour_start: int) -> tuple[MarketInfo | None, str]:
    """Validate Gamma's answer with the trader's own parser; the market must be THIS hour's.

    The slug has no year (and the DST fall-back hour repeats), so a market found by slug
    is only accepted when its start/end are the hour being checked.
    """
    from hourmm_core.polymarket.gamma import MarketParseError, parse_market

    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list):
        raise ValueError("expected a JSON list of events")
    if not events:
        return None, f"market {slug} not found"
    try:
        m = parse_market(events[0], slug)
    except MarketParseError as exc:
        raise ValueError(str(exc)) from None
    if m.start_ms != hour_start or m.end_ms != hour_start + 3_600_000:
        return None, (f"market {slug} found but it is for {_iso(m.start_ms)} .. {_iso(m.end_ms)}, "
                      f"not the hour starting {_iso(hour_start)}")
    return MarketInfo(slug=slug, condition_id=m.condition_id, token_ids=[m.up_token_id, m.down_token_id],
                      tick_size=f"{m.tick_size:g}", neg_risk=m.neg_risk), ""


async def check_gamma(cfg: TraderConfig, now_ms: int, timeout_s: float) -> tuple[CheckResult, MarketInfo | None]:
    """Find this hour's market by slug through Gamma ``/events?slug=``."""
    name = "Gamma discovery"
    hs = hour_start_ms(now_ms)
    slug = market_slug(cfg.market_slug, hs)
    url = cfg.gamma_url.rstrip("/") + "/events"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
            async with s.get(url, params={"slug": slug}) as resp:
                if resp.status != 200:
                    return CheckResult(name, FAIL, f"{url}?slug={slug}: HTTP {resp.status}"), None
                body = await resp.json(content_type=None)
        info, why = _parse_market(slug, body, hs)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return CheckResult(name, FAIL, f"{url}: cannot connect ({type(exc).__name__}: {exc})"), None
    except (ValueError, TypeError, AttributeError) as exc:
        return CheckResult(name, FAIL, f"{url}: malformed response ({exc})"), None
    if info is None:
        return CheckResult(name, FAIL, why), None
    return CheckResult(name, PASS, f"{slug}: Up token {info.token_ids[0][:12]}..., "
                                   f"Down token {info.token_ids[1][:12]}..., tick {info.tick_size}"), info


async def check_market_ws(cfg: TraderConfig, market: MarketInfo | None, timeout_s: float) -> CheckResult:
    """Connect to the public market channel; subscribe when a token is known and await a reply."""
    name = "Polymarket market WebSocket"
    url = _ws_join(cfg.pm_ws_url, "/ws/market")
    try:
        async with asyncio.timeout(timeout_s):
            async with websockets.connect(url, open_timeout=timeout_s, max_size=2**22) as ws:
                if market is None:
                    return CheckResult(name, PASS, f"{url}: connected (no token to subscribe: Gamma check failed)")
                await ws.send(json.dumps({"type": "market", "assets_ids": market.token_ids}))
                raw = await ws.recv()
                msgs = json.loads(raw) if raw not in ("PONG", b"PONG") else []
                msgs = msgs if isinstance(msgs, list) else [msgs]
                kinds = sorted({str(m.get("event_type", "?")) for m in msgs if isinstance(m, dict)})
                return CheckResult(name, PASS, f"{url}: subscribed, first message: {', '.join(kinds) or 'empty'}")
    except TimeoutError:
        return CheckResult(name, FAIL, f"{url}: no answer within {timeout_s:g}s")
    except (OSError, websockets.WebSocketException) as exc:
        return CheckResult(name, FAIL, f"{url}: cannot connect ({type(exc).__name__}: {exc})")
    except (ValueError, TypeError) as exc:
        return CheckResult(name, FAIL, f"{url}: malformed message ({exc})")


def _sign_and_read(cfg: TraderConfig, creds: Credentials, market: MarketInfo | None) -> tuple[CheckResult, CheckResult]:
    """Blocking part (official client): sign one order without posting it, then an L2 read."""
    from eth_account import Account
    from py_clob_client_v2.client import ClobClient
    from py_clob_client_v2.clob_types import ApiCreds, OpenOrderParams, OrderArgsV2, PartialCreateOrderOptions

    from hourmm_core.polymarket.executor import resolve_signature_type

    sign_name, auth_name = "Order signing", "Authenticated read"
    # Same PM_SIGNATURE_TYPE -> library mapping as the trader (guide: 1 = EOA, library: 0 = EOA).
    try:
        sig_type, sig_why = resolve_signature_type(creds.signature_type,
                                                   Account.from_key(creds.private_key).address, creds.funder)
    except ConfigError as exc:
        return CheckResult(sign_name, FAIL, str(exc)), CheckResult(auth_name, FAIL, "not attempted")
    client = ClobClient(cfg.clob_url, chain_id=cfg.chain_id, key=creds.private_key,
                        signature_type=sig_type, funder=creds.funder)
    try:
        if creds.api_key:
            api = ApiCreds(creds.api_key, creds.api_secret or "", creds.api_passphrase or "")
            how = "given"
        else:
            api = client.create_or_derive_api_key()
            how = "derived"
        for s in (api.api_secret, api.api_passphrase):
            from hourmm_core.logsetup import register_secret
            register_secret(s)
        client.set_api_creds(api)
    except Exception as exc:  # noqa: BLE001 - any client failure is a FAIL line, not a crash
        msg = f"API credentials could not be obtained ({type(exc).__name__}: {exc})"
        return CheckResult(sign_name, FAIL, msg), CheckResult(auth_name, FAIL, msg)
    token = market.token_ids[0] if market else "1" + "0" * 20
    opts = PartialCreateOrderOptions(tick_size=market.tick_size if market else "0.01",
                                     neg_risk=market.neg_risk if market else False)
    try:
        signed = client.create_order(OrderArgsV2(token_id=token, price=0.5, size=5.0, side="BUY"), opts)
        body = signed.dict() if hasattr(signed, "dict") else dict(getattr(signed, "__dict__", {}))
        sig = str(body.get("signature", ""))
        if not sig.startswith("0x") or len(sig) < 130:
            sign = CheckResult(sign_name, FAIL, "client returned an order without a valid signature")
        else:
            sign = CheckResult(sign_name, PASS, f"order signed (not posted), API credentials {how}, "
                                                f"signer {client.get_address()}, signature type {sig_type} = {sig_why}")
    except Exception as exc:  # noqa: BLE001
        sign = CheckResult(sign_name, FAIL, f"create_order failed ({type(exc).__name__}: {exc})")
    try:
        params = OpenOrderParams(market=market.condition_id) if market and market.condition_id else None
        orders = client.get_open_orders(params)
        auth = CheckResult(auth_name, PASS, f"{cfg.clob_url}: {len(orders)} open order(s)")
    except Exception as exc:  # noqa: BLE001
        auth = CheckResult(auth_name, FAIL, f"{cfg.clob_url}: get_open_orders failed ({type(exc).__name__}: {exc})")
    return sign, auth


async def run_checks(environ: Mapping[str, str] | None = None, timeout_s: float = 10.0,
                     clock: Clock | None = None,
                     emit: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run every check against the endpoints named in ``environ``; never raises for a bad endpoint."""
    env = dict(os.environ if environ is None else environ)
    results: list[CheckResult] = []

    def add(r: CheckResult) -> None:
        r.detail = redact(r.detail)
        results.append(r)
        if emit:
            emit(r)

    try:
        pcfg = PricerConfig.from_env(env)
        tcfg = TraderConfig.from_env(env)
        clock = clock or clock_from_env(env)
    except ConfigError as exc:
        add(CheckResult("Configuration", FAIL, str(exc)))
        return results
    add(await check_binance_ws(pcfg, timeout_s))
    gamma, market = await check_gamma(tcfg, clock.now_ms(), timeout_s)
    add(gamma)
    add(await check_market_ws(tcfg, market, timeout_s))
    try:
        creds = Credentials.from_env(env)
    except ConfigError as exc:
        add(CheckResult("Credentials", FAIL, str(exc)))
        return results
    if creds is None:
        add(CheckResult("Order signing", SKIP, "no credentials (PM_PRIVATE_KEY / PM_FUNDER unset)"))
        add(CheckResult("Authenticated read", SKIP, "no credentials"))
        return results
    loop = asyncio.get_running_loop()
    try:
        sign, auth = await asyncio.wait_for(
            loop.run_in_executor(None, _sign_and_read, tcfg, creds, market), timeout_s * 3)
    except TimeoutError:
        sign = CheckResult("Order signing", FAIL, f"no answer from {tcfg.clob_url} within {timeout_s * 3:g}s")
        auth = CheckResult("Authenticated read", FAIL, "not attempted (timeout)")
    add(sign)
    add(auth)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``hourmm check``: print one line per check; exit 1 when any check FAILed, 2 on usage errors."""
    ap = argparse.ArgumentParser(prog="hourmm check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--env-file", help="read settings from this KEY=VALUE file (e.g. deploy/prod.env); "
                                       "the process environment wins")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per check (default 10)")
    try:
        args = ap.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    env: dict[str, str] = {}
    if args.env_file:
        try:
            env.update(load_env_file(args.env_file))
        except (OSError, ConfigError) as exc:
            print(f"FAIL | Configuration: {redact(str(exc))}")
            return 1
    env.update(os.environ)
    results = asyncio.run(run_checks(env, args.timeout, emit=lambda r: print(r.line(), flush=True)))
    failed = [r.name for r in results if r.status == FAIL]
    n_pass = sum(r.status == PASS for r in results)
    n_skip = sum(r.status == SKIP for r in results)
    print(f"{'FAIL' if failed else 'PASS'} | hourmm check: {n_pass} passed, {n_skip} skipped, "
          f"{len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
