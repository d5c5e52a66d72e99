"""Compiled quant core (Cython): volatility, return features, pricer, quote ladder, risk checks.

Plain-Python twins with the same algorithms live in ``hourmm_core.quant.reference``.
Importing this package fails loudly when the extensions are not built.
"""
from __future__ import annotations

from hourmm_core.quant.risk_codes import RiskMode, RiskReason, Side, Token

try:
    from hourmm_core.quant.vol import EwmaVol, ewma_vol_batch
    from hourmm_core.quant.features import FEATURE_NAMES, ReturnFeatures, return_features_batch
    from hourmm_core.quant.pricer import (FairPricer, MinutePricer, TickPricer, digital_prob, fair_prob_batch,
                                         minute_level_batch, minute_path_batch, minute_prob_batch, minute_scale_batch,
                                         price_path_batch, student_t_cdf, SCALE_GRID, SCALE_C0, VMATH)
    from hourmm_core.quant.ladder import Ladder, LadderSpec, QuoteKernel, build_ladder, quote_ladder
    from hourmm_core.quant.risk import RiskChecker, check_order, check_portfolio
    from hourmm_core.quant.plan import QuoteCheck, match_quotes, order_aggregates, plan_orders, prune_order
except ImportError as exc:  # pragma: no cover - exercised only on an unbuilt checkout
    raise ImportError(
        "hourmm_core.quant: the compiled extension is not built (" + str(exc) + "). Build it with "
        "`pip install -e .` or `python3 setup.py build_ext --inplace` (needs a C compiler, Cython>=3, numpy)."
    ) from exc

__all__ = [
    "EwmaVol", "ewma_vol_batch", "ReturnFeatures", "return_features_batch", "FEATURE_NAMES",
    "digital_prob", "fair_prob_batch", "FairPricer", "MinutePricer", "minute_level_batch", "minute_path_batch", "minute_prob_batch", "minute_scale_batch", "SCALE_GRID", "SCALE_C0", "VMATH", "student_t_cdf", "price_path_batch", "TickPricer", "build_ladder", "Ladder", "LadderSpec", "QuoteKernel", "quote_ladder",
    "match_quotes", "order_aggregates", "plan_orders", "prune_order", "QuoteCheck", "check_order", "check_portfolio", "RiskChecker", "RiskReason", "RiskMode", "Token", "Side",
]
