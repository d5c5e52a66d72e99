"""CLOB authentication as the real server checks it: L1 (EIP-712 ClobAuth) and L2 (HMAC).

L1 (``POST /auth/api-key``, ``GET /auth/derive-api-key``): headers ``POLY_ADDRESS``,
``POLY_SIGNATURE`` (EIP-712 ``ClobAuth{address, timestamp:string, nonce:uint256,
message}`` in domain ``{name: "ClobAuthDomain", version: "1", chainId}``),
``POLY_TIMESTAMP``, ``POLY_NONCE``. The recovered signer must equal POLY_ADDRESS.

L2 (every trading call): ``POLY_API_KEY``, ``POLY_PASSPHRASE``, ``POLY_ADDRESS``,
``POLY_TIMESTAMP`` and ``POLY_SIGNATURE = urlsafe_b64(HMAC_SHA256(urlsafe_b64decode(secret),
timestamp + METHOD + path + body))`` -- path without query string, body the exact
bytes sent (py-clob-client replaces ``'`` by ``"`` before signing, which is a no-op
for compact JSON).

Keys are derived deterministically from (sim seed, address, nonce), so "create"
and "derive" return the same credentials for the same nonce (documented
simplification: the real create issues a fresh key). Timestamps are not checked
for freshness: clients sign with their wall clock while the sim runs on a scaled
clock, so a freshness window would only create false rejections.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Mapping

from eth_account import Account
from eth_account.messages import encode_typed_data

CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"
UNAUTHORIZED = {"error": "Unauthorized/Invalid api key"}
INVALID_L1 = {"error": "Invalid L1 Request headers"}


class AuthError(Exception):
    """Authentication failed; ``body`` is the JSON error the real CLOB returns with 401."""

    def __init__(self, reason: str, body: dict | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.body = body or UNAUTHORIZED


@dataclass(frozen=True)
class ApiKey:
    api_key: str
    secret: str
    passphrase: str
    address: str          # checksummed signer address (POLY_ADDRESS)

    def creds(self) -> dict[str, str]:
        return {"apiKey": self.api_key, "secret": self.secret, "passphrase": self.passphrase}


def recover_clob_auth(address: str, timestamp: str, nonce: int, signature: str, chain_id: int) -> str:
    """Address that signed the ClobAuth message (raises ValueError on malformed input)."""
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}],
            "ClobAuth": [{"name": "address", "type": "address"}, {"name": "timestamp", "type": "string"},
                         {"name": "nonce", "type": "uint256"}, {"name": "message", "type": "string"}],
        },
        "primaryType": "ClobAuth",
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {"address": address, "timestamp": str(timestamp), "nonce": int(nonce),
                    "message": CLOB_AUTH_MESSAGE},
    }
    return Account.recover_message(encode_typed_data(full_message=typed), signature=signature)


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: str | None) -> str:
    """Same construction as py_clob_client.signing.hmac.build_hmac_signature."""
    msg = str(timestamp) + str(method) + str(path)
    if body:
        msg += body
    h = hmac.new(base64.urlsafe_b64decode(secret), msg.encode("utf-8"), hashlib.sha256)
    return base64.urlsafe_b64encode(h.digest()).decode("utf-8")


class KeyStore:
    """API keys by key id and by address; derivation is deterministic per (seed, address, nonce)."""

    def __init__(self, seed: int, chain_id: int = 137) -> None:
        self.seed = seed
        self.chain_id = chain_id
        self.by_key: dict[str, ApiKey] = {}

    def derive(self, address: str, nonce: int) -> ApiKey:
        raw = hashlib.sha256(f"hourmm-sim:{self.seed}:{address.lower()}:{nonce}".encode()).digest()
        k = raw.hex()
        api_key = f"{k[:8]}-{k[8:12]}-{k[12:16]}-{k[16:20]}-{k[20:32]}"
        secret = base64.urlsafe_b64encode(hashlib.sha256(raw + b"secret").digest()).decode()
        passphrase = hashlib.sha256(raw + b"pass").hexdigest()
        key = ApiKey(api_key, secret, passphrase, address)
        self.by_key[api_key] = key
        return key

    def check_l1(self, headers: Mapping[str, str]) -> tuple[str, int]:
        """Verify L1 headers; returns (checksummed address, nonce)."""
        addr = headers.get("POLY_ADDRESS", "")
        sig = headers.get("POLY_SIGNATURE", "")
        ts = headers.get("POLY_TIMESTAMP", "")
        nonce_raw = headers.get("POLY_NONCE", "0") or "0"
        if not addr or not sig or not ts:
            raise AuthError("missing L1 headers", INVALID_L1)
        try:
            nonce = int(nonce_raw)
            rec = recover_clob_auth(addr, ts, nonce, sig, self.chain_id)
        except Exception:
            raise AuthError("malformed L1 headers", INVALID_L1) from None
        if rec.lower() != addr.lower():
            raise AuthError("L1 signature does not match POLY_ADDRESS", INVALID_L1)
        return rec, nonce

    def check_l2(self, headers: Mapping[str, str], method: str, path: str, body: str) -> ApiKey:
        """Verify L2 headers for one request; returns the key record."""
        k = self.by_key.get(headers.get("POLY_API_KEY", ""))
        if k is None:
            raise AuthError("unknown api key")
        if headers.get("POLY_PASSPHRASE", "") != k.passphrase:
            raise AuthError("bad passphrase")
        if headers.get("POLY_ADDRESS", "").lower() != k.address.lower():
            raise AuthError("POLY_ADDRESS does not own the api key")
        ts = headers.get("POLY_TIMESTAMP", "")
        sig = headers.get("POLY_SIGNATURE", "")
        if not ts or not sig:
            raise AuthError("missing L2 headers")
        want = hmac_signature(k.secret, ts, method, path, body or None)
        if not hmac.compare_digest(want, sig):
            alt = hmac_signature(k.secret, ts, method, path, (body or "").replace("'", '"') or None)
            if not hmac.compare_digest(alt, sig):
                raise AuthError("bad HMAC signature")
        return k

    def check_ws_auth(self, auth: object) -> ApiKey:
        """User-channel subscribe ``auth`` block: apiKey + secret + passphrase must all match."""
        if not isinstance(auth, Mapping):
            raise AuthError("auth block missing")
        k = self.by_key.get(str(auth.get("apiKey", "")))
        if k is None or auth.get("secret") != k.secret or auth.get("passphrase") != k.passphrase:
            raise AuthError("invalid ws credentials")
        return k
