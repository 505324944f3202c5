"""Worker liveness: heartbeats, the running-task registry, stalled-task redelivery, hang and time-limit
watchdog.

Why this exists: with ``acks_late`` a task whose worker died stays *unacknowledged* in Redis and comes
back only after the broker's visibility timeout (12 h by default, because it must exceed the longest
task). Until then its job said ``running`` with a frozen progress bar and nothing told the user that no
worker was alive. Here every worker proves it is alive, and a task whose worker is gone is sent again
within ``GDGAN_WORKER_DEAD_AFTER_S`` + one heartbeat, or its job fails with a reason that names the
fault after ``GDGAN_JOB_MAX_REDELIVERIES``.

Redis layout (next to ``gdgan.jobs.records``):

- ``gdgan:worker:<host>:<pid>``  the worker's heartbeat, JSON; expires after GDGAN_WORKER_DEAD_AFTER_S
- ``gdgan:running``              hash: one field per running task (``<job>|<task>|<part>``), JSON with
                                 the task name, args, queue, worker and start time: enough to resend it
- ``gdgan:job:<id>:redeliveries`` hash: redeliveries per task of the job
- ``gdgan:reap:<field>:<task id>`` SET NX claim, so one reaper (of many workers) acts on a stalled task
- ``gdgan:active:<queue>``       list: one element (the registry field) per task running from that
                                 queue. It exists for autoscalers, which can read a list's length but
                                 not a hash: KEDA scales a worker Deployment on queued + running
                                 (``k8s/components/keda``), so a scale-down never takes the worker of
                                 a running task for an idle one. Kept with the registry, atomically;
                                 every reaper scan drops elements whose registry entry is gone.

In each worker process a daemon thread (:class:`Monitor`) beats, scans the registry (the *reaper*:
any live worker redelivers the tasks of a dead one), and watches the running task:

- **hang**: the main thread's stack (code, instruction offset of every frame) has not changed for
  GDGAN_JOB_HANG_TIMEOUT_S. The fault is written into the registry entry and the worker kills itself;
  its supervisor (``gdgan up``, compose ``restart:``, k8s) restarts it and the reaper redelivers the
  task (a hang may be transient: an NFS stall, a deadlock) or fails the job once redeliveries run out.
- **soft time limit**: SIGUSR2 to the main thread, whose handler raises Celery's
  ``SoftTimeLimitExceeded``; the job fails with that message (a task that ran out of time would do it
  again). Celery's own limits need the prefork pool; our workers run ``solo`` (no fork, CUDA-safe),
  so the limits are enforced here, from the same settings given to Celery.
- **hard time limit**: the task did not unwind: the job fails with the reason, the worker kills itself.

Nothing here touches the task bodies: Celery's ``task_prerun``/``task_postrun`` signals register the
running task and ``worker_ready`` starts the thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from celery import exceptions as celery_exceptions
from celery import signals
from gdgan.jobs.records import PREFIX, JobNotFound, JobStore
from gdgan.schemas import JobRecord, RunningOn
from gdgan.settings import Settings, get_settings

log = logging.getLogger("gdgan.jobs.heartbeat")

WORKER_PREFIX = PREFIX + "worker:"
RUNNING = PREFIX + "running"
ACTIVE_PREFIX = PREFIX + "active:"
SOFT_LIMIT_SIGNAL = signal.SIGUSR2

# delete a registry field only when it still names the task that wrote it; with it, its element in
# the active lists (KEYS[2..])
_UNREGISTER = """
local cur = redis.call('hget', KEYS[1], ARGV[1])
if cur and cjson.decode(cur)['task_id'] == ARGV[2] then
  for i = 2, #KEYS do redis.call('lrem', KEYS[i], 0, ARGV[1]) end
  return redis.call('hdel', KEYS[1], ARGV[1])
end
return 0
"""
# drop the active-list elements with no registry entry (a worker that died between its two writes)
_RECONCILE = """
local n = 0
for i = 2, #KEYS do
  for _, f in ipairs(redis.call('lrange', KEYS[i], 0, -1)) do
    if redis.call('hexists', KEYS[1], f) == 0 then n = n + redis.call('lrem', KEYS[i], 0, f) end
  end
