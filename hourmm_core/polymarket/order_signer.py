"""Fast CLOB V2 order signing: EIP-712 hashing with a C keccak, ECDSA with libsecp256k1.

Why
---
``py_clob_client_v2`` signs every order through eth-account's generic EIP-712
machinery (``encode_typed_data`` walks the type tree, ABI-encodes each field in
Python, re-derives the domain separator and type hash each time): 1-2 ms per order.
In a race against snipers that is most of our budget. The V2 ``Order`` struct is
fixed (11 static 32-byte fields), so its EIP-712 encoding is a byte concatenation:

    digest = keccak(0x1901 || domainSeparator || keccak(ORDER_TYPE_HASH || 11 words))

:class:`V2OrderSigner` pre-builds everything that does not change per order (type
hash, domain separators of both exchanges, the left-padded maker/signer words, the
secp256k1 key), hashes with pycryptodome's C keccak and signs with coincurve
(libsecp256k1, RFC 6979 deterministic nonces, low-s), so the signature is the same
65 bytes eth-account produces. ``tests/unit/polymarket/test_order_signer.py`` checks that
bit-for-bit against ``py_clob_client_v2`` for random orders of every signature type
(EOA, POLY_PROXY, POLY_GNOSIS_SAFE, POLY_1271) on both exchanges (neg_risk or not).

How it is wired
---------------
:class:`FastOrderBuilder` is a drop-in ``py_clob_client_v2.order_builder.OrderBuilder``:
``client.builder = FastOrderBuilder.from_builder(client.builder, chain_id)`` keeps all
of ``ClobClient.create_order``'s own logic (tick-size cache, version, neg-risk and
builder-code resolution, balance adjustment) and the library's amount rounding; only
the V2 limit-order hashing and signing is replaced. The returned order is a
:class:`FastSignedOrderV2` (the library's ``SignedOrderV2`` plus ``order_hash``, the
EIP-712 digest = the CLOB's order id), so callers need not hash it a second time.

Fail loud, then safe: :func:`install_fast_signer` signs a probe order with both paths
and installs the fast builder only if they agree bit for bit; any unexpected error in
the fast path logs once (ERROR) and that order and every later one go through the
library path.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import coincurve
from Crypto.Hash import keccak as _keccak_mod

from hourmm_core.polymarket.clob_orders import (
    _DEPOSIT_WALLET_NAME_HASH,
    _DEPOSIT_WALLET_VERSION_HASH,
    _ORDER_V2_TYPE_STRING,
    _SOLADY_TYPE_HASH,
    BYTES32_ZERO,
    SIGNATURE_TYPE_EOA,
    SIGNATURE_TYPE_POLY_1271,
    SIGNATURE_TYPE_POLY_GNOSIS_SAFE,
    SIGNATURE_TYPE_POLY_PROXY,
    _addr_word,
    _word,
    domain_separator,
    v2_struct_words,
)

__all__ = [
    "keccak256",
    "V2OrderSigner",
    "FastSignedOrderV2",
    "FastOrderBuilder",
    "install_fast_signer",
    "SignerMismatch",
]

log = logging.getLogger(__name__)

_SIG_TYPES = (SIGNATURE_TYPE_EOA, SIGNATURE_TYPE_POLY_PROXY, SIGNATURE_TYPE_POLY_GNOSIS_SAFE,
              SIGNATURE_TYPE_POLY_1271)
_ZERO32 = b"\x00" * 32
_PREFIX_1901 = b"\x19\x01"
_TYPE_STRING_BYTES = _ORDER_V2_TYPE_STRING.encode()
# ERC-7739 wrapper tail, constant: contentsType || uint16(len(contentsType))
_1271_TAIL_HEX = _TYPE_STRING_BYTES.hex() + len(_TYPE_STRING_BYTES).to_bytes(2, "big").hex()
_DEPOSIT_WALLET_SALT = _ZERO32


class SignerMismatch(RuntimeError):
    """The fast path disagrees with py_clob_client_v2 on a probe order (never install it)."""


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's, not SHA3-256) in C (pycryptodome)."""
    return _keccak_mod.new(digest_bits=256, data=data).digest()


