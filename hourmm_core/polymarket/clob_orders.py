"""Polymarket CLOB order wire format (V1 and V2): parse, price, verify signatures.

Why this module exists
----------------------
Polymarket's production CLOB accepts only **V2-signed** orders since 2026-04-28
(new exchange contracts, EIP-712 domain version ``"2"``, an order struct with
``timestamp``/``metadata``/``builder`` instead of ``taker``/``nonce``/``feeRateBps``).
Both the loopback simulator (which must accept what ``py_clob_client_v2`` sends)
and our own tests need one strict, pure (no sockets, no clock) reader of the
``POST /order`` and ``POST /orders`` JSON bodies that

* turns either version into one typed :class:`SignedOrder`,
* derives price and size from the integer amounts (6 decimals for USDC/pUSD and
  for outcome tokens; BUY: ``makerAmount`` = collateral paid, ``takerAmount`` =
  tokens received; SELL: the reverse),
* recovers the EIP-712 signer with eth-account and checks it against the order's
  ``signer`` and the ``maker`` (funder) rules of its signature type.

Every malformed input raises :class:`OrderFormatError`; every signature problem
raises :class:`OrderSignatureError` (both subclass :class:`ClobOrderError`, a
``ValueError``) carrying a short ``error`` text the simulator returns as
``{"error": ...}`` with HTTP 400, like the real CLOB.

Signature types (same numbers in V1 and V2, ``SignatureTypeV2`` enum)
---------------------------------------------------------------------
* ``0`` EOA: the key holds the funds; ``maker == signer``.
* ``1`` POLY_PROXY: an EOA signs for its Polymarket proxy wallet; ``maker`` is the
  proxy (funder) and ``signer`` the EOA.
* ``2`` POLY_GNOSIS_SAFE: an EOA signs for its Gnosis safe; ``maker`` = safe.
* ``3`` POLY_1271 (V2 only): a smart-contract wallet (``maker == signer`` = wallet)
  validates via ERC-1271. The client wraps an ERC-7739 (Solady ``TypedDataSign``)
  signature: ``inner(65) || appDomainSeparator(32) || contentsHash(32) ||
  contentsType || uint16(len(contentsType))``. Off-chain we check the wrapper is
  consistent with the order and recover the wallet owner's EOA from ``inner``; who
  owns the wallet is on-chain state, so the caller decides (``expected_signer``).

Note the operator guide's ``PM_SIGNATURE_TYPE`` text ("1 = EOA, 2 = proxy") does
not match these library numbers; the executor maps it (see executor docs).

CLOB_WIRE: what ``py_clob_client_v2`` 1.2.1 sends and expects
--------------------------------------------------------------
All paths are relative to ``CLOB_URL``. JSON bodies are compact
(``separators=(",", ":")``). Non-200 replies raise ``PolyApiException`` carrying
the JSON body (real shape ``{"error": "<message>"}``). The client uses a shared
``httpx.Client(http2=True)``; over plain ``http://`` it speaks HTTP/1.1.

Auth headers
  L1 (key derivation): ``POLY_ADDRESS``, ``POLY_SIGNATURE`` (EIP-712 ``ClobAuth``
  {address, timestamp:string, nonce:uint256, message:"This message attests that I
  control the given wallet"}, domain {name "ClobAuthDomain", version "1", chainId};
  no verifyingContract), ``POLY_TIMESTAMP`` (unix **seconds**), ``POLY_NONCE``.
  L2 (trading): ``POLY_ADDRESS``, ``POLY_SIGNATURE`` = urlsafe-b64(HMAC-SHA256(
  urlsafe-b64decode(secret), ts + METHOD + path + body)) where path has **no
  query string** and body is the exact serialized JSON sent (omitted when empty),
  ``POLY_TIMESTAMP`` (seconds), ``POLY_API_KEY``, ``POLY_PASSPHRASE``.
  With ``use_server_time=True`` the client first reads ``GET /time``.

Public (no auth)
  ``GET /version`` -> ``{"version": 2}``. Read once per client (cached) before
      the first ``create_order``; any error counts as 2. A POST reply whose
      ``error`` contains ``order_version_mismatch`` forces a re-read.
  ``GET /time`` -> bare integer unix seconds (or ``{"time": n}``).
  ``GET /ok`` -> ``"OK"``.
  ``GET /tick-size?token_id=T`` -> ``{"minimum_tick_size": 0.01}``. Called by
      EVERY ``create_order`` unless cached; the V2 client caches tick sizes forever
      (no TTL, no invalidation), and rejects an ``options.tick_size`` smaller than
      the cached one ("invalid tick size ..."). A consumer that follows a
      ``tick_size_change`` must refresh that cache itself.
  ``GET /neg-risk?token_id=T`` -> ``{"neg_risk": false}`` (skipped when
      ``PartialCreateOrderOptions(neg_risk=...)`` is given).
  ``GET /fee-rate?token_id=T`` -> ``{"base_fee": 0}`` (V1 orders only).
  ``GET /clob-markets/<condition_id>`` -> compact market info; the client reads
      ``t`` (list of ``{"t": token_id, "o": outcome}``), ``mts`` (min tick size),
      ``nr`` (neg risk, omitted when false), ``fd`` ({"r": fee rate, "e": fee
      exponent, "to": taker only}); other keys seen in the model: ``c``
      (condition id), ``mos`` (min order size), ``mbf``/``tbf`` (maker/taker base
      fee bps), ``ao`` (accepting orders). Used by market orders, by
      ``user_usdc_balance`` fee adjustment and ``get_fee_exponent``; limit orders
      with tick size cached do not need it.
  ``GET /markets-by-token/<token_id>`` -> ``{"condition_id": ...}`` (token ->
      condition lookup before ``/clob-markets``).
  ``GET /book?token_id=T`` -> ``{"market","asset_id","timestamp","hash","bids":
      [{"price","size"}],"asks":[...],"min_order_size","tick_size","neg_risk",
      "last_trade_price"}`` (strings for numbers).
  ``GET /midpoint?token_id=T`` -> ``{"mid": "0.5"}``; ``GET /price?token_id&side``.
  ``GET /fees/builder-fees/<builder_code>`` only when a non-zero builder code is set.

L1 auth
  ``POST /auth/api-key`` (no body) -> ``{"apiKey","secret","passphrase"}``;
  ``GET /auth/derive-api-key`` -> same. ``create_or_derive_api_key`` tries create,
  on any error falls back to derive (nonce header, default 0).

L2 auth
  ``POST /order`` body (V2)::

      {"order": {"salt": <int>, "maker": "0x..", "signer": "0x..", "tokenId": "<dec>",
                 "makerAmount": "<int>", "takerAmount": "<int>", "side": "BUY"|"SELL",
                 "expiration": "<unix s, 0 = none>", "signatureType": <int>,
                 "timestamp": "<ms>", "metadata": "0x<32 bytes>", "builder": "0x<32 bytes>",
                 "signature": "0x.."},
       "owner": "<api key>", "orderType": "GTC"|"GTD"|"FOK"|"FAK",
       "deferExec": false, "postOnly": false}

      V1 bodies carry ``taker``, ``nonce``, ``feeRateBps`` instead of ``timestamp``,
      ``metadata``, ``builder`` (py_clob_client 0.34 omits ``deferExec``).
      Reply ``{"success": true, "errorMsg": "", "orderID": "0x<order hash>",
      "status": "live"|"matched"|"delayed"|"unmatched", "makingAmount": "",
      "takingAmount": "", "transactionsHashes": [...], "tradeIDs": [...]}``.
      IMPORTANT: when the reply has ``tradeIDs`` but no ``transactionsHashes``,
      ``post_order`` blocks polling ``GET /data/trades?id=<trade>`` every 0.25 s
      for up to 30 s until each trade has ``transaction_hash`` or status
      ``FAILED``. A simulator must therefore include ``transactionsHashes`` for
      matched orders (or serve trades carrying ``transaction_hash``).
      ``post_only`` with FOK/FAK raises client-side.
  ``POST /orders`` body: JSON list of the above (same ``postOnly`` for all);
      reply: list of per-order replies. Real batch limit 15.
  ``DELETE /order`` body ``{"orderID": "0x.."}``;
  ``DELETE /orders`` body ``["0x..", ...]``;
  ``DELETE /cancel-all`` (no body);
  ``DELETE /cancel-market-orders`` body ``{"market": cid}`` and/or ``{"asset_id": T}``.
      Cancel replies: ``{"canceled": [ids], "not_canceled": {id: reason}}``.
  ``GET /data/orders?[id&market&asset_id&]next_cursor=MA==`` ->
      ``{"data": [order...], "next_cursor": "LTE=", "limit", "count"}``; the client
      loops until ``next_cursor == "LTE="``. Order objects (real): ``id, status,
      owner, maker_address, market, asset_id, side, original_size, size_matched,
      price, outcome, expiration, order_type, associate_trades, created_at``.
  ``GET /data/order/<id>`` -> one order object.
  ``GET /data/trades?[id&market&asset_id&maker_address&before&after&]next_cursor``
      -> paged like orders; trade objects: ``id, taker_order_id, market, asset_id,
      side, size, fee_rate_bps, price, status (MATCHED|MINED|CONFIRMED|RETRYING|
      FAILED), match_time, last_update, outcome, owner, maker_address,
      transaction_hash, bucket_index, maker_orders[{order_id, owner,
      maker_address, matched_amount, price, fee_rate_bps, asset_id, outcome,
      side}], trader_side (TAKER|MAKER)``.
  ``POST /v1/heartbeats`` body ``{"heartbeat_id": "<id or empty>"}`` -> documented
      reply ``{"status": "ok"}``; newer servers also return ``"heartbeat_id"``,
      which the next call echoes (empty id = start a new one). Dead-man switch:
      the first heartbeat enrols the API key; if none arrives for ~10 s all of
      that key's open orders are cancelled. Send one every few seconds.
  ``GET /balance-allowance?signature_type=N[&asset_type=COLLATERAL|CONDITIONAL
      &token_id=T]`` -> ``{"balance": "<int 6 dp>", "allowances": {addr: "<int>"}}``;
      ``GET /balance-allowance/update`` same params (note: GET, not POST).
  ``GET /auth/ban-status/closed-only`` -> ``{"closed_only": false}``.

Fees (V2): orders no longer carry ``feeRateBps``; the exchange charges the
taker a fee per matched share of ``rate * (p * (1 - p)) ** exponent`` (``fd``
above), collected in collateral.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

import coincurve
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.constants import SECPK1_N
from eth_utils import keccak, to_checksum_address

from hourmm_core import safe_json

__all__ = [
    "ClobOrderError",
    "OrderFormatError",
    "OrderSignatureError",
    "SignedOrder",
    "VerifiedOrder",
    "ExchangeDomain",
    "SIGNATURE_TYPE_EOA",
    "SIGNATURE_TYPE_POLY_PROXY",
    "SIGNATURE_TYPE_POLY_GNOSIS_SAFE",
    "SIGNATURE_TYPE_POLY_1271",
    "ORDER_TYPES",
    "MAX_BATCH_ORDERS",
    "parse_order_body",
    "parse_orders_body",
    "exchange_domains",
    "order_typed_data",
    "order_hash",
    "verify_order",
    "parse_and_verify",
]

SIGNATURE_TYPE_EOA = 0
SIGNATURE_TYPE_POLY_PROXY = 1
SIGNATURE_TYPE_POLY_GNOSIS_SAFE = 2
SIGNATURE_TYPE_POLY_1271 = 3

ORDER_TYPES = frozenset({"GTC", "GTD", "FOK", "FAK"})
MAX_BATCH_ORDERS = 15
TOKEN_DECIMALS = 6
_UNIT = 10**TOKEN_DECIMALS
_UINT256_MAX = 2**256 - 1
ZERO_ADDRESS = "0x" + "00" * 20
BYTES32_ZERO = "0x" + "00" * 32

DOMAIN_NAME = "Polymarket CTF Exchange"

_EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_ORDER_V1 = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "taker", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "expiration", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "feeRateBps", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
]
_ORDER_V2 = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
_ORDER_V2_TYPE_STRING = (
    "Order(uint256 salt,address maker,address signer,uint256 tokenId,"
    "uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,"
    "uint256 timestamp,bytes32 metadata,bytes32 builder)"
)
_SOLADY_TYPE_HASH = keccak(
    text=(
        "TypedDataSign(Order contents,string name,string version,uint256 chainId,"
        "address verifyingContract,bytes32 salt)" + _ORDER_V2_TYPE_STRING
    )
)
_ORDER_V2_TYPE_HASH = keccak(text=_ORDER_V2_TYPE_STRING)
_DOMAIN_TYPE_HASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_DEPOSIT_WALLET_NAME_HASH = keccak(text="DepositWallet")
_DEPOSIT_WALLET_VERSION_HASH = keccak(text="1")

_V1_FIELDS = ("taker", "nonce", "feeRateBps")
_V2_FIELDS = ("timestamp", "metadata", "builder")
_COMMON_FIELDS = (
    "salt", "maker", "signer", "tokenId", "makerAmount", "takerAmount", "side",
    "expiration", "signatureType", "signature",
)


class ClobOrderError(ValueError):
    """A posted order cannot be accepted; ``error`` is the text for ``{"error": ...}``."""

    def __init__(self, error: str, *, index: int | None = None) -> None:
        super().__init__(error if index is None else f"order[{index}]: {error}")
        self.error = error
        self.index = index


class OrderFormatError(ClobOrderError):
    """The JSON body is not a well-formed order (missing/typed-wrong/out-of-range field)."""


class OrderSignatureError(ClobOrderError):
    """The EIP-712 signature does not recover to the order's signer, or maker rules fail."""