end
return n
"""


def active_key(queue: str) -> str:
    """The list whose length is the number of tasks running from ``queue`` (for autoscalers)."""
    return ACTIVE_PREFIX + queue


def _active_keys() -> list[str]:
    from gdgan.jobs.celery_app import EVAL_QUEUE, TRAIN_QUEUE

    return [active_key(q) for q in (TRAIN_QUEUE, EVAL_QUEUE)]


def _queue_of(entry: dict[str, Any]) -> str:
    from gdgan.jobs.celery_app import TASK_ROUTES

    return str(entry.get("queue") or TASK_ROUTES.get(entry["task"], {}).get("queue") or "")


def worker_id(pid: int | None = None) -> str:
    """``<host>:<pid>``: the same prefix as a job lease's owner (gdgan.jobs.tasks)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def worker_key(wid: str) -> str:
    return WORKER_PREFIX + wid


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=3, socket_timeout=5, decode_responses=True
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


# --------------------------------------------------------------------------------------------
# registry
def entry_field(job_id: str, task: str, part: str | None) -> str:
    return f"{job_id}|{task}|{part or ''}"


def register(r: redis.Redis, entry: dict[str, Any]) -> bool:
    """Record a task as running on this worker, unless a *live* worker already runs it (a duplicate
    delivery, which the job's lease turns into a retry). A dead owner's entry is taken over."""
    f = entry_field(entry["job_id"], entry["task"], entry.get("part"))
    cur = r.hget(RUNNING, f)
    if cur:
        owner = json.loads(cur).get("worker", "")
        if owner != entry["worker"] and r.exists(worker_key(owner)):
            return False
    pipe = r.pipeline()  # MULTI: the registry and the active list change together
    pipe.hset(RUNNING, f, json.dumps(entry))
    queue = _queue_of(entry)
    if queue:
        pipe.lrem(active_key(queue), 0, f)  # a takeover of the same task: still one element
        pipe.rpush(active_key(queue), f)
    pipe.execute()
    return True


def unregister(r: redis.Redis, field_: str, task_id: str) -> None:
    keys = [RUNNING, *_active_keys()]
    r.eval(_UNREGISTER, len(keys), *keys, field_, task_id)


def reconcile_active(r: redis.Redis) -> int:
    """Drop active-list elements whose task is no longer registered; returns how many."""
    keys = [RUNNING, *_active_keys()]
    return int(r.eval(_RECONCILE, len(keys), *keys))


def mark_fault(r: redis.Redis, field_: str, task_id: str, fault: str) -> None:
    """Write why this worker is about to die into its entry: the reaper quotes it in the job."""
    cur = r.hget(RUNNING, field_)
    if cur:
        e = json.loads(cur)
        if e.get("task_id") == task_id:
            e["fault"] = fault
            r.hset(RUNNING, field_, json.dumps(e))


def running_entries(r: redis.Redis) -> dict[str, dict[str, Any]]:
    return {k: json.loads(v) for k, v in r.hgetall(RUNNING).items()}


def beats(r: redis.Redis, workers: set[str]) -> dict[str, dict[str, Any] | None]:
    """Last heartbeat of each worker (None: gone)."""
    ids = sorted(workers)
    raws = r.mget([worker_key(w) for w in ids]) if ids else []
    return {w: (json.loads(raw) if raw else None) for w, raw in zip(ids, raws)}


def live_workers(r: redis.Redis) -> list[dict[str, Any]]:
    """Every worker with a current heartbeat (``gdgan status``, the health check)."""
    keys = list(r.scan_iter(match=WORKER_PREFIX + "*", count=500))
    return [json.loads(v) for v in r.mget(keys) if v] if keys else []


# --------------------------------------------------------------------------------------------
# the live view served with a job record
def annotate(r: redis.Redis, rec: JobRecord, settings: Settings | None = None) -> JobRecord:
    """Fill ``running_on`` and ``stalled`` from the registry and the heartbeats (read-only)."""
    if rec.terminal:
        return rec
    mine = job_entries(r.hgetall(RUNNING), rec.id)
    if not mine:
        return rec
    return annotate_entries(rec, mine, beats(r, {e["worker"] for e in mine}), settings)


