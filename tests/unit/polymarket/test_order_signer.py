"""The fast V2 order signer must be bit-for-bit py_clob_client_v2's signer.

Random orders (hypothesis) over every V2 signature type (EOA, POLY_PROXY,
POLY_GNOSIS_SAFE, POLY_1271), both exchanges (neg_risk), both chains, full uint256
ranges for salt/token/amounts, and random metadata/builder words. Keys are
generated at run time. Also: the library's own ``create_order`` gives identical
orders with our builder installed, the independent verifier in clob_orders accepts
them, and the fallback is loud and safe.
"""
from __future__ import annotations

import json
import logging
import random
import time
from unittest import mock

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import OrderArgsV2, PartialCreateOrderOptions
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2
from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2, order_to_json_v2
from py_clob_client_v2.order_utils.model.side import Side
from py_clob_client_v2.order_utils.model.signature_type_v2 import SignatureTypeV2
from py_clob_client_v2.signer import Signer

from hourmm_core.polymarket import order_signer as osg
from hourmm_core.polymarket.clob_orders import parse_order_body, verify_order
from hourmm_core.polymarket.order_signer import (
    FastOrderBuilder,
    FastSignedOrderV2,
    V2OrderSigner,
    install_fast_signer,
    keccak256,
)
from tests.conftest import new_credentials

# the secp256k1 group order n: a public curve constant (keys are drawn below it), not a key
SECP256K1_N = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)
U256 = st.integers(0, 2**256 - 1)
keys = st.integers(1, SECP256K1_N - 1).map(lambda k: "0x" + k.to_bytes(32, "big").hex())
addresses = st.binary(min_size=20, max_size=20).map(lambda b: Account.create().address if not any(b) else
                                                     "0x" + b.hex())
words = st.one_of(st.just("0x" + "00" * 32), st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()))


def test_keccak_known_vectors():
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=keys, sig_type=st.sampled_from([0, 1, 2, 3]), funder=addresses, neg_risk=st.booleans(),
       chain=st.sampled_from([137, 80002]), salt=U256, token=st.integers(1, 2**256 - 1), maker_amt=U256,
       taker_amt=U256, side=st.sampled_from([0, 1]), ts=st.integers(0, 2**64), metadata=words, builder=words)
def test_sign_matches_library_bit_for_bit(key, sig_type, funder, neg_risk, chain, salt, token, maker_amt,
                                          taker_amt, side, ts, metadata, builder):
    signer = Signer(key, chain)
    eoa = signer.address()
    maker = eoa if sig_type == 0 else funder
    order_signer = maker if sig_type == 3 else eoa
    cfg = get_contract_config(chain)
    contract = cfg.neg_risk_exchange_v2 if neg_risk else cfg.exchange_v2
    lib = ExchangeOrderBuilderV2(contract, chain, signer, generate_salt=lambda: str(salt))
    signed = lib.build_signed_order(OrderDataV2(
        maker=maker, tokenId=str(token), makerAmount=str(maker_amt), takerAmount=str(taker_amt),
        side=Side(side), signer=order_signer, signatureType=SignatureTypeV2(sig_type), timestamp=str(ts),
        metadata=metadata, builder=builder, expiration="0"))
    want_hash = lib.build_order_hash(lib.build_order_typed_data(signed))

    ours = V2OrderSigner(key, chain, signature_type=sig_type, funder=maker, exchange=cfg.exchange_v2,
                         neg_risk_exchange=cfg.neg_risk_exchange_v2)
    got = ours.sign(salt=salt, token_id=token, maker_amount=maker_amt, taker_amount=taker_amt, side=side,
                    timestamp_ms=ts, neg_risk=neg_risk, metadata=bytes.fromhex(metadata[2:]),
                    builder=bytes.fromhex(builder[2:]))
    assert got.signature == signed.signature
    assert got.order_hash == want_hash


