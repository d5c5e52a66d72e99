"""Market/user WS clients against a real websockets server on 127.0.0.1 (ephemeral port)."""
import asyncio
import json

import pytest
from websockets.asyncio.server import serve

from hourmm_core.polymarket.market_ws import MarketWsClient
from hourmm_core.polymarket.user_ws import OrderUpdate, TradeUpdate, UserMsgError, UserWsClient, parse_user_message
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(30)
UP, DN = "101", "202"


def book(asset, bid, ask, ts):
    return {"event_type": "book", "asset_id": asset, "market": "0xc", "timestamp": str(ts), "hash": "h",
            "bids": [{"price": bid, "size": "10"}], "asks": [{"price": ask, "size": "10"}]}


class Server:
    """Tiny scripted exchange WS: records frames, answers PING, runs a per-connection script."""

    def __init__(self, script):
        self.script = script
        self.frames = []       # (path, text)
        self.conns = 0
        self.pings = 0

    async def handler(self, ws):
        self.conns += 1
        n = self.conns
        path = ws.request.path
        sub = await ws.recv()
        self.frames.append((path, sub))
        reader = asyncio.create_task(self._reader(ws, path))
        try:
            await self.script(ws, n, json.loads(sub))
            await reader
        except Exception:
            pass
        finally:
            reader.cancel()

    async def _reader(self, ws, path):
        async for m in ws:
            if m == "PING":
                self.pings += 1
                await ws.send("PONG")
            else:
                self.frames.append((path, m))

    async def __aenter__(self):
        self.srv = await serve(self.handler, "127.0.0.1", 0)
        port = self.srv.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *a):
        self.srv.close()
        await self.srv.wait_closed()


async def test_market_ws_books_bad_frames_ping_and_reconnect():
    async def script(ws, n, sub):
        assert sub == {"assets_ids": [UP, DN], "type": "market"} or sub["assets_ids"] == ["303", "404"]
        if n == 1:
            await ws.send(json.dumps([book(UP, "0.48", "0.52", 1000), book(DN, "0.47", "0.53", 1000)]))
            await ws.send("not json {")
            await ws.send(json.dumps({"event_type": "book", "asset_id": UP, "bids": "x"}))
            await ws.send(json.dumps(42))
            await ws.send(json.dumps({"event_type": "price_change", "market": "0xc", "timestamp": "1001",
                                      "price_changes": [{"asset_id": UP, "price": "0.49", "size": "5",
                                                         "side": "BUY", "best_bid": "0.49", "best_ask": "0.52"}]}))
            await asyncio.sleep(0.4)       # let a couple of PINGs through
            await ws.close()               # drop -> client must invalidate and reconnect
        elif n == 2:
            await asyncio.sleep(0.3)       # no snapshot yet: books must be invalid meanwhile
            await ws.send(json.dumps(book(UP, "0.40", "0.60", 2000)))
            await ws.send(json.dumps(book(DN, "0.40", "0.60", 2000)))
            await ws.wait_closed()
        else:
            await ws.send(json.dumps(book("303", "0.30", "0.70", 3000)))
            await ws.wait_closed()

    states = []
    async with Server(script) as srv:
        c = MarketWsClient(srv.url, [UP, DN], ping_interval_s=0.1, backoff_initial_s=0.05,
                           on_state=lambda up, why: states.append(up))
        c.start()
        try:
            assert c.url.endswith("/ws/market")
            assert await wait_for(lambda: c.books.get(UP).top() is not None and c.books.get(UP).top().bid == 0.49)
            assert c.healthy
            assert c.bad_frames.get("not_json") == 1 and c.bad_frames.get("bad_book") == 1
            assert c.bad_frames.get("not_object") == 1
            assert await wait_for(lambda: srv.conns == 2)
            assert srv.pings >= 1
            # after the drop, books are invalid until fresh snapshots arrive
            assert await wait_for(lambda: c.connected and c.connects == 2)
            assert c.books.get(UP).top() is None or c.books.get(UP).top().bid == 0.40
            assert await wait_for(lambda: c.healthy and c.books.get(UP).top().bid == 0.40)
            assert states[:3] == [True, False, True] and c.disconnects == 1
            kinds = []
            while not c.queue.empty():
                kinds.append(c.queue.get_nowait().kind)
            assert kinds.count("resync") >= 3 and "book" in kinds and "price_change" in kinds
            # market roll: new tokens -> immediate resubscribe on a fresh connection
            await c.set_tokens(["303", "404"])
            assert await wait_for(lambda: srv.conns == 3 and c.books.get("303").top() is not None)
            assert json.loads([f for p, f in srv.frames if f.startswith('{"assets_ids"')][-1])["assets_ids"] == ["303", "404"]
            assert c.books.get(UP) is None and not c.healthy   # 404 has no snapshot yet
        finally:
            await c.stop()
        assert not c.connected


