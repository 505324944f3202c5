"""Celery tasks of the evaluation fan-out (the tasks' life cycle is ``gdgan.jobs.tasks``).

Evaluation fans out without Celery chords, which do not compose with the per-job idempotency
of ``run_job``: one task per (GAN, split) training (queue ``train``) and per (strategy × repeat)
classifier (queue ``eval``); a GAN part is one GAN of one split. Each part stores its result in
the job's parts hash; a GAN part enqueues the classifier part that needs its model. A GDGAN
trained here is two parts: its stage 1 (``gan:gdgan1:rK``, at fan-out) enqueues its stage 2 and
bundle (``gan:gdgan:rK``, the part whose result is the model), so the trainers' queue holds
pieces of 1.5–2 minutes and the job does not end on one trainer finishing a whole GDGAN while
the other core waits. The report's two heavy sections (``sec:quality``, ``sec:harness``;
:mod:`gdgan.evaluation.sections`) are parts too, enqueued on ``eval`` once split 0's GANs exist,
so they run beside the remaining GAN training instead of alone at the end; the part that
completes the set enqueues the report task
(exactly once, via SET NX), which then only aggregates.
"""

from __future__ import annotations

from typing import Any

from gdgan.jobs.celery_app import EVAL_QUEUE, TRAIN_QUEUE, app, send
from gdgan.jobs.records import job_artifact_id
from gdgan.jobs.tasks import _LEASE, JobContext, _store, _threads, job_store, run_job
from gdgan.progress import Cancelled, Progress

GAN_STRATEGIES = ("acgan", "gdgan")
STAGE1 = "gdgan1"  # the part kind of a GDGAN's stage 1 ('gan:gdgan1:r0')


def part_artifact_id(job_id: str, part: str) -> str:
    """The ``eval-part`` id of a classifier part ('clf:none:r0'), fixed by the job and the part."""
    from gdgan.evaluation.experiment import PART_KIND

    return job_artifact_id(PART_KIND, job_id, part)


def section_artifact_id(job_id: str, part: str) -> str:
    """The ``eval-section`` id of a report-section part ('sec:quality'), fixed likewise."""
    from gdgan.evaluation.sections import SECTION_KIND

    return job_artifact_id(SECTION_KIND, job_id, part)


def _plan(params: dict[str, Any]):  # -> EvaluationPlan
    from gdgan.evaluation.plan import EvaluationPlan

    return EvaluationPlan.model_validate(params["plan"])


def eval_parts(plan: Any) -> tuple[list[str], list[str]]:
    """(GAN parts, classifier parts) of a plan: 'gan:gdgan:r0', 'clf:none:r0', ...

    One GAN part per (GAN strategy, repeat): it trains that GAN on that split's training part
    when the plan names no model, else only resolves and lineage-checks the given one. Split 0's
    GANs come first (the report's quality sections wait for them and then run beside the rest),
    then the other GDGANs (the longer) before the other ACGANs: with a part per split *and* kind
    the trainers share the work evenly, where one part per split left a trainer alone with the
    last split while a core waited."""
    kinds = [k for k in ("gdgan", "acgan") if k in plan.strategies]  # the longer first
    gans: list[str] = []
    if plan.needs_gans():
        gans = [f"gan:{k}:r0" for k in kinds]
        gans += [f"gan:{k}:r{r}" for k in kinds for r in range(1, plan.repeats)]
    clfs = [f"clf:{s}:r{r}" for r in range(plan.repeats) for s in plan.strategies]
    return gans, clfs


def stage1_parts(plan: Any) -> list[str]:
    """The GDGAN stage-1 parts ('gan:gdgan1:rK'), one per split whose GDGAN is trained here."""
    if "gdgan" not in plan.strategies or plan.gdgan_model or not plan.needs_gans():
        return []
    return [f"gan:{STAGE1}:r{r}" for r in range(plan.repeats)]


def fanout_gans(plan: Any) -> list[str]:
    """The GAN parts the orchestrator sends, in order: :func:`eval_parts`' order, each GDGAN
    trained here replaced by its stage-1 part (its stage 2 is sent when stage 1 is stored)."""
    split = set(stage1_parts(plan))
    out = []
    for g in eval_parts(plan)[0]:
        kind, r = _gan_part(g)
        s1 = f"gan:{STAGE1}:r{r}"
        out.append(s1 if kind == "gdgan" and s1 in split else g)
    return out


def section_parts() -> list[str]:
    """The report's quality sections as parts: 'sec:quality', 'sec:harness'."""
    from gdgan.evaluation.sections import SECTIONS

    return [f"sec:{name}" for name in SECTIONS]


