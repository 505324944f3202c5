"""Celery tasks: thin adapters from a job record to the core library.

Every task takes a job id (and, for evaluation parts, a part name), never bulky arguments: the
request itself lives in the job record, the data in the store. ``run_job`` gives every task the
same life cycle:

1. the record says the job ended -> do nothing (a redelivered message is a no-op);
2. the cancel flag is set -> mark it cancelled;
3. another live worker holds the job's lease -> this delivery is a duplicate; re-check later
   (``retry``), so if that owner dies the job is still finished by someone;
4. otherwise take the lease, mark running, run the body with a progress callback and a stop flag
   (a heartbeat thread keeps the lease alive), and store the outcome. A worker that loses the
   lease mid-run (it stalled, and a redelivery took the job over) stops and writes nothing more:
   no progress, no artifact commits, no outcome (``gdgan.jobs.lease``). Errors become a one-line,
   human-readable message in the record; the traceback goes only to the worker log.

Evaluation's fan-out (a task per GAN, classifier and report section) is in
``gdgan.jobs.eval_tasks``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import redis
from gdgan.jobs import drain
from gdgan.jobs.celery_app import app
from gdgan.jobs.lease import Lease
from gdgan.jobs.records import JobNotFound, JobStore, job_artifact_id
from gdgan.progress import Cancelled, Progress
from gdgan.settings import get_settings

log = logging.getLogger("gdgan.jobs")

_jobs: JobStore | None = None
# the lease of the job this worker process runs now (set by run_job; read by _store)
_LEASE: ContextVar[Lease | None] = ContextVar("gdgan_lease", default=None)


def job_store() -> JobStore:
    global _jobs
    if _jobs is None:
        s = get_settings()
        _jobs = JobStore.from_url(
            s.redis_url,
            s.job_ttl_s,
            s.job_lease_s,
            events_maxlen=s.job_events_maxlen,
            events_ttl_s=s.job_events_ttl_s,
        )
    return _jobs


def human_error(exc: BaseException) -> str:
    """One line for users: the exception's message, no stack trace, no secrets from settings."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {msg}"[:500] if msg else name


@dataclass
class JobContext:
    """What a task body gets: the job, a progress callback and a stop flag."""

    job_id: str
    params: dict[str, Any]
    progress: _ProgressPublisher
    should_stop: Callable[[], bool]
    part: str | None = None


class _ProgressPublisher:
    """Progress callback: throttled writes to the job record and its event stream.

    ``phases``: a multi-phase job (GDGAN = stage 1 then stage 2) maps each phase's own fraction
    onto one overall fraction, so a progress bar does not run to 100 % twice."""

    def __init__(self, jobs: JobStore, job_id: str, part: str | None, lease: Lease) -> None:
        self.jobs, self.job_id, self.part, self.lease = jobs, job_id, part, lease
        self.interval = get_settings().job_progress_interval_s
        self.last = 0.0
        self.phases: list[str] = []
        self.t0: float | None = None

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.total and p.step >= p.total
        if self.lease.lost.is_set() or (not final and now - self.last < self.interval):
            return  # a worker that lost the job publishes nothing more
        self.last = now
        d = p.to_dict()
        d["worker"] = self.lease.owner
        d["losses"] = {k: float(v) for k, v in (d.get("losses") or {}).items()}
        if self.t0 is None:
            self.t0 = now
        d["phase_fraction"] = p.fraction
        # a sub-phase ("stage1 quality": work done at stage-1 steps) counts in its phase's slot
        base = p.phase.split(" ", 1)[0]
        if base in self.phases:
            d["fraction"] = (self.phases.index(base) + p.fraction) / len(self.phases)
            d["phases"] = list(self.phases)
        try:
            if self.part:
                # the job's fraction is over all parts: finished ones plus this one's share
                d["phase"] = f"{self.part} {d.get('phase') or ''}".strip()
                parts = self.jobs.get(self.job_id).parts
                done = sum(1 for v in parts.values() if v == "succeeded")
                d["fraction"] = min(1.0, (done + p.fraction) / max(1, len(parts)))
            if self.phases or self.part:
                d["eta_s"] = _overall_eta(now - self.t0, d["fraction"], d.get("eta_s"))
            self.jobs.set_progress(self.job_id, d, monotonic=bool(self.part))
        except (redis.RedisError, JobNotFound) as exc:  # progress is best effort; the job goes on
            log.warning("progress write failed for %s: %s", self.job_id, exc)


