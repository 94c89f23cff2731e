#!/usr/bin/env python3
"""Conformance: the official centrifuge-python SDK against the emulator.

Usage: centrifuge_python_conformance.py '<the JSON line the emulator printed>' [main|refresh]

Scenario "main" (the default) needs an emulator with a short ping interval
(run.sh passes --ping-interval 1). Scenario "refresh" needs expiring tokens
(run.sh passes --token-ttl 3 --expiry-grace 2): the SDK must keep the
connection and a private subscription alive with refresh / sub_refresh.
Every wait is bounded; the last line printed is
"conformance[<scenario>]: X passed, Y failed" and the exit status is 1 on any
failure.
"""

import asyncio
import json
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

STEP = 10.0  # seconds any single wait may take
N = 20  # publications in the ordering test
M = 10  # publications while the client is down


def http(method, url, token=None, body=None):
    data = None
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=STEP) as response:
        return json.loads(response.read() or b"{}")


async def call(method, url, token=None, body=None):
    return await asyncio.to_thread(http, method, url, token, body)


async def wait_until(predicate, what, timeout=STEP):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep(0.02)


class ClientEvents(ClientEventHandler):
    def __init__(self):
        self.connected = 0
        self.connecting = []
        self.disconnected = []

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connected += 1

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.connecting.append(ctx.code)

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnected.append(ctx.code)


class SubEvents(SubscriptionEventHandler):
    def __init__(self):
        self.subscribed = []
        self.publications = []

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.publications.append((ctx.pub.offset, ctx.pub.data))


