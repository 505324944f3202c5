"""The quality harness: how good a trained generator is, read by the dataset's own judge.

``score_generators(judge, stage1, stage2, acgan, ds=..., split=..., n=..., seed=...)`` returns
:class:`QualityScores`:

- **distances** of each model's samples to ``n`` real TEST images in the judge's features —
  FD, KID, relative FD (÷ the FD of ``n`` real TRAINING images to the same test images) and
  precision/recall (k-NN manifolds) — with the real-train reference beside them;
- **GAN-test**: the judge's reading of the requested labels. Gender and view accuracy of stage-1
  and stage-2 (and ACGAN) samples; the AUC of the judge's finding score between images
  requested WITH the finding and images requested WITHOUT it, measured twice: *paired* (the
  same z and general labels, only the finding switched — for GDGAN, stage 2 refining the same
  stage-1 images) and *independent* (separate draws); on phantoms the measured CTR of those
  images and the share above 0.5;
- **ceiling**: the same figures for real test images (what a perfect generator would score).

Labels requested for the distance set follow the training part's (gender, view, finding) mix,
so synthetic and real sets are comparable. Every draw is seeded from ``seed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdgan.data.dataset import ImageDataset
from gdgan.data.splits import Split
from gdgan.evaluation.auc import AUCError, roc_auc
from gdgan.evaluation.distances import DEFAULT_K, set_distances
from gdgan.evaluation.judge import CTR_THRESHOLD, Judge, JudgeReading, judge_targets
from gdgan.evaluation.synthetic import labels_like
from gdgan.labels import AGE_BAND, GENDERS, NIH_SCHEMA, VIEWS, LabelSchema
from gdgan.progress import Progress, ProgressCallback, no_progress

DEFAULT_N = 500


class HarnessError(ValueError):
    """Inputs the harness cannot score (no generator, too few test images); names the cause."""


@dataclass
class QualityScores:
    """Everything the harness measured for one set of generators; ``to_dict()`` is JSON-able."""

    dataset_id: str | None
    split_seed: int
    n: int
    seed: int
    finding: str
    judge: dict[str, Any]
    ceiling: dict[str, Any]
    reference: dict[str, Any]  # real-train subset vs real test: the distance floor
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage1 / stage2 / acgan
    model_ids: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "split_seed": self.split_seed,
            "n": self.n,
            "seed": self.seed,
            "finding": self.finding,
            "judge": self.judge,
            "ceiling": self.ceiling,
            "reference": self.reference,
            "models": self.models,
            "model_ids": self.model_ids,
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
        }

    def headline(self) -> dict[str, dict[str, Any]]:
        """The few numbers per model a table shows."""
        out: dict[str, dict[str, Any]] = {}
        for name, m in self.models.items():
            d, g = m.get("distances", {}), m.get("gan_test", {})
            out[name] = {
                "relative_fd": d.get("relative_fd"),
                "precision": d.get("precision"),
                "recall": d.get("recall"),
                "gender_accuracy": g.get("gender_accuracy"),
                "view_accuracy": g.get("view_accuracy"),
                "finding_auc_paired": (g.get("paired") or {}).get("auc"),
                "finding_auc_independent": (g.get("independent") or {}).get("auc"),
                "ctr_share_pos": ((g.get("independent") or {}).get("ctr") or {}).get("share_above_pos"),
                "ctr_share_neg": ((g.get("independent") or {}).get("ctr") or {}).get("share_above_neg"),
            }
        return out


# -- drawing -----------------------------------------------------------------------------------
def _detail(schema: LabelSchema, finding: str, on: np.ndarray) -> np.ndarray:
    d = np.zeros((len(on), schema.n_findings), np.float32)
    d[:, schema.finding_index(finding)] = np.asarray(on, np.float32)
    return d


def _general(schema: LabelSchema, gender: np.ndarray, view: np.ndarray) -> np.ndarray:
    """(n, G): the schema's general columns (NIH: [is_female, is_AP]; none: (n, 0))."""
    cols = [c for name, c in (("gender", gender), ("view", view)) if schema.has(name)]
    return np.stack(cols, 1).astype(np.float32) if cols else np.zeros((len(gender), 0), np.float32)


