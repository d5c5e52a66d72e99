"""Cost of reading a posted order in the sim: parse a POST /order body, recover the EIP-712 signer.

Pure Python (eth-account); no compiled twin. Bodies are signed by the real clients at
set-up with runtime keys. Run: python -m pytest benchmarks/test_bench_clob_orders.py --benchmark-only
"""
from __future__ import annotations

import json

import pytest
from eth_account import Account
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import CreateOrderOptions, OrderArgsV2
from py_clob_client_v2.order_utils.model.order_data_v1 import order_to_json_v1
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2

from hourmm_core.polymarket.clob_orders import parse_order_body, verify_order

TOKEN = str(2**255 + 7)


def _body(sig_type: int, version: int) -> str:
    acct = Account.create()
    funder = acct.address if sig_type == 0 else Account.create().address
    c = ClobClient("http://127.0.0.1:9", 137, key=acct.key.hex(), signature_type=sig_type, funder=funder)
    signed = c.builder.build_order(OrderArgsV2(token_id=TOKEN, price=0.45, size=10, side="BUY"),
                                   CreateOrderOptions(tick_size="0.01", neg_risk=False), version=version)
    fn = order_to_json_v2 if version == 2 else order_to_json_v1
    return json.dumps(fn(signed, "key", "GTC", True), separators=(",", ":"))


@pytest.mark.parametrize("label,sig_type,version", [("v2_eoa", 0, 2), ("v2_poly1271", 3, 2), ("v1_eoa", 0, 1)])
def test_bench_parse_and_verify(benchmark, label, sig_type, version):
    body = _body(sig_type, version)

    def run():
        return verify_order(parse_order_body(body), chain_id=137, neg_risk=False)

    v = benchmark(run)
    assert v.order.version == version and v.order_hash.startswith("0x")


def test_bench_parse_only(benchmark):
    body = _body(0, 2)
    o = benchmark(parse_order_body, body)
    assert o.size == pytest.approx(10.0)
