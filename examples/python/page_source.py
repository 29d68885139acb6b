"""A jetflow `nats` source: pages of items by cursor, from any system you
can reach from Python (here: a generated list of TOTAL agents).

A page request on SUBJECT (default `agents.pages`) is JSON
`{"cursor": null | "...", "limit": 50, "job": "..."}`; the reply is
`{"items": [{"id": ..., "data": {...}}, ...], "next_cursor": "..." | null}`,
or `{"error": "..."}` to fail the job (docs/protocol.md).

    NATS_URL=nats://127.0.0.1:4222 TOTAL=2000 python page_source.py
"""

import asyncio
import json
import os

import nats

from jetflow_protocol import run_until_stopped


async def main() -> None:
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    subject = os.environ.get("SUBJECT", "agents.pages")
    total = int(os.environ.get("TOTAL", "2000"))
    served = 0

    async def handle(msg) -> None:
        nonlocal served
        try:
            request = json.loads(msg.data)
            start = int(request.get("cursor") or 0)
            limit = int(request["limit"])
        except (ValueError, KeyError, TypeError) as err:
            await msg.respond(json.dumps({"error": f"bad page request: {err}"}).encode())
            return
        end = min(start + limit, total)
        items = [
            {"id": f"agent-{n:05d}", "data": {"n": n, "org": "org-123"}}
            for n in range(start, end)
        ]
        next_cursor = str(end) if end < total else None
        await msg.respond(json.dumps({"items": items, "next_cursor": next_cursor}).encode())
        served += 1
        print(f"page {served}: {start}..{end}", flush=True)

    await nc.subscribe(subject, cb=handle)
    await nc.flush()
    print(f"ready: {subject}", flush=True)
    await run_until_stopped(nc)


if __name__ == "__main__":
    asyncio.run(main())