def _gan_part(part: str) -> tuple[str, int]:
    """'gan:gdgan:r2' -> ('gdgan', 2)."""
    _, kind, rtag = part.split(":")
    return kind, int(rtag[1:])


def _gan_ids(results: dict[str, Any], repeat: int) -> dict[str, Any]:
    """The GAN parts of one repeat merged: {"repeat", "split_seed", "models", "lineage", ...}."""
    out: dict[str, Any] = {"repeat": repeat, "models": {}, "lineage": {}, "trained_here": {}}
    for kind in GAN_STRATEGIES:
        res = results.get(f"gan:{kind}:r{repeat}")
        if not res:
            continue
        for key, val in res.items():
            if isinstance(val, dict):
                out.setdefault(key, {}).update(val)
            else:
                out[key] = val
    return out


def _gan_queue(plan: Any, kind: str) -> str:
    """GAN training belongs on the trainer (GPU); resolving given models is cheap work for 'eval'."""
    given = plan.acgan_model if kind == "acgan" else plan.gdgan_model  # 'gdgan' or its 'gdgan1'
    return EVAL_QUEUE if given else TRAIN_QUEUE


def _evaluate_body(ctx: JobContext) -> None:
    """Orchestrator: record the parts, enqueue every part that can start now."""
    jobs = job_store()
    plan = _plan(ctx.params)
    gans, clfs = eval_parts(plan)
    secs = section_parts()
    s1 = stage1_parts(plan)
    for name in s1 + gans + clfs + secs:
        if name not in jobs.get(ctx.job_id).parts:
            jobs.set_part(ctx.job_id, name, "queued")
    if not jobs.claim_once(ctx.job_id, "fanout"):
        return None  # a redelivered orchestrator: the parts were sent already
    for name in fanout_gans(plan):
        send("gdgan.eval_gan", ctx.job_id, name, queue=_gan_queue(plan, _gan_part(name)[0]))
    for name in clfs:
        strategy = name.split(":")[1]
        if not (gans and strategy in GAN_STRATEGIES):
            send("gdgan.eval_classifier", ctx.job_id, name)
    if not gans:
        _maybe_sections(ctx.job_id, plan)
    total = len(s1) + len(gans) + len(clfs) + len(secs)
    ctx.progress(Progress("evaluate", 0, total, message="parts enqueued"))
    return None


@app.task(name="gdgan.evaluate", bind=True)
def evaluate_task(self: Any, job_id: str) -> None:
    run_job(self, job_id, _evaluate_body)


def _part_done(ctx: JobContext, result: dict[str, Any]) -> None:
    jobs = job_store()
    if (lease := _LEASE.get()) is not None:
        lease.fence()  # a part whose lease moved on must not publish a second result
    jobs.put_part_result(ctx.job_id, ctx.part or "", result)
    jobs.set_part(ctx.job_id, ctx.part or "", "succeeded")
    rec = jobs.get(ctx.job_id)
    total = len(rec.parts)
    done = sum(1 for v in rec.parts.values() if v == "succeeded")
    jobs.set_progress(
        monotonic=True,
        job_id=ctx.job_id,
        progress={
            "phase": "evaluate",
            "step": done,
            "total": total,
            "fraction": done / max(1, total),
            "message": f"{ctx.part} done",
        },
    )


def _eval_gan_body(ctx: JobContext) -> None:
    from gdgan.evaluation.experiment import train_split_gans

    _threads()
    jobs = job_store()
    plan = _plan(ctx.params)
    kind, repeat = _gan_part(ctx.part or "")
    done = jobs.part_results(ctx.job_id).get(ctx.part or "")
    if kind == STAGE1:
        if done is None:
            ids = train_split_gans(
                plan, repeat, _store(), ctx.progress, ctx.should_stop, kinds=("gdgan",), stage1_only=True
            )
            if ctx.should_stop():
                raise Cancelled(f"{ctx.part} stopped")
            _part_done(ctx, dict(ids))
        if jobs.claim_once(ctx.job_id, f"after:{ctx.part}"):  # redelivered: stage 2 sent once
            send("gdgan.eval_gan", ctx.job_id, f"gan:gdgan:r{repeat}", queue=_gan_queue(plan, "gdgan"))
        return None
    if done is None:
        ids = train_split_gans(plan, repeat, _store(), ctx.progress, ctx.should_stop, kinds=(kind,))
        if ctx.should_stop():
            raise Cancelled(f"{ctx.part} stopped")
        _part_done(ctx, dict(ids))
    if jobs.claim_once(ctx.job_id, f"after:{ctx.part}"):
        send("gdgan.eval_classifier", ctx.job_id, f"clf:{kind}:r{repeat}")
    if repeat == 0:
        _maybe_sections(ctx.job_id, plan)
    return None


