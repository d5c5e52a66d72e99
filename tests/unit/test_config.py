"""Settings: defaults match the operator guide, bad values fail naming the variable, secrets stay hidden."""
import pytest

from hourmm_core.config import ConfigError, Credentials, PricerConfig, TraderConfig
from tests.conftest import new_key


def test_pricer_defaults_match_usage_guide():
    cfg = PricerConfig.from_env({})
    assert (cfg.binance_symbol, cfg.http_port, cfg.stale_threshold_ms, cfg.snapshot_publish_hz, cfg.log_level) == (
        "BTCUSDT", 8080, 500, 50.0, "INFO")


def test_trader_defaults_match_usage_guide():
    cfg = TraderConfig.from_env({})
    assert cfg.snapshot_url == "http://binance_pricer:8080/snapshot/latest"
    assert cfg.poll_snapshot_hz == 50.0
    assert cfg.market_slug == "bitcoin-up-or-down"
    assert cfg.sqlite_path == "/data/journal.db"
    assert cfg.control_port == 9000
    assert cfg.control_host == "127.0.0.1"
    assert (cfg.max_reserved_capital, cfg.max_position_size, cfg.max_order_size, cfg.max_open_orders) == (
        1000.0, 500.0, 100.0, 4)
    assert (cfg.t_wind_ms, cfg.t_flatten_ms, cfg.hard_cutoff_ms) == (600_000, 300_000, 60_000)


def test_env_overrides_defaults():
    cfg = TraderConfig.from_env({"MAX_ORDER_SIZE": "5.0", "MAX_OPEN_ORDERS": "6"})
    assert cfg.max_order_size == 5.0 and cfg.max_open_orders == 6


@pytest.mark.parametrize("name,value", [
    ("HTTP_PORT", "eighty"), ("HTTP_PORT", "70000"), ("STALE_THRESHOLD_MS", "0"),
    ("SNAPSHOT_PUBLISH_HZ", "nan"), ("LOG_LEVEL", "LOUD"), ("BINANCE_SYMBOL", "btc usdt"),
])
def test_bad_pricer_value_names_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        PricerConfig.from_env({name: value})


@pytest.mark.parametrize("name,value", [
    ("MAX_ORDER_SIZE", "-1"), ("MAX_OPEN_ORDERS", "4.5"), ("CONTROL_PORT", ""), ("POLL_SNAPSHOT_HZ", "inf"),
])
def test_bad_trader_value_names_the_variable(name, value):
    env = {name: value}
    if value == "":
        # empty means "use the default" for numbers: not an error
        assert TraderConfig.from_env(env).control_port == 9000
        return
    with pytest.raises(ConfigError, match=name):
        TraderConfig.from_env(env)


def test_phase_ordering_is_enforced():
    with pytest.raises(ConfigError, match="T_FLATTEN_MS"):
        TraderConfig.from_env({"T_FLATTEN_MS": "700000"})


def test_yaml_overlay_and_bad_yaml(tmp_path):
    good = tmp_path / "over.yaml"
    good.write_text("max_order_size: 7.5\n")
    assert TraderConfig.from_env({"HOURMM_CONFIG": str(good)}).max_order_size == 7.5
    # env wins over the overlay
    assert TraderConfig.from_env({"HOURMM_CONFIG": str(good), "MAX_ORDER_SIZE": "2"}).max_order_size == 2.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        TraderConfig.from_env({"HOURMM_CONFIG": str(bad)})
    with pytest.raises(ConfigError, match="does not exist"):
        TraderConfig.from_env({"HOURMM_CONFIG": str(tmp_path / "missing.yaml")})


_wallet = new_key


def test_credentials_absent_means_market_data_only():
    assert Credentials.from_env({}) is None


@pytest.mark.parametrize("drop", ["PM_PRIVATE_KEY", "PM_FUNDER", "PM_SIGNATURE_TYPE"])
def test_partial_credentials_name_what_is_missing(drop):
    key, addr = _wallet()
    env = {"PM_PRIVATE_KEY": key, "PM_FUNDER": addr, "PM_SIGNATURE_TYPE": "1"}
    env.pop(drop)
    with pytest.raises(ConfigError, match=drop):
        Credentials.from_env(env)


