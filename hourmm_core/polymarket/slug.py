"""Polymarket hourly market slugs: ``<base>-<month>-<day>-<h><am|pm>-et``.

Polymarket names each hourly "Bitcoin Up or Down" event after the *start* of its
hour in America/New_York local time, e.g. ``bitcoin-up-or-down-january-22-7am-et``
for the hour 12:00-13:00 UTC on 2026-01-22 (EST, UTC-5). The offset changes with
daylight saving, so it is computed with :mod:`zoneinfo`, never a fixed -5h.

DST edges (documented decision):

* Spring forward (e.g. 2026-03-08): local 02:00-03:00 does not exist. The UTC hour
  06:00Z is "1am" (EST) and the next, 07:00Z, is "3am" (EDT): no "2am" slug that day.
* Fall back (e.g. 2026-11-01): local 01:00-02:00 happens twice. Both UTC hours
  05:00Z (EDT) and 06:00Z (EST) map to the same slug "...-november-1-1am-et". The
  slug alone is therefore ambiguous on that night; discovery must confirm the
  market's end time equals ``hour_start_ms + 1h`` (see
  :func:`hourmm_core.polymarket.gamma.GammaClient.discover`) and treat a mismatch
  as "market not found" rather than trade the wrong hour.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
HOUR_MS = 3_600_000
MONTHS = ("january", "february", "march", "april", "may", "june", "july",
          "august", "september", "october", "november", "december")


def et_hour_label(hour_start_ms: int) -> str:
    """``<month>-<day>-<h><am|pm>`` of the ET local time at ``hour_start_ms``."""
    local = datetime.fromtimestamp(hour_start_ms / 1000.0, tz=timezone.utc).astimezone(ET)
    h12 = local.hour % 12 or 12          # 0 -> 12am, 12 -> 12pm
    ampm = "pm" if local.hour >= 12 else "am"
    return f"{MONTHS[local.month - 1]}-{local.day}-{h12}{ampm}"


def market_slug(base: str, hour_start_ms: int) -> str:
    """Slug of the hourly market that starts at ``hour_start_ms`` (ms UTC, on an hour boundary).

    Raises ValueError when ``hour_start_ms`` is not aligned to a UTC hour: a
    mid-hour timestamp almost always means the caller forgot to floor it, and
    silently flooring here would hide that bug.
    """
    if not isinstance(hour_start_ms, int) or isinstance(hour_start_ms, bool):
        raise ValueError(f"hour_start_ms must be int ms UTC, got {type(hour_start_ms).__name__}")
    if hour_start_ms % HOUR_MS:
        raise ValueError(f"hour_start_ms={hour_start_ms} is not on a UTC hour boundary")
    base = base.strip().rstrip("-")
    if not base:
        raise ValueError("slug base is empty")
    return f"{base}-{et_hour_label(hour_start_ms)}-et"