class Conformance:
    def __init__(self, info):
        self.info = info
        self.api = info["api_url"]
        self.control = info["control_url"]
        self.token = info["token"]
        self.chat = info["channels"]["chat"]
        self.private = info["channels"]["private_chat"]
        self.client_events = ClientEvents()
        self.chat_events = SubEvents()
        self.private_events = SubEvents()
        self.client = None
        self.published = {self.chat: [], self.private: []}

    async def publish(self, channel, n):
        payload = {
            "type": "channel_chat_message_send",
            "data": {"chat_message": {"id": n, "parts": [{"text": {"content": f"сообщение {n} 👋"}}]}},
        }
        reply = await call("POST", self.control + "/publish", body={"channel": channel, "data": payload})
        self.published[channel].append((reply["offset"], payload))
        return reply["offset"]

    async def stats(self):
        return await call("GET", self.control + "/stats")

    def check_stream(self, events, channel):
        got = events.publications
        want = self.published[channel]
        offsets = [offset for offset, _ in got]
        assert len(offsets) == len(set(offsets)), f"duplicates on {channel}: {offsets}"
        assert got == want, f"{channel}: got offsets {offsets}, want {[o for o, _ in want]}"

    # ---- tests ---------------------------------------------------------------

    async def test_connect_with_rest_tokens_and_subscribe(self):
        conn = await call("GET", self.api + "/v1/websocket/token", token=self.token)
        query = urllib.parse.urlencode({"channels": self.private})
        subs = await call("GET", self.api + "/v1/websocket/subscription_token?" + query, token=self.token)
        tokens = {t["channel"]: t["token"] for t in subs["data"]["channel_tokens"]}
        assert self.private in tokens, f"no token for {self.private}: {subs}"

        self.client = Client(
            self.info["ws_url"],
            events=self.client_events,
            token=conn["data"]["token"],
            min_reconnect_delay=0.5,
            max_reconnect_delay=1.0,
            proxy=None,
        )
        chat = self.client.new_subscription(
            self.chat, events=self.chat_events, recoverable=True, positioned=True
        )
        private = self.client.new_subscription(
            self.private, events=self.private_events, token=tokens[self.private], recoverable=True
        )
        await asyncio.wait_for(self.client.connect(), STEP)
        await chat.subscribe()
        await private.subscribe()
        await asyncio.wait_for(chat.ready(), STEP)
        await asyncio.wait_for(private.ready(), STEP)
        ctx = self.chat_events.subscribed[0]
        assert ctx.recoverable and ctx.positioned, ctx
        assert ctx.stream_position is not None and ctx.stream_position.epoch, ctx
        stats = await self.stats()
        assert stats["subscribers"].get(self.chat) == 1, stats
        assert stats["subscribers"].get(self.private) == 1, stats

    async def test_publications_arrive_in_order_with_offsets(self):
        for n in range(1, N + 1):
            await self.publish(self.chat, n)
        for n in range(1, 4):
            await self.publish(self.private, 1000 + n)
        await wait_until(lambda: len(self.chat_events.publications) >= N, f"{N} chat publications")
        await wait_until(lambda: len(self.private_events.publications) >= 3, "3 private publications")
        self.check_stream(self.chat_events, self.chat)
        self.check_stream(self.private_events, self.private)
        assert [o for o, _ in self.chat_events.publications] == list(range(1, N + 1))

    async def test_pings_answered_one_for_one(self):
        before = await self.stats()
        # Wait over several 1 s ping intervals.
        await asyncio.sleep(3.5)

        async def settled():
            s = await self.stats()
            return s

        deadline = time.monotonic() + STEP
        while True:
            stats = await settled()
            if stats["pings_sent"] >= before["pings_sent"] + 3 and stats["pongs_received"] == stats["pings_sent"]:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"pings not answered one for one: {stats}")
            await asyncio.sleep(0.05)
        assert stats["violations"] == [], stats["violations"]
        assert stats["close_codes"] == [], stats["close_codes"]
        assert stats["connections"] == 1, stats

    async def test_recovery_after_abort(self):
        connecting_before = len(self.client_events.connecting)
        subscribed_before = len(self.chat_events.subscribed)
        await call("POST", self.control + "/abort", body={})
        await wait_until(
            lambda: len(self.client_events.connecting) > connecting_before, "the SDK to notice the abort"
        )
        for n in range(N + 1, N + M + 1):
            await self.publish(self.chat, n)
        for n in range(4, 6):
            await self.publish(self.private, 1000 + n)
        stats = await self.stats()
        assert stats["connections"] == 0, f"published while the client was still connected: {stats}"

        await wait_until(lambda: len(self.chat_events.subscribed) > subscribed_before, "chat resubscribed")
        await wait_until(lambda: len(self.private_events.subscribed) > 1, "private resubscribed")
        chat_ctx = self.chat_events.subscribed[-1]
        assert chat_ctx.was_recovering and chat_ctx.recovered, chat_ctx
        private_ctx = self.private_events.subscribed[-1]
        assert private_ctx.was_recovering and private_ctx.recovered, private_ctx
        await wait_until(lambda: len(self.chat_events.publications) >= N + M, f"{N + M} chat publications")
        await wait_until(lambda: len(self.private_events.publications) >= 5, "5 private publications")
        # Nothing more may trickle in (duplicates).
        await asyncio.sleep(0.3)
        self.check_stream(self.chat_events, self.chat)
        self.check_stream(self.private_events, self.private)
        # And live traffic flows again.
        await self.publish(self.chat, N + M + 1)
        await wait_until(lambda: len(self.chat_events.publications) >= N + M + 1, "a live publication")
        self.check_stream(self.chat_events, self.chat)

    async def test_reconnects_after_close_3011_and_recovers(self):
        subscribed_before = len(self.chat_events.subscribed)
        await call("POST", self.control + "/close", body={"code": 3011, "reason": "force reconnect"})
        await wait_until(lambda: len(self.chat_events.subscribed) > subscribed_before, "chat resubscribed")
        ctx = self.chat_events.subscribed[-1]
        assert ctx.was_recovering and ctx.recovered, ctx
        await self.publish(self.chat, N + M + 2)
        await wait_until(lambda: len(self.chat_events.publications) >= N + M + 2, "a publication after 3011")
        self.check_stream(self.chat_events, self.chat)
        stats = await self.stats()
        assert stats["close_codes"] == [3011], stats
        assert stats["violations"] == [], stats["violations"]
        assert self.client_events.disconnected == [], self.client_events.disconnected

    def tests(self):
        return [
            self.test_connect_with_rest_tokens_and_subscribe,
            self.test_publications_arrive_in_order_with_offsets,
            self.test_pings_answered_one_for_one,
            self.test_recovery_after_abort,
            self.test_reconnects_after_close_3011_and_recovers,
        ]

    async def run(self, scenario):
        passed = failed = 0
        tests = self.tests()
        for test in tests:
            name = test.__name__.removeprefix("test_")
            try:
                await asyncio.wait_for(test(), 4 * STEP)
                passed += 1
                print(f"PASS {name}", flush=True)
            except Exception as error:  # noqa: BLE001 - report every failure
                failed += 1
                print(f"FAIL {name}: {error!r}", flush=True)
                traceback.print_exc(file=sys.stderr)
                if self.client is None:
                    break
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(), STEP)
            except Exception as error:  # noqa: BLE001
                failed += 1
                print(f"FAIL disconnect: {error!r}", flush=True)
        try:
            stats = await self.stats()
            if stats["violations"]:
                failed += 1
                print(f"FAIL no_violations: {stats['violations']}", flush=True)
        except (OSError, urllib.error.URLError) as error:
            failed += 1
            print(f"FAIL stats: {error!r}", flush=True)
        print(f"conformance[{scenario}]: {passed} passed, {failed} failed", flush=True)
        return failed == 0


