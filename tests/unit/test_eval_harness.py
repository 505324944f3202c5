"""The quality harness on a real phantom: the judge's heads and CTR regressor against the truth
on held-out phantoms, and GAN-test against planted samplers whose answers are known (one that
draws real images with the requested labels, one that ignores the requested finding)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from gdgan.data.dataset import ImageDataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.data.splits import Split, patient_split
from gdgan.evaluation.harness import HarnessError, QualityScores, score_generators
from gdgan.evaluation.judge import JUDGE_PRESETS, Judge, get_judge, train_judge
from gdgan.labels import FINDINGS
from gdgan.store.local import LocalStore

CARDIO = FINDINGS.index("Cardiomegaly")
# Stated held-out figures of the tiny judge on a 1,500-image 32-px phantom (304 test images):
# on the default film look (frozen in the fifth wave) gender 0.84, view 0.91, Cardiomegaly AUC 0.92,
# CTR MAE 0.026; on the radiograph look (the fourth wave's default) gender 0.80, view 0.96, AUC 0.93,
# MAE 0.023; on the calibrated look of issue 11 gender 0.86, view 0.93, AUC 0.94, MAE 0.023. The
# radiograph look's gender cue is subtler at 32 px, so the head floor sits two binomial SEs (2 × 0.023)
# below 0.80; chance is ~0.56.
MIN_HEAD_ACCURACY = 0.75
MIN_FINDING_AUC = 0.9
MAX_CTR_MAE = 0.03


@pytest.fixture(scope="module")
def phantom() -> tuple[ImageDataset, Split]:
    ds = make_phantom(PhantomConfig(n=1500, size=32, seed=3, prevalence={"Cardiomegaly": 0.25}))
    return ds, patient_split(ds.labels["patient_id"], 0)


@pytest.fixture(scope="module")
def judge(phantom: tuple[ImageDataset, Split]) -> Judge:
    ds, split = phantom
    return train_judge(ds, split, JUDGE_PRESETS["tiny"])


class RealSampler:
    """Draws REAL test images with the requested gender/view and (truth) finding; with
    ``ignore_finding`` it ignores the requested finding (a label-shuffled generator)."""

    nz = 4
    acgan = None
    g2 = True

    def __init__(self, ds: ImageDataset, idx: np.ndarray, ignore_finding: bool = False) -> None:
        self.images = np.asarray(ds.images[idx])
        self.g = ds.labels["gender"][idx]
        self.v = ds.labels["view"][idx]
        self.t = (ds.labels["gt_ctr"][idx] > 0.5).astype(int)
        self.ignore = ignore_finding
        self.model_id = "real-shuffled" if ignore_finding else "real"

    def forward_both(
        self, z: np.ndarray, general: np.ndarray, detail: np.ndarray, refine: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for zi, (g, v), t in zip(z, general.astype(int), detail[:, CARDIO].astype(int)):
            ok = (self.g == g) & (self.v == v)
            if not self.ignore:
                ok &= self.t == t
            rows = np.flatnonzero(ok) if ok.any() else np.flatnonzero((self.g == g) & (self.v == v))
            out.append(self.images[rows[int(zi[0] * len(rows)) % len(rows)]])
        x = np.stack(out)
        return x, x


def test_judge_heads_and_ctr_on_held_out_phantoms(judge: Judge) -> None:
    test = judge.summary["test"]
    assert judge.has_ctr and judge.summary["finding_truth"] == "gt_ctr > 0.5"
    assert test["gender_accuracy"] >= MIN_HEAD_ACCURACY
    assert test["view_accuracy"] >= MIN_HEAD_ACCURACY
    assert test["finding_auc"] >= MIN_FINDING_AUC
    assert test["ctr_mae"] <= MAX_CTR_MAE


def test_judge_learns_the_truth_not_a_noisy_label(phantom: tuple[ImageDataset, Split]) -> None:
    """Flip a third of the Cardiomegaly labels: the judge's finding target must not change."""
    from gdgan.evaluation.judge import judge_targets

    ds, _ = phantom
    noisy = dict(ds.labels)
    f = noisy["findings"].copy()
    flip = np.random.default_rng(0).random(len(f)) < 0.33
    f[flip, CARDIO] = 1 - f[flip, CARDIO]
    noisy["findings"] = f
    y_clean, _ = judge_targets(ds)
    y_noisy, _ = judge_targets(ImageDataset(ds.images, noisy))
    np.testing.assert_array_equal(y_clean, y_noisy)
    np.testing.assert_array_equal(y_clean[:, 2], ds.labels["gt_ctr"] > 0.5)


