"""Bug 1 (issue 13): deeply nested JSON must be refused, never crash the process.

py_ecc (imported by py-clob-client-v2 / eth_account) raises the recursion limit to
100,000, so ``json.loads`` of 200 kB of ``[`` overflowed the C stack (SIGSEGV). The
crash tests run in a subprocess so a segfault shows up as a failed assertion on the
child's exit code instead of killing the test run. Inputs here are synthetic shapes
(malformed JSON) that real market data never contains.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from hourmm_core import safe_json
from hourmm_core.safe_json import JsonInputError
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(120)
ROOT = str(REPO_ROOT)


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=100, env=env, cwd=ROOT)


def test_control_plane_survives_200kb_of_brackets_with_signing_stack_loaded() -> None:
    """The probe's request against the real control plane, in a process that loaded the V2 client."""
    r = _run("""
        import asyncio, sys
        import py_clob_client_v2.client  # raises the recursion limit like container B
        import aiohttp
        from hourmm_core.trading.control_plane import ControlPlane
        from hourmm_core.trading.decision import DecisionCore
        from hourmm_core.trading.risk_engine import Limits
        from hourmm_core.trading.session import Schedule
        from hourmm_core.trading.strategy import StrategyParams

        async def main():
            core = DecisionCore(Limits(1000.0, 500.0, 100.0, 4), Schedule(), StrategyParams())
            cp = ControlPlane(core, "127.0.0.1", 0)
            port = await cp.start()
            try:
                async with aiohttp.ClientSession() as s:
                    for body in ("[" * 200_000, "[" * 10_000, '{"a":' * 3000, "[" * 65 + "]" * 65):
                        async with s.post(f"http://127.0.0.1:{port}/set_limits", data=body) as resp:
                            print(resp.status, (await resp.json())["error"])
                    async with s.get(f"http://127.0.0.1:{port}/status") as resp:
                        print("alive", resp.status)
            finally:
                await cp.stop()
        asyncio.run(main())
    """)
    assert r.returncode == 0, f"child died rc={r.returncode} stderr={r.stderr[-2000:]}"
    lines = r.stdout.splitlines()
    assert lines[0].startswith("400 request body too large"), lines
    assert all(ln.startswith("400 request body nested too deeply") for ln in lines[1:4]), lines
    assert lines[4] == "alive 200"


def test_recursion_limit_is_reset_and_signing_still_works() -> None:
    """After the executor loads the signing stack the limit is sane: deep json raises, never segfaults;
    a V2 order signed afterwards still verifies."""
    r = _run("""
        import json, sys
        from eth_account import Account
        from hourmm_core.config import Credentials
        from hourmm_core.polymarket.executor import Executor
        acct = Account.create()
        ex = Executor("http://127.0.0.1:9", 137, Credentials(acct.key.hex(), acct.address, 1))
        print("limit", sys.getrecursionlimit())
        try:
            json.loads("[" * 200_000)
        except RecursionError:
            print("recursion error")
        from py_clob_client_v2.client import ClobClient
        from py_clob_client_v2.clob_types import CreateOrderOptions, OrderArgsV2
        from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2
        from hourmm_core.polymarket.clob_orders import parse_order_body, verify_order
        print("limit", sys.getrecursionlimit())
        c = ClobClient("http://127.0.0.1:9", 137, key=acct.key.hex())
        signed = c.builder.build_order(OrderArgsV2(token_id=str(2**255 + 7), price=0.4, size=5, side="BUY"),
                                       CreateOrderOptions(tick_size="0.01", neg_risk=False), version=2)
        v = verify_order(parse_order_body(order_to_json_v2(signed, "k", "GTC")), chain_id=137,
                         expected_signer=acct.address)
        print("signed", v.recovered == acct.address)
    """)
    assert r.returncode == 0, f"child died rc={r.returncode} stderr={r.stderr[-2000:]}"
    out = r.stdout.splitlines()
    assert out[0] == f"limit {safe_json.SAFE_RECURSION_LIMIT}"
    assert out[1] == "recursion error"
    assert out[2] == f"limit {safe_json.SAFE_RECURSION_LIMIT}"
    assert out[3] == "signed True"


@pytest.mark.parametrize("raw,kind", [
    ("[" * 200_000, "too_deep"),
    ('{"a":' * 70 + "1" + "}" * 70, "too_deep"),
    ("x" * 100, "invalid"),
    ("", "invalid"),
    ("1e400", "number"),
    ("[NaN]", "number"),
    ('{"x": -Infinity}', "number"),
    ("9" * 5000, "number"),
    ("0." + "1" * 100, "number"),
    (b"\xff\xfe[]", "invalid"),
    (12, "type"),
])
def test_refusals_are_typed_and_clean(raw, kind) -> None:
    with pytest.raises(JsonInputError) as ei:
        safe_json.loads(raw, what="request body")
    assert ei.value.kind == kind
    msg = str(ei.value)
    assert msg.startswith("request body")
    assert "set_int_max_str_digits" not in msg and "Traceback" not in msg and len(msg) < 200
    assert isinstance(ei.value, json.JSONDecodeError) and isinstance(ei.value, ValueError)


def test_size_limit() -> None:
    with pytest.raises(JsonInputError) as ei:
        safe_json.loads(b"[" + b"1," * 600 + b"1]", max_bytes=1000)
    assert ei.value.kind == "too_large"
    assert safe_json.loads(b"[" + b"1," * 400 + b"1]", max_bytes=1000) == [1] * 401


def test_brackets_inside_strings_do_not_count_and_real_frames_decode() -> None:
    deep_text = json.dumps({"note": "[" * 500 + '\\"{' * 100, "v": [[1, 2], {"a": [3]}]})
    assert safe_json.loads(deep_text)["v"] == [[1, 2], {"a": [3]}]
    assert safe_json.max_nesting(deep_text) == 4
    frame = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1714000000123,"s":"BTCUSDT","t":3581234567,'
             '"p":"64123.45000000","q":"0.00100000","T":1714000000122,"m":true,"M":true}}')
    assert safe_json.loads(frame) == json.loads(frame)
    assert safe_json.loads('{"x": 1.5e-7, "n": null, "t": true}') == {"x": 1.5e-7, "n": None, "t": True}
    # exactly at the depth limit is fine, one more is not
    ok = "[" * safe_json.DEFAULT_MAX_DEPTH + "]" * safe_json.DEFAULT_MAX_DEPTH
    assert safe_json.max_nesting(ok) == safe_json.DEFAULT_MAX_DEPTH
    safe_json.loads(ok)
    with pytest.raises(JsonInputError):
        safe_json.loads("[" + ok + "]")