class RefreshConformance(Conformance):
    """Tokens expire after a few seconds: the SDK refreshes them in place."""

    async def connection_token(self):
        reply = await call("GET", self.api + "/v1/websocket/token", token=self.token)
        return reply["data"]["token"]

    async def subscription_token(self, channel):
        query = urllib.parse.urlencode({"channels": channel})
        reply = await call("GET", self.api + "/v1/websocket/subscription_token?" + query, token=self.token)
        for entry in reply["data"]["channel_tokens"]:
            if entry["channel"] == channel:
                return entry["token"]
        raise AssertionError(f"no subscription token for {channel}")

    def tests(self):
        return [self.test_tokens_are_refreshed_in_place]

    async def test_tokens_are_refreshed_in_place(self):
        self.client = Client(
            self.info["ws_url"],
            events=self.client_events,
            get_token=self.connection_token,
            min_reconnect_delay=0.5,
            max_reconnect_delay=1.0,
            proxy=None,
        )
        private = self.client.new_subscription(
            self.private,
            events=self.private_events,
            get_token=self.subscription_token,
            recoverable=True,
        )
        await asyncio.wait_for(self.client.connect(), STEP)
        await private.subscribe()
        await asyncio.wait_for(private.ready(), STEP)

        async def refreshed():
            stats = await self.stats()
            commands = stats["commands"]
            return commands.get("refresh", 0) >= 2 and commands.get("sub_refresh", 0) >= 2, stats

        deadline = time.monotonic() + 3 * STEP
        while True:
            done, stats = await refreshed()
            if done:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"no refresh / sub_refresh twice: {stats}")
            await asyncio.sleep(0.2)
        for n in range(1, 4):
            await self.publish(self.private, n)
        await wait_until(lambda: len(self.private_events.publications) >= 3, "3 private publications")
        self.check_stream(self.private_events, self.private)
        assert stats["close_codes"] == [], stats
        assert stats["violations"] == [], stats
        assert stats["connections"] == 1, stats
        assert self.client_events.connected == 1, "the SDK reconnected instead of refreshing"
        assert len(self.private_events.subscribed) == 1, "the subscription was renewed, not refreshed"


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    info = json.loads(sys.argv[1])
    scenario = sys.argv[2] if len(sys.argv) == 3 else "main"
    scenarios = {"main": Conformance, "refresh": RefreshConformance}
    if scenario not in scenarios:
        print(__doc__, file=sys.stderr)
        return 2
    ok = asyncio.run(scenarios[scenario](info).run(scenario))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