def _general_with_age(
    gen: Any,
    schema: LabelSchema,
    gender: np.ndarray,
    view: np.ndarray,
    target: np.ndarray,
    finding: str,
    seed: int,
) -> np.ndarray:
    """Like :func:`_general` for a model with an age band: the band of each image is drawn by the
    model's own sampler from the training mix of its (sex, view, finding) group."""
    out = np.zeros((len(gender), schema.n_general), np.float32)
    keys = np.stack([np.asarray(gender), np.asarray(view), np.asarray(target)], 1).astype(int)
    for i, key in enumerate(np.unique(keys, axis=0)):
        rows = np.flatnonzero((keys == key).all(axis=1))
        g, v, t = (int(x) for x in key)
        req = gen.prepare(
            len(rows),
            finding if t else None,
            GENDERS[g] if schema.has("gender") else None,
            VIEWS[v] if schema.has("view") else None,
            seed=seed + i,
        )
        out[rows] = req.general
    return out


def _draw(
    gen: Any,
    schema: LabelSchema,
    gender: np.ndarray,
    view: np.ndarray,
    target: np.ndarray,
    finding: str,
    seed: int,
) -> tuple[np.ndarray | None, np.ndarray]:
    """(stage-1 images or None, final images) for exactly these labels; z ~ U[0,1) from ``seed``
    (the samplers' latent law), one forward pass for both stages so they share z."""
    rng = np.random.default_rng(seed)
    z = rng.random((len(gender), gen.nz), dtype=np.float32)
    general = (
        _general_with_age(gen, schema, gender, view, target, finding, seed + 1)
        if schema.has(AGE_BAND)
        else _general(schema, gender, view)
    )
    return gen.forward_both(z, general, _detail(schema, finding, target), refine=_refines(gen))


def _refines(gen: Any) -> bool:
    return getattr(gen, "acgan", None) is not None or getattr(gen, "g2", None) is not None


def _acc(p: np.ndarray, want: np.ndarray) -> float:
    return float(((np.asarray(p) > 0.5) == (np.asarray(want) > 0.5)).mean())


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    try:
        return roc_auc(y, s)
    except AUCError:
        return None


def _ctr_block(ctr_pos: np.ndarray, ctr_neg: np.ndarray) -> dict[str, Any]:
    return {
        "mean_pos": float(np.mean(ctr_pos)),
        "mean_neg": float(np.mean(ctr_neg)),
        "share_above_pos": float(np.mean(ctr_pos > CTR_THRESHOLD)),
        "share_above_neg": float(np.mean(ctr_neg > CTR_THRESHOLD)),
        "auc": _auc(np.r_[np.ones(len(ctr_pos)), np.zeros(len(ctr_neg))], np.r_[ctr_pos, ctr_neg]),
    }


def finding_contrast(pos: JudgeReading, neg: JudgeReading) -> dict[str, Any]:
    """AUC of the judge's finding score, requested-positive vs requested-negative images."""
    y = np.r_[np.ones(len(pos.p_finding)), np.zeros(len(neg.p_finding))]
    out: dict[str, Any] = {
        "auc": _auc(y, np.r_[pos.p_finding, neg.p_finding]),
        "n_pos": len(pos.p_finding),
        "n_neg": len(neg.p_finding),
    }
    if pos.ctr is not None and neg.ctr is not None:
        out["ctr"] = _ctr_block(pos.ctr, neg.ctr)
    return out


def general_accuracy(
    r: JudgeReading, gender: np.ndarray, view: np.ndarray, schema: LabelSchema = NIH_SCHEMA
) -> dict[str, float | None]:
    """Share read right per general label; None for a label the dataset does not have."""
    return {
        "gender_accuracy": _acc(r.p_female, gender) if schema.has("gender") else None,
        "view_accuracy": _acc(r.p_ap, view) if schema.has("view") else None,
    }


# -- scoring -----------------------------------------------------------------------------------
def real_ceiling(judge: Judge, ds: ImageDataset, idx: np.ndarray) -> dict[str, Any]:
    """The judge on real test images: the best any generator can score on each GAN-test figure."""
    y, ctr = judge_targets(ds, judge.finding)
    r = judge.read(np.asarray(ds.images[idx]))
    t = y[idx]
    pos, neg = np.flatnonzero(t[:, 2] > 0.5), np.flatnonzero(t[:, 2] <= 0.5)
    out: dict[str, Any] = {
        "n": len(idx),
        "finding_truth": judge.summary.get("finding_truth", "label"),
        **general_accuracy(r, t[:, 0], t[:, 1], ds.schema),
        "finding_auc": _auc(t[:, 2], r.p_finding),
    }
    if r.ctr is not None and ctr is not None and len(pos) and len(neg):
        out["ctr"] = _ctr_block(r.ctr[pos], r.ctr[neg])
        out["ctr_mae"] = float(np.abs(r.ctr - ctr[idx]).mean())
    return out


