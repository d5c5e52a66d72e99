"""Settings for both runners: environment variables (the operator contract) over YAML defaults.

Every value is parsed and range-checked at start-up; a bad one raises
:class:`ConfigError` naming the variable, so a typo in ``prod.env`` stops the
container before it touches a market instead of trading on a default.
Secrets are held in :class:`Credentials`, whose ``repr`` never shows them.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import yaml

from hourmm_core.errors import ConfigError  # noqa: F401 - re-exported (runners, tests)
from hourmm_core.fields import setting
from hourmm_core.logsetup import register_secret
from hourmm_core.quant.reference.pricer import season_table
from hourmm_core.trading.risk_engine import Limits
from hourmm_core.trading.session import Schedule
from hourmm_core.trading.strategy import StrategyParams

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
CONFIG_ENV = "HOURMM_CONFIG"


def _parse_bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true/false")


def _parse_float(raw: str) -> float:
    x = float(raw)
    if not math.isfinite(x):
        raise ValueError("must be finite")
    return x


def _parse_tuple(raw: str) -> tuple[float, ...]:
    """``"30,120,600"`` (or a YAML list rendered as ``"[30, 120, 600]"``) -> ``(30.0, 120.0, 600.0)``."""
    return tuple(float(x) for x in str(raw).strip().strip("[]()").split(",") if x.strip())


_PARSERS: dict[type, Callable[[str], Any]] = {
    int: lambda s: int(s.strip()),
    float: _parse_float,
    str: lambda s: s,
    bool: _parse_bool,
    tuple: _parse_tuple,
}


def read_yaml_mapping(path: str | os.PathLike[str], what: str = "config file",
                      holds: str = "SETTING: value") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; every way it can be bad is a ConfigError
    naming the file (the one YAML reader for service and research configs)."""
    p = Path(path)
    return _yaml_mapping(_file_text(p, what), p, what, holds)


def _file_text(p: Path, what: str) -> str:
    try:
        return p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{what} {p} does not exist") from None


def _yaml_mapping(text: str, p: Path, what: str, holds: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {p} must hold a mapping of {holds}")
    return data


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping of UPPER_CASE setting names; a bad file is a ConfigError."""
    return {str(k).upper(): v for k, v in read_yaml_mapping(path).items()}


_SETTINGS_FILES: dict[tuple[str, str], dict[str, str]] = {}


def _settings_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """:func:`load_yaml` with the values as strings (None -> ""), memoised by the file's exact
    text: the same text parses to the same mapping, so a process that builds its settings
    again (the backtest, once per hour) re-reads the file but does not re-parse it."""
    p = Path(path)
    text = _file_text(p, "config file")
    key = (str(p), text)
    got = _SETTINGS_FILES.get(key)
    if got is None:
        if len(_SETTINGS_FILES) >= 16:
            _SETTINGS_FILES.clear()
        got = _SETTINGS_FILES[key] = {str(k).upper(): "" if v is None else str(v)
                                      for k, v in _yaml_mapping(text, p, "config file", "SETTING: value").items()}
    return dict(got)


def merged_settings(
    defaults_file: str | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Defaults YAML (configs/), then HOURMM_CONFIG YAML, then the environment; later wins."""
    env = dict(os.environ if environ is None else environ)
    out: dict[str, str] = {}
    if defaults_file:
        p = CONFIG_DIR / defaults_file
        if p.exists():
            out.update(_settings_file(p))
    overlay = env.get(CONFIG_ENV, "").strip()
    if overlay:
        out.update(_settings_file(overlay))
    out.update(env)
    return out


def _check(name: str, value: Any, lo: float | None, hi: float | None, choices: tuple | None) -> None:
    if choices is not None and value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(map(str, choices))}")
    if lo is not None and value < lo:
        raise ConfigError(f"{name}={value!r} must be >= {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name}={value!r} must be <= {hi}")


