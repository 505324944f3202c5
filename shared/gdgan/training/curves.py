"""Quality curves over training: the harness on the EMA weights every ``quality_every`` steps.

``QualityCurve`` is the hook ``run_phase`` calls after each step with (step, EMA generator). At
the interval (and at the last step) it wraps the EMA weights in a sampler — stage 1: G1;
stage 2: the frozen G1 + EMA G2; ACGAN — and scores it with the cached judge of the training
split, against a real reference computed once. Points are the harness headline plus the step
and the CPU seconds the point cost; the last point's full scores are the model's figures. The
model artifact stores them as ``quality_curve.json`` and ``quality_curve.png``.

The judge needs the split's validation and test parts, which ``train()`` only knows by seed: the
split is rebuilt from the seed and matched against the training-index fingerprint; with custom
training indices there is no split to judge against and the curve is skipped (and says so).
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np
from torch import nn

from gdgan.data.dataset import ImageDataset
from gdgan.progress import Progress, ProgressCallback, no_progress
from gdgan.store import ArtifactStore

log = logging.getLogger(__name__)

CURVE_FILE = "quality_curve.json"
CURVE_PNG = "quality_curve.png"
PHASE_COLORS = {"stage1": "C0", "stage2": "C1", "acgan": "C2"}
PLOTTED = (
    ("relative_fd", "relative FD (1 = real)"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("gender_accuracy", "gender accuracy"),
    ("view_accuracy", "view accuracy"),
    ("finding_auc_paired", "finding AUC (paired)"),
    ("finding_auc_independent", "finding AUC (independent)"),
    ("ctr_share_pos", "CTR>0.5, requested +"),
    ("ctr_share_neg", "CTR>0.5, requested −"),
)


class QualityCurve:
    """Scores the EMA generator every ``every`` steps; ``points`` and ``final`` hold the results."""

    def __init__(
        self,
        phase: str,
        every: int,
        total: int,
        make_sampler: Any,  # Callable[[nn.Module], LoadedGenerator]
        judge: Any,
        ds: ImageDataset,
        split: Any,
        n: int,
        seed: int = 0,
        progress: ProgressCallback = no_progress,
    ) -> None:
        from gdgan.evaluation.harness import real_reference

        self.phase, self.every, self.total = phase, every, total
        self.make_sampler, self.judge, self.ds, self.split = make_sampler, judge, ds, split
        self.n, self.seed, self.progress = n, seed, progress
        self.reference = real_reference(judge, ds, split, n, seed)
        self.points: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None

    def __call__(self, step: int, ema: nn.Module) -> None:
        if step % self.every and step != self.total:
            return
        if self.points and self.points[-1]["step"] == step:
            return
        from gdgan.evaluation.harness import score_generators

        c0 = time.process_time()
        sampler = self.make_sampler(ema)
        role = {"stage1": "stage1", "stage2": "stage2", "acgan": "acgan"}[self.phase]
        kwargs = {role: sampler}
        q = score_generators(
            self.judge,
            ds=self.ds,
            split=self.split,
            n=self.n,
            seed=self.seed,
            reference=self.reference,
            **kwargs,
        )
        point = {"step": step, "phase": self.phase, **q.headline()[role]}
        point["cpu_s"] = round(time.process_time() - c0, 2)
        self.points.append(point)
        if step == self.total:
            self.final = q.to_dict()
        self.progress(Progress(f"{self.phase} quality", step, self.total, message=_short(point)))
        ema.eval()  # samplers switch modes; the loop's EMA stays in eval mode anyway

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "every": self.every,
            "n": self.reference.n,
            "judge_id": self.judge.artifact_id,
            "ceiling": self.reference.ceiling,
            "points": self.points,
            "final": self.final,
        }


def _short(p: dict[str, Any]) -> str:
    keys = ("relative_fd", "recall", "gender_accuracy", "finding_auc_paired")
    return " ".join(f"{k}={p[k]:.3g}" for k in keys if p.get(k) is not None)


def build_curve(
    phase: str,
    cfg: Any,
    total: int,
    ds: ImageDataset,
    train_idx: np.ndarray,
    split_seed: int | None,
    store: ArtifactStore | None,
    make_sampler: Any,
    progress: ProgressCallback = no_progress,
) -> QualityCurve | None:
    """A curve for this phase, or None when off (``quality_every == 0``) or impossible."""
    every = int(getattr(cfg, "quality_every", 0) or 0)
    if every <= 0:
        return None
    from gdgan.evaluation.judge import get_judge
    from gdgan.evaluation.quality_run import judge_config, model_split
    from gdgan.training.data import index_digest

    try:
        split = model_split(ds, int(split_seed or 0), index_digest(np.asarray(train_idx)))
        finding = cfg.grid_finding if cfg.grid_finding in ds.schema.findings else ds.schema.findings[0]
        judge = get_judge(store, ds, split, judge_config(cfg.quality_judge), finding=finding)
        return QualityCurve(
            phase, every, total, make_sampler, judge, ds, split, int(cfg.quality_n), cfg.seed, progress
        )
    except (ValueError, IndexError) as exc:  # no split, no positives or no finding to judge with
        log.warning("quality curve of %s skipped: %s", phase, exc)
        return None


def curves_png(curves: list[dict[str, Any]]) -> bytes:
    """One panel per figure, each phase a line, the real-test ceiling dotted where it exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, t) for k, t in PLOTTED if any(p.get(k) is not None for c in curves for p in c["points"])]
    ncol = 3
    nrow = max(1, -(-len(panels) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), dpi=100, squeeze=False)
    ceiling_of = {
        "gender_accuracy": lambda c: c.get("gender_accuracy"),
        "view_accuracy": lambda c: c.get("view_accuracy"),
        "finding_auc_independent": lambda c: c.get("finding_auc"),
        "ctr_share_pos": lambda c: (c.get("ctr") or {}).get("share_above_pos"),
        "ctr_share_neg": lambda c: (c.get("ctr") or {}).get("share_above_neg"),
        "relative_fd": lambda c: 1.0,
    }
    for ax, (key, title) in zip(axes.flat, panels):
        for c in curves:
            pts = [(p["step"], p[key]) for p in c["points"] if p.get(key) is not None]
            if pts:
                color = PHASE_COLORS.get(c["phase"])  # one colour per phase in every panel
                ax.plot(*zip(*pts), marker="o", ms=3, lw=1.4, label=c["phase"], color=color)
        ceil = next((ceiling_of[key](c["ceiling"]) for c in curves if key in ceiling_of), None)
        if ceil is not None:
            ax.axhline(ceil, ls=":", c="grey", lw=1, label="real test")
        if key == "relative_fd":
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("step", fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if panels:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