async def test_backoff_when_server_absent_then_connects():
    # grab a free port, close it, so the first attempts are refused
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = MarketWsClient(f"ws://127.0.0.1:{port}", [UP], backoff_initial_s=0.05, backoff_max_s=0.2)
    c.start()
    try:
        assert await wait_for(lambda: c.last_error is not None, 10)
        assert not c.connected
        delays = [c._next_delay(i) for i in range(10)]
        assert all(0 < d <= 0.2 for d in delays) and delays[0] <= 0.05
    finally:
        await c.stop()


def trade_msg(**kw):
    m = {"event_type": "trade", "type": "TRADE", "id": "t1", "asset_id": UP, "market": "0xc",
         "side": "BUY", "price": "0.52", "size": "10", "status": "MATCHED", "taker_order_id": "0xtaker",
         "owner": "other", "trader_side": "TAKER", "timestamp": "1700000000",
         "maker_orders": [{"order_id": "0xmine", "asset_id": UP, "price": "0.52", "matched_amount": "4",
                           "owner": "my-key", "outcome": "Up"},
                          {"order_id": "0xmine2", "asset_id": DN, "price": "0.48", "matched_amount": "6",
                           "owner": "my-key", "outcome": "Down"}]}
    m.update(kw)
    return m


def test_parse_trade_own_fills_and_dedup():
    seen = set()
    t = parse_user_message(trade_msg(), 5, seen)
    assert isinstance(t, TradeUpdate) and t.is_new and t.ts_ms == 1_700_000_000_000
    fills = t.own_fills(api_key="my-key")
    assert [(f.order_id, f.side, f.size, f.liquidity) for f in fills] == [
        ("0xmine", "SELL", 4.0, "MAKER"),   # same token as taker BUY -> we sold
        ("0xmine2", "BUY", 6.0, "MAKER"),   # complementary token -> we bought Down (mint)
    ]
    assert t.own_fills(own_order_ids={"0xtaker"})[0].liquidity == "TAKER"
    t2 = parse_user_message(trade_msg(status="CONFIRMED"), 6, seen)
    assert not t2.is_new and t2.status == "CONFIRMED"


def test_parse_order_and_bad_messages():
    o = parse_user_message({"event_type": "order", "id": "0xo", "asset_id": UP, "market": "0xc", "side": "buy",
                            "price": "0.5", "original_size": "10", "size_matched": "3", "type": "UPDATE",
                            "timestamp": "1700000000123"}, 1)
    assert isinstance(o, OrderUpdate) and o.remaining == 7.0 and o.side == "BUY" and o.ts_ms == 1700000000123
    assert parse_user_message({"event_type": "something_else"}, 1) is None
    for bad in ({"event_type": "order", "id": "x"},
                {"event_type": "order", "id": "x", "asset_id": UP, "side": "HOLD", "price": "1", "original_size": "1"},
                trade_msg(price="abc"), trade_msg(size="-1"), trade_msg(maker_orders="x"), trade_msg(id=None)):
        with pytest.raises(UserMsgError):
            parse_user_message(bad, 1)


