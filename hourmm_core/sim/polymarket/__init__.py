"""Loopback Polymarket simulator: matching engine, background agents, Gamma/CLOB/WS servers.

``engine.Exchange`` is the pure in-process matching engine (used directly by backtests);
``server.PolymarketSim`` serves it over HTTP/WS so the real CLOB client can talk to it.
"""
from hourmm_core.sim.polymarket.engine import Exchange, PlaceResult, Fill, EngineError  # noqa: F401
