"""Loopback Polymarket simulator: matching engine, background agents, Gamma/CLOB/WS servers.

Modules (one job each):

* ``engine``  -- pure in-process matching engine ``Exchange`` (used directly by backtests);
* ``agents``  -- ``PricePath`` (true fair value from the replayed BTC path) and
  ``BackgroundAgents`` (makers, noise and informed takers);
* ``auth``    -- CLOB L1/L2 authentication and deterministic API keys;
* ``gamma``   -- hourly market catalog and its Gamma JSON;
* ``server``  -- ``PolymarketSim`` / ``SimConfig``: everything served on one port;
* ``__main__`` -- CLI printing ``READY gamma=... clob=... ws=...``.

Quick start (in-process, e.g. a test)::

    sim = PolymarketSim(SimConfig(hours=2, seed=7))
    await sim.start()
    client = ClobClient(sim.urls["clob"], chain_id=137, key=...)   # py_clob_client_v2, unchanged
    ...
    await sim.stop()

``server`` is not imported here so engine-only users do not pull in aiohttp.
"""
from hourmm_core.sim.polymarket.engine import Exchange, PlaceResult, Fill, EngineError  # noqa: F401
