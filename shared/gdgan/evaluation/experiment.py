"""The paper's experiment as independent steps, so the job system can fan them out.

``train_split_gans`` (per repeat) → ``run_classifier`` (per strategy × repeat, independent) →
``assemble_report`` (once). ``run_evaluation`` runs them all in sequence (the CLI path). Every
step rebuilds the dataset, splits and training sets from the plan alone, and every random draw
is seeded from ``plan.seed``, so a worker anywhere computes the same thing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gdgan.evaluation.assemble import assemble_report
from gdgan.evaluation.auc import AUCError, roc_auc, roc_curve, thin_curve
from gdgan.evaluation.augment import label_mix, plan_training_set
from gdgan.evaluation.classifier import predict_logits, train_classifier
from gdgan.evaluation.context import (
    EvaluationCancelled,
    EvaluationError,
    load_eval_dataset,
    plan_device,
    plan_key,
    plan_splits,
    target_column,
)
from gdgan.evaluation.lineage import check_lineage
from gdgan.evaluation.plan import GAN_STRATEGIES, EvaluationPlan
from gdgan.evaluation.synthetic import sample_labelled
from gdgan.progress import Progress, ProgressCallback, StopFlag, never_stop, no_progress
from gdgan.store import ArtifactStore

__all__ = [
    "EvaluationCancelled",
    "EvaluationError",
    "assemble_report",
    "load_eval_dataset",
    "plan_splits",
    "run_classifier",
    "run_evaluation",
    "target_column",
    "train_split_gans",
]

PART_KIND = "eval-part"
PART_FILE = "part.json"


def _prefixed(progress: ProgressCallback, label: str) -> ProgressCallback:
    def cb(p: Progress) -> None:
        progress(
            Progress(
                f"{label} {p.phase}".strip(), p.step, p.total, p.losses, p.images_per_s, p.eta_s, p.message
            )
        )

    return cb


# ------------------------------------------------------------------------------------ GANs ---
def train_split_gans(
    plan: EvaluationPlan,
    repeat: int,
    store: ArtifactStore,
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
    kinds: tuple[str, ...] = ("gdgan", "acgan"),
    stage1_only: bool = False,
) -> dict[str, Any]:
    """Model ids of the GANs for repeat ``repeat``: given ones, or trained on that split's
    training part only. Includes the lineage check of each. ``kinds`` limits it to some GANs
    (the job queue trains each (kind, split) as its own task, so both trainers stay busy);
    ``stage1_only`` trains a GDGAN's stage 1 only (its own task; the models then hold the
    stage-1 model, and the same call without it resumes the run with stage 2)."""
    ds = load_eval_dataset(store, plan.dataset_id)
    split = plan_splits(plan, ds)[repeat]
    preset = plan.eval_preset()
    out: dict[str, Any] = {
        "repeat": repeat,
        "split_seed": split.seed,
        "models": {},
        "lineage": {},
        "trained_here": {},
    }
    for kind, given in (("gdgan", plan.gdgan_model), ("acgan", plan.acgan_model)):
        if kind not in plan.strategies or kind not in kinds:
            continue
        if given:
            from gdgan.training.sampling import resolve_model

            model_id = resolve_model(store, given).id
            out["trained_here"][kind] = False
        else:
            from gdgan.training.api import train

            if should_stop():
                raise EvaluationCancelled("evaluation cancelled")
            res = train(
                kind,
                ds,
                store=store,
                preset=preset.gan_preset,
                overrides=preset.gan_overrides,
                split_seed=split.seed,
                train_idx=split.train,
                run_id=f"eval-{plan_key(plan)}-r{repeat}-{kind}",
                progress=_prefixed(progress, f"{kind} r{repeat}"),
                should_stop=should_stop,
                device=plan_device(plan),
                stop_after="stage1" if stage1_only and kind == "gdgan" else None,
            )
            if res.status != "succeeded" or not res.model_id:
                raise EvaluationCancelled(f"{kind} training for repeat {repeat} was cancelled")
            model_id = res.model_id
            out["trained_here"][kind] = True
        out["models"][kind] = model_id
        out["lineage"][kind] = check_lineage(store, model_id, plan.dataset_id, split.seed, split.train)
    return out


# ------------------------------------------------------------------------------ classifier ---
def run_classifier(
    plan: EvaluationPlan,
    repeat: int,
    strategy: str,
    gan_ids: dict[str, Any],
    store: ArtifactStore,
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
    artifact_id: str | None = None,
) -> dict[str, Any]:
    """Build ``strategy``'s training set for split ``repeat``, train the classifier, score the
    test part. ``gan_ids``: ``train_split_gans``'s result (or {"models": {...}}). Stored as an
    ``eval-part`` artifact; the returned dict (JSON-able) carries its id. ``artifact_id`` (a job
    part's, :func:`gdgan.jobs.records.job_artifact_id`) makes it idempotent: a part already
    committed under that id is returned as stored, not trained and stored a second time."""
    if artifact_id is not None and store.exists(artifact_id):
        return {**store.get_json(artifact_id, PART_FILE), "artifact_id": artifact_id}
    if strategy not in plan.strategies:
        raise EvaluationError(f"strategy {strategy!r} is not in this plan ({', '.join(plan.strategies)})")
    ds = load_eval_dataset(store, plan.dataset_id)
    split = plan_splits(plan, ds)[repeat]
    preset = plan.eval_preset()
    t = target_column(plan, ds)
    for part in ("train", "val", "test"):
        y = t[split.part(part)]
        if not y.any() or y.all():
            raise EvaluationError(
                f"split {split.seed} ({part} part) has {int(y.sum())} {plan.finding} positives of {len(y)} "
                "images: AUC needs both classes; use a larger dataset"
            )
    ts = plan_training_set(
        strategy,
        split.train,
        t,
        ds.labels["gender"],
        ds.labels["view"],
        plan.share,
        seed=plan.seed_for("set", strategy, repeat),
    )
    x_real = np.asarray(ds.images[ts.real_indices])
    y_real = t[ts.real_indices]
    model_id = None
    if strategy in GAN_STRATEGIES:
        models = gan_ids.get("models", gan_ids)
        model_id = models.get(strategy)
        if not model_id:
            raise EvaluationError(f"strategy {strategy!r} needs a {strategy} model id for repeat {repeat}")
        from gdgan.training.sampling import load_generator

        gen = load_generator(store, model_id, device=plan_device(plan))
        n = ts.counts.positives_added_synthetic
        syn = sample_labelled(
            gen,
            plan.finding,
            ts.synthetic_gender,
            ts.synthetic_view,
            np.ones(n, np.uint8),
            plan.seed_for("synthetic", strategy, repeat),
            ds.size,
        )
        x_train = np.concatenate([x_real, syn.images])
        y_train = np.concatenate([y_real, np.ones(n, np.uint8)])
    else:
        x_train, y_train = x_real, y_real
    # Same classifier seed for every strategy of a repeat: the comparison is paired.
    tc = train_classifier(
        x_train,
        y_train,
        np.asarray(ds.images[split.val]),
        t[split.val],
        preset.classifier,
        seed=plan.seed_for("classifier", repeat),
        device=plan_device(plan),
        progress=_prefixed(progress, f"classifier {strategy} r{repeat}"),
        should_stop=should_stop,
    )
    if tc.cancelled:
        raise EvaluationCancelled(f"classifier {strategy} r{repeat} cancelled")
    y_test = t[split.test]
    scores = predict_logits(tc.model, np.asarray(ds.images[split.test]), device=plan_device(plan))
    try:
        auc: float | None = roc_auc(y_test, scores)
        fpr, tpr, _ = roc_curve(y_test, scores)
        roc = thin_curve(fpr, tpr)
    except AUCError:
        auc, roc = None, None
    pos_idx = split.train[t[split.train] == 1]
    result: dict[str, Any] = {
        "strategy": strategy,
        "repeat": repeat,
        "split_seed": split.seed,
        "split_sizes": split.sizes(),
        "counts": ts.counts.to_dict(),
        "synthetic_label_mix": label_mix(ts.synthetic_gender, ts.synthetic_view)
        if len(ts.synthetic_gender)
        else None,
        "real_positive_label_mix": label_mix(ds.labels["gender"][pos_idx], ds.labels["view"][pos_idx]),
        "gan_model": model_id,
        "gan_ids": gan_ids.get("models", gan_ids),
        "test_auc": auc,
        "test_labels": [int(v) for v in y_test],
        "test_scores": [round(float(v), 6) for v in scores],
        "roc": roc,
        "classifier": {**tc.summary(), "config": preset.classifier.model_dump()},
    }
    parents = [plan.dataset_id] + ([model_id] if model_id else [])
    with store.writer(PART_KIND, artifact_id) as w:
        w.put_json(PART_FILE, result)
        m = w.commit(
            config={"plan": plan.model_dump()},
            parents=parents,
            meta={"strategy": strategy, "repeat": repeat, "test_auc": auc},
        )
    result["artifact_id"] = m.id
    return result


# ------------------------------------------------------------------------------ everything ---
def _overall(progress: ProgressCallback, total_units: float) -> tuple[ProgressCallback, list[float]]:
    """Map sub-task progress onto one overall bar (``done`` units + current fraction)."""
    state = [0.0]

    def sub(label: str, weight: float) -> ProgressCallback:
        def cb(p: Progress) -> None:
            frac = (state[0] + weight * p.fraction) / total_units
            progress(
                Progress(
                    "evaluation",
                    int(frac * 1000),
                    1000,
                    p.losses,
                    p.images_per_s,
                    None,
                    f"{label}: {p.phase} {p.step}/{p.total}",
                )
            )

        return cb

    return sub, state  # type: ignore[return-value]


def run_evaluation(
    plan: EvaluationPlan,
    store: ArtifactStore,
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
) -> str:
    """Every step in sequence; returns the report artifact id."""
    from gdgan.settings import get_settings

    if get_settings().num_threads:  # e.g. 1 on a shared machine, where OpenMP threads thrash
        import torch

        torch.set_num_threads(get_settings().num_threads)
    gan_w = 4.0 if plan.gdgan_model is None else 0.1  # training a GAN pair outweighs a classifier
    units = plan.repeats * (gan_w + len(plan.strategies)) + 2.0
    sub, done = _overall(progress, units)
    parts: list[dict[str, Any]] = []
    splits_gans: list[dict[str, Any]] = []
    for r in range(plan.repeats):
        gans = (
            train_split_gans(plan, r, store, sub(f"GANs r{r}", gan_w), should_stop)
            if plan.needs_gans()
            else {"repeat": r, "models": {}, "lineage": {}}
        )
        splits_gans.append(gans)
        done[0] += gan_w
        for s in plan.strategies:
            if should_stop():
                raise EvaluationCancelled("evaluation cancelled")
            parts.append(
                run_classifier(plan, r, s, gans, store, sub(f"classifier {s} r{r}", 1.0), should_stop)
            )
            done[0] += 1.0
    report_id = assemble_report(
        plan, parts, store, progress=sub("report", 2.0), should_stop=should_stop, gans=splits_gans
    )
    done[0] += 2.0
    progress(Progress("evaluation", 1000, 1000, message=f"report {report_id}"))
    return report_id