@dataclass(frozen=True)
class SignedOrder:
    """One signed order as posted, normalised (checksummed addresses, int amounts).

    V1-only fields (``taker``, ``nonce``, ``fee_rate_bps``) are ``None`` on V2
    orders and V2-only fields (``timestamp``, ``metadata``, ``builder``) are
    ``None`` on V1 orders, so a consumer can never confuse the two.
    """

    version: int
    salt: int
    maker: str
    signer: str
    token_id: str
    maker_amount: int
    taker_amount: int
    side: str
    signature_type: int
    expiration: int
    signature: str
    owner: str
    order_type: str
    post_only: bool
    defer_exec: bool
    timestamp: int | None = None
    metadata: str | None = None
    builder: str | None = None
    taker: str | None = None
    nonce: int | None = None
    fee_rate_bps: int | None = None

    @property
    def is_buy(self) -> bool:
        return self.side == "BUY"

    @property
    def size_units(self) -> int:
        """Outcome tokens in 1e-6 units (BUY: takerAmount, SELL: makerAmount)."""
        return self.taker_amount if self.is_buy else self.maker_amount

    @property
    def collateral_units(self) -> int:
        """Collateral in 1e-6 units (BUY: paid = makerAmount, SELL: received = takerAmount)."""
        return self.maker_amount if self.is_buy else self.taker_amount

    @property
    def price_fraction(self) -> Fraction:
        """Exact limit price as collateral per token (use for tick-grid checks)."""
        return Fraction(self.collateral_units, self.size_units)

    @property
    def price(self) -> float:
        return float(self.price_fraction)

    @property
    def size(self) -> float:
        return self.size_units / _UNIT

    def price_on_tick(self, tick_size: str | float) -> bool:
        """True if the exact price is a whole multiple of ``tick_size`` strictly inside (0, 1)."""
        tick = Fraction(str(tick_size))
        p = self.price_fraction
        return tick > 0 and (p / tick).denominator == 1 and tick <= p <= 1 - tick

    def typed_message(self) -> dict[str, Any]:
        """The EIP-712 ``message`` this order's signature covers."""
        side = 0 if self.is_buy else 1
        if self.version == 1:
            return {
                "salt": self.salt, "maker": self.maker, "signer": self.signer,
                "taker": self.taker, "tokenId": int(self.token_id),
                "makerAmount": self.maker_amount, "takerAmount": self.taker_amount,
                "expiration": self.expiration, "nonce": self.nonce,
                "feeRateBps": self.fee_rate_bps, "side": side,
                "signatureType": self.signature_type,
            }
        return {
            "salt": self.salt, "maker": self.maker, "signer": self.signer,
            "tokenId": int(self.token_id), "makerAmount": self.maker_amount,
            "takerAmount": self.taker_amount, "side": side,
            "signatureType": self.signature_type, "timestamp": self.timestamp,
            "metadata": bytes.fromhex(self.metadata[2:]),
            "builder": bytes.fromhex(self.builder[2:]),
        }