def _maybe_sections(job_id: str, plan: Any) -> None:
    """Enqueue the report's quality sections once every split-0 GAN part has its model."""
    jobs = job_store()
    gans, _ = eval_parts(plan)
    results = jobs.part_results(job_id)
    first = [g for g in gans if g.endswith(":r0")]
    if all(g in results for g in first) and jobs.claim_once(job_id, "sections"):
        for name in section_parts():
            send("gdgan.eval_section", job_id, name)


def _eval_section_body(ctx: JobContext) -> None:
    from gdgan.evaluation.sections import store_section

    _threads()
    jobs = job_store()
    plan = _plan(ctx.params)
    name = (ctx.part or "").split(":", 1)[1]
    results = jobs.part_results(ctx.job_id)
    if ctx.part not in results:
        models = {k: str(v) for k, v in _gan_ids(results, 0).get("models", {}).items() if v}
        sid = store_section(
            name,
            plan,
            _store(),
            models,
            ctx.progress,
            ctx.should_stop,
            artifact_id=section_artifact_id(ctx.job_id, ctx.part or ""),  # redelivered: no second one
        )
        if ctx.should_stop():
            raise Cancelled(f"{ctx.part} stopped")
        _part_done(ctx, {"artifact_id": sid, "models": models})
    _maybe_report(ctx.job_id, plan)
    return None


@app.task(name="gdgan.eval_section", bind=True)
def eval_section_task(self: Any, job_id: str, part: str) -> None:
    run_job(self, job_id, _eval_section_body, part=part)


@app.task(name="gdgan.eval_gan", bind=True)
def eval_gan_task(self: Any, job_id: str, part: str) -> None:
    run_job(self, job_id, _eval_gan_body, part=part)


def _eval_classifier_body(ctx: JobContext) -> None:
    from gdgan.evaluation.experiment import run_classifier

    _threads()
    jobs = job_store()
    plan = _plan(ctx.params)
    _, strategy, rtag = (ctx.part or "").split(":")
    repeat = int(rtag[1:])
    results = jobs.part_results(ctx.job_id)
    if ctx.part not in results:
        gan_ids = _gan_ids(results, repeat)
        res = run_classifier(
            plan,
            repeat,
            strategy,
            gan_ids,
            _store(),
            ctx.progress,
            ctx.should_stop,
            artifact_id=part_artifact_id(ctx.job_id, ctx.part or ""),  # redelivered: no second part
        )
        if ctx.should_stop():
            raise Cancelled(f"{ctx.part} stopped")
        _part_done(ctx, dict(res))
    _maybe_report(ctx.job_id, plan)
    return None


def _maybe_report(job_id: str, plan: Any) -> None:
    jobs = job_store()
    _, clfs = eval_parts(plan)
    results = jobs.part_results(job_id)
    if all(c in results for c in clfs + section_parts()) and jobs.claim_once(job_id, "report"):
        send("gdgan.eval_report", job_id)


@app.task(name="gdgan.eval_classifier", bind=True)
def eval_classifier_task(self: Any, job_id: str, part: str) -> None:
    run_job(self, job_id, _eval_classifier_body, part=part)


def _eval_report_body(ctx: JobContext) -> tuple[str, dict[str, Any]]:
    from gdgan.evaluation.assemble import REPORT_KIND
    from gdgan.evaluation.experiment import assemble_report

    _threads()
    jobs = job_store()
    plan = _plan(ctx.params)
    _, clfs = eval_parts(plan)
    results = jobs.part_results(ctx.job_id)
    parts = [results[c] for c in clfs]
    gans = [_gan_ids(results, r) for r in range(plan.repeats)]
    sections = {p.split(":", 1)[1]: results[p]["artifact_id"] for p in section_parts() if p in results}
    ctx.progress(Progress("report", 0, 1, message="assembling the report"))
    report_id = assemble_report(
        plan,
        parts,
        _store(),
        progress=ctx.progress,
        should_stop=ctx.should_stop,
        gans=gans,
        sections=sections,
        artifact_id=job_artifact_id(REPORT_KIND, ctx.job_id),  # redelivered: no second report
    )
    return "succeeded", {"report_id": report_id}


@app.task(name="gdgan.eval_report", bind=True)
def eval_report_task(self: Any, job_id: str) -> None:
    run_job(self, job_id, _eval_report_body, part="report")