def test_real_sampler_scores_near_the_ceiling(phantom: tuple[ImageDataset, Split], judge: Judge) -> None:
    ds, split = phantom
    real = RealSampler(ds, split.test)
    q = score_generators(judge, None, real, None, ds=ds, split=split, n=200, seed=1)
    s2 = q.models["stage2"]
    gt = s2["gan_test"]
    assert gt["gender_accuracy"] >= MIN_HEAD_ACCURACY and gt["view_accuracy"] >= MIN_HEAD_ACCURACY
    assert gt["paired"]["auc"] > 0.85 and gt["independent"]["auc"] > 0.85  # measured 0.94, 0.95
    ctr = gt["independent"]["ctr"]
    assert ctr["share_above_pos"] > 0.7 and ctr["share_above_neg"] < 0.2  # measured 0.82, 0.08
    assert s2["distances"]["recall"] > 0.6 and s2["distances"]["relative_fd"] < 2.0
    assert q.reference["relative_fd"] == 1.0
    assert q.ceiling["gender_accuracy"] >= MIN_HEAD_ACCURACY and q.ceiling["finding_auc"] > MIN_FINDING_AUC
    assert "paired" not in q.models["stage1"]["gan_test"]  # stage 1 has no finding input
    json.dumps(q.to_dict())  # JSON-able as stored


def test_label_shuffled_sampler_has_chance_auc(phantom: tuple[ImageDataset, Split], judge: Judge) -> None:
    ds, split = phantom
    shuffled = RealSampler(ds, split.test, ignore_finding=True)
    q = score_generators(judge, None, shuffled, None, ds=ds, split=split, n=200, seed=1)
    gt = q.models["stage2"]["gan_test"]
    assert gt["paired"]["auc"] == pytest.approx(0.5, abs=0.1)
    assert gt["independent"]["auc"] == pytest.approx(0.5, abs=0.1)
    assert gt["gender_accuracy"] >= MIN_HEAD_ACCURACY - 0.05  # general labels are still honoured


def test_noise_generator_is_far_and_unlabelled(phantom: tuple[ImageDataset, Split], judge: Judge) -> None:
    ds, split = phantom

    class Noise(RealSampler):
        def forward_both(self, z: np.ndarray, *_: Any, **__: Any) -> tuple[np.ndarray, np.ndarray]:
            rng = np.random.default_rng(int(z[0, 0] * 1e6))
            x = rng.integers(0, 256, (len(z), 32, 32), dtype=np.uint8)
            return x, x

    q = score_generators(judge, None, None, Noise(ds, split.test), ds=ds, split=split, n=100, seed=0)
    d = q.models["acgan"]["distances"]
    # measured: relative FD 50, recall 0.04, precision 0.52 against the real sets' 0.97 (k-NN
    # precision is lenient where a few real outliers have wide balls) on the calibrated look;
    # radiograph look 176-185 / 0.0 / 0.12-0.19; film look (the default since the fifth wave: softer
    # films, so the tiny judge's features carry less fine detail and noise lands nearer; the judge's
    # float order with 1 / 2 / 4 torch threads moves it) 16-35 / 0.10-0.20 / 0.47-0.71 against
    # 0.97-0.98
    assert d["relative_fd"] > 10 and d["recall"] < 0.3
    assert d["precision"] < q.reference["precision"] - 0.2


def test_judge_is_cached_in_the_store(phantom: tuple[ImageDataset, Split], local_store: LocalStore) -> None:
    ds, split = phantom
    store = local_store
    ds = ImageDataset(ds.images, ds.labels, config=ds.config)
    ds.save(store)
    cfg = JUDGE_PRESETS["tiny"].__class__(width=4, features=16, epochs=1)
    j1 = get_judge(store, ds, split, cfg)
    j2 = get_judge(store, ds, split, cfg)
    assert j1.artifact_id and j1.artifact_id == j2.artifact_id
    assert len(store.list("judge")) == 1
    x = np.asarray(ds.images[:20])
    np.testing.assert_allclose(j1.features(x), j2.features(x), rtol=1e-6, atol=1e-6)


def test_nothing_to_score_is_a_named_error(phantom: tuple[ImageDataset, Split], judge: Judge) -> None:
    ds, split = phantom
    with pytest.raises(HarnessError, match="nothing to score"):
        score_generators(judge, ds=ds, split=split)
    assert isinstance(QualityScores, type)
