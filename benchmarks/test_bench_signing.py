"""Order signing side by side: py_clob_client_v2's EIP-712 path vs our compiled path.

Run: ``python3 -m pytest benchmarks/test_bench_signing.py --benchmark-only``.

* ``signing-core`` group: sign + order hash of one V2 order with everything fixed
  (the crypto alone). ``lib``: ``ExchangeOrderBuilderV2.build_signed_order`` then
  ``build_order_hash`` (what the executor did per order); ``fast``:
  ``V2OrderSigner.sign`` (both in one call).
* ``signing-create`` group: the executor's whole ``ClobClient.create_order`` (amount
  rounding, salt, timestamp, cached tick size/version) with the library's builder vs
  :class:`FastOrderBuilder`, plus the library hash for ``lib``.
* ``test_signing_ratio``: both paths interleaved in one process (11 rounds) so the
  lib/fast ratio is measured under the same load; in ``extra_info``.

Keys are generated at run time. Both paths are checked to produce the same signature.
No timed asserts.
"""
from __future__ import annotations

import statistics
import time

import pytest
from eth_account import Account
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import OrderArgsV2, PartialCreateOrderOptions
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2
from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2
from py_clob_client_v2.order_utils.model.side import Side
from py_clob_client_v2.order_utils.model.signature_type_v2 import SignatureTypeV2
from py_clob_client_v2.signer import Signer

from hourmm_core.polymarket.order_signer import FastOrderBuilder, V2OrderSigner

TOKEN = str(2**255 + 4242)
CFG = get_contract_config(137)


def _key() -> str:
    k = Account.create().key.hex()
    return k if k.startswith("0x") else "0x" + k


def _paths(sig_type: int):
    key = _key()
    signer = Signer(key, 137)
    funder = signer.address() if sig_type == 0 else Account.create().address
    order_signer = funder if sig_type == 3 else signer.address()
    lib = ExchangeOrderBuilderV2(CFG.exchange_v2, 137, signer, generate_salt=lambda: "123456789")
    data = OrderDataV2(maker=funder, tokenId=TOKEN, makerAmount="4500000", takerAmount="10000000", side=Side.BUY,
                       signer=order_signer, signatureType=SignatureTypeV2(sig_type), timestamp="1767225600123")

    def lib_sign_and_hash():
        s = lib.build_signed_order(data)
        return s.signature, lib.build_order_hash(lib.build_order_typed_data(s))

    fast = V2OrderSigner(key, 137, signature_type=sig_type, funder=funder, exchange=CFG.exchange_v2,
                         neg_risk_exchange=CFG.neg_risk_exchange_v2)

    def fast_sign_and_hash():
        r = fast.sign(salt=123456789, token_id=int(TOKEN), maker_amount=4_500_000, taker_amount=10_000_000,
                      side=0, timestamp_ms=1767225600123)
        return r.signature, r.order_hash

    return lib_sign_and_hash, fast_sign_and_hash


@pytest.mark.benchmark(group="signing-core")
@pytest.mark.parametrize("sig_type", [0, 3], ids=["eoa", "poly1271"])
@pytest.mark.parametrize("impl", ["lib", "fast"])
def test_sign_and_hash(benchmark, impl, sig_type):
    lib, fast = _paths(sig_type)
    out = benchmark(lib if impl == "lib" else fast)
    assert out == lib()      # same bits whichever path was timed
    benchmark.extra_info.update({"impl": impl, "signature_type": sig_type})


def _create(fast: bool):
    key = _key()
    c = ClobClient("http://127.0.0.1:1", chain_id=137, key=key, signature_type=0)
    c._ClobClient__cached_version = 2          # no GET /version: signing only
    c._ClobClient__tick_sizes[TOKEN] = "0.01"
    ex = ExchangeOrderBuilderV2(CFG.exchange_v2, 137, c.signer)
    if fast:
        c.builder = FastOrderBuilder.from_builder(c.builder)
    args = OrderArgsV2(token_id=TOKEN, price=0.45, size=10.0, side="BUY")
    opts = PartialCreateOrderOptions(tick_size="0.01", neg_risk=False)

    def run():
        s = c.create_order(args, opts)
        h = s.order_hash if fast else ex.build_order_hash(ex.build_order_typed_data(s))
        return s, h

    return run


@pytest.mark.benchmark(group="signing-create")
@pytest.mark.parametrize("impl", ["lib", "fast"])
def test_create_order_and_hash(benchmark, impl):
    run = _create(impl == "fast")
    s, h = benchmark(run)
    assert h.startswith("0x") and len(h) == 66 and len(s.signature) == 132


def test_signing_ratio(benchmark):
    """lib/fast per-order time, interleaved rounds in one process (the figure the README quotes)."""
    lib, fast = _paths(0)
    lib_c, fast_c = _create(False), _create(True)
    rounds, n = 11, 40
    res: dict[str, list[float]] = {k: [] for k in ("lib", "fast", "lib_create", "fast_create")}

    def one_round():
        for name, fn in (("lib", lib), ("fast", fast), ("lib_create", lib_c), ("fast_create", fast_c)):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            res[name].append((time.perf_counter() - t0) / n * 1e6)

    benchmark.pedantic(lambda: [one_round() for _ in range(rounds)], rounds=1, iterations=1)
    med = {k: statistics.median(v) for k, v in res.items()}
    benchmark.extra_info.update({f"{k}_us_median": round(v, 1) for k, v in med.items()})
    benchmark.extra_info["ratio_sign_and_hash_lib_over_fast"] = round(med["lib"] / med["fast"], 1)
    benchmark.extra_info["ratio_create_order_lib_over_fast"] = round(med["lib_create"] / med["fast_create"], 1)
    assert all(len(v) == rounds for v in res.values())
    assert lib() == fast()
