"""The report's image-quality sections as parts of their own, computed before the report.

The two heavy sections of a report — ``quality`` (Table 1's inception score, FID/KID, label
fidelity, memorisation, sample grids) and ``harness`` (the judge's distances and GAN-test) —
depend only on the dataset and split 0's GANs, not on any classifier. Computed inside the
report task they ran last, alone, on one thread, while the other core waited. The job queue
instead computes each as its own task as soon as split 0's GANs exist (beside the remaining GAN
training and the classifiers), stores it as an ``eval-section`` artifact, and the report task
only reads them. Both are computed with :data:`REPORT_THREADS` and fixed seeds, so a section read
back gives exactly what the report would have computed itself: a report assembled from stored
sections is byte-equal to one that computed them (tested).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gdgan.evaluation.context import (
    EvaluationError,
    load_eval_dataset,
    plan_device,
    plan_splits,
    target_column,
)
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.progress import ProgressCallback, StopFlag, never_stop, no_progress
from gdgan.store import ArtifactStore

SECTION_KIND = "eval-section"
SECTIONS: tuple[str, ...] = ("quality", "harness")
SECTION_FILE = "section.json"
# The report's networks (domain network, judge) are trained and run with this many intra-op
# threads whatever the machine or GDGAN_NUM_THREADS: CPU kernels split their sums by thread, so
# another thread count changes the last bits of every step, and over a training run those bits
# grew into a different synthetic-image IS (ACGAN 1.0068 vs 1.0407 on re-assembly).
REPORT_THREADS = 1


@contextmanager
def fixed_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block, restored after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def split0_generators(plan: EvaluationPlan, store: ArtifactStore, models: dict[str, str]) -> dict[str, Any]:
    """The loaded generators the quality sections score (split 0's GDGAN and ACGAN)."""
    generators: dict[str, Any] = {}
    if models:
        from gdgan.training.sampling import load_generator

        for kind in ("acgan", "gdgan"):
            if models.get(kind):
                generators[kind] = load_generator(store, models[kind], device=plan_device(plan))
    return generators


def compute_section(
    name: str,
    plan: EvaluationPlan,
    store: ArtifactStore,
    generators: dict[str, Any],
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(JSON section, {file name: PNG}) of section ``name`` on split 0."""
    from gdgan.evaluation.harness_report import harness_section
    from gdgan.evaluation.quality import compute_quality

    if name not in SECTIONS:
        raise EvaluationError(f"unknown report section {name!r}; known: {', '.join(SECTIONS)}")
    preset = plan.eval_preset()
    ds = load_eval_dataset(store, plan.dataset_id)
    split = plan_splits(plan, ds)[0]
    with fixed_threads(REPORT_THREADS):
        if name == "quality":
            target = target_column(plan, ds)
            return compute_quality(
                plan, preset, ds, split, target, generators, progress, should_stop, device=plan_device(plan)
            )
        return harness_section(
            store,
            ds,
            split,
            generators,
            plan.finding,
            preset.harness_n,
            preset.harness_judge,
            plan.seed_for("harness"),
            progress,
        )


def store_section(
    name: str,
    plan: EvaluationPlan,
    store: ArtifactStore,
    models: dict[str, str],
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
    artifact_id: str | None = None,
) -> str:
    """Compute section ``name`` for split 0's ``models`` and store it; returns the artifact id.
    ``artifact_id`` (a job part's) makes it idempotent: a section already committed under that id
    (checked to be ``name`` of these ``models``) is kept, not computed and stored again."""
    if artifact_id is not None and store.exists(artifact_id):
        load_section(store, artifact_id, name, models)  # raises when it is another section
        return artifact_id
    section, files = compute_section(
        name, plan, store, split0_generators(plan, store, models), progress, should_stop
    )
    with store.writer(SECTION_KIND, artifact_id) as w:
        # not put_json: its sorted keys would reorder the harness's models, and the report's
        # tables list them in the order the section was computed
        w.put_bytes(SECTION_FILE, json.dumps(section).encode())
        for fname, data in files.items():
            w.put_bytes(fname, data)
        m = w.commit(
            config={"plan": plan.model_dump()},
            parents=[plan.dataset_id, *sorted(set(models.values()))],
            meta={"section": name, "models": dict(models)},
        )
    return m.id


def load_section(
    store: ArtifactStore, artifact_id: str, name: str, models: dict[str, str]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A stored section, checked to be ``name`` computed from exactly ``models``."""
    m = store.manifest(artifact_id)
    if m.kind != SECTION_KIND or m.meta.get("section") != name:
        raise EvaluationError(f"{artifact_id} is not a stored {name!r} report section")
    if dict(m.meta.get("models") or {}) != dict(models):
        raise EvaluationError(
            f"report section {artifact_id} scored models {m.meta.get('models')}, not split 0's {models}"
        )
    section = json.loads(store.get_bytes(artifact_id, SECTION_FILE))
    files = {f: store.get_bytes(artifact_id, f) for f in sorted(m.files) if f != SECTION_FILE}
    return section, files
