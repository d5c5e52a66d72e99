"""Clock selection, hour arithmetic and secret redaction in logs."""
import logging
import time

import pytest

from hourmm_core.clock import HOUR_MS, ScaledClock, WallClock, clock_from_env, hour_end_ms, hour_start_ms
from hourmm_core.config import ConfigError
from hourmm_core.logsetup import RedactingFilter, redact, register_secret


def test_hour_arithmetic():
    t = 1_737_554_400_000 + 1234  # 2025-01-22T14:00:01.234Z
    assert hour_start_ms(t) == 1_737_554_400_000
    assert hour_end_ms(t) == 1_737_554_400_000 + HOUR_MS
    assert hour_start_ms(hour_end_ms(t)) == hour_end_ms(t)


def test_clock_from_env_wall_and_scaled():
    assert isinstance(clock_from_env({}), WallClock)
    wall = time.time_ns() // 1_000_000
    clk = clock_from_env({"HOURMM_SIM_CLOCK": f"60,1000000,{wall - 1000}"})
    assert isinstance(clk, ScaledClock)
    # one wall second elapsed at 60x = about 60 simulated seconds
    assert 1_000_000 + 59_000 <= clk.now_ms() <= 1_000_000 + 65_000
    assert clock_from_env({"HOURMM_SIM_CLOCK": clk.to_env()}) == clk


@pytest.mark.parametrize("raw", ["60", "x,1,2", "0,1,2", "60,1.5e3x,2"])
def test_bad_sim_clock_is_a_config_error(raw):
    with pytest.raises(ConfigError, match="HOURMM_SIM_CLOCK"):
        clock_from_env({"HOURMM_SIM_CLOCK": raw})


def test_redaction_of_registered_and_key_shaped_secrets(caplog):
    register_secret("my-api-secret-123")
    hexkey = "0x" + "ab" * 32
    assert "my-api-secret-123" not in redact("secret=my-api-secret-123")
    assert hexkey not in redact(f"key {hexkey}")
    log = logging.getLogger("test.redact")
    log.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redact"):
        log.info("creds %s and %s", "my-api-secret-123", hexkey)
    assert "my-api-secret-123" not in caplog.text and hexkey not in caplog.text
    assert "***" in caplog.text
