"""The map of a word count: a jetflow `nats` handler that counts the words
of each item's text.

It answers requests on SUBJECT (default `words.count`) in the queue group
`jetflow-workers`. An item's data is `{"text": "...", "lang": "en"}`; the
output is `{"words": <count>, "lang": <lang or "unknown">, "longest":
<its longest word>}`, which a job's reductions fold (`"reduce": [{"name":
"words", "op": "sum", "path": "output.words"}, ...]`, docs/protocol.md).
An item without text fails for good with the error `no text`.

    NATS_URL=nats://127.0.0.1:4222 python word_count.py

`SLOW_MS` makes each call take that long (the tests use it to kill
services while a job runs).
"""

import asyncio
import json
import os

from jetflow_protocol import failure, serve, success


def count(data) -> dict:
    """The output for one item's data; raises ValueError without text."""
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no text")
    words = text.split()
    # Longest first, then alphabetical: the same text always gives the same word.
    longest = min(words, key=lambda w: (-len(w), w))
    return {"words": len(words), "lang": data.get("lang", "unknown"), "longest": longest}


async def main() -> None:
    subject = os.environ.get("SUBJECT", "words.count")
    slow = int(os.environ.get("SLOW_MS", "0")) / 1000

    async def handle(msg) -> None:
        try:
            request = json.loads(msg.data)
            data = request["item"].get("data")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            await msg.respond(failure(f"not a jetflow handler request: {err}", False))
            return
        if slow:
            await asyncio.sleep(slow)
        try:
            await msg.respond(success(count(data)))
        except ValueError as err:
            await msg.respond(failure(str(err), False))

    await serve(subject, handle)


if __name__ == "__main__":
    asyncio.run(main())