def test_malformed_credentials_do_not_echo_the_secret():
    key, addr = _wallet()
    bad_key = key[:-2] + "zz"
    with pytest.raises(ConfigError) as ei:
        Credentials.from_env({"PM_PRIVATE_KEY": bad_key, "PM_FUNDER": addr, "PM_SIGNATURE_TYPE": "1"})
    assert "PM_PRIVATE_KEY" in str(ei.value) and bad_key not in str(ei.value)
    with pytest.raises(ConfigError, match="PM_FUNDER"):
        Credentials.from_env({"PM_PRIVATE_KEY": key, "PM_FUNDER": "0x1234", "PM_SIGNATURE_TYPE": "1"})
    with pytest.raises(ConfigError, match="PM_SIGNATURE_TYPE"):
        Credentials.from_env({"PM_PRIVATE_KEY": key, "PM_FUNDER": addr, "PM_SIGNATURE_TYPE": "7"})
    with pytest.raises(ConfigError, match="PM_API_SECRET"):
        Credentials.from_env({"PM_PRIVATE_KEY": key, "PM_FUNDER": addr, "PM_SIGNATURE_TYPE": "1",
                              "PM_API_KEY": "k"})


def test_credentials_repr_hides_secrets():
    key, addr = _wallet()
    creds = Credentials.from_env({"PM_PRIVATE_KEY": key[2:], "PM_FUNDER": addr, "PM_SIGNATURE_TYPE": "2",
                                  "PM_API_KEY": "kkk", "PM_API_SECRET": "s3cr3t-value", "PM_PASSPHRASE": "pp-value"})
    assert creds.private_key == key and creds.signature_type == 2
    text = repr(creds) + str(creds)
    for secret in (key, key[2:], "s3cr3t-value", "pp-value"):
        assert secret not in text


def test_trader_config_composes_the_components_own_settings():
    """StrategyParams, Limits and Schedule own their fields; TraderConfig holds them; env names unchanged."""
    from hourmm_core.trading.risk_engine import Limits
    from hourmm_core.trading.session import Schedule
    from hourmm_core.trading.strategy import StrategyParams

    cfg = TraderConfig.from_env({"HALF_SPREAD": "0.03", "MAX_OPEN_ORDERS": "6", "T_WIND_MS": "500000",
                                 "REQUOTE_PRICE_TOL": "0.01"})
    assert isinstance(cfg.strategy, StrategyParams) and isinstance(cfg.limits, Limits)
    assert isinstance(cfg.schedule, Schedule)
    assert cfg.strategy.half_spread == 0.03 and cfg.limits.max_open_orders == 6 and cfg.schedule.t_wind_ms == 500_000
    assert cfg.half_spread == 0.03 and cfg.max_open_orders == 6  # flat read access, same value
    assert cfg.requote_price_tol == 0.01
    assert StrategyParams.from_config(cfg) is cfg.strategy
    for name, value in (("HALF_SPREAD", "0.9"), ("QUOTE_LEVELS", "0"), ("MAX_OPEN_ORDERS", "x")):
        with pytest.raises(ConfigError, match=name):
            TraderConfig.from_env({name: value})
    # no field is declared twice
    own = {f for f in TraderConfig.__dataclass_fields__}
    for part in (StrategyParams, Limits, Schedule):
        assert not own & set(part.__dataclass_fields__), part


def test_halflives_parse_as_a_tuple():
    cfg = PricerConfig.from_env({"VOL_HALFLIVES_S": "15, 60,900"})
    assert cfg.vol_halflives_s == (15.0, 60.0, 900.0) and cfg.halflives() == (15.0, 60.0, 900.0)
    assert PricerConfig.from_env({}).vol_halflives_s == (30.0, 120.0, 600.0)
    with pytest.raises(ConfigError, match="VOL_HALFLIVES_S"):
        PricerConfig.from_env({"VOL_HALFLIVES_S": "30,abc"})
    with pytest.raises(ConfigError, match="VOL_HALFLIVES_S"):
        PricerConfig.from_env({"VOL_HALFLIVES_S": "-5"})


def test_settings_files_are_reparsed_when_their_text_changes(tmp_path):
    """merged_settings memoises each YAML file by its exact text (the backtest builds container
    A's settings once an hour): an edit of the same size and mtime granularity is still seen."""
    over = tmp_path / "over.yaml"
    over.write_text("max_order_size: 7.5\n")
    env = {"HOURMM_CONFIG": str(over)}
    assert TraderConfig.from_env(env).max_order_size == 7.5
    assert TraderConfig.from_env(env).max_order_size == 7.5
    over.write_text("max_order_size: 6.5\n")          # same length
    assert TraderConfig.from_env(env).max_order_size == 6.5
    over.write_text("max_order_size: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TraderConfig.from_env(env)
    over.unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        TraderConfig.from_env(env)
