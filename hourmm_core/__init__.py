"""HourMM core library: compiled quant core, venue clients, journal, config and simulators.

``import hourmm_core`` fails with instructions when the Cython extension has not
been built: there is deliberately no silent fallback to the slow reference code.
"""
from __future__ import annotations

__version__ = "0.1.0"

try:
    from hourmm_core.quant import (  # noqa: F401 - public re-exports
        FEATURE_NAMES,
        EwmaVol,
        FairPricer,
        Ladder,
        ReturnFeatures,
        RiskChecker,
        RiskMode,
        RiskReason,
        TickPricer,
        build_ladder,
        check_order,
        check_portfolio,
        digital_prob,
        ewma_vol_batch,
        fair_prob_batch,
        price_path_batch,
        return_features_batch,
    )
except ImportError as exc:
    raise ImportError(
        "hourmm_core: the compiled quant core (Cython extension) is not built or failed to load: "
        f"{exc}. Build it with `pip install -e .` (or `python3 setup.py build_ext --inplace` "
        "in the repository root); there is no pure-Python fallback in production."
    ) from exc

__all__ = [
    "EwmaVol", "ewma_vol_batch", "ReturnFeatures", "return_features_batch", "FEATURE_NAMES",
    "digital_prob", "fair_prob_batch", "FairPricer", "build_ladder", "Ladder",
    "check_order", "check_portfolio", "RiskChecker", "RiskReason", "RiskMode", "TickPricer",
    "price_path_batch",
]
