"""The few pieces of jetflow's wire protocol (docs/protocol.md) a Python
worker needs. Not an SDK: plain JSON over any NATS client."""

import base64
import json
import re

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