@dataclass(frozen=True)
class ExchangeDomain:
    """One EIP-712 verifying contract an order may be signed for."""

    label: str  # "exchange" | "neg_risk_exchange"
    version: int  # order struct version: 1 or 2
    chain_id: int
    contract: str
    neg_risk: bool

    @property
    def domain(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": str(self.version),
            "chainId": self.chain_id,
            "verifyingContract": self.contract,
        }


@dataclass(frozen=True)
class VerifiedOrder:
    """Result of a successful :func:`verify_order`."""

    order: SignedOrder
    order_hash: str  # 0x-prefixed EIP-712 digest; the CLOB uses it as orderID
    recovered: str  # EOA that produced the ECDSA signature
    domain: ExchangeDomain


# ---------------------------------------------------------------- parsing


def _load(body: Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise OrderFormatError("Invalid order payload: body is not UTF-8") from None
    if isinstance(body, str):
        try:
            return safe_json.loads(body, max_bytes=1 << 20, what="body")
        except safe_json.JsonInputError as exc:
            raise OrderFormatError(f"Invalid order payload: not JSON ({exc})") from None
    return body


def _uint(d: Mapping[str, Any], name: str, *, positive: bool = False, bits: int = 256) -> int:
    v = d.get(name)
    if isinstance(v, bool) or v is None:
        raise OrderFormatError(f"Invalid order payload: {name} must be an unsigned integer, got {v!r}")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str) and v.isascii() and v.isdigit():
        n = int(v)
    else:
        raise OrderFormatError(f"Invalid order payload: {name} must be an unsigned integer, got {v!r}")
    if n < 0 or n >= 2**bits:
        raise OrderFormatError(f"Invalid order payload: {name} out of range")
    if positive and n == 0:
        raise OrderFormatError(f"Invalid order payload: {name} must be > 0")
    return n


