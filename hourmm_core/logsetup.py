"""Logging in the operator guide's format (``INFO | message``) with secret redaction.

Secrets are registered once at start-up; the filter scrubs them from every
record, including exception text, so a stray ``repr`` cannot leak a key.
"""
from __future__ import annotations

import logging
import re
import sys

from hourmm_core.errors import ConfigError

_SECRETS: set[str] = set()
_HEX_KEY = re.compile(r"0x[0-9a-fA-F]{64}")


def register_secret(value: str | None) -> None:
    """Remember a secret so the log filter removes it wherever it appears."""
    if value and len(value) >= 6:
        _SECRETS.add(value)
        if value.startswith("0x"):
            _SECRETS.add(value[2:])


def redact(text: str) -> str:
    """Remove registered secrets and anything shaped like a 32-byte private key."""
    for s in sorted(_SECRETS, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    return _HEX_KEY.sub("0x***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if record.exc_info:
            msg = msg + "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(msg)
        record.args = None
        return True


def setup_logging(level: str = "INFO", name: str | None = None) -> None:
    """Configure the root logger: ``LEVEL | message`` on stderr, secrets redacted."""
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ConfigError(f"LOG_LEVEL={level!r} is not a logging level (DEBUG, INFO, WARNING, ERROR)")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)s | %(message)s"
    if name:
        fmt = f"%(asctime)s {name} %(levelname)s | %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(lvl)
