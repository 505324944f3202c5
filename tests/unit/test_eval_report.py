"""The report: schema, table rows, self-contained HTML — built from fake classifier parts and a
fake generator (which plants a training copy the memorisation audit must flag)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.evaluation.assemble import build_report, classification_summary
from gdgan.evaluation.augment import strategy_counts
from gdgan.evaluation.experiment import plan_splits
from gdgan.evaluation.plan import EvaluationPlan
from gdgan.evaluation.quality import compute_quality
from gdgan.evaluation.report import (
    STRATEGY_LABELS,
    TABLE2_HEADER,
    TABLE2_NOTE,
    render_html,
    roc_png,
    table1_rows,
    table2_rows,
)
from gdgan.evaluation.schema import validate_report


class FakeGenerator:
    """Returns noise images, except that every image is a copy of one training image."""

    def __init__(self, model_id: str, copy_of: np.ndarray | None = None) -> None:
        self.model_id = model_id
        self.copy_of = copy_of

    def sample(self, n: int, finding=None, gender=None, view=None, seed=None):
        rng = np.random.default_rng(seed)
        imgs = rng.integers(0, 256, (n, 32, 32), dtype=np.uint8)
        if self.copy_of is not None:
            imgs[0] = self.copy_of
        return SimpleNamespace(images=imgs)


@pytest.fixture(scope="module")
def report() -> dict:
    import torch

    torch.set_num_threads(1)
    ds = make_phantom(PhantomConfig(n=400, size=32, seed=3, prevalence={"Cardiomegaly": 0.2}))
    ds.id = "dataset-test"
    plan = EvaluationPlan(dataset_id="dataset-test", preset="tiny", repeats=2)
    splits = plan_splits(plan, ds)
    t = ds.labels["findings"][:, 1].astype(np.uint8)
    rng = np.random.default_rng(0)
    parts = []
    for r, sp in enumerate(splits):
        y = t[sp.test]
        p_, n_ = int(t[sp.train].sum()), int(len(sp.train) - t[sp.train].sum())
        for s in plan.strategies:
            scores = rng.normal(size=len(y)) + y * (1.0 + 0.1 * len(s))
            parts.append(
                {
                    "strategy": s,
                    "repeat": r,
                    "test_labels": y.tolist(),
                    "test_scores": scores.tolist(),
                    "test_auc": None,
                    "counts": strategy_counts(s, p_, n_, plan.share).to_dict(),
                    "classifier": {"seconds": 0.0, "history": []},
                    "roc": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]},
                }
            )
    for p in parts:
        from gdgan.evaluation.auc import roc_auc

        p["test_auc"] = roc_auc(p["test_labels"], p["test_scores"])
    classification = classification_summary(plan, parts, n_boot=30)
    copy_src = np.asarray(ds.images[splits[0].train[5]])
    gens = {"acgan": FakeGenerator("acgan-x"), "gdgan": FakeGenerator("gdgan-x", copy_of=copy_src)}
    quality, files = compute_quality(plan, plan.eval_preset(), ds, splits[0], t, gens)
    lineage = {"dataset_id": ds.id, "repeats": [], "all_ok": True, "statement": "checked"}
    rep = build_report(plan, ds, splits, t, classification, lineage, quality)
    rep = json.loads(json.dumps(rep))  # as stored
    rep["_files"] = files
    return rep


def test_report_schema(report: dict) -> None:
    validate_report({k: v for k, v in report.items() if k != "_files"})


def test_tables(report: dict) -> None:
    rows = table2_rows(report)
    assert rows[0][0].startswith("None") and len(rows) == 5
    assert all(len(r) == len(TABLE2_HEADER) for r in rows)
    counts = report["table2"]["rows"]["gdgan"]["counts_per_repeat"][0]
    assert rows[4][1] == f"{counts['total']:,}" and rows[4][2] == f"{counts['positives']:,}"
    label, t1 = table1_rows(report)
    assert "domain" in label and [r[0] for r in t1] == ["Real", "ACGAN", "GDGAN"]
    assert report["quality"]["inception_score"]["imagenet"]["available"] is False


def test_table2_shows_both_intervals_and_a_repeat_level_verdict(report: dict) -> None:
    """Both CIs in report.json, the rows, the HTML and the CLI table, each named for what it is;
    the verdict comes from the repeat-level t-interval (checked against scipy.stats.t)."""
    import io

    from gdgan.cli.evaluate import print_tables
    from rich.console import Console
    from scipy import stats

    t2 = report["table2"]
    col = {h: i for i, h in enumerate(TABLE2_HEADER)}
    rows = {r[0]: r for r in table2_rows(report)}
    for s, row in t2["rows"].items():
        aucs = row["auc_per_repeat"]
        lo, hi = stats.t.interval(0.95, len(aucs) - 1, loc=np.mean(aucs), scale=stats.sem(aucs))
        assert row["repeat_ci"]["lo"] == pytest.approx(lo) and row["repeat_ci"]["hi"] == pytest.approx(hi)
        shown = rows[STRATEGY_LABELS[s]]
        assert shown[col["95% CI retrain (t, repeats)"]] == f"[{lo:.4f}, {hi:.4f}]"
        assert shown[col["95% CI test set (bootstrap)"]] == (
            f"[{row['pooled_ci']['lo']:.4f}, {row['pooled_ci']['hi']:.4f}]"
        )
    for s, pd in t2["paired_vs_none"].items():
        shown = rows[STRATEGY_LABELS[s]]
        assert shown[col["Δ 95% CI retrain (t, repeats)"]] == f"[{pd['t_ci'][0]:+.4f}, {pd['t_ci'][1]:+.4f}]"
        assert shown[col["verdict vs none (retrain CI)"]] == pd["verdict"]
        excludes = pd["t_ci"][0] > 0 or pd["t_ci"][1] < 0
        assert ("excludes 0" in pd["verdict"]) == excludes
    assert "train again on new data" in t2["intervals"]["repeat_ci"]
    html = render_html({k: v for k, v in report.items() if k != "_files"}, report["_files"])
    assert "95% CI retrain (t, repeats)" in html and "95% CI test set (bootstrap)" in html
    assert "the verdict uses only this one" in html
    buf = io.StringIO()
    print_tables(report, Console(file=buf, width=400))
    printed = buf.getvalue()
    assert "95% CI retrain (t, repeats)" in printed and "95% CI test set (bootstrap)" in printed
    assert TABLE2_NOTE[:60] in printed


def test_old_reports_get_the_repeat_interval_recomputed(report: dict) -> None:
    old = json.loads(json.dumps({k: v for k, v in report.items() if k != "_files"}))
    for row in old["table2"]["rows"].values():
        del row["repeat_ci"]
    for pd in old["table2"]["paired_vs_none"].values():
        del pd["verdict"]
    assert table2_rows(old) == table2_rows(report)


def test_memorisation_flags_the_planted_copy(report: dict) -> None:
    mem = report["quality"]["memorisation"]
    assert mem["gdgan"]["pixel"]["n_exact_copies"] >= 1
    assert 0 in mem["gdgan"]["pixel"]["flagged_indices"]
    assert mem["acgan"]["pixel"]["n_exact_copies"] == 0


def test_html_is_self_contained(report: dict) -> None:
    files = {**report["_files"], "roc.png": roc_png(report["table2"], "Cardiomegaly")}
    html = render_html({k: v for k, v in report.items() if k != "_files"}, files)
    assert "Table 1" in html and "Table 2" in html and "Figure 3" in html
    assert "data:image/png;base64," in html
    assert "src='http" not in html and 'src="http' not in html and "<link" not in html
    assert "2.1258" in html and "0.8207" in html  # the paper's figures next to ours
