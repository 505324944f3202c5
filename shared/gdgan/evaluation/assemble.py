"""Assemble the report: aggregate the classifier parts (Table 2, Figure 3, paired comparisons),
add the image-quality sections (Table 1 and friends; :mod:`gdgan.evaluation.sections`, read back
when the job queue computed them beforehand) and store everything as one ``report`` artifact
(report.json, report.html, roc.json, roc.png, sample grids)."""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gdgan import __version__
from gdgan.evaluation.auc import roc_auc
from gdgan.evaluation.context import (
    EvaluationError,
    load_eval_dataset,
    plan_splits,
    target_column,
)
from gdgan.evaluation.lineage import check_lineage
from gdgan.evaluation.paper import PAPER_REF, PAPER_TABLE1, PAPER_TABLE2
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.evaluation.sections import SECTIONS, compute_section, load_section, split0_generators
from gdgan.evaluation.stats import bootstrap_mean_auc_ci, mean_sd, paired_difference, t_interval
from gdgan.progress import ProgressCallback, StopFlag, never_stop, no_progress
from gdgan.store import ArtifactStore, StoreError

REPORT_KIND = "report"
REPORT_SCHEMA_VERSION = 1


INTERVALS = {
    "repeat_ci": "repeat-level 95% t-interval over repeats (train again on new data); verdicts use it",
    "pooled_ci": "test-set bootstrap 95% CI, classifiers fixed (test-image sampling only)",
    "t_ci": "repeat-level 95% t-interval of the paired difference; verdicts use it",
    "bootstrap_ci": "test-set paired bootstrap 95% CI of the difference, classifiers fixed",
}


def classification_summary(plan: EvaluationPlan, parts: list[dict[str, Any]], n_boot: int) -> dict[str, Any]:
    """Table 2 rows, ROC data and paired comparisons against ``none``."""
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for p in parts:
        by.setdefault(p["strategy"], {})[int(p["repeat"])] = p
    rows: dict[str, Any] = {}
    for s in plan.strategies:
        runs = by.get(s, {})
        missing = [r for r in range(plan.repeats) if r not in runs]
        if missing:
            raise EvaluationError(f"missing classifier results for strategy {s!r}, repeats {missing}")
        reps = [runs[r] for r in range(plan.repeats)]
        aucs = [r["test_auc"] for r in reps]
        y = np.concatenate([np.asarray(r["test_labels"]) for r in reps])
        sc = np.concatenate([np.asarray(r["test_scores"]) for r in reps])
        rows[s] = {
            "auc_per_repeat": aucs,
            **{f"auc_{k}": v for k, v in mean_sd([a for a in aucs if a is not None]).items()},
            # Two 95 % CIs of the mean AUC (stats module docstring): over repeats (retraining on
            # new data; verdicts use it) and the test-set bootstrap with classifiers fixed
            # (resampled within each repeat: each classifier keeps its own score scale).
            "repeat_ci": t_interval(aucs),
            "pooled_ci": bootstrap_mean_auc_ci(
                [(np.asarray(r["test_labels"]), np.asarray(r["test_scores"])) for r in reps],
                n_boot=n_boot,
                seed=plan.seed_for("boot", s),
            ),
            # One AUC over concatenated logits of all repeats (mixes score scales; for reference).
            "concatenated_auc": roc_auc(y, sc),
            "counts_per_repeat": [r["counts"] for r in reps],
            "counts_mean": {
                k: float(np.mean([r["counts"][k] for r in reps])) for k in ("total", "positives")
            },
            "gan_models": [r.get("gan_model") for r in reps],
            "classifier_per_repeat": [
                {k: v for k, v in r["classifier"].items() if k != "history"} for r in reps
            ],
            "part_ids": [r.get("artifact_id") for r in reps],
            "roc_per_repeat": [r["roc"] for r in reps],
        }
    paired: dict[str, Any] = {}
    if "none" in rows:
        base = [by["none"][r] for r in range(plan.repeats)]
        for s in plan.strategies:
            if s == "none":
                continue
            runs_s = [by[s][r] for r in range(plan.repeats)]
            paired[s] = paired_difference(
                [(np.asarray(r["test_labels"]), np.asarray(r["test_scores"])) for r in runs_s],
                [(np.asarray(r["test_labels"]), np.asarray(r["test_scores"])) for r in base],
                n_boot=n_boot,
                seed=plan.seed_for("paired", s),
            )
    return {"rows": rows, "paired_vs_none": paired, "intervals": INTERVALS}


