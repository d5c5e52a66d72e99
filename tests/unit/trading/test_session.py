"""Session phases: boundaries, transitions reported once, mid-hour resume, roll."""
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.trading.session import Phase, Schedule, Session

END = 1_700_002_800_000  # an hour boundary
START = END - HOUR_MS


@pytest.mark.parametrize("left,phase", [
    (HOUR_MS + 1, Phase.IDLE), (HOUR_MS, Phase.ACTIVE), (600_001, Phase.ACTIVE),
    (600_000, Phase.WIND_DOWN), (300_001, Phase.WIND_DOWN), (300_000, Phase.FLATTEN),
    (60_001, Phase.FLATTEN), (60_000, Phase.HARD_CUTOFF), (1, Phase.HARD_CUTOFF),
    (0, Phase.ENDED), (-5, Phase.ENDED)])
def test_phase_boundaries(left: int, phase: Phase) -> None:
    assert Schedule().phase_at(END - left, END) is phase


def test_no_market_is_idle() -> None:
    assert Schedule().phase_at(END, None) is Phase.IDLE


def test_bad_schedule_rejected() -> None:
    with pytest.raises(ValueError):
        Schedule(t_wind_ms=100, t_flatten_ms=200, hard_cutoff_ms=50)


def test_transitions_once_and_resume_mid_hour() -> None:
    s = Session(Schedule())
    s.set_market(START, END)
    seen = []
    for t in range(START - 1000, END + 1000, 1000):
        ch = s.update(t)
        if ch:
            seen.append((ch.old, ch.new))
    assert seen == [(Phase.IDLE, Phase.ACTIVE), (Phase.ACTIVE, Phase.WIND_DOWN),
                    (Phase.WIND_DOWN, Phase.FLATTEN), (Phase.FLATTEN, Phase.HARD_CUTOFF),
                    (Phase.HARD_CUTOFF, Phase.ENDED)]
    fresh = Session(Schedule())  # restart in the middle of FLATTEN
    fresh.set_market(START, END)
    ch = fresh.update(END - 200_000)
    assert ch is not None and ch.new is Phase.FLATTEN and fresh.update(END - 199_000) is None
    # roll to the next market
    fresh.set_market(END, END + HOUR_MS)
    assert fresh.update(END + 1).new is Phase.ACTIVE


def test_wind_progress_ramps() -> None:
    sc = Schedule()
    assert sc.wind_progress(END - 600_000, END) == 0.0
    assert sc.wind_progress(END - 450_000, END) == pytest.approx(0.5)
    assert sc.wind_progress(END - 100_000, END) == 1.0
    assert Phase.WIND_DOWN.may_open and not Phase.FLATTEN.may_open and Phase.FLATTEN.may_trade
    assert not Phase.HARD_CUTOFF.may_trade
