"""Many workers, one job's shared state: adds 1 to the job's counter `hits`
TIMES times, adds MEMBER to its set `members`, then moves its counter
`swaps` up by one CAS_TIMES times (default 0) with a compare-and-swap
loop of its own — all at once with as many copies (in any language) as
you start. However many there are, `hits` and `swaps` end at exactly the
sum of their TIMES and CAS_TIMES, and `members` holds each MEMBER once
(docs/protocol.md, "Shared job state"; tests/tests/e2e/shared_state.rs
runs 10 of these beside 10 of ../node/state_hammer.mjs).

    NATS_URL=... JETFLOW_NAMESPACE=jetflow python state_hammer.py JOB TIMES MEMBER [CAS_TIMES]

Prints `ready:` once connected and `done: ...` at the end, with how often
another writer came first (and the write was tried again).
"""

import asyncio
import os
import random
import sys

import nats

from jetflow_state import SharedState


async def main(job: str, times: int, member: str, cas_times: int) -> None:
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    state = await SharedState.open(nc.jetstream(), job)
    print(f"ready: {member} on {job}", flush=True)
    for _ in range(times):
        await state.incr("hits")
    added = await state.add("members", member)
    cas_misses = 0
    for _ in range(cas_times):
        # An increment built from cas: swap from the value last seen; a miss
        # means another writer moved it first: wait a moment, go on from
        # the value the miss answered.
        now = await state.get("swaps")
        while True:
            swapped, now = await state.cas("swaps", now, (now or 0) + 1)
            if swapped:
                break
            cas_misses += 1
            await asyncio.sleep(random.uniform(0, 0.005))
    print(
        f"done: {times} incr, added {added}, {cas_times} cas, "
        f"{state.conflicts} conflicts, {cas_misses} cas misses",
        flush=True,
    )
    await nc.drain()


if __name__ == "__main__":
    cas_times = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], cas_times))