def _address(d: Mapping[str, Any], name: str) -> str:
    v = d.get(name)
    if not isinstance(v, str) or len(v) != 42 or not v.startswith(("0x", "0X")):
        raise OrderFormatError(f"Invalid order payload: {name} must be a 0x-prefixed 20-byte address, got {v!r}")
    try:
        int(v[2:], 16)
        return to_checksum_address(v)
    except ValueError:
        raise OrderFormatError(f"Invalid order payload: {name} is not hex: {v!r}") from None


def _bytes32(d: Mapping[str, Any], name: str) -> str:
    v = d.get(name)
    if not isinstance(v, str) or len(v) != 66 or not v.startswith("0x"):
        raise OrderFormatError(f"Invalid order payload: {name} must be 0x-prefixed bytes32, got {v!r}")
    try:
        bytes.fromhex(v[2:])
    except ValueError:
        raise OrderFormatError(f"Invalid order payload: {name} is not hex") from None
    return v.lower()


def _signature(d: Mapping[str, Any], sig_type: int) -> str:
    v = d.get("signature")
    if not isinstance(v, str) or not v.startswith("0x") or len(v) < 4 or len(v) % 2:
        raise OrderFormatError("Invalid order payload: signature must be 0x-prefixed hex")
    try:
        raw = bytes.fromhex(v[2:])
    except ValueError:
        raise OrderFormatError("Invalid order payload: signature is not hex") from None
    if sig_type != SIGNATURE_TYPE_POLY_1271 and len(raw) != 65:
        raise OrderFormatError(f"Invalid order payload: signature must be 65 bytes, got {len(raw)}")
    if sig_type == SIGNATURE_TYPE_POLY_1271 and len(raw) < 65 + 64 + 2:
        raise OrderFormatError("Invalid order payload: POLY_1271 signature too short")
    return v.lower()