def _b32(value: str | bytes | None) -> bytes:
    """bytes32 the way the library reads it: hex, optional 0x, left zero-padded to 32 bytes."""
    if not value:
        return _ZERO32
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raw = bytes.fromhex(value.replace("0x", "").zfill(64))
    if len(raw) != 32:
        raise ValueError(f"not a bytes32: {value!r}")
    return raw


@dataclass(frozen=True)
class SignedV2:
    """Raw result of :meth:`V2OrderSigner.sign`: 0x-hex signature and order hash."""

    signature: str
    order_hash: str


class V2OrderSigner:
    """Signs CLOB V2 orders for one key / funder / signature type on one chain.

    Pure: salt and timestamp are passed in (no clock, no randomness inside).
    """

    def __init__(self, private_key: str | bytes, chain_id: int, *, signature_type: int = SIGNATURE_TYPE_EOA,
                 funder: str | None = None, exchange: str, neg_risk_exchange: str,
                 domain_version: str = "2") -> None:
        if signature_type not in _SIG_TYPES:
            raise ValueError(f"signature type {signature_type} is not a V2 signature type")
        key = private_key if isinstance(private_key, bytes) else bytes.fromhex(
            private_key[2:] if private_key.startswith(("0x", "0X")) else private_key)
        self._key = coincurve.PrivateKey(key)
        pub = self._key.public_key.format(compressed=False)[1:]
        self.address_bytes = keccak256(pub)[-20:]
        self.chain_id = int(chain_id)
        self.signature_type = signature_type
        eoa = "0x" + self.address_bytes.hex()
        self.funder = funder if funder is not None else eoa
        # V2: POLY_1271 orders are signed "by" the wallet (signer = funder); others by the EOA.
        signer = self.funder if signature_type == SIGNATURE_TYPE_POLY_1271 else eoa
        self._maker_w = _addr_word(self.funder)
        self._signer_w = _addr_word(signer)
        self._sigtype_w = _word(signature_type)
        self._seps = {False: domain_separator(chain_id, exchange, domain_version),
                      True: domain_separator(chain_id, neg_risk_exchange, domain_version)}
        # POLY_1271: the TypedDataSign struct's tail after contentsHash is constant per account.
        self._solady_tail = (_DEPOSIT_WALLET_NAME_HASH + _DEPOSIT_WALLET_VERSION_HASH + _word(chain_id)
                             + self._signer_w + _DEPOSIT_WALLET_SALT)

    def __repr__(self) -> str:  # never the key
        return f"V2OrderSigner(address=0x{self.address_bytes.hex()}, type={self.signature_type}, chain={self.chain_id})"

    def struct_hash(self, *, salt: int, token_id: int, maker_amount: int, taker_amount: int, side: int,
                    timestamp_ms: int, metadata: bytes = _ZERO32, builder: bytes = _ZERO32) -> bytes:
        if side not in (0, 1):
            raise ValueError(f"side must be 0 (BUY) or 1 (SELL), got {side!r}")
        if len(metadata) != 32 or len(builder) != 32:
            raise ValueError("metadata and builder must be 32 bytes")
        return keccak256(v2_struct_words(salt, self._maker_w, self._signer_w, token_id, maker_amount,
                                         taker_amount, side, self._sigtype_w, timestamp_ms, metadata, builder))

    def sign(self, *, salt: int, token_id: int, maker_amount: int, taker_amount: int, side: int,
             timestamp_ms: int, neg_risk: bool = False, metadata: bytes = _ZERO32,
             builder: bytes = _ZERO32) -> SignedV2:
        """Signature (0x hex, as the client posts it) and order hash of one V2 order."""
        sep = self._seps[bool(neg_risk)]
        sh = self.struct_hash(salt=salt, token_id=token_id, maker_amount=maker_amount,
                              taker_amount=taker_amount, side=side, timestamp_ms=timestamp_ms,
                              metadata=metadata, builder=builder)
        digest = keccak256(_PREFIX_1901 + sep + sh)
        if self.signature_type != SIGNATURE_TYPE_POLY_1271:
            return SignedV2(self._ecdsa(digest), "0x" + digest.hex())
        # ERC-7739 (Solady TypedDataSign) wrapper, as ExchangeOrderBuilderV2 builds it.
        sign_struct = keccak256(_SOLADY_TYPE_HASH + sh + self._solady_tail)
        inner = self._ecdsa(keccak256(_PREFIX_1901 + sep + sign_struct))
        return SignedV2(inner + sep.hex() + sh.hex() + _1271_TAIL_HEX, "0x" + digest.hex())

    def _ecdsa(self, digest: bytes) -> str:
        rsv = self._key.sign_recoverable(digest, hasher=None)   # r(32) s(32) recid(1)
        return "0x" + rsv[:64].hex() + format(rsv[64] + 27, "02x")


