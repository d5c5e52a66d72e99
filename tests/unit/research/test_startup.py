"""What a backtest process pays before its first hour: the imports it does not need stay out.

``hourmm_core.pricing`` and ``hourmm_core.binance`` export their names lazily
(:mod:`hourmm_core.lazy`): the backtest reads container A's model parameters
(``pricing.snapshot``) and frame types (``binance.messages``) but never runs a server or
a network client, whose imports (aiohttp, websockets, an SSL context) cost ~0.3 s a process.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

NETWORK = ("aiohttp", "websockets", "yarl", "multidict")


def test_backtest_cli_does_not_import_network_clients():
    code = ("import json, sys; import hourmm_core.research.backtest_cli, hourmm_core.research.engine_backtest; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (NETWORK,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("package", ["hourmm_core.pricing", "hourmm_core.binance"])
def test_lazy_exports_are_the_submodules_objects(package):
    pkg = importlib.import_module(package)
    assert set(pkg.__all__) == set(pkg._WHERE)
    for name in pkg.__all__:
        assert name in dir(pkg)
        assert getattr(pkg, name) is getattr(importlib.import_module(f"{package}.{pkg._WHERE[name]}"), name)
    with pytest.raises(AttributeError, match="no attribute 'not_exported'"):
        pkg.not_exported  # noqa: B018
