"""Polymarket venue layer: slugs, Gamma discovery, local books, market/user WebSockets, executor.

Submodules are imported lazily by callers (``from hourmm_core.polymarket.slug import
market_slug``) so that importing the package does not pull in aiohttp/websockets or
the CLOB client for code that only needs slugs or books.
"""