def job_entries(running: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    """The registry entries (``HGETALL gdgan:running``) of one job."""
    prefix = job_id + "|"
    return [json.loads(v) for k, v in running.items() if k.startswith(prefix)]


def annotate_entries(
    rec: JobRecord,
    mine: list[dict[str, Any]],
    last: dict[str, dict[str, Any] | None],
    settings: Settings | None = None,
) -> JobRecord:
    """The live view from already-read registry entries and heartbeats (``last``: worker -> beat),
    so a caller with its own (async, pipelined) reads shares the rule. A job is stalled once its
    worker missed three heartbeats, before the reaper (which waits the full
    GDGAN_WORKER_DEAD_AFTER_S) redelivers it."""
    s = settings or get_settings()
    now = time.time()
    for e in mine:
        hb = last.get(e["worker"])
        age = None if hb is None else round(now - float(hb["t"]), 1)
        # three missed beats already say "stalled"; redelivery waits for GDGAN_WORKER_DEAD_AFTER_S
        late = age is not None and age > min(3 * s.worker_heartbeat_s, s.worker_dead_after_s)
        stalled = hb is None or late or bool(e.get("fault"))
        rec.running_on.append(
            RunningOn(
                part=e.get("part"),
                worker=e.get("node") or e["worker"],
                since=_iso(float(e["t"])),
                heartbeat_age_s=age,
                stalled=stalled,
            )
        )
    rec.stalled = any(x.stalled for x in rec.running_on)
    return rec


# --------------------------------------------------------------------------------------------
# the reaper
def reap_once(r: redis.Redis, jobs: JobStore, settings: Settings | None = None) -> list[str]:
    """Redeliver (or fail) every registered task whose worker stopped beating; returns the fields acted
    on. Safe to run in many processes at once: each stalled task is claimed by exactly one."""
    s = settings or get_settings()
    reconcile_active(r)
    entries = running_entries(r)
    if not entries:
        return []
    last = beats(r, {e["worker"] for e in entries.values()})
    now = time.time()
    acted = []
    for f, e in entries.items():
        if last.get(e["worker"]) is not None and not e.get("fault"):
            continue
        if not e.get("fault") and now - float(e["t"]) < s.worker_dead_after_s:
            continue  # registered moments ago; its worker's first beat may still be on the way
        if not r.set(f"{PREFIX}reap:{f}:{e['task_id']}", "1", nx=True, ex=int(s.job_ttl_s)):
            continue
        try:
            _redeliver(r, jobs, s, f, e)
            acted.append(f)
        except Exception:  # e.g. Redis went away mid-way: let a later scan retry
            r.delete(f"{PREFIX}reap:{f}:{e['task_id']}")
            raise
    return acted


def _redeliver(r: redis.Redis, jobs: JobStore, s: Settings, f: str, e: dict[str, Any]) -> None:
    from gdgan.jobs.celery_app import send

    job_id, part = e["job_id"], e.get("part")
    try:
        rec = jobs.get(job_id)
    except JobNotFound:
        unregister(r, f, e["task_id"])
        return
    if rec.terminal:
        unregister(r, f, e["task_id"])
        return
    who = e.get("node") or e["worker"]
    fault = e.get("fault") or f"worker {who} stopped sending heartbeats (SIGKILL, OOM, host lost?)"
    where = f" part {part}" if part else ""
    rkey = f"{PREFIX}job:{job_id}:redeliveries"
    pipe = r.pipeline()
    pipe.hincrby(rkey, f, 1)
    jobs.follow_record(pipe, job_id, "redeliveries")  # kept as long as the job's record
    n = int(pipe.execute()[0])
    if n > s.job_max_redeliveries:
        reason = (
            f"{fault}{where}; gave up after {n - 1} redeliveries (GDGAN_JOB_MAX_REDELIVERIES="
            f"{s.job_max_redeliveries})"
        )
        log.error("job %s: %s", job_id, reason)
        if part:
            jobs.set_part(job_id, part, "failed")
            jobs.flag_stop(job_id)
        jobs.set_status(job_id, "failed", error=reason)
        unregister(r, f, e["task_id"])
        return
    _break_leases(jobs, e)
    msg = f"{fault}{where}: redelivered ({n} of {s.job_max_redeliveries})"
    log.warning("job %s: %s", job_id, msg)
    jobs.publish(job_id, "stalled", {"part": part, "worker": who, "reason": fault, "redelivery": n})
    if part:
        jobs.set_part(job_id, part, "queued")
    else:
        jobs.set_progress(job_id, {"message": msg})
        jobs.set_status(job_id, "queued", allowed_from={"running"})
    unregister(r, f, e["task_id"])
    send(e["task"], *e["args"], queue=e.get("queue") or None)


def _break_leases(jobs: JobStore, e: dict[str, Any]) -> None:
    """Release the job leases the dead worker held (owner ``<host>:<pid>:<task id>``), so the
    redelivered task starts now instead of waiting GDGAN_JOB_LEASE_S for them to lapse."""
    job_id, part = e["job_id"], e.get("part")
    keys = {job_id} | ({f"{job_id}:{part}"} if part else set())
    if e["task"] == "gdgan.eval_report":
        keys.add(f"{job_id}:report")
    for key in keys:
        owner = jobs.lease_owner(key)
        if owner and owner.startswith(e["worker"] + ":"):
            jobs.release_lease(key, owner)


def start_reaper(settings: Settings | None = None) -> threading.Event:
    """The reaper alone, for a process that is not a worker (the gateway): if every worker of a
    deployment is gone, their jobs are still redelivered, then failed, instead of staying
    ``running``. Set the returned event to stop it."""
    s = settings or get_settings()
    done = threading.Event()

    def loop() -> None:
        r = _client(s)
        jobs = JobStore(r, s.job_ttl_s, s.job_lease_s, s.job_events_maxlen, s.job_events_ttl_s)
        while not done.wait(s.worker_heartbeat_s):
            try:
                reap_once(r, jobs, s)
            except redis.RedisError as exc:  # Redis down: /readyz says so; retry next beat
                log.debug("reaper: %s", exc)
            except Exception:
                log.exception("reaper error")
        r.close()

    threading.Thread(target=loop, daemon=True, name="gdgan-reaper").start()
    return done


# --------------------------------------------------------------------------------------------
# in the worker
def _stack_signature(thread_id: int) -> tuple[tuple[int, int], ...] | None:
    """Code object and instruction offset of every frame of a thread: the same value for
    GDGAN_JOB_HANG_TIMEOUT_S of samples means the thread made no progress at all."""
    frame = sys._current_frames().get(thread_id)
    sig = []
    while frame is not None:
        sig.append((id(frame.f_code), frame.f_lasti))
        frame = frame.f_back
    return tuple(sig) or None


def _where(thread_id: int) -> str:
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "?"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} {frame.f_code.co_name}"


