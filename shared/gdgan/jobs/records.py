"""Job records and progress events in Redis.

Layout:

- ``gdgan:job:<id>``         the record, one JSON document (``schemas.JobRecord``)
- ``gdgan:jobs``             sorted set of job ids by creation time (listing)
- ``gdgan:job:<id>:events``  a Redis *stream* of events. A stream (not pub/sub) lets an SSE
                             client that connects late replay what it missed and resume with
                             ``Last-Event-ID``, with no window in which an event can be lost.
- ``gdgan:job:<id>:cancel``  the cooperative cancel flag, read by the worker at every step
- ``gdgan:job:<id>:lease``   which worker runs the job now; expires unless renewed. A task that is
                             redelivered while the owner still runs sees the lease and does nothing;
                             after a crash the lease lapses and the redelivered task resumes.
- ``gdgan:job:<id>:parts``   fan-out results (evaluation), one hash field per part
- ``gdgan:job:<id>:preview`` a training job's latest sample grid (phase, step, PNG), replaced
                             at each new one; a ``preview`` event announces it

Retention (``GDGAN_JOB_TTL_S``, ``GDGAN_JOB_EVENTS_TTL_S``, ``GDGAN_JOB_EVENTS_MAXLEN``), so Redis
does not grow with every job ever run: a queued or running job's keys never expire (a training run
may last days; losing its record mid-run would orphan it). When the job ends, its record and every
per-job key above get the TTL in the same transaction, and ``gdgan:jobs:expiry`` notes when, so the
listing index is pruned too. A key written later (the terminal status event, a late part result)
follows the record's TTL through one script, so nothing of a finished job outlives it. A finished
job's event stream may go sooner (GDGAN_JOB_EVENTS_TTL_S): only a client resuming with Last-Event-ID
reads it, and it is most of a finished job's memory. Event streams are capped (approximate MAXLEN,
trimmed a whole node at a time, which is what keeps XADD O(1)); a late SSE client still gets the
whole record first, so only old progress lines are lost.

Updates are read-modify-write under WATCH, so a worker's progress write cannot undo a status
change the gateway made at the same moment (e.g. queued -> cancelled).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from gdgan.schemas import TERMINAL, JobProgress, JobRecord, utcnow

PREFIX = "gdgan:"
INDEX = PREFIX + "jobs"
EXPIRY = PREFIX + "jobs:expiry"  # finished job ids, scored by when their record expires
STREAM_MAXLEN = 2000  # default of GDGAN_JOB_EVENTS_MAXLEN
# per-job keys that share the record's lifetime (``once:*`` claims carry their own TTL)
SIBLINGS = ("events", "parts", "preview", "cancel", "redeliveries")
PRUNE_BATCH = 500

# KEYS[1] record, KEYS[2] sibling; ARGV[1] TTL in ms, ARGV[2] cap in ms (0: none). The sibling lives
# as long as the record: no TTL while the job is active, the record's remaining TTL (at most the cap)
# once it ended, the full TTL if the record is already gone (a zombie writer must not leave a key
# behind forever).
_FOLLOW = """
local pttl = redis.call('pttl', KEYS[1])
local cap = tonumber(ARGV[2])
if pttl > 0 then
  if cap > 0 and cap < pttl then pttl = cap end
  return redis.call('pexpire', KEYS[2], pttl)
elseif pttl == -2 then return redis.call('pexpire', KEYS[2], ARGV[1])
else return redis.call('persist', KEYS[2]) end
"""


class JobNotFound(KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "job not found"


class JobConflict(RuntimeError):
    """The requested transition is not allowed from the job's current status."""


def new_job_id(job_type: str) -> str:
    return f"job-{job_type}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(5)}"


def job_artifact_id(kind: str, job_id: str, part: str | None = None) -> str:
    """The id of the one ``kind`` artifact a job (or one ``part`` of its fan-out: a classifier, a
    report section) commits, fixed by the job rather than drawn at commit time: a delivery that
    follows a commit whose outcome was never recorded (the worker killed, or Redis gone, between
    the two) finds that artifact instead of storing a second one. Same shape as a drawn id
    (``<kind>-<date>-<10 hex>``, the date the job's), unguessable without the job id."""
    import hashlib

    day = next((p for p in job_id.split("-") if len(p) == 8 and p.isdigit()), f"{datetime.now(UTC):%Y%m%d}")
    key = f"{kind}:{job_id}" if part is None else f"{kind}:{job_id}:{part}"
    return f"{kind}-{day}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def _k(job_id: str, suffix: str = "") -> str:
    return f"{PREFIX}job:{job_id}{':' + suffix if suffix else ''}"