PRICES = {"0.1": 1, "0.01": 2, "0.001": 3, "0.0001": 4}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=keys, sig_type=st.sampled_from([0, 1, 2, 3]), neg_risk=st.booleans(),
       tick=st.sampled_from(sorted(PRICES)), ticks=st.integers(1, 9999), size=st.floats(5, 5000),
       side=st.sampled_from(["BUY", "SELL"]), expiration=st.sampled_from([0, 1_900_000_000]),
       seed=st.integers(0, 2**32), now_ns=st.integers(1_700_000_000 * 10**9, 1_900_000_000 * 10**9))
def test_create_order_identical_with_fast_builder(key, sig_type, neg_risk, tick, ticks, size, side, expiration,
                                                  seed, now_ns):
    """Whole ``ClobClient.create_order`` (amount rounding, salt, timestamp): same order, same JSON."""
    dp = PRICES[tick]
    n_ticks = 10**dp
    price = round((1 + (ticks % (n_ticks - 1))) / n_ticks, dp)
    funder = None if sig_type == 0 else Account.create().address
    args = dict(token_id=str(2**255 + 99), price=price, size=round(size, 2), side=side, expiration=expiration)
    opts = PartialCreateOrderOptions(tick_size=tick, neg_risk=neg_risk)

    def make(fast: bool):
        c = ClobClient("http://127.0.0.1:9", 137, key=key, signature_type=sig_type, funder=funder)
        c._ClobClient__tick_sizes[args["token_id"]] = tick
        c._ClobClient__cached_version = 2
        if fast:
            c.builder = FastOrderBuilder.from_builder(c.builder)
        random.seed(seed)
        with mock.patch.object(time, "time_ns", return_value=now_ns):
            return c.create_order(OrderArgsV2(**args), opts)

    lib, ours = make(False), make(True)
    assert isinstance(ours, FastSignedOrderV2)
    want = order_to_json_v2(lib, "k", "GTC")
    got = order_to_json_v2(ours, "k", "GTC")
    assert json.dumps(got, separators=(",", ":")) == json.dumps(want, separators=(",", ":"))
    ex = ExchangeOrderBuilderV2(get_contract_config(137).neg_risk_exchange_v2 if neg_risk
                                else get_contract_config(137).exchange_v2, 137, Signer(key, 137))
    assert ours.order_hash == ex.build_order_hash(ex.build_order_typed_data(lib))
    # the independent verifier (eth-account recovery) accepts it and derives the same id
    v = verify_order(parse_order_body(got), chain_id=137, neg_risk=neg_risk,
                     expected_signer=Account.from_key(key).address)
    assert v.order_hash == ours.order_hash


def _client(sig_type: int = 0) -> ClobClient:
    acct = Account.create()
    funder = None if sig_type == 0 else Account.create().address
    return ClobClient("http://127.0.0.1:9", 137, key=acct.key.hex(), signature_type=sig_type, funder=funder)


@pytest.mark.parametrize("sig_type", [0, 1, 2, 3])
def test_install_probe_passes_and_swaps_builder(sig_type, caplog):
    c = _client(sig_type)
    with caplog.at_level(logging.INFO, logger=osg.__name__):
        assert install_fast_signer(c) is True
    assert isinstance(c.builder, FastOrderBuilder)
    assert "Fast order signer installed" in caplog.text


def test_install_refuses_on_mismatch(caplog, monkeypatch):
    c = _client(0)
    before = c.builder
    # a subtly wrong signer (wrong v byte) must be caught by the probe, not shipped
    def flipped_v(self, d):
        rsv = self._key.sign_recoverable(d, hasher=None)
        return "0x" + rsv[:64].hex() + format(28 - rsv[64], "02x")   # 27 <-> 28: always wrong

    monkeypatch.setattr(V2OrderSigner, "_ecdsa", flipped_v)
    with caplog.at_level(logging.ERROR, logger=osg.__name__):
        assert install_fast_signer(c) is False
    assert c.builder is before
    assert "NOT installed" in caplog.text and "SignerMismatch" in caplog.text


