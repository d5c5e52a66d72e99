"""Slug = MARKET_SLUG + ET local hour label, DST-correct (zoneinfo)."""
from datetime import datetime, timezone

import pytest

from hourmm_core.polymarket.slug import market_slug

B = "bitcoin-up-or-down"


def ms(y, mo, d, h):
    return int(datetime(y, mo, d, h, tzinfo=timezone.utc).timestamp() * 1000)


def test_guide_example_winter():
    # 2026-01-22 12:00Z = 7am EST (UTC-5)
    assert market_slug(B, ms(2026, 1, 22, 12)) == "bitcoin-up-or-down-january-22-7am-et"
    # 19:00Z = 2pm EST (the guide's "Selected market" log example)
    assert market_slug(B, ms(2026, 1, 22, 19)) == "bitcoin-up-or-down-january-22-2pm-et"


def test_summer_uses_edt():
    # 2026-07-04 16:00Z = 12pm EDT (UTC-4)
    assert market_slug(B, ms(2026, 7, 4, 16)) == "bitcoin-up-or-down-july-4-12pm-et"


def test_midnight_and_noon_rules():
    assert market_slug(B, ms(2026, 1, 22, 5)) == "bitcoin-up-or-down-january-22-12am-et"
    assert market_slug(B, ms(2026, 1, 22, 17)) == "bitcoin-up-or-down-january-22-12pm-et"
    # 04:00Z on the 22nd is 11pm on the 21st in ET: the date is the local one
    assert market_slug(B, ms(2026, 1, 22, 4)) == "bitcoin-up-or-down-january-21-11pm-et"


def test_spring_forward_2026_03_08():
    got = [market_slug(B, ms(2026, 3, 8, h)) for h in range(4, 10)]
    assert got == [
        "bitcoin-up-or-down-march-7-11pm-et",   # 04Z EST
        "bitcoin-up-or-down-march-8-12am-et",   # 05Z EST
        "bitcoin-up-or-down-march-8-1am-et",    # 06Z EST
        "bitcoin-up-or-down-march-8-3am-et",    # 07Z EDT: 2am does not exist
        "bitcoin-up-or-down-march-8-4am-et",
        "bitcoin-up-or-down-march-8-5am-et",
    ]
    assert not any(s.endswith("-2am-et") for s in got)


def test_fall_back_2026_11_01_ambiguous_1am():
    got = [market_slug(B, ms(2026, 11, 1, h)) for h in range(3, 9)]
    assert got == [
        "bitcoin-up-or-down-october-31-11pm-et",  # 03Z EDT
        "bitcoin-up-or-down-november-1-12am-et",  # 04Z EDT
        "bitcoin-up-or-down-november-1-1am-et",   # 05Z EDT (first 1am)
        "bitcoin-up-or-down-november-1-1am-et",   # 06Z EST (second 1am): same slug, documented
        "bitcoin-up-or-down-november-1-2am-et",   # 07Z EST
        "bitcoin-up-or-down-november-1-3am-et",
    ]


def test_every_hour_of_2026_has_a_well_formed_slug():
    start = ms(2026, 1, 1, 0)
    seen = {}
    for i in range(365 * 24):
        s = market_slug(B, start + i * 3_600_000)
        assert s.startswith(B + "-") and s.endswith("-et")
        seen[s] = seen.get(s, 0) + 1
    dups = [s for s, n in seen.items() if n > 1]
    assert dups == ["bitcoin-up-or-down-november-1-1am-et"]
    assert len(seen) == 365 * 24 - 1


def test_bad_inputs():
    with pytest.raises(ValueError):
        market_slug(B, ms(2026, 1, 22, 12) + 1)
    with pytest.raises(ValueError):
        market_slug(B, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        market_slug("", ms(2026, 1, 22, 12))
    assert market_slug("btc-", ms(2026, 1, 22, 12)) == "btc-january-22-7am-et"