def parse_order_body(body: Any, *, index: int | None = None) -> SignedOrder:
    """Parse one ``POST /order`` body (dict, JSON str or bytes) of either version.

    The version is decided by the fields present: ``timestamp``/``metadata``/
    ``builder`` -> V2, ``taker``/``nonce``/``feeRateBps`` -> V1; a mix is rejected
    because a signature can only cover one struct.
    """
    try:
        return _parse_order(_load(body))
    except ClobOrderError as exc:
        if index is not None and exc.index is None:
            raise type(exc)(exc.error, index=index) from None
        raise


def _parse_order(obj: Any) -> SignedOrder:
    if not isinstance(obj, Mapping):
        raise OrderFormatError("Invalid order payload: body must be a JSON object")
    o = obj.get("order")
    if not isinstance(o, Mapping):
        raise OrderFormatError("Invalid order payload: missing 'order' object")
    owner = obj.get("owner")
    if not isinstance(owner, str) or not owner:
        raise OrderFormatError("Invalid order payload: missing 'owner' (API key)")
    order_type = obj.get("orderType", "GTC")
    if order_type not in ORDER_TYPES:
        raise OrderFormatError(f"Invalid order payload: orderType must be one of GTC/GTD/FOK/FAK, got {order_type!r}")
    post_only = obj.get("postOnly", False)
    defer_exec = obj.get("deferExec", False)
    if not isinstance(post_only, bool) or not isinstance(defer_exec, bool):
        raise OrderFormatError("Invalid order payload: postOnly/deferExec must be booleans")
    if post_only and order_type in ("FOK", "FAK"):
        raise OrderFormatError("invalid post-only order: post-only is only allowed for GTC and GTD orders")

    missing = [f for f in _COMMON_FIELDS if f not in o]
    if missing:
        raise OrderFormatError(f"Invalid order payload: missing field(s) {', '.join(missing)}")
    has_v1 = [f for f in _V1_FIELDS if f in o]
    has_v2 = [f for f in _V2_FIELDS if f in o]
    if has_v1 and has_v2:
        raise OrderFormatError(
            f"Invalid order payload: mixes V1 fields {has_v1} and V2 fields {has_v2}"
        )
    if has_v2:
        version = 2
        if len(has_v2) != len(_V2_FIELDS):
            raise OrderFormatError(
                f"Invalid order payload: V2 order missing {sorted(set(_V2_FIELDS) - set(has_v2))}"
            )
    elif has_v1:
        version = 1
        if len(has_v1) != len(_V1_FIELDS):
            raise OrderFormatError(
                f"Invalid order payload: V1 order missing {sorted(set(_V1_FIELDS) - set(has_v1))}"
            )
    else:
        raise OrderFormatError(
            "Invalid order payload: neither V2 (timestamp/metadata/builder) nor V1 (taker/nonce/feeRateBps) fields"
        )

    side = o.get("side")
    if side not in ("BUY", "SELL"):
        raise OrderFormatError(f"Invalid order payload: side must be 'BUY' or 'SELL', got {side!r}")
    sig_type = _uint(o, "signatureType", bits=8)
    max_type = SIGNATURE_TYPE_POLY_1271 if version == 2 else SIGNATURE_TYPE_POLY_GNOSIS_SAFE
    if sig_type > max_type:
        raise OrderFormatError(f"Invalid order payload: signatureType {sig_type} not valid for V{version} orders")
    token_id = _uint(o, "tokenId", positive=True)
    expiration = _uint(o, "expiration")
    if order_type == "GTD" and expiration == 0:
        raise OrderFormatError("invalid expiration: GTD orders need a non-zero expiration")

    fields: dict[str, Any] = dict(
        version=version,
        salt=_uint(o, "salt"),
        maker=_address(o, "maker"),
        signer=_address(o, "signer"),
        token_id=str(token_id),
        maker_amount=_uint(o, "makerAmount", positive=True),
        taker_amount=_uint(o, "takerAmount", positive=True),
        side=side,
        signature_type=sig_type,
        expiration=expiration,
        signature=_signature(o, sig_type),
        owner=owner,
        order_type=order_type,
        post_only=post_only,
        defer_exec=defer_exec,
    )
    if version == 2:
        fields.update(
            timestamp=_uint(o, "timestamp"),
            metadata=_bytes32(o, "metadata"),
            builder=_bytes32(o, "builder"),
        )
    else:
        fields.update(
            taker=_address(o, "taker"),
            nonce=_uint(o, "nonce"),
            fee_rate_bps=_uint(o, "feeRateBps"),
        )
    return SignedOrder(**fields)


