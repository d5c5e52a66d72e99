"""Container A logic: hour tracking, snapshot building on the compiled core, snapshot server.

The names are imported on first use (PEP 562): the backtest needs only ``snapshot`` (container A's
model parameters), and importing the server pulled in aiohttp (~0.3 s of every backtest process's start).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from hourmm_core.lazy import lazy_exports

_WHERE = {"HourTracker": "hour", "iso_hour": "hour", "SnapshotServer": "server", "PricerService": "service",
          "SCHEMA_VERSION": "snapshot", "Snapshot": "snapshot", "SnapshotBuilder": "snapshot"}

__all__ = ["HourTracker", "PricerService", "SCHEMA_VERSION", "Snapshot", "SnapshotBuilder", "SnapshotServer",
           "iso_hour"]

if TYPE_CHECKING:
    from hourmm_core.pricing.hour import HourTracker, iso_hour
    from hourmm_core.pricing.server import SnapshotServer
    from hourmm_core.pricing.service import PricerService
    from hourmm_core.pricing.snapshot import SCHEMA_VERSION, Snapshot, SnapshotBuilder


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
