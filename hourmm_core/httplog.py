"""Quiet, rate-limited logging of malformed HTTP requests for our aiohttp servers.

aiohttp logs every request it cannot parse (request line or header over 8190 bytes,
too many headers, bad framing) at ERROR with a full traceback on ``aiohttp.server``.
Anyone who can reach a port can therefore flood the log with ERROR lines (and
``hourmm sim`` counts ERROR lines as failures). The client still gets its 400 from
aiohttp; :class:`ProtocolErrorLogger` -- passed to ``web.AppRunner(..., logger=...)`` --
turns those parse errors into one WARNING line without traceback, at most once per
``every_s`` seconds (the rest are counted in ``refused``). Every other exception keeps
aiohttp's ERROR + traceback: a bug in a handler must stay loud.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["ProtocolErrorLogger"]


class ProtocolErrorLogger:
    """Duck-typed ``logging.Logger`` for aiohttp's ``RequestHandler(logger=...)``."""

    def __init__(self, name: str, every_s: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._log = logging.getLogger(name)
        self._base = logging.getLogger("aiohttp.server")
        self.every_s = every_s
        self._monotonic = monotonic
        self._next_s = float("-inf")
        self.refused = 0
        self.suppressed = 0

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if exc is None and exc_info is True:
            import sys
            exc = sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            self.refused += 1
            now = self._monotonic()
            if now < self._next_s:
                self.suppressed += 1
                return
            self._next_s = now + self.every_s
            remote = args[0] if args else "?"
            self._log.warning("Refused a malformed HTTP request from %s: %s (HTTP %s); %d refused so far, "
                              "next such line in >= %.0fs", remote, type(exc).__name__, exc.code,
                              self.refused, self.every_s)
            return
        self._base.exception(msg, *args, exc_info=exc_info, **kw)

    def __getattr__(self, name: str) -> Any:  # debug/info/warning/error/isEnabledFor ... -> aiohttp's logger
        return getattr(self._base, name)
