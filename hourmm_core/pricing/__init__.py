"""Container A logic: hour tracking, snapshot building on the compiled core, snapshot server."""
from hourmm_core.pricing.hour import HourTracker, iso_hour
from hourmm_core.pricing.server import SnapshotServer
from hourmm_core.pricing.service import PricerService
from hourmm_core.pricing.snapshot import SCHEMA_VERSION, Snapshot, SnapshotBuilder

__all__ = ["HourTracker", "PricerService", "SCHEMA_VERSION", "Snapshot", "SnapshotBuilder", "SnapshotServer",
           "iso_hour"]