# ------------------------------------------------------------------ py_clob_client_v2 glue

def _lib():
    from py_clob_client_v2.order_builder.builder import OrderBuilder
    from py_clob_client_v2.order_utils.model.order_data_v2 import SignedOrderV2
    return OrderBuilder, SignedOrderV2


def _make_fast_signed_cls():
    _, SignedOrderV2 = _lib()

    @dataclass
    class FastSignedOrderV2(SignedOrderV2):
        """``SignedOrderV2`` plus its EIP-712 digest (the CLOB order id)."""

        order_hash: str = ""

    return FastSignedOrderV2


FastSignedOrderV2 = _make_fast_signed_cls()


def _fast_builder_cls():
    OrderBuilder, _ = _lib()
    from py_clob_client_v2.config import get_contract_config
    from py_clob_client_v2.order_builder.builder import ROUNDING_CONFIG
    from py_clob_client_v2.order_builder.helpers import _resolve_order_routing
    from py_clob_client_v2.order_utils.model.signature_type_v2 import SignatureTypeV2
    from py_clob_client_v2.order_utils.utils import generate_order_salt

    class FastOrderBuilder(OrderBuilder):
        """``OrderBuilder`` whose V2 limit orders are hashed and signed by :class:`V2OrderSigner`.

        Everything else (V1, V3/position orders, market orders) is the library's code.
        ``clock_ms``/``salt`` default to what the library uses (wall clock ms and
        ``generate_order_salt``) so the orders are indistinguishable from its own.
        """

        def __init__(self, signer: Any, signature_type: Any = None, funder: str | None = None, *,
                     clock_ms: Callable[[], int] | None = None, salt: Callable[[], str] | None = None) -> None:
            super().__init__(signer=signer, signature_type=signature_type, funder=funder)
            cfg = get_contract_config(signer.get_chain_id())
            self.fast = V2OrderSigner(signer.private_key, signer.get_chain_id(),
                                      signature_type=int(self.signature_type), funder=self.funder,
                                      exchange=cfg.exchange_v2, neg_risk_exchange=cfg.neg_risk_exchange_v2)
            self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
            self._salt = salt or generate_order_salt
            self.fast_enabled = True
            self.fast_count = 0
            self.fallback_count = 0

        @classmethod
        def from_builder(cls, builder: Any, **kw: Any) -> "FastOrderBuilder":
            return cls(builder.signer, builder.signature_type, builder.funder, **kw)

        def build_order(self, order_args: Any, options: Any, version: int = 2, fee_rate_bps: Any = None) -> Any:
            if self.fast_enabled and version == 2 and getattr(order_args, "position_id", None) is None:
                try:
                    out = self._build_v2(order_args, options)
                    self.fast_count += 1
                    return out
                except (ValueError, KeyError) as exc:
                    # bad input: let the library raise its own error for the same input
                    log.debug("fast signer declined an order (%s); library path", exc)
                except Exception:  # noqa: BLE001 - unexpected: disable loudly, keep trading
                    self.fast_enabled = False
                    log.exception("Fast order signer failed; falling back to py_clob_client_v2 signing "
                                  "for this and all later orders")
                self.fallback_count += 1
            return super().build_order(order_args, options, version=version, fee_rate_bps=fee_rate_bps)

        def _build_v2(self, order_args: Any, options: Any) -> Any:
            # Mirrors OrderBuilder.build_order(version=2) + ExchangeOrderBuilderV2.build_order.
            asset_id, _ = _resolve_order_routing(order_args, 2)
            side, maker_amount, taker_amount = self.get_order_amounts(
                order_args.side, order_args.size, order_args.price, ROUNDING_CONFIG[options.tick_size])
            ts = str(self._clock_ms())
            metadata = getattr(order_args, "metadata", BYTES32_ZERO) or BYTES32_ZERO
            builder = order_args.builder_code or BYTES32_ZERO
            expiration = str(getattr(order_args, "expiration", 0)) or "0"
            salt = self._salt()
            token = int(asset_id)
            res = self.fast.sign(salt=int(salt), token_id=token, maker_amount=maker_amount,
                                 taker_amount=taker_amount, side=int(side), timestamp_ms=int(ts),
                                 neg_risk=bool(options.neg_risk), metadata=_b32(metadata), builder=_b32(builder))
            return FastSignedOrderV2(
                salt=salt, maker=self.funder, signer=self._v2_order_signer(), tokenId=asset_id,
                makerAmount=str(maker_amount), takerAmount=str(taker_amount), side=side,
                signatureType=SignatureTypeV2(int(self.signature_type)), timestamp=ts, metadata=metadata,
                builder=builder, expiration=expiration, signature=res.signature, order_hash=res.order_hash)

    return FastOrderBuilder