async def test_user_ws_auth_frame_events_and_disconnect_callback():
    async def script(ws, n, sub):
        if n == 1:
            await ws.send(json.dumps({"event_type": "order", "id": "0xo1", "asset_id": UP, "market": "0xc",
                                      "side": "BUY", "price": "0.5", "original_size": "10", "size_matched": "0",
                                      "type": "PLACEMENT", "timestamp": "1"}))
            await ws.send(json.dumps(trade_msg(price="nan?")))      # bad -> counted, skipped
            await ws.send(json.dumps([trade_msg(), trade_msg(status="MINED")]))
            await asyncio.sleep(0.2)
            await ws.close()
        else:
            await ws.wait_closed()

    key, secret, pp = "my-key", "sec-" + "z" * 16, "pass-" + "y" * 10
    lost = []
    async with Server(script) as srv:
        c = UserWsClient(srv.url, key, secret, pp, ["0xc"], backoff_initial_s=0.05,
                         on_state=lambda up, why: lost.append(why) if not up else None)
        assert secret not in repr(c) and pp not in repr(c)
        c.start()
        try:
            evs = []
            async def take(n):
                while len(evs) < n:
                    evs.append(await c.queue.get())
            await asyncio.wait_for(take(3), 5)
            assert isinstance(evs[0], OrderUpdate) and evs[0].type == "PLACEMENT"
            assert [e.is_new for e in evs[1:]] == [True, False]
            assert c.bad_frames.get("bad_trade") == 1
            assert await wait_for(lambda: len(lost) >= 1 and srv.conns >= 2)
            sub = json.loads(srv.frames[0][1])
            assert srv.frames[0][0] == "/ws/user"
            assert sub == {"auth": {"apiKey": key, "secret": secret, "passphrase": pp},
                           "markets": ["0xc"], "type": "user"}
            await c.set_markets(["0xd"])
            assert await wait_for(lambda: any(json.loads(f).get("markets") == ["0xd"]
                                              for p, f in srv.frames if f.startswith("{")))
        finally:
            await c.stop()


async def test_server_error_frame_planned_reason_and_all_markets_subscription():
    async def script(ws, n, sub):
        if n == 1:
            assert sub["markets"] == []          # no market yet: all of this key's markets
            await ws.send(json.dumps({"error": "Unauthorized/Invalid api key"}))
        await ws.wait_closed()

    reasons = []
    async with Server(script) as srv:
        c = UserWsClient(srv.url, "k", "s" * 12, "p" * 12, [], backoff_initial_s=0.05,
                         on_state=lambda up, why: reasons.append((up, why)))
        assert c.subscribe_frame() is None          # default: wait for a market
        c.subscribe_all = True
        c.start()
        try:
            assert await c.wait_connected(5)
            assert await wait_for(lambda: c.server_errors == 1)
            assert "Unauthorized" in c.last_error and c.bad_frames == {"server_error": 1}
            await c.set_markets(["0xm"])
            assert await wait_for(lambda: srv.conns == 2 and c.connected)
            down = [why for up, why in reasons if not up]
            assert down and down[0].startswith("planned: ") and "market roll" in down[0]
            assert c.planned_reconnects == 1
        finally:
            await c.stop()


async def test_unconsumed_queue_is_bounded():
    c = MarketWsClient("ws://127.0.0.1:1", [UP])
    c.QUEUE_MAX = 5
    for i in range(8):
        c.enqueue(c.queue, i)
    assert c.queue.qsize() == 5 and c.queue_dropped == 3 and c.queue.get_nowait() == 3


def test_owner_without_trader_side_is_not_a_taker_fill():
    # we are the maker; the message's owner is us (event owner) and trader_side is absent
    t = parse_user_message(trade_msg(owner="my-key", trader_side=""), 1)
    fills = t.own_fills(api_key="my-key")
    assert [f.liquidity for f in fills] == ["MAKER", "MAKER"]
    t2 = parse_user_message(trade_msg(owner="my-key", trader_side="TAKER", maker_orders=[]), 1)
    assert [f.liquidity for f in t2.own_fills(api_key="my-key")] == ["TAKER"]
