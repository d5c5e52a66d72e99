"""Trader pieces that need no sockets: snapshot-hour check, status extras, unique client ids."""
import dataclasses

from hourmm_core.clock import WallClock
from hourmm_core.config import TraderConfig
from hourmm_core.trading.decision import MarketRef
from hourmm_core.trading.snapshot_client import Snapshot
from hourmm_core.trading.trader import Trader


def make(tmp_path) -> Trader:
    cfg = dataclasses.replace(TraderConfig.from_env({"SQLITE_PATH": str(tmp_path / "j.db")}), control_port=0)
    return Trader(cfg, WallClock(), None)


def test_snapshot_of_another_hour_is_not_fresh(tmp_path) -> None:
    tr = make(tmp_path)
    try:
        now = WallClock().now_ms()
        end = now - now % 3_600_000 + 3_600_000
        tr.core.set_market(MarketRef("s", "0xc", "1", "2", end - 3_600_000, end))
        tr.snapshots.latest = Snapshot(1, now, end - 3_600_000, end, 0.6, 0.01, False)
        assert tr.fresh_for_market(now)
        tr.snapshots.latest = Snapshot(2, now, end - 7_200_000, end - 3_600_000, 0.6, 0.01, False)
        assert not tr.fresh_for_market(now)  # previous hour's fair value around the roll
        st = tr.core.status()
        assert st["quoting_enabled"] is False and st["snapshot"]["seq"] == 2 and st["snapshot"]["transport"] == "poll"
    finally:
        tr.journal.close()