def from_settings(cls: type[T], settings: Mapping[str, str]) -> T:
    """Build a settings dataclass: each field from its env name, parsed, range-checked.

    A field whose default is itself a settings dataclass (``TraderConfig.strategy``:
    :class:`StrategyParams`, ...) is built the same way from the same flat env names; a
    component's own validation error becomes a :class:`ConfigError`.
    """
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default is MISSING and f.default_factory is not MISSING:  # type: ignore[misc]
            sub = f.default_factory()  # type: ignore[misc]
            if is_dataclass(sub):
                kwargs[f.name] = from_settings(type(sub), settings)
                continue
        name = f.metadata.get("env") or f.name.upper()
        typ = type(f.default) if f.default is not None else str
        raw = settings.get(name)
        if raw is None or (raw == "" and typ is not str):
            value = f.default
        else:
            try:
                value = _PARSERS[typ](raw)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{name}={raw!r} is not a valid {typ.__name__} ({exc})") from None
        _check(name, value, f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("choices"))
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class PricerConfig:
    """Container A (binance_pricer)."""

    binance_symbol: str = setting("BTCUSDT")
    http_host: str = setting("0.0.0.0")
    http_port: int = setting(8080, lo=1, hi=65535)
    stale_threshold_ms: int = setting(500, lo=1, hi=3_600_000)
    snapshot_publish_hz: float = setting(50.0, lo=0.1, hi=1000.0)
    # also publish at once when fair_up moved this much since the last snapshot (0 = only at the rate)
    snapshot_push_delta: float = setting(0.002, lo=0.0, hi=1.0)
    log_level: str = setting("INFO", choices=_LEVELS)
    binance_ws_url: str = setting("wss://stream.binance.com:9443")
    binance_rest_url: str = setting("https://api.binance.com")
    vol_halflives_s: tuple[float, ...] = setting((30.0, 120.0, 600.0))   # VOL_HALFLIVES_S="30,120,600" (s)
    vol_sample_ms: int = setting(1000, lo=10, hi=60_000)
    vol_floor: float = setting(1e-12, lo=0.0)
    pricer_nu: float = setting(0.0, lo=0.0)
    pricer_p_min: float = setting(0.001, lo=0.0, hi=0.49)
    # rest-of-hour model (issue 11, docs/PRICER.md); "ewma" = the old first-half-life digital
    pricer_model: str = setting("seasonal", choices=("seasonal", "ewma"))
    pricer_halflife_min: float = setting(60.0, lo=0.1, hi=100_000.0)
    pricer_var_prior: float = setting(1e-7, lo=1e-15, hi=1.0)
    pricer_var_scale: float = setting(1.0, lo=0.01, hi=100.0)
    # walk-forward adaptive variance scale (docs/PRICER.md): 0 = the fixed PRICER_VAR_SCALE; N days =
    # the scale re-fitted every hour on the log loss of the previous N days, shrunk toward 1 with
    # PRICER_SCALE_PRIOR_HOURS pseudo-hours (container A loads N days of 1m klines at start-up)
    pricer_scale_window_days: int = setting(0, lo=0, hi=366)
    pricer_scale_prior_hours: float = setting(72.0, lo=0.0, hi=1e6)
    pricer_season_hod: str = setting("")
    pricer_season_moh: str = setting("")
    reconnect_before_ms: int = setting(23 * 3_600_000, lo=60_000)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z0-9]{4,20}", self.binance_symbol):
            raise ConfigError(f"BINANCE_SYMBOL={self.binance_symbol!r} must look like BTCUSDT")
        if 0 < self.pricer_nu <= 2:
            raise ConfigError(f"PRICER_NU={self.pricer_nu} must be 0 (normal) or > 2")
        self.halflives()
        self.season()

    @property
    def scale_window_h(self) -> int:
        """The adaptive scale's window in hours (0 = fixed PRICER_VAR_SCALE)."""
        return 24 * int(self.pricer_scale_window_days)

    def season(self):
        """The 1440 minute-of-day variance factors (PRICER_SEASON_HOD x PRICER_SEASON_MOH; empty = flat)."""
        try:
            hod = [float(x) for x in self.pricer_season_hod.split(",") if x.strip()]
            moh = [float(x) for x in self.pricer_season_moh.split(",") if x.strip()]
            return season_table(hod, moh)
        except ValueError as exc:
            raise ConfigError(f"PRICER_SEASON_HOD/PRICER_SEASON_MOH: {exc}") from None

    def halflives(self) -> tuple[float, ...]:
        """The EWMA half-lives in seconds (``VOL_HALFLIVES_S="30,120,600"``, parsed as a tuple)."""
        hl = self.vol_halflives_s
        if not hl or any(not (0 < h < 1e6) for h in hl):
            raise ConfigError(f"VOL_HALFLIVES_S={','.join(f'{h:g}' for h in hl)!r} needs positive half-lives")
        return hl

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "PricerConfig":
        return from_settings(cls, merged_settings("pricer.yaml", environ))


