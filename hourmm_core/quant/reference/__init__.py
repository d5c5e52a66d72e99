"""Plain-Python twins of the compiled quant core (same algorithms, readable).

They exist so notebooks can read the maths and so the tests can prove the compiled
modules compute the same numbers (relative 1e-9). Production code imports the
compiled ``hourmm_core.quant`` modules; these are slow by design.
"""
from hourmm_core.quant.reference.features import FEATURE_NAMES, ReturnFeatures, return_features_batch
from hourmm_core.quant.reference.ladder import Ladder, LadderSpec, build_ladder, quote_ladder
from hourmm_core.quant.reference.pricer import (FairPricer, MinutePricer, TickPricer, digital_prob, fair_prob_batch,
                                              minute_level_batch, minute_path_batch, minute_prob_batch, minute_scale_batch,
                                         price_path_batch, student_t_cdf, SCALE_GRID, SCALE_C0)
from hourmm_core.quant.reference.plan import QuoteCheck, match_quotes, order_aggregates, plan_orders, prune_order
from hourmm_core.quant.reference.risk import RiskChecker, check_order, check_portfolio
from hourmm_core.quant.reference.vol import EwmaVol, ewma_vol_batch

__all__ = [
    "EwmaVol", "ewma_vol_batch", "ReturnFeatures", "return_features_batch", "FEATURE_NAMES",
    "digital_prob", "fair_prob_batch", "FairPricer", "MinutePricer", "minute_level_batch", "minute_path_batch", "minute_prob_batch", "minute_scale_batch", "SCALE_GRID", "SCALE_C0", "student_t_cdf", "price_path_batch", "TickPricer", "build_ladder", "Ladder", "LadderSpec", "quote_ladder",
    "match_quotes", "order_aggregates", "plan_orders", "prune_order", "QuoteCheck", "RiskChecker", "check_order", "check_portfolio",
]