def _await_redis(jobs: JobStore, timeout_s: float) -> None:
    """Block until Redis answers a PING (re-raising its error after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            jobs.r.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _hand_over(task: Any, jobs: JobStore, lease_key: str) -> None:
    """After this worker lost a job's lease: if another delivery owns it, that owner records the
    outcome. If nobody does — the key lapsed without a takeover, e.g. Redis restarted from an
    append-only file older than the last renewal — the job would stay 'running' for ever, so this
    task is delivered again and resumes from the last committed checkpoint. A grace of one lease
    period first lets a redelivery that is already on its way take the job."""
    time.sleep(jobs.lease_s)
    try:
        holder = jobs.lease_owner(lease_key)
    except redis.RedisError:
        holder = None
    if holder is not None:
        log.info("job %s is now run by %s; it records the outcome", lease_key, holder)
        return
    log.warning("job %s: nobody took the lapsed lease over; delivering the task again", lease_key)
    raise task.retry(countdown=0, max_retries=None)


def _draining(jobs: JobStore, job_id: str) -> bool:
    """The body stopped because this worker shuts down, not because a user cancelled the job."""
    return drain.requested() and not jobs.cancel_requested(job_id)


def _requeue(task: Any, jobs: JobStore, job_id: str, part: str | None) -> None:
    """This worker shuts down (SIGTERM): the task stopped at a step and checkpointed; the job goes
    back to the queue and the task is sent again, to resume there (``gdgan.jobs.drain``)."""
    why = drain.reason()
    where = f" part {part}" if part else ""
    log.warning("job %s%s: %s; checkpointed, requeued", job_id, where, why)
    jobs.publish(job_id, "requeued", {"part": part, "reason": why})
    if part:
        jobs.set_part(job_id, part, "queued")
    else:
        jobs.set_progress(job_id, {"message": f"{why}: checkpointed and requeued"})
        jobs.set_status(job_id, "queued", allowed_from={"running"})
    raise task.retry(countdown=0, max_retries=None)


def _overall_eta(elapsed_s: float, fraction: float, phase_eta_s: float | None) -> float | None:
    """The whole job's ETA, extrapolated from its own pace: a phase's ETA ignores the phases
    still to come. Before 2 % of the job the pace means little, so the phase's ETA stands."""
    if fraction >= 1.0:
        return 0.0
    if fraction < 0.02 or elapsed_s <= 0:
        return phase_eta_s
    return elapsed_s * (1.0 - fraction) / fraction


def _make_stop(jobs: JobStore, job_id: str, lease: Lease) -> Callable[[], bool]:
    """The cooperative cancel flag, also raised when the lease is lost; read from Redis at most
    every 0.1 s (training calls it every step)."""
    state = {"t": 0.0, "v": False}

    def should_stop() -> bool:
        if lease.lost.is_set() or drain.requested():
            return True
        now = time.monotonic()
        if not state["v"] and now - state["t"] >= 0.1:
            state["t"] = now
            try:
                state["v"] = jobs.cancel_requested(job_id)
            except redis.RedisError:  # cannot read the flag now: keep going, ask again later
                state["v"] = False
        return bool(state["v"])

    return should_stop