def record_key(job_id: str) -> str:
    """The record's key, for readers with their own (async) Redis client: the gateway's status route."""
    return _k(job_id)


def events_key(job_id: str) -> str:
    """The job's event stream, for readers with their own (async) Redis client: the gateway's SSE."""
    return _k(job_id, "events")


class JobStore:
    """All job state lives here; gateway, workers and CLI share this one implementation."""

    def __init__(
        self,
        client: redis.Redis,
        ttl_s: int,
        lease_s: float = 30.0,
        events_maxlen: int = STREAM_MAXLEN,
        events_ttl_s: int | None = None,
    ) -> None:
        self.r = client
        self.ttl_s = int(ttl_s)
        self.lease_s = float(lease_s)
        self.events_maxlen = int(events_maxlen)
        # a finished job's stream is read only by a client resuming with Last-Event-ID, and it is
        # most of a finished job's memory (a stream node preallocates ~4 KB): it may go sooner
        self.events_ttl_s = min(int(events_ttl_s or ttl_s), self.ttl_s)
        self._follow = client.register_script(_FOLLOW)

    @classmethod
    def from_url(
        cls,
        url: str,
        ttl_s: int,
        lease_s: float = 30.0,
        timeout_s: float = 5.0,
        events_maxlen: int = STREAM_MAXLEN,
        events_ttl_s: int | None = None,
    ) -> JobStore:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, decode_responses=True
        )
        return cls(client, ttl_s, lease_s, events_maxlen, events_ttl_s)

    def follow_record(self, pipe: Any, job_id: str, suffix: str) -> None:
        """Queue on ``pipe`` the script that gives ``_k(job_id, suffix)`` the record's lifetime."""
        cap = self.events_ttl_s * 1000 if suffix == "events" and self.events_ttl_s < self.ttl_s else 0
        self._follow(keys=[_k(job_id), _k(job_id, suffix)], args=[self.ttl_s * 1000, cap], client=pipe)

    def prune(self, now: float | None = None) -> int:
        """Drop expired jobs from the listing index (records expire by themselves; an index entry
        cannot). Called on every create, so the index stays as large as the retained jobs."""
        due = self.r.zrangebyscore(EXPIRY, "-inf", now or time.time(), start=0, num=PRUNE_BATCH)
        if due:
            pipe = self.r.pipeline()
            pipe.zrem(INDEX, *due)
            pipe.zrem(EXPIRY, *due)
            pipe.execute()
        return len(due)

    # -- records ------------------------------------------------------------------------------
    def create(
        self, job_type: str, params: dict[str, Any], job_id: str | None = None, owner: str | None = None
    ) -> JobRecord:
        """``owner``: the creating token's id (a hash, never the token), who may cancel it."""
        rec = JobRecord(id=job_id or new_job_id(job_type), type=job_type, params=params, owner=owner)
        pipe = self.r.pipeline()
        pipe.set(_k(rec.id), rec.model_dump_json())  # no TTL while queued or running
        pipe.zadd(INDEX, {rec.id: time.time()})
        pipe.execute()
        self.prune()
        self.publish(rec.id, "status", {"status": rec.status})
        return rec

    def get(self, job_id: str) -> JobRecord:
        raw = self.r.get(_k(job_id))
        if raw is None:
            raise JobNotFound(f"no job {job_id!r}")
        return JobRecord.model_validate_json(raw)

    def statuses(self, job_ids: list[str]) -> dict[str, str | None]:
        """Each job's status in one round trip (None: expired or unknown), e.g. to count a token's
        unfinished jobs."""
        if not job_ids:
            return {}
        raws = self.r.mget([_k(i) for i in job_ids])
        return {i: (json.loads(raw).get("status") if raw else None) for i, raw in zip(job_ids, raws)}

    def exists(self, job_id: str) -> bool:
        return bool(self.r.exists(_k(job_id)))

    def list(
        self, limit: int = 100, job_type: str | None = None, status: str | None = None
    ) -> list[JobRecord]:
        """Newest first. Expired ids are dropped from the index as they are met."""
        ids = self.r.zrevrange(INDEX, 0, max(0, limit * 4 - 1))
        out: list[JobRecord] = []
        if not ids:
            return out
        raws = self.r.mget([_k(i) for i in ids])
        stale = []
        for jid, raw in zip(ids, raws):
            if raw is None:
                stale.append(jid)
                continue
            rec = JobRecord.model_validate_json(raw)
            if (job_type and rec.type != job_type) or (status and rec.status != status):
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        if stale:
            self.r.zrem(INDEX, *stale)
        return out

    def update(self, job_id: str, fn: Callable[[JobRecord], JobRecord | None]) -> JobRecord:
        """Apply ``fn`` atomically (optimistic WATCH loop). ``fn`` returns None to leave it alone."""
        key = _k(job_id)
        while True:
            with self.r.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise JobNotFound(f"no job {job_id!r}")
                    rec = JobRecord.model_validate_json(raw)
                    new = fn(rec.model_copy(deep=True))
                    if new is None:
                        pipe.unwatch()
                        return rec
                    new.updated = utcnow()
                    pipe.multi()
                    if new.terminal:  # the retention clock starts when the job ends
                        pipe.set(key, new.model_dump_json(), ex=self.ttl_s)
                        for suffix in SIBLINGS:
                            ttl = self.events_ttl_s if suffix == "events" else self.ttl_s
                            pipe.expire(_k(job_id, suffix), ttl)
                        pipe.zadd(EXPIRY, {job_id: time.time() + self.ttl_s})
                    else:  # SET without EX also clears a TTL
                        pipe.set(key, new.model_dump_json())
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue

    def set_status(
        self,
        job_id: str,
        status: str,
        *,
        allowed_from: frozenset[str] | set[str] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> JobRecord | None:
        """Move to ``status`` if the current status is in ``allowed_from`` (default: not terminal).

        Returns the new record, or None when the transition was not allowed (e.g. the job was
        cancelled meanwhile) — callers treat that as 'someone else decided'.
        """
        allowed = set(allowed_from) if allowed_from is not None else {"queued", "running"}
        changed: list[JobRecord] = []

        def fn(rec: JobRecord) -> JobRecord | None:
            if rec.status not in allowed:
                return None
            rec.status = status  # type: ignore[assignment]
            now = utcnow()
            if status == "running":
                rec.started = rec.started or now
                rec.attempts += 1
            if status in TERMINAL:
                rec.finished = now
                if status == "succeeded":
                    rec.progress.fraction = 1.0
                    rec.progress.step = max(rec.progress.step, rec.progress.total)
            if result:
                rec.result.update(result)
            if error is not None:
                rec.error = error
            changed.append(rec)
            return rec

        rec = self.update(job_id, fn)
        if not changed:
            return None
        payload: dict[str, Any] = {"status": rec.status}
        if rec.status in TERMINAL:
            payload.update(result=rec.result, error=rec.error)
        self.publish(job_id, "status", payload)
        return rec

    def set_progress(self, job_id: str, progress: dict[str, Any], monotonic: bool = False) -> None:
        """Merge ``progress`` into the record and publish it. ``monotonic``: the fraction never goes
        back (fan-out jobs, whose parts report concurrently)."""

        def fn(rec: JobRecord) -> JobRecord | None:
            if rec.status in TERMINAL:
                return None
            merged = {**rec.progress.model_dump(), **progress}
            if monotonic:
                merged["fraction"] = max(rec.progress.fraction, float(merged.get("fraction") or 0.0))
                progress["fraction"] = merged["fraction"]
            rec.progress = JobProgress.model_validate(merged)
            return rec

        self.update(job_id, fn)
        self.publish(job_id, "progress", progress)

    def set_preview(self, job_id: str, phase: str, step: int, png: bytes) -> None:
        """Keep only the latest sample grid of a training job (one key, replaced) and announce it
        on the event stream; the image itself is fetched separately, so events stay small."""
        meta = {"phase": phase, "step": int(step)}
        blob = json.dumps({**meta, "png": base64.b64encode(png).decode()})
        pipe = self.r.pipeline()
        pipe.set(_k(job_id, "preview"), blob)
        self.follow_record(pipe, job_id, "preview")
        pipe.execute()
        self.publish(job_id, "preview", meta)

    def get_preview(self, job_id: str) -> tuple[dict[str, Any], bytes] | None:
        """(``{"phase", "step"}``, PNG) of the latest preview, or None before the first one."""
        raw = self.r.get(_k(job_id, "preview"))
        if raw is None:
            return None
        d = json.loads(raw)
        return {"phase": d["phase"], "step": d["step"]}, base64.b64decode(d["png"])

    def set_part(self, job_id: str, part: str, status: str) -> None:
        def fn(rec: JobRecord) -> JobRecord | None:
            rec.parts[part] = status
            return rec

        self.update(job_id, fn)
        self.publish(job_id, "part", {"part": part, "status": status})

    # -- events -------------------------------------------------------------------------------
    def publish(self, job_id: str, event: str, data: dict[str, Any]) -> str:
        fields = {"event": event, "data": json.dumps(data, default=str)}
        pipe = self.r.pipeline()
        pipe.xadd(events_key(job_id), fields, maxlen=self.events_maxlen, approximate=True)
        self.follow_record(pipe, job_id, "events")
        eid, _ = pipe.execute()
        return str(eid)

    def events(self, job_id: str, after: str = "0", block_ms: int = 1000) -> Iterator[tuple[str, str, dict]]:
        """Blocking iterator (CLI, tests) over events until the job ends."""
        key = events_key(job_id)
        last = after
        while True:
            resp = self.r.xread({key: last}, block=block_ms, count=100)
            for _stream, items in resp or []:
                for eid, fields in items:
                    last = eid
                    data = json.loads(fields.get("data", "{}"))
                    yield eid, fields.get("event", "message"), data
                    if fields.get("event") == "status" and data.get("status") in TERMINAL:
                        return
            if not resp and self.get(job_id).terminal:
                return

    # -- cancel -------------------------------------------------------------------------------
    def request_cancel(self, job_id: str) -> JobRecord:
        """Set the flag; a queued job is cancelled at once, a running one by its worker.

        Raises JobConflict for a job that already ended (the API answers 409)."""
        rec = self.get(job_id)
        if rec.terminal:
            raise JobConflict(f"job {job_id!r} already {rec.status}")
        self._flag(job_id)

        def fn(r: JobRecord) -> JobRecord | None:
            if r.terminal:
                return None
            r.cancel_requested = True
            return r

        self.update(job_id, fn)
        self.publish(job_id, "cancel", {"cancel_requested": True})
        done = self.set_status(job_id, "cancelled", allowed_from={"queued"})
        return done or self.get(job_id)

    def flag_stop(self, job_id: str) -> None:
        """Raise the stop flag without a cancel request (a failed fan-out part stops its siblings)."""
        self._flag(job_id)

    def _flag(self, job_id: str) -> None:
        pipe = self.r.pipeline()
        pipe.set(_k(job_id, "cancel"), "1")
        self.follow_record(pipe, job_id, "cancel")
        pipe.execute()

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.r.exists(_k(job_id, "cancel")))

    # -- ownership lease ----------------------------------------------------------------------
    def acquire_lease(self, job_id: str, owner: str) -> bool:
        key = _k(job_id, "lease")
        if self.r.set(key, owner, nx=True, px=int(self.lease_s * 1000)):
            return True
        return self.r.get(key) == owner

    def renew_lease(self, job_id: str, owner: str) -> bool:
        key = _k(job_id, "lease")
        # only the owner renews (check-and-set in one script so a lapsed lease is not stolen back)
        script = (
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
        )
        return bool(self.r.eval(script, 1, key, owner, int(self.lease_s * 1000)))

    def release_lease(self, job_id: str, owner: str) -> None:
        script = (
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
            "else return 0 end"
        )
        self.r.eval(script, 1, _k(job_id, "lease"), owner)

    def lease_owner(self, job_id: str) -> str | None:
        return self.r.get(_k(job_id, "lease"))

    # -- fan-out ------------------------------------------------------------------------------
    def put_part_result(self, job_id: str, part: str, result: dict[str, Any]) -> int:
        """Store a part's result; returns how many parts have results now."""
        key = _k(job_id, "parts")
        pipe = self.r.pipeline()
        pipe.hset(key, part, json.dumps(result, default=str))
        self.follow_record(pipe, job_id, "parts")
        pipe.hlen(key)
        return int(pipe.execute()[-1])

    def part_results(self, job_id: str) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self.r.hgetall(_k(job_id, "parts")).items()}

    def claim_once(self, job_id: str, what: str) -> bool:
        """True for exactly one caller per (job, what): e.g. who enqueues the report task."""
        return bool(self.r.set(_k(job_id, "once:" + what), "1", nx=True, ex=self.ttl_s))

    def ping(self) -> None:
        self.r.ping()
