"""Shared job state for Python workers: JSON values a job's workers keep
together in the KV bucket `<ns>_state` under `<job>.<name>` — counters,
lists, sets, compare-and-swap — removed with the job. Plain nats-py KV,
following docs/protocol.md ("Shared job state"): read the value and its
revision, compute the new value, write it only if the key is still at that
revision (`kv.update(key, value, last=revision)`), and start again if
another writer came first. So no update is lost, whatever language the
other writers are in.

    state = await SharedState.open(nc.jetstream(), "reindex-7")
    await state.incr("processed")          # -> the new count
    await state.add("langs", "en")         # -> True if "en" is new
    await state.append("log", {"id": 3})   # -> the list's length
    swapped, now = await state.cas("leader", None, "worker-3")
    await state.get("langs")               # -> ["en"], or None when not set
"""

import asyncio
import json
import os
import random
import re

from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

#: A value is refused above this many bytes of JSON.
MAX_VALUE_BYTES = 64 * 1024
#: Writes tried before giving up because others kept writing first.
MAX_ATTEMPTS = 500
#: The wait after the nth conflict is random, up to
#: min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (n - 1)) seconds.
FIRST_BACKOFF = 0.002
MAX_BACKOFF = 0.050

_NAME = re.compile(r"[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*")
_JOB = re.compile(r"[A-Za-z0-9_-]{1,100}")
_I64 = range(-(2**63), 2**63)
#: What an operation's apply returns to write nothing.
_KEEP = object()


class StateError(Exception):
    """An operation that did not happen; the message names it and its key."""


def canonical(value) -> str:
    """The text set members and CAS values are compared by: JSON without
    whitespace, object keys sorted, non-ASCII as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a non-integer number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class SharedState:
    """One job's shared state. Safe to use from many tasks and processes."""

    def __init__(self, kv, job: str):
        if not _JOB.fullmatch(job):
            raise StateError(f"job {job!r} must be 1-100 letters, digits, '_' or '-'")
        self.kv = kv
        self.job = job
        #: How many writes found another writer had come first (and were
        #: tried again): contention, for whoever wants to know.
        self.conflicts = 0

    @classmethod
    async def open(cls, js, job: str, namespace: str | None = None) -> "SharedState":
        """Opens `<namespace>_state` (JETFLOW_NAMESPACE, default jetflow)."""
        ns = namespace or os.environ.get("JETFLOW_NAMESPACE", "jetflow")
        return cls(await js.key_value(f"{ns}_state"), job)

    def key(self, name: str) -> str:
        if len(name) > 200 or not _NAME.fullmatch(name):
            raise StateError(
                f"state name {name!r} must be 1-200 characters: letters, digits, '_', '-', '=', "
                "and single dots between them"
            )
        return f"{self.job}.{name}"

    async def get(self, name: str):
        """The value of `name`, or None when it is not set."""
        key = self.key(name)
        value, _ = await self._read("get", key)
        return value

    async def set(self, name: str, value) -> None:
        """Writes `value` whatever was there: the last writer wins."""
        key = self.key(name)
        await self.kv.put(key, _encode("set", key, value))

    async def incr(self, name: str, by: int = 1) -> int:
        """Adds `by` to the counter `name` (0 when not set); the new count."""

        def apply(current):
            if current is None:
                now = 0
            elif isinstance(current, int) and not isinstance(current, bool) and current in _I64:
                now = current
            else:
                big = isinstance(current, int) and not isinstance(current, bool)
                raise _mismatch("an integer beyond 64 bits" if big else _kind(current), "an integer")
            if now + by not in _I64:
                raise ValueError(f"{now} + {by} overflows a 64-bit integer")
            return (now + by if by or current is None else _KEEP), now + by

        return await self._change("incr", name, apply)

    async def append(self, name: str, item) -> int:
        """Appends `item` to the list `name` (empty when not set); its length."""

        def apply(current):
            items = _array(current, "a list (an array)") + [item]
            return items, len(items)

        return await self._change("append", name, apply)

    async def add(self, name: str, member) -> bool:
        """Adds `member` to the set `name`; whether it was not in it."""
        wanted = canonical(member)

        def apply(current):
            items = _array(current, "a set (an array)")
            texts = {canonical(i): i for i in items}
            if wanted in texts:
                return _KEEP, False
            texts[wanted] = member
            return [texts[t] for t in sorted(texts, key=lambda t: t.encode())], True

        return await self._change("add", name, apply)

    async def cas(self, name: str, old, new):
        """Writes `new` if the value is `old` (None: not set); returns
        (swapped, the value now)."""
        _encode("cas", self.key(name), new)
        expected = canonical(old)

        def apply(current):
            if canonical(current) == expected:
                return new, (True, new)
            return _KEEP, (False, current)

        return await self._change("cas", name, apply)

    async def _read(self, op: str, key: str):
        """(value or None, the revision a write must name: 0 if never set)."""
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError as err:
            # Deleted or purged: its marker's revision. Never written: 0.
            return None, (err.entry.revision if err.entry else 0)
        try:
            return json.loads(entry.value), entry.revision
        except ValueError as err:
            raise StateError(f"{op} {key}: the stored value is not JSON ({err})") from None

    async def _change(self, op: str, name: str, apply):
        key = self.key(name)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            # A stored null reads as None too: it counts as not set.
            current, revision = await self._read(op, key)
            try:
                write, answer = apply(current)
            except ValueError as err:
                raise StateError(f"{op} {key}: {err}") from None
            if write is _KEEP:
                return answer
            try:
                await self.kv.update(key, _encode(op, key, write), last=revision)
                return answer
            except KeyWrongLastSequenceError:
                self.conflicts += 1
                ceiling = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** min(attempt - 1, 16))
                await asyncio.sleep(random.uniform(0, ceiling))
            except NatsTimeout:
                raise StateError(f"{op} {key}: no acknowledgement in time; it may or may not have been applied") from None
        raise StateError(f"{op} {key}: other writers changed it first {MAX_ATTEMPTS} times in a row; not applied, try again")


def _mismatch(found: str, wanted: str) -> ValueError:
    return ValueError(f"the value is {found}, not {wanted}")


def _array(current, wanted: str) -> list:
    if current is None:
        return []
    if isinstance(current, list):
        return list(current)
    raise _mismatch(_kind(current), wanted)


def _encode(op: str, key: str, value) -> bytes:
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if len(data) > MAX_VALUE_BYTES:
        raise StateError(f"{op} {key}: the value would be {len(data)} bytes of JSON, over the limit of {MAX_VALUE_BYTES}")
    return data
