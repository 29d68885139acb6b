// Many workers, one job's shared state: adds 1 to the job's counter `hits`
// TIMES times, adds MEMBER to its set `members`, then moves its counter
// `swaps` up by one CAS_TIMES times (default 0) with a compare-and-swap
// loop of its own — all at once with as many copies (in any language) as
// you start. However many there are, `hits` and `swaps` end at exactly the
// sum of their TIMES and CAS_TIMES, and `members` holds each MEMBER once
// (docs/protocol.md, "Shared job state"; tests/tests/e2e/shared_state.rs
// runs 10 of these beside 10 of ../python/state_hammer.py).
//
//   NATS_URL=... JETFLOW_NAMESPACE=jetflow node state_hammer.mjs JOB TIMES MEMBER [CAS_TIMES]
//
// Prints `ready:` once connected and `done: ...` at the end, with how often
// another writer came first (and the write was tried again).

import { connect } from "nats";
import { SharedState } from "./state.mjs";

const [job, timesArg, member, casArg] = process.argv.slice(2);
const times = Number(timesArg);
const casTimes = Number(casArg ?? "0");
const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const state = await SharedState.open(nc.jetstream(), job);
console.log(`ready: ${member} on ${job}`);

for (let i = 0; i < times; i++) await state.incr("hits");
const added = await state.add("members", member);
let casMisses = 0;
for (let i = 0, now = await state.get("swaps"); i < casTimes; i++) {
  // An increment built from cas: swap from the value last seen; a miss
  // means another writer moved it first: wait a moment, go on from the
  // value the miss answered.
  for (;;) {
    const { swapped, current } = await state.cas("swaps", now, (now ?? 0) + 1);
    now = current;
    if (swapped) break;
    casMisses++;
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
  }
}
console.log(
  `done: ${times} incr, added ${added ? "True" : "False"}, ${casTimes} cas, ${state.conflicts} conflicts, ${casMisses} cas misses`,
);
await nc.drain();
