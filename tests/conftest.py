"""Shared pytest set-up for the whole suite.

Layout (mirrors the package; docs/DESIGN.md "Tests"):
- tests/unit/<package>/ : one module's behaviour, in process (small fake servers on 127.0.0.1 allowed);
- tests/integration/    : tests that start the simulators, the runners or other processes;
- tests/fixtures/       : recorded venue payloads (see tests/fixtures/README.md).

Every test under tests/integration/ is marked ``integration``, so ``pytest tests/unit`` or
``pytest -m "not integration"`` is the quick loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
INTEGRATION = TESTS / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