def run_job(
    task: Any,
    job_id: str,
    body: Callable[[JobContext], tuple[str, dict[str, Any]] | None],
    part: str | None = None,
) -> None:
    """The shared life cycle (see the module docstring). ``body`` returns (status, result), or
    None when the job continues elsewhere (evaluation fan-out)."""
    jobs = job_store()
    try:
        rec = jobs.get(job_id)
    except JobNotFound:
        log.warning("job %s has no record (expired?): dropping the task", job_id)
        return
    if rec.terminal:
        log.info("job %s already %s: redelivered task is a no-op", job_id, rec.status)
        return
    if jobs.cancel_requested(job_id):
        jobs.set_status(job_id, "cancelled")
        return
    lease_key = f"{job_id}:{part}" if part else job_id
    owner = f"{socket.gethostname()}:{os.getpid()}:{getattr(task.request, 'id', '')}"
    if not jobs.acquire_lease(lease_key, owner):
        holder = jobs.lease_owner(lease_key)
        log.info("job %s is run by %s: re-checking in %.0f s", lease_key, holder, jobs.lease_s)
        raise task.retry(countdown=jobs.lease_s, max_retries=None)
    lease = Lease(jobs, lease_key, owner).start()
    token = _LEASE.set(lease)
    where = f" part {part}" if part else ""
    try:
        if part:
            # a fan-out part: the job is 'running' once; attempts count deliveries of whole jobs
            jobs.set_status(job_id, "running", allowed_from={"queued"})
            if jobs.get(job_id).terminal:
                return
            jobs.set_part(job_id, part, "running")
        elif jobs.set_status(job_id, "running", allowed_from={"queued", "running"}) is None:
            return  # cancelled or finished between the checks above and now
        ctx = JobContext(
            job_id=job_id,
            params=rec.params,
            progress=_ProgressPublisher(jobs, job_id, part, lease),
            should_stop=_make_stop(jobs, job_id, lease),
            part=part,
        )
        try:
            outcome = body(ctx)
        except Exception as exc:
            if isinstance(exc, redis.RedisError):
                raise  # Redis itself is gone: handled below, not a failure of the job
            if not lease.held():
                log.warning("job %s%s: lease lost (%s)", job_id, where, exc)
                _hand_over(task, jobs, lease_key)
                return
            if isinstance(exc, Cancelled) and _draining(jobs, job_id):
                _requeue(task, jobs, job_id, part)
            if isinstance(exc, Cancelled) or ctx.should_stop():
                log.info("job %s%s cancelled: %s", job_id, where, exc)
                if part:
                    jobs.set_part(job_id, part, "cancelled")
                jobs.set_status(job_id, "cancelled")
                return
            log.error("job %s%s failed:\n%s", job_id, where, traceback.format_exc())
            if part:
                jobs.set_part(job_id, part, "failed")
                jobs.flag_stop(job_id)  # the job failed: its other parts stop at their next step
            jobs.set_status(job_id, "failed", error=(f"{part}: " if part else "") + human_error(exc))
            return
        if outcome is None:
            return
        if not lease.held():
            log.warning("job %s%s: lease lost; not recording %s", job_id, where, outcome[0])
            _hand_over(task, jobs, lease_key)
            return
        status, result = outcome
        if status == "cancelled" and _draining(jobs, job_id):
            _requeue(task, jobs, job_id, part)
        if part:
            jobs.set_part(job_id, part, status)
        jobs.set_status(job_id, status, result=result)
    except redis.RedisError as exc:
        # Redis went away mid-run (a restart): the job record cannot be updated and the broker may
        # not get this message back, so the job would be orphaned in 'running'. Wait for Redis,
        # then deliver the task again: it resumes from the last committed checkpoint.
        log.warning("job %s%s: Redis unreachable (%s); redelivering once it is back", job_id, where, exc)
        _await_redis(jobs, timeout_s=max(60.0, 10 * jobs.lease_s))
        raise task.retry(countdown=0, max_retries=None) from None
    finally:
        _LEASE.reset(token)
        lease.close()


def _fenced(store: Any) -> Any:
    """Commits from this store need the current job's lease (a no-op outside a job)."""
    lease = _LEASE.get()
    if lease is not None:
        store.fence = lease.fence
    return store


def _store():  # -> ArtifactStore
    from gdgan.store import open_store

    return _fenced(open_store())


def _threads() -> None:
    n = get_settings().num_threads
    if n:
        import torch

        torch.set_num_threads(n)


# --------------------------------------------------------------------------------------------
# ingest
def _ingest_body(ctx: JobContext) -> tuple[str, dict[str, Any]]:
    p = ctx.params
    store = _store()
    dataset_id = p["dataset_id"]
    if store.exists(dataset_id):  # a redelivered task after the artifact was committed
        return "succeeded", {"dataset_id": dataset_id}
    if p["source"] == "phantom":
        from gdgan.data.phantom import PhantomConfig, make_phantom

        ctx.progress(Progress("phantom", 0, p["n"], message="drawing phantom images"))
        ds = make_phantom(
            PhantomConfig(n=p["n"], size=p["size"], seed=p["seed"]),
            progress=lambda done, total: ctx.progress(Progress("phantom", done, total)),
        )
        ds.save(store, artifact_id=dataset_id)
        ctx.progress(Progress("phantom", p["n"], p["n"], message="saved"))
    elif p["source"] == "nih":
        from gdgan.data.nih import ingest_nih_to_store

        ingest_nih_to_store(
            csv=p["csv"],
            images=p["images"],
            size=p["size"],
            store=store,
            artifact_id=dataset_id,
            progress=ctx.progress,
            should_stop=ctx.should_stop,
            age_band=bool(p.get("age_band")),
        )
    else:  # chexpert, mimic, padchest, vindr, csv, folder
        from gdgan.data.adapters import ingest_source_to_store

        skip = ("source", "size", "limit", "dataset_id", "age_band")
        options = {k: v for k, v in p.items() if k not in skip}
        ingest_source_to_store(
            p["source"],
            p["size"],
            options,
            store,
            artifact_id=dataset_id,
            progress=ctx.progress,
            should_stop=ctx.should_stop,
            limit=p.get("limit"),
            age_band=bool(p.get("age_band")),
        )
    if ctx.should_stop() and not store.exists(dataset_id):
        return "cancelled", {}
    return "succeeded", {"dataset_id": dataset_id}