def parse_orders_body(
    body: Any, *, max_orders: int = MAX_BATCH_ORDERS
) -> list[SignedOrder | ClobOrderError]:
    """Parse a ``POST /orders`` body: a JSON list of order bodies.

    A malformed envelope (not a list, empty, too long) raises
    :class:`OrderFormatError`; a malformed entry does not sink its siblings: its
    slot holds the :class:`ClobOrderError` (with ``index``) so the caller can
    answer per order, like the real batch endpoint.
    """
    items = _load(body)
    if not isinstance(items, list):
        raise OrderFormatError("Invalid order payload: POST /orders body must be a JSON list")
    if not items:
        raise OrderFormatError("Invalid order payload: empty order list")
    if len(items) > max_orders:
        raise OrderFormatError(f"Invalid order payload: too many orders ({len(items)} > {max_orders})")
    out: list[SignedOrder | ClobOrderError] = []
    for i, item in enumerate(items):
        try:
            out.append(parse_order_body(item, index=i))
        except ClobOrderError as exc:
            out.append(exc)
    return out


# ---------------------------------------------------------------- signatures


def _contract_tables() -> list[tuple[int, int, str, str, bool]]:
    """(version, chain_id, label, address, neg_risk) from the installed clients' configs.

    Read from the libraries rather than copied so the simulator verifies against
    exactly the contracts the signing client uses. V1 addresses are taken from
    both the V2 package (its legacy table) and py_clob_client 0.34 where they differ.
    """
    rows: list[tuple[int, int, str, str, bool]] = []
    from py_clob_client_v2.config import get_contract_config as v2_config

    for chain in (137, 80002):
        c = v2_config(chain)
        rows.append((2, chain, "exchange", c.exchange_v2, False))
        rows.append((2, chain, "neg_risk_exchange", c.neg_risk_exchange_v2, True))
        rows.append((1, chain, "exchange", c.exchange, False))
        rows.append((1, chain, "neg_risk_exchange", c.neg_risk_exchange, True))
    try:
        from py_clob_client.config import get_contract_config as v1_config
    except ImportError:  # V1 client optional
        return rows
    for chain in (137, 80002):
        for neg in (False, True):
            c = v1_config(chain, neg)
            rows.append((1, chain, "neg_risk_exchange" if neg else "exchange", c.exchange, neg))
    return rows


_DOMAINS: dict[tuple[int, int], list[ExchangeDomain]] = {}


def exchange_domains(version: int, chain_id: int, neg_risk: bool | None = None) -> list[ExchangeDomain]:
    """The verifying contracts an order of ``version`` may be signed for on ``chain_id``."""
    if not _DOMAINS:
        seen: set[tuple[int, int, str]] = set()
        for ver, chain, label, addr, neg in _contract_tables():
            addr = to_checksum_address(addr)
            if (ver, chain, addr) in seen:
                continue
            seen.add((ver, chain, addr))
            _DOMAINS.setdefault((ver, chain), []).append(ExchangeDomain(label, ver, chain, addr, neg))
    doms = _DOMAINS.get((version, chain_id))
    if not doms:
        raise OrderSignatureError(f"unsupported chain id {chain_id} for V{version} orders")
    if neg_risk is None:
        return list(doms)
    return [d for d in doms if d.neg_risk == neg_risk]


def order_typed_data(order: SignedOrder, domain: ExchangeDomain) -> dict[str, Any]:
    """Full EIP-712 typed data (as the client signs it) for ``order`` under ``domain``."""
    return {
        "primaryType": "Order",
        "types": {"EIP712Domain": _EIP712_DOMAIN, "Order": _ORDER_V1 if order.version == 1 else _ORDER_V2},
        "domain": domain.domain,
        "message": order.typed_message(),
    }


_U256 = 1 << 256


def _word(n: int) -> bytes:
    """uint256 big-endian word; ValueError outside [0, 2**256)."""
    if n < 0 or n >= _U256:
        raise ValueError(f"uint256 out of range: {n}")
    return n.to_bytes(32, "big")


def _addr_word(addr: str) -> bytes:
    """An address as an ABI word (12 zero bytes, then its 20); ValueError if it is not 20 bytes."""
    raw = bytes.fromhex(addr[2:] if addr[:2] in ("0x", "0X") else addr)
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {addr!r}")
    return b"\x00" * 12 + raw


