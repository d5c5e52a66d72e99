"""THE Polymarket fee: the one formula the client, the simulator, the backtest and the reports use.

Venue rule (docs.polymarket.com/trading/fees; the same formula as
``py_clob_client_v2.fees.adjust_buy_amount_for_fees`` and NautilusTrader's
Polymarket ``compute_commission``)::

    taker fee (USDC) = shares * rate * (p * (1 - p)) ** exponent

charged to the TAKER of each match, where ``p`` is the execution price of the
taker's token and ``rate``/``exponent`` come from the market's fee schedule
(Gamma ``feeSchedule``, or the CLOB ``fd`` object ``{"r", "e", "to"}``). The fee
is floored to 5 decimal places (0.00001 USDC), as the venue charges it. Makers pay
nothing; on a ``taker_only`` schedule they receive a daily rebate of
``maker_rebate_rate`` of the fees their fills generated, paid pro-rata from a pool
(:func:`maker_rebate_estimate` is that share per fill, an estimate, never booked
as a fill's fee).

Current schedule of the crypto Up/Down markets (real Gamma data,
/work/shared/data/polymarket: every 5-minute BTC market of 2026-06-08 and
2026-07-24): ``feeType crypto_fees_v2``, rate 0.07, exponent 1, taker-only,
maker rebate 0.2 -> :data:`CRYPTO_FEES`. At p = 0.5 a taker pays 0.0175 USDC
per share (3.5% of notional); at p = 0.01 or 0.99, 0.000693 per share.

Integer form (:func:`taker_fee_units`): prices in 1e-4, sizes in 1e-2 shares, money
in 1e-6 USDC (the simulator engine's units). It is exact integer arithmetic (the
rate is held in parts per million), so the engine's conservation stays an equality.
The float form :func:`taker_fee` is the same computation on the same grid.

No I/O, no numpy, no wall clock.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

PRICE_SCALE = 10_000      # price units per 1.0 (finest Polymarket tick 0.0001)
SIZE_SCALE = 100          # size units per share (sizes have 2 decimals)
USDC_SCALE = 1_000_000    # USDC micro-units
RATE_SCALE = 1_000_000    # fee rate held in parts per million (0.07 -> 70_000)
FEE_QUANTUM_U = 10        # fees are floored to 0.00001 USDC = 10 micro-units


class FeeError(ValueError):
    """A fee schedule or fee input that cannot be valid (negative rate, price outside [0, 1], ...)."""


@dataclass(frozen=True)
class FeeSchedule:
    """A market's fee schedule (Gamma ``feeSchedule``). Default: no fee.

    ``rate``: taker fee rate (0.07 for crypto); ``exponent``: whole number >= 0
    (1 on every current market); ``taker_only``: makers pay nothing;
    ``maker_rebate_rate``: share of the taker fees paid back to makers (0.2).
    """

    rate: float = 0.0
    exponent: int = 1
    taker_only: bool = True
    maker_rebate_rate: float = 0.0

    def __post_init__(self) -> None:
        r, e, mr = self.rate, self.exponent, self.maker_rebate_rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or not 0.0 <= r <= 1.0:
            raise FeeError(f"fee rate must be in [0, 1], got {r!r}")
        if isinstance(e, bool) or not isinstance(e, (int, float)) or e != int(e) or not 0 <= e <= 8:
            raise FeeError(f"fee exponent must be a whole number in [0, 8], got {e!r}")
        if isinstance(mr, bool) or not isinstance(mr, (int, float)) or not math.isfinite(mr) or not 0.0 <= mr <= 1.0:
            raise FeeError(f"maker rebate rate must be in [0, 1], got {mr!r}")
        if not self.taker_only:
            raise FeeError("only taker-only fee schedules exist on Polymarket (makers never pay)")
        object.__setattr__(self, "exponent", int(e))
        object.__setattr__(self, "rate", float(r))
        object.__setattr__(self, "maker_rebate_rate", float(mr))

    @property
    def rate_ppm(self) -> int:
        return int(round(self.rate * RATE_SCALE))

    @property
    def enabled(self) -> bool:
        return self.rate_ppm > 0

    def as_fd(self) -> dict[str, Any]:
        """The CLOB ``/clob-markets`` ``fd`` object: ``{"r": rate, "e": exponent, "to": taker_only}``."""
        return {"r": self.rate, "e": self.exponent, "to": self.taker_only}

    def as_gamma(self) -> dict[str, Any]:
        """Gamma's ``feeSchedule`` object."""
        return {"rate": self.rate, "exponent": self.exponent, "takerOnly": self.taker_only,
                "rebateRate": self.maker_rebate_rate}

    @classmethod
    def from_market(cls, m: Mapping[str, Any]) -> "FeeSchedule":
        """Parse a market payload: Gamma (``feeSchedule`` object or JSON string, camelCase),
        the CLOB ``fd`` object, or the flattened columns ``fee_rate``/``fee_exponent``/
        ``fee_taker_only``/``fee_rebate_rate`` of /work/shared/data/polymarket. A market
        without any fee field is fee-free (``FeeSchedule()``); a malformed one raises
        :class:`FeeError` naming the field."""
        if not isinstance(m, Mapping):
            raise FeeError(f"market must be a mapping, got {type(m).__name__}")
        fs = m.get("feeSchedule")
        if isinstance(fs, str) and fs.strip():
            try:
                fs = json.loads(fs)
            except ValueError as exc:
                raise FeeError(f"feeSchedule is not JSON: {fs[:60]!r}") from exc
        if isinstance(fs, Mapping):
            return cls._build("feeSchedule", fs.get("rate"), fs.get("exponent", 1), fs.get("takerOnly", True),
                              fs.get("rebateRate", 0.0))
        fd = m.get("fd")
        if isinstance(fd, Mapping):
            return cls._build("fd", fd.get("r"), fd.get("e", 1), fd.get("to", True), 0.0)
        if m.get("fee_rate") not in (None, ""):
            return cls._build("fee_rate", m.get("fee_rate"), m.get("fee_exponent", 1), m.get("fee_taker_only", True),
                              m.get("fee_rebate_rate", 0.0))
        return cls()

    @classmethod
    def _build(cls, where: str, rate: Any, exponent: Any, taker_only: Any, rebate: Any) -> "FeeSchedule":
        def num(x: Any, name: str) -> float:
            try:
                v = float(x)
            except (TypeError, ValueError):
                raise FeeError(f"{where}: {name} must be a number, got {x!r}") from None
            if not math.isfinite(v):
                raise FeeError(f"{where}: {name} must be finite, got {x!r}")
            return v

        to = taker_only if isinstance(taker_only, bool) else str(taker_only).strip().lower() in ("true", "1", "yes")
        e = num(exponent if exponent not in (None, "") else 1, "exponent")
        try:
            return cls(num(rate, "rate"), int(e) if e == int(e) else e,  # type: ignore[arg-type]
                       to, num(rebate if rebate not in (None, "") else 0.0, "rebate rate"))
        except FeeError as exc:
            raise FeeError(f"{where}: {exc}") from None