def test_unexpected_error_falls_back_loudly_once(caplog, monkeypatch):
    c = _client(0)
    c._ClobClient__tick_sizes["7"] = "0.01"
    c._ClobClient__cached_version = 2
    assert install_fast_signer(c)

    def boom(self, **kw):
        raise RuntimeError("libsecp256k1 exploded")

    monkeypatch.setattr(V2OrderSigner, "sign", boom)
    with caplog.at_level(logging.ERROR, logger=osg.__name__):
        o1 = c.create_order(OrderArgsV2(token_id="7", price=0.4, size=10, side="BUY"),
                            PartialCreateOrderOptions(tick_size="0.01", neg_risk=False))
        o2 = c.create_order(OrderArgsV2(token_id="7", price=0.4, size=10, side="BUY"),
                            PartialCreateOrderOptions(tick_size="0.01", neg_risk=False))
    assert not isinstance(o1, FastSignedOrderV2) and not isinstance(o2, FastSignedOrderV2)
    assert caplog.text.count("Fast order signer failed") == 1
    assert c.builder.fast_enabled is False and c.builder.fallback_count == 1
    # the library-signed fallback orders are valid
    v = verify_order(parse_order_body(order_to_json_v2(o2, "k", "GTC")), chain_id=137, neg_risk=False)
    assert v.order.signer == c.signer.address()


def test_bad_inputs_raise_clear_errors():
    cfg = get_contract_config(137)
    s = V2OrderSigner(Account.create().key.hex(), 137, exchange=cfg.exchange_v2,
                      neg_risk_exchange=cfg.neg_risk_exchange_v2)
    ok = dict(salt=1, token_id=1, maker_amount=1, taker_amount=1, side=0, timestamp_ms=1)
    s.sign(**ok)
    for bad in (dict(maker_amount=-1), dict(token_id=2**256), dict(side=2), dict(salt=-5)):
        with pytest.raises(ValueError):
            s.sign(**{**ok, **bad})
    with pytest.raises(ValueError):
        V2OrderSigner(Account.create().key.hex(), 137, signature_type=4, exchange=cfg.exchange_v2,
                      neg_risk_exchange=cfg.neg_risk_exchange_v2)
    assert "0x" in repr(s) and Account.create().key.hex() not in repr(s)


def test_library_errors_unchanged_for_bad_orders():
    """A bad tick size is refused with the library's own exception type either way."""
    c1, c2 = _client(0), _client(0)
    install_fast_signer(c2)
    errs = []
    for c in (c1, c2):
        with pytest.raises(Exception) as ei:
            c.builder.build_order(OrderArgsV2(token_id="7", price=0.4, size=10, side="BUY"),
                                  mock.Mock(tick_size="0.3", neg_risk=False))
        errs.append(type(ei.value))
    assert errs[0] is errs[1]


async def test_executor_uses_fast_signer_against_sim():
    """The trader's executor signs through the fast path; the sim (eth-account verifier) accepts
    every order and its order ids equal our locally computed hashes, single and batched."""
    server = pytest.importorskip("hourmm_core.sim.polymarket.server")
    from hourmm_core.polymarket.executor import Executor, OrderRequest

    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    await sim.start()
    ex = Executor(sim.urls["clob"], 137, new_credentials())
    try:
        await ex.start()
        hm = sim.hours[0]
        builder = ex._client.builder
        assert isinstance(builder, FastOrderBuilder)
        ack = await ex.place(OrderRequest("f1", hm.up_token, "BUY", 0.03, 10.0, tick_size="0.01"))
        many = await ex.place_many([OrderRequest(f"f{i}", hm.up_token, "BUY", 0.01 * i, 5.0, tick_size="0.01")
                                    for i in range(2, 6)])
        assert ack.success and all(getattr(m, "success", False) for m in many), many
        assert builder.fast_count == 5 and builder.fallback_count == 0
        assert "order_id_differs_from_local_hash" not in ex.stats
        opens = {o["id"] for o in await ex.open_orders(asset_id=hm.up_token)}
        assert {ack.order_id, *(m.order_id for m in many)} <= opens
    finally:
        await ex.close()
        await sim.stop()