@app.task(name="gdgan.ingest", bind=True)
def ingest_task(self: Any, job_id: str) -> None:
    run_job(self, job_id, _ingest_body)


# --------------------------------------------------------------------------------------------
# train
def _train_body(ctx: JobContext) -> tuple[str, dict[str, Any]]:
    from gdgan.data.dataset import load_dataset
    from gdgan.training.api import train

    _threads()
    p = ctx.params
    store = _store()
    ds = load_dataset(store, p["dataset_id"])
    if p["model"] == "gdgan":
        ctx.progress.phases = ["stage1", "stage2"]
    jobs = ctx.progress.jobs

    def preview(phase: str, step: int, png: bytes) -> None:
        try:
            jobs.set_preview(ctx.job_id, phase, step, png)
        except redis.RedisError as exc:  # a preview is best effort, like progress; training goes on
            log.warning("preview write failed for %s: %s", ctx.job_id, exc)

    if int(p.get("nproc_per_node") or 1) > 1:
        return _train_distributed(ctx, preview)
    res = train(
        p["model"],
        ds,
        store=store,
        preset=p.get("preset", "demo"),
        overrides=p.get("overrides") or None,
        split_seed=p.get("split_seed", 0),
        stage1_model=p.get("stage1_model"),
        run_id=ctx.job_id,
        progress=ctx.progress,
        should_stop=ctx.should_stop,
        preview=preview,
        preview_every=get_settings().job_preview_every_steps,
    )
    result: dict[str, Any] = {"model_ids": dict(res.model_ids or {})}
    if res.model_id:
        result["model_id"] = res.model_id
    return res.status, result


def _train_distributed(
    ctx: JobContext, preview: Callable[[str, int, bytes], None]
) -> tuple[str, dict[str, Any]]:
    """The job's ranks under torchrun, supervised by this worker (:mod:`gdgan.training.launch`):
    it keeps the lease and publishes rank 0's progress; cancel reaches every rank through a stop
    file; a lost lease kills the rank group, so a job taken over elsewhere gets no more writes."""
    from gdgan.training.launch import Launch, RankFailure, run_ranks

    p = ctx.params
    spec = {
        "kind": p["model"],
        "dataset_id": p["dataset_id"],
        "preset": p.get("preset", "demo"),
        "overrides": p.get("overrides") or None,
        "split_seed": p.get("split_seed", 0),
        "stage1_model": p.get("stage1_model"),
        "run_id": ctx.job_id,
    }
    launch = Launch(
        int(p["nproc_per_node"]), rdzv_id=ctx.job_id, max_restarts=get_settings().ddp_max_restarts
    )
    try:
        res = run_ranks(
            spec,
            launch,
            progress=ctx.progress,
            should_stop=ctx.should_stop,
            preview=preview,
            must_abort=ctx.progress.lease.lost.is_set,
        )
    except RankFailure as exc:  # the job record gets the one line; the worker log torchrun's report
        log.error("job %s: torchrun's report:\n%s", ctx.job_id, exc.tail)
        raise
    result: dict[str, Any] = {
        "model_ids": dict(res.get("model_ids") or {}),
        "nproc_per_node": launch.nproc_per_node,
    }
    if res.get("id"):
        result["model_id"] = res["id"]
    return str(res["status"]), result


@app.task(name="gdgan.train", bind=True)
def train_task(self: Any, job_id: str) -> None:
    run_job(self, job_id, _train_body)


# --------------------------------------------------------------------------------------------
# generate (large sets -> a 'synthetic' artifact)
def _generate_body(ctx: JobContext) -> tuple[str, dict[str, Any]]:
    from gdgan.imageset import SYNTHETIC_KIND, ZIP_FILE, write_synthetic_set
    from gdgan.training.sampling import load_generator

    _threads()
    p = ctx.params
    store = _store()
    gen = load_generator(store, p["model"])
    m = write_synthetic_set(
        store,
        gen,
        int(p["n"]),
        finding=p.get("finding"),
        gender=p.get("gender"),
        view=p.get("view"),
        seed=p.get("seed"),
        stage=p.get("stage", 2),
        age_band=p.get("age_band"),
        chunk=get_settings().generate_max_batch,
        config=dict(p),
        progress=ctx.progress,
        should_stop=ctx.should_stop,
        artifact_id=job_artifact_id(SYNTHETIC_KIND, ctx.job_id),  # redelivered: no second set
    )
    return "succeeded", {
        "artifact_id": m.id,
        "model_id": gen.model_id,
        "seed": m.meta["seed"],
        "download": f"/v1/synthetic/{m.id}/{ZIP_FILE}",
    }


@app.task(name="gdgan.generate", bind=True)
def generate_task(self: Any, job_id: str) -> None:
    run_job(self, job_id, _generate_body)
