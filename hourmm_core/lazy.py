"""Package attributes imported on first use (PEP 562), for package ``__init__`` modules whose
submodules pull in heavy dependencies that not every user needs (e.g. the backtest imports
container A's snapshot code but never its aiohttp server)."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_exports(package: str, where: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``where`` maps each exported name to the
    submodule defining it; the first access imports that submodule and caches the name in the
    package's ``namespace`` (its ``globals()``), so later accesses are plain lookups."""

    def __getattr__(name: str) -> Any:
        mod = where.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{mod}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