def _lineage(
    plan: EvaluationPlan, store: ArtifactStore, parts: list[dict[str, Any]], gans: list[dict[str, Any]] | None
) -> dict[str, Any]:
    ds = load_eval_dataset(store, plan.dataset_id)
    splits = plan_splits(plan, ds)
    per_repeat: list[dict[str, Any]] = []
    for r, split in enumerate(splits):
        ids: dict[str, str] = {}
        if gans and r < len(gans):
            ids.update(gans[r].get("models", {}))
        for p in parts:
            if int(p["repeat"]) == r:
                ids.update({k: v for k, v in (p.get("gan_ids") or {}).items() if v})
        checks = {
            k: check_lineage(store, v, plan.dataset_id, split.seed, split.train) for k, v in ids.items()
        }
        per_repeat.append(
            {"repeat": r, "split_seed": split.seed, "sizes": split.sizes(), "models": ids, "checks": checks}
        )
    all_ok = all(c["ok"] for pr in per_repeat for c in pr["checks"].values())
    statement = (
        "Every GAN used for a split was trained on that split's training part only (dataset id, split seed "
        "and training-index fingerprint checked against the model manifests)."
        if all_ok
        else "WARNING: some GANs were not trained on the training part of the split they were used for; "
        "they may "
        "have seen validation/test images (see checks)."
    )
    return {"dataset_id": plan.dataset_id, "repeats": per_repeat, "all_ok": all_ok, "statement": statement}


def assemble_report(
    plan: EvaluationPlan,
    parts: list[dict[str, Any]],
    store: ArtifactStore,
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
    gans: list[dict[str, Any]] | None = None,
    sections: dict[str, str] | None = None,
    artifact_id: str | None = None,
) -> str:
    """Aggregate ``parts`` (run_classifier results), add the quality sections, store the report.

    ``sections``: {section name: ``eval-section`` artifact id} computed beforehand by the job
    queue (:mod:`gdgan.evaluation.sections`); a section not given is computed here.
    ``artifact_id`` (a job's) makes it idempotent: a report already committed under that id is
    kept, not assembled a second time."""
    if artifact_id is not None and store.exists(artifact_id):
        return artifact_id
    from gdgan.evaluation.report import render_html, roc_png

    t0 = time.perf_counter()
    preset = plan.eval_preset()
    ds = load_eval_dataset(store, plan.dataset_id)
    splits = plan_splits(plan, ds)
    target = target_column(plan, ds)
    classification = classification_summary(plan, parts, preset.bootstrap)
    lineage = _lineage(plan, store, parts, gans)
    first = lineage["repeats"][0]["models"] if lineage["repeats"] else {}
    results: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {}
    todo = [n for n in SECTIONS if not (sections or {}).get(n)]
    for name in SECTIONS:
        if name not in todo:
            results[name] = load_section(store, (sections or {})[name], name, first)
    if todo:
        generators = split0_generators(plan, store, first)
        for name in todo:
            results[name] = compute_section(name, plan, store, generators, progress, should_stop)
    quality, files = results["quality"]
    quality = dict(quality)
    files = dict(files)
    quality["harness"], harness_files = results["harness"]
    files.update(harness_files)
    report = build_report(
        plan, ds, splits, target, classification, lineage, quality, created=_parts_created(store, parts)
    )
    timings = pop_timings(report)
    timings["seconds"] = round(time.perf_counter() - t0, 2)
    roc_json = {s: row["roc_per_repeat"] for s, row in classification["rows"].items()}
    roc_bytes = roc_png(classification, plan.finding)
    html = render_html(report, {**files, "roc.png": roc_bytes})
    parents = [plan.dataset_id, *sorted({v for pr in lineage["repeats"] for v in pr["models"].values()})]
    with store.writer(REPORT_KIND, artifact_id) as w:
        w.put_json("report.json", report)
        w.put_bytes("report.html", html.encode())
        w.put_json("roc.json", roc_json)
        w.put_json("timings.json", timings)
        w.put_bytes("roc.png", roc_bytes)
        for name, data in files.items():
            w.put_bytes(name, data)
        m = w.commit(
            config={"plan": plan.model_dump(), "preset": preset.model_dump()},
            parents=parents,
            meta={"finding": plan.finding, "summary": report_summary(report), "timings": timings},
        )
    return m.id


