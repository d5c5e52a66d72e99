"""THE JSON decoder for every untrusted input of both containers.

Why not ``json.loads`` directly: CPython's decoder recurses once per nesting level on
the C stack, guarded only by ``sys.getrecursionlimit()``. ``py_ecc`` (imported by
py-clob-client-v2) raises that limit to 100,000, so 200 kB of ``[`` overflows the C
stack and kills the process with SIGSEGV instead of raising. Every JSON input (control
plane bodies, WebSocket frames, REST replies, pricer snapshots, simulator requests)
goes through :func:`loads`, which refuses, *before* decoding:

- inputs larger than ``max_bytes`` (default 8 MiB),
- nesting deeper than ``max_depth`` (default 64; real venue messages use < 10) -- a
  linear scan of the brackets outside strings, done in C-speed builtins,

and while decoding:

- ``NaN`` / ``Infinity`` literals and numbers that overflow to infinity (``1e400``),
- numbers with absurdly many digits (Python's own "Exceeds the limit (4300 digits)"
  error text never reaches a caller).

Every refusal is a :class:`JsonInputError`, a subclass of ``json.JSONDecodeError``
(so of ``ValueError``) with a short, stable ``kind`` and a message that names the
problem without echoing the input or Python internals.

:func:`limit_recursion` puts the interpreter's recursion limit back to a sane value
after the signing stack has been imported (see its docstring).
"""
from __future__ import annotations

import json
import math
import re
import sys
from itertools import accumulate
from typing import Any

__all__ = ["JsonInputError", "loads", "max_nesting", "limit_recursion",
           "DEFAULT_MAX_BYTES", "DEFAULT_MAX_DEPTH", "SAFE_RECURSION_LIMIT"]

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
MAX_NUMBER_CHARS = 64          # "0.00000000000000000001" is 22; a float never needs 64
SAFE_RECURSION_LIMIT = 10_000  # well under the C stack in the main thread (8 MiB)

# A JSON string: quote, then runs of non-special chars or escapes, then quote (linear, no
# catastrophic backtracking). Brackets inside strings do not count as nesting.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonInputError(json.JSONDecodeError):
    """An untrusted JSON input was refused. ``kind``: too_large, too_deep, number, invalid, type."""

    def __init__(self, kind: str, msg: str, doc: str = "", pos: int = 0) -> None:
        super().__init__(msg, doc, pos)
        self.kind = kind

    def __str__(self) -> str:  # no "line 1 column 2 (char 1)" suffix for our own refusals
        return self.msg if self.kind != "invalid" else super().__str__()

    def __reduce__(self):  # picklable across processes like its base
        return (JsonInputError, (self.kind, self.msg, "", self.pos))


def max_nesting(text: str, limit: int | None = None) -> int:
    """Deepest ``[``/``{`` nesting outside strings (an upper bound for invalid JSON).

    Fast path: fewer opening brackets than ``limit`` cannot nest deeper than it.
    """
    opens = text.count("[") + text.count("{")
    if limit is not None and opens <= limit:
        return opens  # an upper bound, enough to accept
    if opens == 0:
        return 0
    stripped = _STRING.sub("", text) if '"' in text else text
    brackets = _NOT_BRACKET.sub("", stripped)
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets))))


def _parse_float(s: str) -> float:
    if len(s) > MAX_NUMBER_CHARS:
        raise _NumberError(f"number with {len(s)} characters (max {MAX_NUMBER_CHARS})")
    x = float(s)
    if not math.isfinite(x):
        raise _NumberError("number out of range (overflows to infinity)")
    return x


def _parse_constant(s: str) -> float:
    raise _NumberError(f"{s} is not allowed (JSON numbers must be finite)")


class _NumberError(Exception):
    """Internal: raised from the decoder hooks, turned into JsonInputError('number')."""


def loads(raw: str | bytes | bytearray | memoryview, *, max_bytes: int = DEFAULT_MAX_BYTES,
          max_depth: int = DEFAULT_MAX_DEPTH, what: str = "input") -> Any:
    """Decode one untrusted JSON document, or raise :class:`JsonInputError`.

    ``what`` names the input in the error ("request body", "Binance frame", ...).
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        if len(raw) > max_bytes:
            raise JsonInputError("too_large", f"{what} too large: {len(raw)} bytes (max {max_bytes})")
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonInputError("invalid", f"{what} is not UTF-8 text") from None
    elif isinstance(raw, str):
        text = raw
        if len(text) > max_bytes:  # chars <= bytes: a cheap, slightly generous bound
            raise JsonInputError("too_large", f"{what} too large: {len(text)} characters (max {max_bytes})")
    else:
        raise JsonInputError("type", f"{what} must be text, got {type(raw).__name__}")
    depth = max_nesting(text, max_depth)
    if depth > max_depth:
        raise JsonInputError("too_deep", f"{what} nested too deeply ({depth} levels, max {max_depth})")
    try:
        return json.loads(text, parse_float=_parse_float, parse_constant=_parse_constant)
    except _NumberError as exc:
        raise JsonInputError("number", f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise JsonInputError("invalid", f"{what} is not valid JSON: {exc.msg}", exc.doc[:0], exc.pos) from None
    except ValueError as exc:  # int with > 4300 digits ("Exceeds the limit ... sys.set_int_max_str_digits")
        if "digits" in str(exc):
            raise JsonInputError("number", f"{what}: integer with too many digits") from None
        raise JsonInputError("invalid", f"{what} is not valid JSON") from None
    except RecursionError:  # belt and braces: the depth scan should make this unreachable
        raise JsonInputError("too_deep", f"{what} nested too deeply") from None


def limit_recursion(limit: int = SAFE_RECURSION_LIMIT) -> int:
    """Lower ``sys.getrecursionlimit()`` back to ``limit`` if an import raised it; returns the old value.

    ``py_ecc/__init__.py`` does ``sys.setrecursionlimit(max(100000, ...))`` at import for its
    recursive pairing code (BN128/BLS), which HourMM never uses: order signing is EIP-712 over
    secp256k1 (eth_account / eth_keys), whose recursion depth is tiny. With the limit at
    100,000 any deep recursion (json, repr, pickle of a deep structure) overflows the C stack
    and segfaults instead of raising RecursionError. Call this after importing the signing
    stack (the executor does).
    """
    old = sys.getrecursionlimit()
    if old > limit:
        sys.setrecursionlimit(limit)
    return old


def json_safe(x: Any) -> Any:
    """The encoding side: a copy of ``x`` that ``json.dumps`` writes as strict JSON.

    Non-finite floats become ``None`` (JSON has no NaN); dicts, lists and tuples are walked
    (tuples come out as lists, which is what JSON writes for them anyway). Reports and
    result files go through this so they never carry ``NaN``.
    """
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x