def domain_separator(chain_id: int, contract: str, version: str = "2") -> bytes:
    """EIP-712 domain separator of a Polymarket CTF exchange (hashStruct of its domain: all static
    fields, so the encoding is the words' concatenation)."""
    return keccak(_DOMAIN_TYPE_HASH + keccak(text=DOMAIN_NAME) + keccak(text=str(version))
                  + _word(chain_id) + _addr_word(contract))


def v2_struct_words(salt: int, maker_w: bytes, signer_w: bytes, token_id: int, maker_amount: int,
                    taker_amount: int, side: int, sigtype_w: bytes, timestamp_ms: int, metadata: bytes,
                    builder: bytes) -> bytes:
    """The EIP-712 encoding of a V2 order: its type hash and its 11 fields, all static 32-byte words,
    so their concatenation (hashStruct is its keccak). The one spelling for the signer
    (:mod:`~hourmm_core.polymarket.order_signer`) and the venue's check; the callers pass the
    address and signature-type words they already hold."""
    return (_ORDER_V2_TYPE_HASH + _word(salt) + maker_w + signer_w + _word(token_id) + _word(maker_amount)
            + _word(taker_amount) + (b"\x00" * 31 + bytes((side,))) + sigtype_w + _word(timestamp_ms)
            + metadata + builder)


@functools.lru_cache(maxsize=64)
def _domain_separator(domain: ExchangeDomain) -> bytes:
    """:func:`domain_separator` of ``domain``, kept per domain."""
    return domain_separator(domain.chain_id, domain.contract, str(domain.version))


def _v2_struct_hash(order: SignedOrder) -> bytes:
    """hashStruct of a V2 order (:func:`v2_struct_words`; ~1 ms less than ``encode_typed_data``'s
    field-by-field Python). ValueError / TypeError / AttributeError for a field outside its type."""
    meta, bld = bytes.fromhex(order.metadata[2:]), bytes.fromhex(order.builder[2:])   # type: ignore[index]
    if len(meta) != 32 or len(bld) != 32 or not 0 <= order.signature_type < 256:
        raise ValueError("metadata / builder must be bytes32, signatureType a uint8")
    return keccak(v2_struct_words(order.salt, _addr_word(order.maker), _addr_word(order.signer),
                                  int(order.token_id), order.maker_amount, order.taker_amount,
                                  0 if order.is_buy else 1, _word(order.signature_type),
                                  order.timestamp, meta, bld))   # type: ignore[arg-type]


def _digest(order: SignedOrder, domain: ExchangeDomain) -> tuple[Any, bytes]:
    """(the EIP-712 message or None, its digest). V2 orders by concatenation (the same bytes,
    tests/unit/polymarket/test_clob_orders.py compares the two paths), anything else (V1, a field
    the fast path does not cover) by eth-account's ``encode_typed_data``."""
    if order.version == 2:
        try:
            return None, keccak(b"\x19\x01" + _domain_separator(domain) + _v2_struct_hash(order))
        except (ValueError, OverflowError, TypeError, AttributeError):
            pass   # the generic encoder decides (and raises its own error)
    msg = encode_typed_data(full_message=order_typed_data(order, domain))
    return msg, keccak(b"\x19" + msg.version + msg.header + msg.body)


def order_hash(order: SignedOrder, domain: ExchangeDomain) -> str:
    """0x-prefixed EIP-712 digest of the order (Polymarket's order ID)."""
    return "0x" + _digest(order, domain)[1].hex()


_SECP256K1_N = SECPK1_N      # the curve's order n (eth-keys' constant: eth-account's own key library)


def _recover_ecdsa(digest: bytes, sig: bytes) -> str | None:
    """The checksummed address that signed ``digest`` (None if ``sig`` does not recover), as
    eth-account's ``Account._recover_hash``. The common shape (65 bytes, v 27/28, 0 < r, s < n)
    goes straight to libsecp256k1 (coincurve: what eth-keys' backend calls there, ~0.1 ms instead
    of ~0.7 ms); any other shape through eth-account itself."""
    if len(digest) == 32 and len(sig) == 65 and sig[64] in (27, 28):
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
        if 0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N:
            try:
                pub = coincurve.PublicKey.from_signature_and_message(sig[:64] + bytes((sig[64] - 27,)), digest,
                                                                     hasher=None)
            except Exception:  # noqa: BLE001 - no point on the curve: does not recover
                return None
            return to_checksum_address(keccak(pub.format(compressed=False)[1:])[-20:])
    try:
        return Account._recover_hash(digest, signature=sig)
    except Exception:  # malformed v/r/s, high-s etc.: simply "does not recover"
        return None