FastOrderBuilder = _fast_builder_cls()


def _probe(builder: Any) -> None:
    """Sign fixed probe orders with both paths; raise SignerMismatch unless identical."""
    from py_clob_client_v2.clob_types import CreateOrderOptions, OrderArgsV2
    from py_clob_client_v2.config import get_contract_config
    from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2

    cfg = get_contract_config(builder.signer.get_chain_id())
    token = str(2**255 + 1234567)
    for neg_risk, side, price in ((False, "BUY", 0.37), (True, "SELL", 0.81)):
        fixed = FastOrderBuilder(builder.signer, builder.signature_type, builder.funder,
                                 clock_ms=lambda: 1_700_000_000_123, salt=lambda: "987654321")
        ours = fixed._build_v2(OrderArgsV2(token_id=token, price=price, size=12.5, side=side),
                               CreateOrderOptions(tick_size="0.01", neg_risk=neg_risk))
        lib = ExchangeOrderBuilderV2(cfg.neg_risk_exchange_v2 if neg_risk else cfg.exchange_v2,
                                     builder.signer.get_chain_id(), builder.signer,
                                     generate_salt=lambda: "987654321")
        data = lib.build_order(_order_data(ours))
        want_sig = lib.build_order_signature(lib.build_order_typed_data(data))
        want_hash = lib.build_order_hash(lib.build_order_typed_data(data))
        if want_sig != ours.signature or want_hash != ours.order_hash:
            raise SignerMismatch(f"probe order (neg_risk={neg_risk}) differs from py_clob_client_v2")


def _order_data(o: Any) -> Any:
    from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2

    return OrderDataV2(maker=o.maker, tokenId=o.tokenId, makerAmount=o.makerAmount, takerAmount=o.takerAmount,
                       side=o.side, signer=o.signer, signatureType=o.signatureType, timestamp=o.timestamp,
                       metadata=o.metadata, builder=o.builder, expiration=o.expiration)


def install_fast_signer(client: Any) -> bool:
    """Swap ``client.builder`` for a :class:`FastOrderBuilder` after a bit-for-bit probe.

    Returns True when installed. On any mismatch or error the library builder stays
    and one ERROR line says why (orders still work, just ~1-2 ms slower each).
    """
    try:
        if isinstance(client.builder, FastOrderBuilder):
            return True
        fast = FastOrderBuilder.from_builder(client.builder)
        _probe(fast)
    except Exception as exc:  # noqa: BLE001 - never block trading on the fast path
        log.error("Fast order signer NOT installed (%s: %s); orders use py_clob_client_v2 signing",
                  type(exc).__name__, exc)
        return False
    client.builder = fast
    log.info("Fast order signer installed (libsecp256k1 + C keccak, probe orders match py_clob_client_v2)")
    return True
