"""The reduce of a word count, as a user reducer: a jetflow `nats`
reduction (`{"name": "totals", "op": "nats", "subject": "words.reduce"}`).

jetflow's reducer asks on SUBJECT (default `words.reduce`) with
`{"job", "reduction", "acc", "outputs": [...]}` and keeps the `acc` of the
answer `{"acc": ...}` in the job's state, with the job's tally, in the same
checkpoint. After a crash it may ask the same question again, so this is a
pure function of `acc` and `outputs` — nothing is remembered here.

The accumulator: `{"words": total words, "items": items folded, "longest":
the longest word}` (longest first, then alphabetical, so the answer does
not depend on the order outputs come in). An output that is not a word
count's answers an error: the reduction gives up, the job goes on.

    NATS_URL=nats://127.0.0.1:4222 python word_reducer.py
"""

import asyncio
import json
import os

from jetflow_protocol import serve


def fold(acc, outputs) -> dict:
    """`acc` with `outputs` folded in; raises ValueError on a bad output."""
    acc = dict(acc or {"words": 0, "items": 0, "longest": ""})
    for output in outputs:
        if not isinstance(output, dict) or not isinstance(output.get("words"), int):
            raise ValueError(f"not a word count: {output!r}")
        acc["words"] += output["words"]
        acc["items"] += 1
        longest = str(output.get("longest", ""))
        acc["longest"] = min(acc["longest"], longest, key=lambda w: (-len(w), w))
    return acc


async def main() -> None:
    subject = os.environ.get("SUBJECT", "words.reduce")

    async def handle(msg) -> None:
        try:
            request = json.loads(msg.data)
            reply = {"acc": fold(request.get("acc"), request["outputs"])}
        except (ValueError, KeyError, TypeError) as err:
            reply = {"error": str(err)}
        await msg.respond(json.dumps(reply).encode())

    await serve(subject, handle)


if __name__ == "__main__":
    asyncio.run(main())
