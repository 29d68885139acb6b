"""Step 1 of an agent's execution: make sure the agent has a
conversation thread, and hand its id to the next step.

A jetflow `nats` handler (or step): it answers requests on SUBJECT
(default `agents.ensure-thread`) in the queue group `jetflow-workers`, so
run as many copies as you like. The request is JSON
`{"job", "item": {"id", "data"}, "params", "attempt", "step", "input"}`;
the reply is `{"ok": true, "output": ...}` or
`{"ok": false, "error": ..., "retryable": bool}` (docs/protocol.md).

    NATS_URL=nats://127.0.0.1:4222 python ensure_thread.py
"""

import asyncio
import json
import os

from jetflow_protocol import failure, serve, success


async def main() -> None:
    subject = os.environ.get("SUBJECT", "agents.ensure-thread")

    async def handle(msg) -> None:
        try:
            request = json.loads(msg.data)
            agent = request["item"]["id"]
        except (ValueError, KeyError, TypeError) as err:
            await msg.respond(failure(f"not a jetflow handler request: {err}", False))
            return
        headers = msg.headers or {}
        # Idempotent by construction: the same agent always gets the same
        # thread, so a retried or repeated call is harmless.
        thread = f"thread-{agent}"
        await msg.respond(
            success(
                {
                    "thread": thread,
                    "agent": agent,
                    "idempotency_key": headers.get("Idempotency-Key"),
                    "traceparent": headers.get("traceparent"),
                }
            )
        )

    await serve(subject, handle)


if __name__ == "__main__":
    asyncio.run(main())
