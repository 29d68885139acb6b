"""The few pieces of jetflow's wire protocol (docs/protocol.md) a Python
worker needs. Not an SDK: plain JSON over any NATS client."""

import asyncio
import base64
import json
import os
import re
import signal

import nats

#: Workers of one subject share this queue group (any name works).
QUEUE_GROUP = "jetflow-workers"

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def item_key(item_id: str) -> str:
    """The KV key segment (and de-duplication id part) of an item id."""
    if _TOKEN.fullmatch(item_id) and len(item_id) <= 200:
        return item_id
    encoded = base64.urlsafe_b64encode(item_id.encode()).decode().rstrip("=")
    return "=" + encoded


def success(output) -> bytes:
    """A handler reply saying the item's work succeeded with `output`."""
    return json.dumps({"ok": True, "output": output}).encode()


def failure(error: str, retryable: bool) -> bytes:
    """A handler reply saying the work failed; `retryable` asks for a retry."""
    return json.dumps({"ok": False, "error": error, "retryable": retryable}).encode()


async def run_until_stopped(nc) -> None:
    """Serves until SIGTERM or SIGINT, then drains `nc` (requests in hand
    are answered first)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await nc.drain()


async def serve(subject: str, handle) -> None:
    """Connects to `NATS_URL`, answers requests on `subject` with `handle`
    (an async function of the message) in the queue group, prints
    `ready: <subject>` once subscribed, and serves until SIGTERM or SIGINT."""
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    await nc.subscribe(subject, queue=QUEUE_GROUP, cb=handle)
    await nc.flush()
    print(f"ready: {subject}", flush=True)
    await run_until_stopped(nc)