@dataclass
class RealReference:
    """What the harness needs from real images, independent of any generator."""

    n: int
    ceiling: dict[str, Any]
    test_features: np.ndarray  # the n real test images every synthetic set is compared with
    distances: dict[str, Any]  # real-train subset of the same n vs those test images


def real_reference(
    judge: Judge, ds: ImageDataset, split: Split, n: int = DEFAULT_N, seed: int = 0, k: int = DEFAULT_K
) -> RealReference:
    """The real-test ceiling and the real-train-vs-test distance floor, seeded by ``seed``."""
    test = np.asarray(split.test)
    m = min(int(n), len(test), len(split.train))
    if m < k + 2:
        raise HarnessError(f"n: need at least {k + 2} real test and training images, have {m}")
    rng = np.random.default_rng(seed)
    test_idx = np.sort(rng.choice(test, m, replace=False))
    train_idx = np.sort(rng.choice(np.asarray(split.train), m, replace=False))
    real_feats = judge.features(np.asarray(ds.images[test_idx]))
    train_feats = judge.features(np.asarray(ds.images[train_idx]))
    dist = set_distances(real_feats, train_feats, None, k=k, seed=seed)
    dist["relative_fd"] = 1.0
    return RealReference(m, real_ceiling(judge, ds, test), real_feats, dist)


def _model_scores(
    judge: Judge,
    gen: Any,
    stage: int,
    finding: str,
    dist_labels: tuple[np.ndarray, np.ndarray, np.ndarray],
    gt_labels: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    real_feats: np.ndarray,
    ref_fd: float,
    seed: int,
    k: int,
    cache: dict[Any, Any],
) -> dict[str, Any]:
    """Distances and GAN-test of one generator at one stage (1 = G1 only, 2 = refined/ACGAN).

    ``cache`` shares the forward passes of a GDGAN's stages (stage 1 and 2 from the same z)."""
    out: dict[str, Any] = {"model_id": getattr(gen, "model_id", None), "stage": stage}
    pick = 0 if stage == 1 else 1
    schema = getattr(gen, "schema", None) or NIH_SCHEMA

    def draw(key: str, g: np.ndarray, v: np.ndarray, t: np.ndarray, s: int) -> np.ndarray:
        ck = (id(gen), key)
        if ck not in cache:
            cache[ck] = _draw(gen, schema, g, v, t, finding, s)
        img = cache[ck][pick]
        if img is None:
            raise HarnessError(f"model {out['model_id']} has no stage-{stage} images")
        return img

    g, v, t = dist_labels
    syn = judge.read(draw("dist", g, v, t, seed))
    out["distances"] = set_distances(real_feats, syn.features, ref_fd, k=k, seed=seed)
    gg, vv, g_pos, v_pos, _ = gt_labels
    m = len(gg)
    if stage == 1:  # G1 has no finding input: one set of general-label requests suffices
        r = judge.read(draw("pair-on", gg, vv, np.ones(m), seed + 1))
        out["gan_test"] = {
            **general_accuracy(r, gg, vv, schema),
            "n": m,
            "note": "stage 1 has no finding input: finding figures start at stage 2",
        }
        return out
    # paired: the same z and general labels, finding on / off
    r_on = judge.read(draw("pair-on", gg, vv, np.ones(m), seed + 1))
    r_off = judge.read(draw("pair-off", gg, vv, np.zeros(m), seed + 1))
    # independent: positives and negatives from separate latents, each with its class's label mix
    r_pos = judge.read(draw("ind-pos", g_pos, v_pos, np.ones(m), seed + 2))
    r_neg = judge.read(draw("ind-neg", gg, vv, np.zeros(m), seed + 3))
    acc_on = general_accuracy(r_on, gg, vv, schema)
    acc_off = general_accuracy(r_off, gg, vv, schema)
    gan_test: dict[str, Any] = {
        key: None if acc_on[key] is None else (acc_on[key] + acc_off[key]) / 2  # type: ignore[operator]
        for key in ("gender_accuracy", "view_accuracy")
    }
    gan_test.update(
        {
            "n": 2 * m,
            "paired": finding_contrast(r_on, r_off),
            "independent": finding_contrast(r_pos, r_neg),
        }
    )
    out["gan_test"] = gan_test
    return out