@dataclass
class _Current:
    field: str
    task_id: str
    job_id: str
    part: str | None
    started: float  # monotonic
    registered: bool
    sig: Any = None
    sig_since: float = 0.0
    soft_sent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Monitor(threading.Thread):
    """One per worker process: heartbeat, reaper and watchdog (see the module docstring)."""

    def __init__(self, settings: Settings, node: str) -> None:
        super().__init__(daemon=True, name="gdgan-heartbeat")
        self.s = settings
        self.node = node
        self.wid = worker_id()
        self.started = time.time()
        self.r = _client(settings)
        self.jobs = JobStore(
            self.r,
            settings.job_ttl_s,
            settings.job_lease_s,
            settings.job_events_maxlen,
            settings.job_events_ttl_s,
        )
        self.main_id = threading.main_thread().ident or 0
        self.current: _Current | None = None
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    # -- task hooks (main thread) ---------------------------------------------------------------
    def task_started(self, task: Any, task_id: str, args: tuple[Any, ...]) -> None:
        if not args:
            return
        job_id = str(args[0])
        part = str(args[1]) if len(args) > 1 else None
        queue = (getattr(task.request, "delivery_info", None) or {}).get("routing_key")
        f = entry_field(job_id, task.name, part)
        entry = {
            "job_id": job_id,
            "part": part,
            "task": task.name,
            "args": list(args),
            "queue": queue,
            "worker": self.wid,
            "node": self.node,
            "task_id": task_id,
            "t": time.time(),
        }
        try:
            registered = register(self.r, entry)
        except redis.RedisError as exc:
            log.warning("could not register task %s of job %s: %s", task.name, job_id, exc)
            registered = False
        now = time.monotonic()
        with self.lock:
            self.current = _Current(f, task_id, job_id, part, now, registered, sig_since=now)
        self.beat()

    def task_finished(self, task_id: str) -> None:
        with self.lock:
            cur, self.current = self.current, None
        if cur is not None and cur.registered:
            with contextlib.suppress(redis.RedisError):
                unregister(self.r, cur.field, task_id)
        self.beat()

    # -- the thread -----------------------------------------------------------------------------
    def beat(self) -> None:
        with self.lock:
            cur = self.current
        doc = {
            "id": self.wid,
            "node": self.node,
            "pid": os.getpid(),
            "started": _iso(self.started),
            "t": time.time(),
            "task": None if cur is None else {"job_id": cur.job_id, "part": cur.part, "task_id": cur.task_id},
        }
        with contextlib.suppress(redis.RedisError):
            self.r.set(worker_key(self.wid), json.dumps(doc), px=int(self.s.worker_dead_after_s * 1000))

    def run(self) -> None:
        while not self.stop_event.wait(self.s.worker_heartbeat_s):
            try:
                self.watch()
                self.beat()
                reap_once(self.r, self.jobs, self.s)
            except redis.RedisError as exc:  # Redis restarting: the next beat retries
                log.warning("heartbeat: %s", exc)
            except Exception:
                log.exception("heartbeat loop error")

    def watch(self) -> None:
        """Hang and time-limit checks of the running task."""
        with self.lock:
            cur = self.current
        if cur is None:
            return
        now = time.monotonic()
        elapsed = now - cur.started
        sig = _stack_signature(self.main_id)
        if sig != cur.sig:
            cur.sig, cur.sig_since = sig, now
        s = self.s
        if s.task_time_limit_s and elapsed > s.task_time_limit_s:
            reason = (
                f"TimeLimitExceeded: hard time limit ({s.task_time_limit_s:g} s, GDGAN_TASK_TIME_LIMIT_S) "
                f"exceeded by {self.node}; the worker was restarted"
            )
            self._die(cur, reason, fail=True)
        elif s.task_soft_time_limit_s and elapsed > s.task_soft_time_limit_s and not cur.soft_sent:
            cur.soft_sent = True
            log.error("job %s: soft time limit hit after %.0f s: interrupting the task", cur.job_id, elapsed)
            signal.pthread_kill(self.main_id, SOFT_LIMIT_SIGNAL)
        elif s.job_hang_timeout_s and now - cur.sig_since > s.job_hang_timeout_s:
            reason = (
                f"worker {self.node} hung: no progress for {now - cur.sig_since:.0f} s "
                f"(GDGAN_JOB_HANG_TIMEOUT_S) in {_where(self.main_id)}"
            )
            self._die(cur, reason, fail=False)

    def _die(self, cur: _Current, reason: str, *, fail: bool) -> None:
        """Record why, then end this process: a hung main thread cannot be trusted to unwind.
        ``fail``: the job fails now (time limit); else the reaper redelivers it (hang)."""
        log.error("job %s%s: %s", cur.job_id, f" part {cur.part}" if cur.part else "", reason)
        with contextlib.suppress(Exception):
            import faulthandler

            faulthandler.dump_traceback(all_threads=True)
        with contextlib.suppress(Exception):
            if fail:
                if cur.part:
                    self.jobs.set_part(cur.job_id, cur.part, "failed")
                    self.jobs.flag_stop(cur.job_id)
                self.jobs.set_status(cur.job_id, "failed", error=reason)
            else:
                mark_fault(self.r, cur.field, cur.task_id, reason)
            self.r.delete(worker_key(self.wid))  # gone now: no need to wait for the key to expire
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


