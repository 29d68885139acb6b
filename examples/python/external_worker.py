"""A jetflow `external` worker: pulls a job's tasks itself, does the work,
publishes each result on the job's ledger, then acks the task.

    NATS_URL=... JETFLOW_NAMESPACE=jetflow python external_worker.py JOB

The job's state (KV `<ns>_jobs`, key JOB) names where its tasks wait:
`tasks.stream`, `tasks.consumer` (a durable pull consumer) and
`tasks.results` (the ledger subject). For each task (JSON
`{"job", "batch", "item": {"id", "data"}}`):

1. do the work;
2. publish `{"type": "item", "batch", "id", "status": "succeeded" |
   "failed", "error", "output", "attempts"}` to `tasks.results` with
   `Nats-Msg-Id: <job>:item:<item-key>`, and wait for JetStream's ack;
3. only then ack the task.

A task not acked within the job's `ack_wait` is redelivered; a result
published twice is counted once. For testing that, DUPLICATE_EVERY=N
publishes every Nth item's result a second time (without the
de-duplication id), and SKIP_ACK_EVERY=N leaves every Nth item's first
delivery un-acked and unpublished, as a crashed worker would.
Exits when the job has ended.
"""

import asyncio
import json
import os
import sys

import nats
from nats.errors import TimeoutError as NatsTimeout

from jetflow_protocol import item_key

TERMINAL = {"completed", "partial", "failed", "cancelled"}


def every(name: str) -> int:
    return int(os.environ.get(name, "0"))


async def main(job: str) -> None:
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    ns = os.environ.get("JETFLOW_NAMESPACE", "jetflow")
    js = nc.jetstream()
    jobs = await js.key_value(f"{ns}_jobs")
    state = json.loads((await jobs.get(job)).value)
    tasks = state["tasks"]
    duplicate_every, skip_ack_every = every("DUPLICATE_EVERY"), every("SKIP_ACK_EVERY")
    sub = await js.pull_subscribe_bind(durable=tasks["consumer"], stream=tasks["stream"])
    print(f"ready: {tasks['consumer']}", flush=True)
    done = duplicates = skipped = 0
    while True:
        try:
            messages = await sub.fetch(batch=50, timeout=1)
        except NatsTimeout:
            messages = []
        except nats.errors.Error as err:
            # The job's consumer is removed once the job has ended.
            print(f"fetch: {err!r}", flush=True)
            messages = []
        for msg in messages:
            task = json.loads(msg.data)
            item = task["item"]["id"]
            n = int(item.rsplit("-", 1)[-1])
            delivered = msg.metadata.num_delivered
            if skip_ack_every and n % skip_ack_every == 0 and delivered == 1:
                skipped += 1
                continue  # as if this worker died holding it: redelivered later
            result = {
                "type": "item",
                "batch": task["batch"],
                "id": item,
                "status": "succeeded",
                "output": {"worked_by": "python", "delivery": delivered},
                "attempts": delivered,
            }
            body = json.dumps(result).encode()
            msg_id = f"{job}:item:{item_key(item)}"
            await js.publish(tasks["results"], body, headers={"Nats-Msg-Id": msg_id})
            if duplicate_every and n % duplicate_every == 0:
                await js.publish(tasks["results"], body)  # a careless duplicate
                duplicates += 1
            await msg.ack()
            done += 1
        if not messages:
            state = json.loads((await jobs.get(job)).value)
            if state["status"] in TERMINAL:
                break
    print(f"done: {done} results, {duplicates} duplicates, {skipped} left un-acked", flush=True)
    # Not drain(): the job's consumer is gone by now, and draining a pull
    # subscription bound to it waits for nothing. Every ack is flushed.
    await nc.flush()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