def build_report(
    plan: EvaluationPlan,
    ds: Any,
    splits: list[Any],
    target: np.ndarray,
    classification: dict[str, Any],
    lineage: dict[str, Any],
    quality: dict[str, Any],
    created: str = "",
) -> dict[str, Any]:
    """The report.json document (see :mod:`gdgan.evaluation.schema`).

    Nothing in it depends on when or how fast it was assembled, so re-assembling the same
    stored parts gives the same bytes: ``created`` is when the newest stored part was made,
    and run times go to ``timings.json`` and the manifest (:func:`pop_timings`)."""
    preset = plan.eval_preset()
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created": created or datetime.now(UTC).isoformat(),
        "code_version": __version__,
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "torch": _torch_version(),
        },
        "plan": plan.model_dump(),
        "preset": preset.model_dump(),
        "finding": plan.finding,
        "positive_share": plan.share,
        "dataset": {
            "id": plan.dataset_id,
            "n": len(ds),
            "size": ds.size,
            "source": ds.config.get("source"),
            "counts": ds.counts(),
        },
        "splits": [
            {
                "repeat": r,
                "seed": s.seed,
                **s.sizes(),
                "test_positives": int(target[s.test].sum()),
                "train_positives": int(target[s.train].sum()),
            }
            for r, s in enumerate(splits)
        ],
        "lineage": lineage,
        "table2": classification,
        "quality": quality,
        "paper": {"reference": PAPER_REF, "table1": PAPER_TABLE1, "table2": PAPER_TABLE2},
    }


# Paths of the run-time figures inside report.json: they differ from one assembly to the next.
TIMING_PATHS: tuple[tuple[str, ...], ...] = (
    ("seconds",),
    ("quality", "seconds"),
    ("quality", "domain_network", "seconds"),
)


def pop_timings(report: dict[str, Any]) -> dict[str, Any]:
    """Remove the run-time figures from ``report`` and return them ({"quality/seconds": ...})."""
    out: dict[str, Any] = {}
    for path in TIMING_PATHS:
        node: Any = report
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            out["/".join(path)] = node.pop(path[-1])
    return out


def _parts_created(store: ArtifactStore, parts: list[dict[str, Any]]) -> str:
    """When the newest stored part was made ("" when the parts were never stored)."""
    times = []
    for p in parts:
        if p.get("artifact_id"):
            try:
                times.append(store.manifest(p["artifact_id"]).created)
            except (StoreError, ValueError):
                continue
    return max(times) if times else ""


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a listing shows: mean AUC per strategy and the IS means."""
    rows = report["table2"]["rows"]
    inc = report["quality"]["inception_score"]
    net = "imagenet" if inc["imagenet"].get("available") else "domain"
    return {
        "auc": {s: r["auc_mean"] for s, r in rows.items()},
        "inception_score": {k: v["mean"] for k, v in inc[net]["scores"].items()},
        "inception_network": net,
    }


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, sort_keys=True)