_monitor: Monitor | None = None


class SoftTimeLimitExceeded(celery_exceptions.SoftTimeLimitExceeded):
    """Celery's exception (handlers that catch it keep working), with a plain message: billiard's
    own prints its repr, which would reach the job's error line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "soft time limit exceeded"


def _raise_soft_limit(signum: int, _frame: object) -> None:
    limit = get_settings().task_soft_time_limit_s
    raise SoftTimeLimitExceeded(f"soft time limit ({limit:g} s, GDGAN_TASK_SOFT_TIME_LIMIT_S) exceeded")


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    global _monitor
    if _monitor is not None:
        return
    node = str(getattr(sender, "hostname", "") or worker_id())
    _monitor = Monitor(get_settings(), node)
    if threading.current_thread() is threading.main_thread():
        signal.signal(SOFT_LIMIT_SIGNAL, _raise_soft_limit)
    _monitor.beat()
    _monitor.start()
    log.info("heartbeat every %.0f s as %s", _monitor.s.worker_heartbeat_s, _monitor.wid)


@signals.task_prerun.connect
def _on_task_prerun(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
    if _monitor is not None and task is not None:
        _monitor.task_started(task, task_id, tuple(args or ()))


@signals.task_postrun.connect
def _on_task_postrun(task_id: str = "", **_: Any) -> None:
    if _monitor is not None:
        _monitor.task_finished(task_id)


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    """A clean stop: the heartbeat goes at once, so the reaper need not wait for it to expire."""
    if _monitor is not None:
        _monitor.stop_event.set()
        with contextlib.suppress(redis.RedisError):
            _monitor.r.delete(worker_key(_monitor.wid))