@dataclass(frozen=True)
class TraderConfig:
    """Container B (polymarket_trader); risk limits are in USDC / tokens as the guide says."""

    snapshot_url: str = setting("http://binance_pricer:8080/snapshot/latest")
    snapshot_stream_url: str = setting("")
    poll_snapshot_hz: float = setting(50.0, lo=0.1, hi=1000.0)
    market_slug: str = setting("bitcoin-up-or-down")
    sqlite_path: str = setting("/data/journal.db")
    control_host: str = setting("127.0.0.1")
    control_port: int = setting(9000, lo=1, hi=65535)
    control_token: str = setting("")
    # the components' own settings (flat env names: MAX_OPEN_ORDERS, T_WIND_MS, HALF_SPREAD, ...)
    limits: Limits = field(default_factory=Limits)
    schedule: Schedule = field(default_factory=Schedule)
    strategy: StrategyParams = field(default_factory=StrategyParams)
    gamma_url: str = setting("https://gamma-api.polymarket.com")
    clob_url: str = setting("https://clob.polymarket.com")
    pm_ws_url: str = setting("wss://ws-subscriptions-clob.polymarket.com")
    chain_id: int = setting(137, lo=1)
    log_level: str = setting("INFO", choices=_LEVELS)
    snapshot_max_age_ms: int = setting(1500, lo=1)
    # order-manager tolerances (configs/trader.yaml holds the tuned strategy values)
    requote_price_tol: float = setting(0.005, lo=0.0)
    requote_size_tol: float = setting(0.2, lo=0.0)

    def __post_init__(self) -> None:
        for name, typ in (("limits", Limits), ("schedule", Schedule), ("strategy", StrategyParams)):
            if not isinstance(getattr(self, name), typ):
                raise ConfigError(f"TraderConfig.{name} must be a {typ.__name__}, got {getattr(self, name)!r}")
        if not re.fullmatch(r"[a-z0-9-]+", self.market_slug):
            raise ConfigError(f"MARKET_SLUG={self.market_slug!r} must be lower-case letters, digits and '-'")
        if self.strategy.merge_min > 0:
            # DecisionCore would quote as if the pairs were merged, but the Trader has no CTF merge
            # (an on-chain contract call, not a CLOB endpoint): the book would drift from the venue.
            raise ConfigError(f"MERGE_MIN={self.strategy.merge_min:g}: the live trader cannot CTF-merge "
                              "(on-chain call, not implemented); use 0 (merges are a backtest-only experiment)")

    def __getattr__(self, name: str) -> Any:
        """Read access by flat name (``cfg.max_open_orders``, ``cfg.half_spread``) to the
        composed components' fields: the same value, one definition."""
        for part in ("limits", "schedule", "strategy"):
            sub = self.__dict__.get(part)
            if sub is not None and name in type(sub).__dataclass_fields__:
                return getattr(sub, name)
        raise AttributeError(f"TraderConfig has no attribute {name!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "TraderConfig":
        return from_settings(cls, merged_settings("trader.yaml", environ))


def shipped_trader_config() -> TraderConfig:
    """configs/trader.yaml alone (no environment, no ``HOURMM_CONFIG``): the shipped defaults.

    Why: the strategy, limits, schedule and requote tolerances have ONE definition, the file
    container B ships with; the backtest (``hourmm backtest``, sweeps) starts from exactly
    this object, so what the backtest reports is what the live trader (and ``hourmm sim``)
    runs unless an operator overrides it by env."""
    return from_settings(TraderConfig, merged_settings("trader.yaml", {}))


_HEX_ADDR = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")


@dataclass(frozen=True, repr=False)
class Credentials:
    """Polymarket signing + L2 API credentials. ``repr`` hides every secret."""

    private_key: str
    funder: str
    signature_type: int
    api_key: str | None = None
    api_secret: str | None = None
    api_passphrase: str | None = None

    def __repr__(self) -> str:
        return (f"Credentials(funder={self.funder}, signature_type={self.signature_type}, "
                f"private_key=***, api_key={'set' if self.api_key else 'derive'})")

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Credentials | None":
        """None when no trading credentials are configured (market-data-only mode).

        Partially configured credentials are an error naming what is missing or malformed.
        """
        env = os.environ if environ is None else environ
        key = env.get("PM_PRIVATE_KEY", "").strip()
        funder = env.get("PM_FUNDER", "").strip()
        sig = env.get("PM_SIGNATURE_TYPE", "").strip()
        if not key and not funder:
            return None
        missing = [n for n, v in (("PM_PRIVATE_KEY", key), ("PM_FUNDER", funder),
                                  ("PM_SIGNATURE_TYPE", sig)) if not v]
        if missing:
            raise ConfigError(f"missing credential(s): {', '.join(missing)} "
                              "(PM_PRIVATE_KEY, PM_FUNDER and PM_SIGNATURE_TYPE are required to trade)")
        if not _HEX_KEY.fullmatch(key):
            raise ConfigError("PM_PRIVATE_KEY is malformed: expected 64 hex digits, 0x prefixed")
        if not key.startswith("0x"):
            key = "0x" + key
        if not _HEX_ADDR.fullmatch(funder):
            raise ConfigError("PM_FUNDER is malformed: expected a 0x-prefixed 40-hex-digit address")
        try:
            sig_type = int(sig)
        except ValueError:
            raise ConfigError(f"PM_SIGNATURE_TYPE={sig!r} must be 1 (EOA) or 2 (proxy wallet)") from None
        # 0 and 3 are the CLOB V2 library's own EOA / POLY_1271 (deposit wallet) numbers; the
        # executor maps the guide's numbering onto the library's (polymarket/executor.py).
        if sig_type not in (0, 1, 2, 3):
            raise ConfigError(f"PM_SIGNATURE_TYPE={sig!r} must be 1 (EOA) or 2 (proxy wallet) "
                              "(also accepted: 0 = EOA, 3 = POLY_1271 deposit wallet)")
        api = [env.get(n, "").strip() or None for n in ("PM_API_KEY", "PM_API_SECRET", "PM_PASSPHRASE")]
        if any(api) and not all(api):
            raise ConfigError("PM_API_KEY, PM_API_SECRET and PM_PASSPHRASE must be set together (or none, to derive them)")
        for s in (key, api[1], api[2]):
            register_secret(s)
        return cls(key, funder, sig_type, *api)
