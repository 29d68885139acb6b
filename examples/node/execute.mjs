// Step 2 of an agent's execution: run the agent's graph on the thread
// the previous step (ensure-thread, in Python) made.
//
// A jetflow `nats` handler step: answers requests on SUBJECT (default
// `agents.execute`) in the queue group `jetflow-workers`. The request is
// JSON {job, item: {id, data}, params, attempt, step, input}, where `input`
// is the previous step's output; the reply is {ok: true, output} or
// {ok: false, error, retryable} (docs/protocol.md).
//
//   NATS_URL=nats://127.0.0.1:4222 node execute.mjs
//
// FAIL_EVERY=N fails the graph, for good, for every Nth agent (agent-00025,
// agent-00050, ... for N=25), so the failure path can be seen end to end.

import { connect, StringCodec } from "nats";

const QUEUE_GROUP = "jetflow-workers";
const sc = StringCodec();
const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const subject = process.env.SUBJECT ?? "agents.execute";
const failEvery = Number(process.env.FAIL_EVERY ?? "0");

const reply = (msg, body) => msg.respond(sc.encode(JSON.stringify(body)));

const sub = nc.subscribe(subject, { queue: QUEUE_GROUP });
await nc.flush();
console.log(`ready: ${subject}`);

const stop = async () => {
  await nc.drain();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

for await (const msg of sub) {
  let request;
  try {
    request = JSON.parse(sc.decode(msg.data));
  } catch (err) {
    reply(msg, { ok: false, error: `not a jetflow handler request: ${err}`, retryable: false });
    continue;
  }
  const agent = request.item?.id;
  const thread = request.input?.thread;
  if (!thread) {
    reply(msg, { ok: false, error: `no thread for ${agent}: run ensure-thread first`, retryable: false });
    continue;
  }
  const n = Number(String(agent).split("-").pop());
  if (failEvery > 0 && n % failEvery === 0) {
    reply(msg, {
      ok: false,
      error: `graph execution failed for ${agent} on ${thread}: tool variables missing`,
      retryable: false,
    });
    continue;
  }
  reply(msg, {
    ok: true,
    output: {
      status: "COMPLETED",
      thread,
      messages: [`migrated ${agent} to ${request.params?.template ?? "?"}`],
      traceparent: msg.headers?.get("traceparent") ?? null,
    },
  });
}