def score_generators(
    judge: Judge,
    stage1: Any | None = None,
    stage2: Any | None = None,
    acgan: Any | None = None,
    *,
    ds: ImageDataset,
    split: Split,
    n: int = DEFAULT_N,
    seed: int = 0,
    k: int = DEFAULT_K,
    progress: ProgressCallback = no_progress,
    reference: RealReference | None = None,
) -> QualityScores:
    """Score up to three samplers (``LoadedGenerator`` or anything with ``nz``,
    ``forward_both``, ``g2``/``acgan`` attributes) against ``split``'s real test images.

    ``stage1``: a sampler with G1 (a GDGAN bundle works too; only its stage 1 is read);
    ``stage2``: a GDGAN sampler with G1 and G2 (when ``stage1`` is None its G1 gives the stage-1
    figures); ``acgan``: an ACGAN sampler. ``n``: images per set (capped by the test part).
    ``reference``: :func:`real_reference` of the same judge/split/n/seed, computed once by a
    caller that scores many times (the training curves)."""
    t0, c0 = time.perf_counter(), time.process_time()
    if stage1 is None and stage2 is not None:
        stage1 = stage2
    if stage1 is None and acgan is None:
        raise HarnessError("nothing to score: give a stage-1, stage-2 or ACGAN sampler")
    steps = 2 + sum(x is not None for x in (stage1, stage2, acgan))
    progress(Progress("quality", 0, steps, message="real reference"))
    if reference is None or reference.n != min(int(n), len(split.test), len(split.train)):
        reference = real_reference(judge, ds, split, n, seed, k)
    m, finding = reference.n, judge.finding
    real_feats, ref_fd = reference.test_features, reference.distances["fd"]
    progress(Progress("quality", 1, steps, message="real reference"))
    # requested labels: the training part's mix (distances), balanced on/off (GAN-test)
    g_all, v_all = np.asarray(ds.labels["gender"]), np.asarray(ds.labels["view"])
    t_all = np.asarray(ds.labels["findings"][:, ds.schema.finding_index(finding)])
    tr = np.asarray(split.train)
    dist_labels = labels_like(g_all[tr], v_all[tr], t_all[tr], m, seed + 11)
    gg, vv, _ = labels_like(g_all[tr], v_all[tr], t_all[tr], m, seed + 12)
    pos_rows = tr[t_all[tr] > 0] if (t_all[tr] > 0).any() else tr
    g_pos, v_pos, _ = labels_like(g_all[pos_rows], v_all[pos_rows], t_all[pos_rows], m, seed + 13)
    gt_labels = (gg, vv, g_pos, v_pos, np.ones(m, np.uint8))
    models: dict[str, dict[str, Any]] = {}
    cache: dict[Any, Any] = {}
    step = 1
    for name, gen, stage in (("stage1", stage1, 1), ("stage2", stage2, 2), ("acgan", acgan, 2)):
        if gen is None:
            continue
        models[name] = _model_scores(
            judge, gen, stage, finding, dist_labels, gt_labels, real_feats, ref_fd, seed + 100, k, cache
        )
        step += 1
        progress(Progress("quality", step, steps, message=name))
    ids = {name: str(s["model_id"]) for name, s in models.items() if s.get("model_id")}
    progress(Progress("quality", steps, steps, message="done"))
    return QualityScores(
        dataset_id=ds.id,
        split_seed=split.seed,
        n=m,
        seed=seed,
        finding=finding,
        judge={
            "artifact_id": judge.artifact_id,
            "test": judge.summary.get("test"),
            "finding_truth": judge.summary.get("finding_truth"),
            "seconds": judge.summary.get("seconds"),
            "cpu_seconds": judge.summary.get("cpu_seconds"),
        },
        ceiling=reference.ceiling,
        reference=reference.distances,
        models=models,
        model_ids=ids,
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
    )
