"""One progress bar per job (overall fraction and ETA across phases) and stored loss curves."""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.jobs.lease import Lease
from gdgan.jobs.records import JobStore
from gdgan.jobs.tasks import _overall_eta, _ProgressPublisher
from gdgan.progress import Progress
from gdgan.settings import get_settings
from gdgan.store import ArtifactStore
from gdgan.training.loss_curves import LOSSES_FILE, loss_curves


@pytest.fixture
def jobs(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> JobStore:
    monkeypatch.setenv("GDGAN_JOB_PROGRESS_INTERVAL_S", "0")  # every event is stored
    get_settings.cache_clear()
    return JobStore.from_url(redis_url, ttl_s=60, lease_s=0.5)


def test_overall_eta_is_the_jobs_own_pace() -> None:
    # 30 s for the first quarter of the job -> 90 s left, whatever the current phase says
    assert _overall_eta(30.0, 0.25, phase_eta_s=5.0) == pytest.approx(90.0)
    assert _overall_eta(30.0, 1.0, phase_eta_s=5.0) == 0.0
    assert _overall_eta(0.1, 0.01, phase_eta_s=7.0) == 7.0  # too early to extrapolate


def test_two_phase_job_has_one_monotonic_bar_with_phase_beside_it(jobs: JobStore) -> None:
    rec = jobs.create("train", {})
    pub = _ProgressPublisher(jobs, rec.id, None, Lease(jobs, f"lease:{rec.id}", "w-test"))
    pub.phases = ["stage1", "stage2"]
    seen = []
    for phase in ("stage1", "stage2"):
        for step in (0, 5, 10):
            pub(Progress(phase, step, 10, {"d_loss": 1.0 / (step + 1)}, 100.0, eta_s=1.0))
            p = jobs.get(rec.id).progress
            seen.append((p.phase, p.fraction, p.phase_fraction))
            assert p.phases == ["stage1", "stage2"]
    fractions = [f for _, f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert fractions[2] == pytest.approx(0.5)  # stage 1 done = half the job
    assert seen[4] == ("stage2", pytest.approx(0.75), pytest.approx(0.5))
    assert jobs.get(rec.id).progress.eta_s == 0.0


def test_a_sub_phase_keeps_the_bar_in_its_phase_slot(jobs: JobStore) -> None:
    """Work reported under "stage2 quality" (scoring at stage-2 steps) must not send the bar back
    to the start: it maps into stage 2's half like stage 2 itself."""
    rec = jobs.create("train", {})
    pub = _ProgressPublisher(jobs, rec.id, None, Lease(jobs, f"lease:{rec.id}", "w-test"))
    pub.phases = ["stage1", "stage2"]
    pub(Progress("stage2", 4, 10))
    pub(Progress("stage2 quality", 4, 10, message="relative_fd=1.8"))
    p = jobs.get(rec.id).progress
    assert p.phase == "stage2 quality" and p.fraction == pytest.approx(0.7)


def _write_losses(store: ArtifactStore, kind: str, hist: dict[str, list[float]], **meta: str):
    with store.writer(kind) as w:
        w.put_json(LOSSES_FILE, hist)
        return w.commit(config={}, parents=[], meta=meta)


def test_loss_curves_follow_a_bundle_to_its_stages_and_bucket_long_runs(local_store: ArtifactStore) -> None:
    rng = np.random.default_rng(0)
    n = 1000
    long = {"step": list(range(1, n + 1)), "d_wgan": rng.normal(size=n).tolist()}
    s1 = _write_losses(local_store, "gdgan-stage1", long)
    s2 = _write_losses(local_store, "gdgan-stage2", {"step": [1, 2, 3], "g_adv": [3.0, 2.0, 1.0]})
    with local_store.writer("gdgan") as w:
        w.put_json("x.json", {})
        bundle = w.commit(config={}, parents=[s1.id, s2.id], meta={"stage1": s1.id, "stage2": s2.id})

    out = loss_curves(local_store, local_store.manifest(bundle.id), max_points=100)
    assert set(out) == {"stage1", "stage2"}
    assert out["stage2"] == {"step": [1.0, 2.0, 3.0], "g_adv": [3.0, 2.0, 1.0]}  # short: as recorded
    c = out["stage1"]
    assert len(c["step"]) == len(c["d_wgan"]) == 100
    assert c["step"][-1] == n  # the axis ends where the run ended
    # each point is the mean of its 10 consecutive steps (numpy reshape as the reference)
    np.testing.assert_allclose(c["d_wgan"], np.asarray(long["d_wgan"]).reshape(100, 10).mean(axis=1))
    # a phase model on its own is named by its kind
    assert set(loss_curves(local_store, local_store.manifest(s2.id))) == {"stage2"}


def test_quality_curves_become_columns_with_gaps(local_store: ArtifactStore) -> None:
    from gdgan.training.loss_curves import QUALITY_CURVE_FILE, quality_curves

    curve = {
        "phase": "stage1",
        "every": 10,
        "points": [
            {"step": 10, "phase": "stage1", "relative_fd": 3.0, "recall": 0.1, "cpu_s": 2.5},
            {"step": 20, "phase": "stage1", "relative_fd": 2.0, "recall": None, "cpu_s": 2.4},
        ],
    }
    with local_store.writer("gdgan-stage1") as w:
        w.put_json(QUALITY_CURVE_FILE, [curve])
        m = w.commit(config={}, parents=[], meta={})
    assert quality_curves(local_store, local_store.manifest(m.id)) == {
        "stage1": {"step": [10.0, 20.0], "relative_fd": [3.0, 2.0], "recall": [0.1, None]}
    }
    # a model trained without the harness has none
    plain = _write_losses(local_store, "acgan", {"step": [1], "d_wgan": [0.5]})
    assert quality_curves(local_store, local_store.manifest(plain.id)) == {}
