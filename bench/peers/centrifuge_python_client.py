#!/usr/bin/env python3
"""The end-to-end workload of examples/bench.rs through the official
centrifuge-python SDK.

Usage: centrifuge_python_client.py '<emulator JSON line>' SMALL LARGE REPS PER_FRAME

Tokens come from the emulator's REST endpoints, as a real app gets them
(GET /v1/websocket/token, GET /v1/websocket/subscription_token). CPU is this
process's own, time.process_time() (user + system, every thread), from before
the POST /_emulator/blast to the last publication handed to the handler.
Marginal CPU per event = (CPU(LARGE) - CPU(SMALL)) / (LARGE - SMALL), REPS
times after one warm-up run; the median is reported. Prints one JSON line.
"""

import asyncio
import json
import platform
import sys
import time
import urllib.parse
import urllib.request
from importlib.metadata import version

from centrifuge import Client, PublicationContext, SubscribedContext, SubscriptionEventHandler


def http(method, url, token=None, body=None):
    headers = {}
    data = None
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}")


class Counter(SubscriptionEventHandler):
    """Touches what a chat bot reads: the type and the message id."""

    def __init__(self):
        self.subscribed = asyncio.Event()
        self.received = 0
        self.target = float("inf")
        self.done = asyncio.Event()
        self.checksum = 0

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.set()

    async def on_publication(self, ctx: PublicationContext) -> None:
        data = ctx.pub.data
        if data["type"] == "channel_chat_message_send":
            self.checksum += data["data"]["chat_message"]["id"]
        self.received += 1
        if self.received >= self.target:
            self.done.set()


async def main():
    info = json.loads(sys.argv[1])
    small, large, reps, per_frame = (int(a) for a in (sys.argv[2:6] + ["20000", "200000", "3", "100"][len(sys.argv[2:6]):]))
    api, token, channel = info["api_url"], info["token"], info["channels"]["chat"]

    async def connection_token():
        answer = await asyncio.to_thread(http, "GET", api + "/v1/websocket/token", token)
        return answer["data"]["token"]

    async def subscription_token(name):
        query = urllib.parse.urlencode({"channels": name})
        answer = await asyncio.to_thread(http, "GET", api + "/v1/websocket/subscription_token?" + query, token)
        tokens = {t["channel"]: t["token"] for t in answer["data"]["channel_tokens"]}
        return tokens.get(name, "")

    counter = Counter()
    client = Client(info["ws_url"], get_token=connection_token)
    sub = client.new_subscription(channel, events=counter, get_token=subscription_token)
    await client.connect()
    await sub.subscribe()
    await asyncio.wait_for(counter.subscribed.wait(), 30)

    async def run(count):
        counter.received = 0
        counter.target = count
        counter.done.clear()
        before = time.process_time()
        started = time.perf_counter()
        body = {"channel": channel, "count": count, "per_frame": per_frame}
        await asyncio.to_thread(http, "POST", info["control_url"] + "/blast", None, body)
        await asyncio.wait_for(counter.done.wait(), 600)
        return time.process_time() - before, time.perf_counter() - started

    await run(small)  # warm-up
    marginals, runs = [], []
    for rep in range(reps):
        cpu_small, _ = await run(small)
        cpu_large, wall_large = await run(large)
        marginal = (cpu_large - cpu_small) / (large - small) * 1e6
        print(f"centrifuge-python: rep {rep}: cpu({small}) {cpu_small:.3f} s, cpu({large}) {cpu_large:.3f} s -> {marginal:.3f} µs/event", file=sys.stderr)
        marginals.append(marginal)
        runs.append({"cpu_small_s": cpu_small, "cpu_large_s": cpu_large, "wall_large_s": wall_large})
    await client.disconnect()
    print(json.dumps({
        "client": "centrifuge-python",
        "sdk_version": version("centrifuge-python"),
        "websockets_version": version("websockets"),
        "runtime": f"python {platform.python_version()}",
        "small": small,
        "large": large,
        "per_frame": per_frame,
        "reps": reps,
        "marginal_cpu_us": sorted(marginals)[len(marginals) // 2],
        "marginal_cpu_us_runs": marginals,
        "runs": runs,
        "checksum": counter.checksum,
    }))


if __name__ == "__main__":
    asyncio.run(main())
