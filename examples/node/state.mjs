// Shared job state for JavaScript workers: JSON values a job's workers keep
// together in the KV bucket `<ns>_state` under `<job>.<name>` — counters,
// lists, sets, compare-and-swap — removed with the job. Plain `nats` KV,
// following docs/protocol.md ("Shared job state"): read the value and its
// revision, compute the new value, write it only if the key is still at
// that revision (`put(key, value, {previousSeq: revision})`), and start
// again if another writer came first. So no update is lost, whatever
// language the other writers are in.
//
//   const state = await SharedState.open(nc.jetstream(), "reindex-7");
//   await state.incr("processed");          // -> the new count
//   await state.add("langs", "en");         // -> true if "en" is new
//   await state.append("log", { id: 3 });   // -> the list's length
//   const { swapped, current } = await state.cas("leader", null, "worker-3");
//   await state.get("langs");               // -> ["en"], or null when not set
//
// Counters are JavaScript numbers here: exact up to 2^53.

/** A value is refused above this many bytes of JSON. */
export const MAX_VALUE_BYTES = 64 * 1024;
/** Writes tried before giving up because others kept writing first. */
export const MAX_ATTEMPTS = 500;
/** The wait after the nth conflict is random, up to
 * min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2^(n-1)). */
export const FIRST_BACKOFF_MS = 2;
export const MAX_BACKOFF_MS = 50;

const NAME = /^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$/;
const JOB = /^[A-Za-z0-9_-]{1,100}$/;
// JetStream's "wrong last sequence": another writer came first.
const WRONG_LAST_SEQUENCE = 10071;
const KEEP = Symbol("keep");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An operation that did not happen; the message names it and its key. */
export class StateError extends Error {}

const byBytes = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** The text set members and CAS values are compared by: JSON without
 * whitespace, object keys sorted. */
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort(byBytes);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

function kind(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a non-integer number";
  return { boolean: "a boolean", string: "a string" }[typeof value] ?? "an object";
}

const mismatch = (found, wanted) => new Error(`the value is ${found}, not ${wanted}`);

function array(current, wanted) {
  if (current === null) return [];
  if (Array.isArray(current)) return [...current];
  throw mismatch(kind(current), wanted);
}

function encode(op, key, value) {
  const data = encoder.encode(JSON.stringify(value ?? null));
  if (data.length > MAX_VALUE_BYTES) {
    throw new StateError(`${op} ${key}: the value would be ${data.length} bytes of JSON, over the limit of ${MAX_VALUE_BYTES}`);
  }
  return data;
}

/** One job's shared state. Safe to use from many workers at once. */
export class SharedState {
  constructor(kv, job) {
    if (!JOB.test(job)) throw new StateError(`job ${JSON.stringify(job)} must be 1-100 letters, digits, '_' or '-'`);
    this.kv = kv;
    this.job = job;
    /** How many writes found another writer had come first (and were tried again). */
    this.conflicts = 0;
  }

  /** Opens `<namespace>_state` (JETFLOW_NAMESPACE, default jetflow), which must exist. */
  static async open(js, job, namespace = process.env.JETFLOW_NAMESPACE ?? "jetflow") {
    // Bind only (no stream lookup, nothing created); the bucket allows direct gets.
    const kv = await js.views.kv(`${namespace}_state`, { bindOnly: true, allow_direct: true });
    return new SharedState(kv, job);
  }

  key(name) {
    if (name.length > 200 || !NAME.test(name)) {
      throw new StateError(
        `state name ${JSON.stringify(name)} must be 1-200 characters: letters, digits, '_', '-', '=', and single dots between them`,
      );
    }
    return `${this.job}.${name}`;
  }

  /** The value of `name`, or null when it is not set. */
  async get(name) {
    return (await this.read("get", this.key(name))).value;
  }

  /** Writes `value` whatever was there: the last writer wins. */
  async set(name, value) {
    const key = this.key(name);
    await this.kv.put(key, encode("set", key, value));
  }

  /** Adds `by` to the counter `name` (0 when not set); the new count. */
  incr(name, by = 1) {
    return this.change("incr", name, (current) => {
      if (current !== null && !Number.isInteger(current)) throw mismatch(kind(current), "an integer");
      const now = (current ?? 0) + by;
      if (!Number.isSafeInteger(now)) throw new Error(`${current} + ${by} leaves the integers JavaScript counts exactly`);
      return [by !== 0 || current === null ? now : KEEP, now];
    });
  }

  /** Appends `item` to the list `name` (empty when not set); its length. */
  append(name, item) {
    return this.change("append", name, (current) => {
      const items = [...array(current, "a list (an array)"), item];
      return [items, items.length];
    });
  }

  /** Adds `member` to the set `name`; whether it was not in it. */
  add(name, member) {
    const wanted = canonical(member);
    return this.change("add", name, (current) => {
      const texts = new Map(array(current, "a set (an array)").map((m) => [canonical(m), m]));
      if (texts.has(wanted)) return [KEEP, false];
      texts.set(wanted, member);
      return [[...texts.keys()].sort(byBytes).map((t) => texts.get(t)), true];
    });
  }

  /** Writes `next` if the value is `old` (null: not set); {swapped, current}. */
  cas(name, old, next) {
    encode("cas", this.key(name), next);
    const expected = canonical(old);
    return this.change("cas", name, (current) =>
      canonical(current) === expected
        ? [next ?? null, { swapped: true, current: next ?? null }]
        : [KEEP, { swapped: false, current }],
    );
  }

  /** {value (null if not set), revision a write must name: 0 if never set}. */
  async read(op, key) {
    const entry = await this.kv.get(key);
    if (entry === null) return { value: null, revision: 0 };
    // Deleted or purged: the marker's revision.
    if (entry.operation !== "PUT") return { value: null, revision: entry.revision };
    try {
      return { value: JSON.parse(decoder.decode(entry.value)), revision: entry.revision };
    } catch (err) {
      throw new StateError(`${op} ${key}: the stored value is not JSON (${err.message})`);
    }
  }

  async change(op, name, apply) {
    const key = this.key(name);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      // A stored null counts as not set.
      const { value, revision } = await this.read(op, key);
      let write, answer;
      try {
        [write, answer] = apply(value);
      } catch (err) {
        throw new StateError(`${op} ${key}: ${err.message}`);
      }
      if (write === KEEP) return answer;
      try {
        await this.kv.put(key, encode(op, key, write), { previousSeq: revision });
        return answer;
      } catch (err) {
        if (err?.api_error?.err_code !== WRONG_LAST_SEQUENCE) {
          if (err?.code === "TIMEOUT") {
            throw new StateError(`${op} ${key}: no acknowledgement in time; it may or may not have been applied`);
          }
          throw err;
        }
        this.conflicts++;
        const ceiling = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.min(attempt - 1, 16));
        await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
      }
    }
    throw new StateError(`${op} ${key}: other writers changed it first ${MAX_ATTEMPTS} times in a row; not applied, try again`);
  }
}