#: Polymarket crypto Up/Down markets today (``crypto_fees_v2``; see module docstring).
CRYPTO_FEES = FeeSchedule(rate=0.07, exponent=1, taker_only=True, maker_rebate_rate=0.2)
#: No fee (fee-free markets, and tests that isolate other rules).
NO_FEES = FeeSchedule()


def taker_fee_units(price_u: int, size_u: int, fs: FeeSchedule) -> int:
    """Taker fee in USDC micro-units for ``size_u`` (1e-2 shares) at ``price_u`` (1e-4 USDC),
    exact: ``floor(shares * rate * (p(1-p))**e`` to 0.00001 USDC)."""
    if not (0 <= price_u <= PRICE_SCALE) or size_u < 0:
        raise FeeError(f"fee needs 0 <= price <= 1 and size >= 0, got {price_u}/{PRICE_SCALE}, {size_u}/{SIZE_SCALE}")
    rp = fs.rate_ppm
    if rp == 0 or size_u == 0:
        return 0
    e = fs.exponent
    # micro = size_u/1e2 * rp/1e6 * (pu*(S-pu)/S^2)^e * 1e6 ; floored to FEE_QUANTUM_U
    num = size_u * rp * (price_u * (PRICE_SCALE - price_u)) ** e
    den = SIZE_SCALE * (PRICE_SCALE * PRICE_SCALE) ** e * FEE_QUANTUM_U
    return (num // den) * FEE_QUANTUM_U


def taker_fee(price: float, size: float, fs: FeeSchedule) -> float:
    """Taker fee in USDC of ``size`` shares at ``price`` (the same computation as
    :func:`taker_fee_units`; price rounded to 0.0001, size to 0.01 share)."""
    if not (isinstance(price, (int, float)) and isinstance(size, (int, float))) or price != price or size != size:
        raise FeeError(f"fee needs numbers, got {price!r}, {size!r}")
    if not (0.0 <= price <= 1.0) or size < 0:
        raise FeeError(f"fee needs 0 <= price <= 1 and size >= 0, got {price}, {size}")
    return taker_fee_units(int(round(price * PRICE_SCALE)), int(round(size * SIZE_SCALE)), fs) / USDC_SCALE


def fill_fee(price: float, size: float, maker: bool, fs: FeeSchedule) -> float:
    """Fee paid by our side of one fill: the taker fee, or 0 for a maker."""
    return 0.0 if maker else taker_fee(price, size, fs)


def maker_rebate_estimate(price: float, size: float, fs: FeeSchedule) -> float:
    """Estimated maker rebate of one maker fill (USDC): ``maker_rebate_rate`` of the taker
    fee the fill generated. The venue pays rebates daily and pro-rata; this is not a fee."""
    return fs.maker_rebate_rate * taker_fee(price, size, fs)


def max_taker_fee_units(size_u: int, fs: FeeSchedule) -> int:
    """Worst-case taker fee of ``size_u`` at any price (the curve peaks at p = 0.5): what a
    BUY must have on top of its notional to be sure it can pay."""
    return taker_fee_units(PRICE_SCALE // 2, size_u, fs)
