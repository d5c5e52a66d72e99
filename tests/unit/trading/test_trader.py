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


class _RecordingExecutor:
    """Captures what the trader hands the venue layer (the signing itself is tested in test_venue_*)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def place(self, token_id, side, price, size, *, tick_size, neg_risk, post_only, client_id):
        from hourmm_core.trading.trader import PlaceResult
        self.calls.append(dict(token_id=token_id, side=side, price=price, size=size, tick_size=tick_size,
                               neg_risk=neg_risk, post_only=post_only, client_id=client_id))
        return PlaceResult(True, order_id="oid-1", status="live")


async def test_orders_are_signed_for_the_markets_neg_risk_flag(tmp_path) -> None:
    from hourmm_core.polymarket.gamma import MarketInfo
    from hourmm_core.trading.order_manager import Order
    cfg = dataclasses.replace(TraderConfig.from_env({"SQLITE_PATH": str(tmp_path / "j.db")}), control_port=0)
    rec = _RecordingExecutor()
    tr = Trader(cfg, WallClock(), None, executor=rec)
    try:
        fields = {f.name for f in dataclasses.fields(MarketInfo)}
        assert "neg_risk" in fields
        for flag in (True, False):
            m = MarketRef("s", "0xc", "up", "dn", 0, 3_600_000, 0.01, 5.0, flag)
            o = Order(f"c{flag}", 0, 0, 0.45, 5.0, False, 0)
            await tr._place(o, m, True, None)
            assert rec.calls[-1]["neg_risk"] is flag and rec.calls[-1]["token_id"] == "up"
    finally:
        tr.journal.close()