def _recover_1271(order: SignedOrder, domain: ExchangeDomain) -> str | None:
    """Recover the wallet owner's EOA from an ERC-7739 wrapped POLY_1271 signature.

    Mirrors ``ExchangeOrderBuilderV2._build_poly_1271_order_signature``: checks the
    embedded app domain separator, contents hash and contents type against the
    order, then recovers the inner ECDSA signature over the TypedDataSign digest.
    """
    raw = bytes.fromhex(order.signature[2:])
    inner, app_sep, contents_hash = raw[:65], raw[65:97], raw[97:129]
    rest = raw[129:]
    if len(rest) < 2:
        return None
    type_len = int.from_bytes(rest[-2:], "big")
    contents_type = rest[:-2]
    if len(contents_type) != type_len or contents_type != _ORDER_V2_TYPE_STRING.encode():
        return None
    want_sep = _domain_separator(domain)
    if app_sep != want_sep:
        return None
    try:
        want_contents = _v2_struct_hash(order)
    except (ValueError, OverflowError, TypeError, AttributeError):
        return None   # a field outside its type: it cannot be the contents that were signed
    if contents_hash != want_contents:
        return None
    sign_struct = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address", "bytes32"],
            [_SOLADY_TYPE_HASH, want_contents, _DEPOSIT_WALLET_NAME_HASH,
             _DEPOSIT_WALLET_VERSION_HASH, domain.chain_id, order.signer, b"\x00" * 32],
        )
    )
    return _recover_ecdsa(keccak(b"\x19\x01" + want_sep + sign_struct), inner)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def verify_order(
    order: SignedOrder,
    *,
    chain_id: int,
    neg_risk: bool | None = None,
    expected_signer: str | None = None,
    expected_maker: str | None = None,
    allowed_versions: Iterable[int] = (1, 2),
) -> VerifiedOrder:
    """Check the order's EIP-712 signature and maker/signer rules; raise on any failure.

    * ``allowed_versions``: e.g. ``(2,)`` to reject V1 orders like production
      (error ``order_version_mismatch``, the text the V2 client reacts to).
    * ``neg_risk``: the market's flag selects the verifying contract; ``None``
      tries both exchanges (the match is reported in ``VerifiedOrder.domain``).
    * ``expected_signer``: the address that must have produced the ECDSA signature
      (normally the API key's ``POLY_ADDRESS``). For types 0-2 that is the order's
      ``signer``; for POLY_1271 it is the wallet owner recovered from the wrapper.
    * ``expected_maker``: the funder the caller knows for this key (proxy/safe).

    Maker rules: EOA and POLY_1271 need ``maker == signer``; proxy/safe need a
    maker that is not the zero address (the proxy address itself is on-chain state).
    """
    if order.version not in tuple(allowed_versions):
        raise OrderSignatureError(
            f"order_version_mismatch: V{order.version} orders are not accepted (expected V"
            + "/V".join(str(v) for v in allowed_versions) + ")"
        )
    st = order.signature_type
    if st in (SIGNATURE_TYPE_EOA, SIGNATURE_TYPE_POLY_1271) and not _same(order.maker, order.signer):
        raise OrderSignatureError(
            f"invalid order: maker must equal signer for signature type {st}"
        )
    if st in (SIGNATURE_TYPE_POLY_PROXY, SIGNATURE_TYPE_POLY_GNOSIS_SAFE) and _same(order.maker, ZERO_ADDRESS):
        raise OrderSignatureError("invalid order: maker (funder) is the zero address")
    if _same(order.signer, ZERO_ADDRESS):
        raise OrderSignatureError("invalid order: signer is the zero address")
    if expected_maker is not None and not _same(order.maker, expected_maker):
        raise OrderSignatureError("invalid order: maker does not match the account's funder")
    if st != SIGNATURE_TYPE_POLY_1271 and expected_signer is not None and not _same(order.signer, expected_signer):
        raise OrderSignatureError("invalid order: signer does not match the API key's address")

    candidates = exchange_domains(order.version, chain_id, neg_risk)
    sig = bytes.fromhex(order.signature[2:])
    for dom in candidates:
        _, digest = _digest(order, dom)
        if st == SIGNATURE_TYPE_POLY_1271:
            rec = _recover_1271(order, dom)
            if rec is None:
                continue
            if expected_signer is not None and not _same(rec, expected_signer):
                continue
        else:
            rec = _recover_ecdsa(digest, sig)
            if rec is None or not _same(rec, order.signer):
                continue
        return VerifiedOrder(order=order, order_hash="0x" + digest.hex(), recovered=rec, domain=dom)
    raise OrderSignatureError("invalid signature")


def parse_and_verify(
    body: Any, *, chain_id: int, neg_risk: bool | None = None,
    expected_signer: str | None = None, allowed_versions: Sequence[int] = (1, 2),
) -> VerifiedOrder:
    """Convenience for ``POST /order``: :func:`parse_order_body` then :func:`verify_order`."""
    return verify_order(
        parse_order_body(body), chain_id=chain_id, neg_risk=neg_risk,
        expected_signer=expected_signer, allowed_versions=allowed_versions,
    )
