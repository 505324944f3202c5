"""The quality-harness section of the evaluation report: computed on split 0 with the cached
judge of that split, and rendered as two tables (distances; GAN-test beside the real-test
ceiling) plus the models' quality curves over training when they were recorded."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from gdgan.data.dataset import ImageDataset
from gdgan.data.splits import Split
from gdgan.progress import ProgressCallback, no_progress
from gdgan.store import ArtifactStore

# Column headers of the harness tables, shared by the HTML report and `gdgan report tables`.
DISTANCE_HEADER = ["set (vs real test)", "FD", "relative FD", "KID", "precision", "recall"]
GAN_TEST_HEADER = [
    "images",
    "gender acc.",
    "view acc.",
    "AUC paired",
    "AUC independent",
    "CTR>0.5 of +",
    "CTR>0.5 of −",
]

SET_NAMES = {"acgan": "ACGAN", "gdgan": "GDGAN"}


def harness_section(
    store: ArtifactStore,
    ds: ImageDataset,
    split: Split,
    generators: dict[str, Any],
    finding: str,
    n: int,
    judge_preset: str,
    seed: int,
    progress: ProgressCallback = no_progress,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(JSON section, {file name: PNG}) for the report; empty when there is no generator."""
    from gdgan.evaluation.harness import score_generators
    from gdgan.evaluation.judge import get_judge
    from gdgan.evaluation.quality_run import judge_config
    from gdgan.training.curves import CURVE_FILE, CURVE_PNG

    if not generators:
        return {"available": False, "reason": "no GAN in this evaluation"}, {}
    try:
        judge = get_judge(store, ds, split, judge_config(judge_preset), finding=finding, progress=progress)
        q = score_generators(
            judge,
            None,
            generators.get("gdgan"),
            generators.get("acgan"),
            ds=ds,
            split=split,
            n=n,
            seed=seed,
            progress=progress,
        )
    except ValueError as exc:  # JudgeError / HarnessError: e.g. no positives to learn the finding
        return {"available": False, "reason": str(exc)}, {}
    out = q.to_dict()
    # timings vary from run to run; the report must re-assemble to the same bytes
    for key in ("seconds", "cpu_seconds"):
        out.pop(key, None)
        out["judge"].pop(key, None)
    out["available"] = True
    out["curves"] = {}
    files: dict[str, bytes] = {}
    for name, gen in generators.items():
        m = getattr(gen, "manifest", None)
        if m is not None and CURVE_FILE in m.files:
            out["curves"][name] = [
                {k: c[k] for k in ("phase", "every", "n", "points")} for c in store.get_json(m.id, CURVE_FILE)
            ]
            files[f"quality_curve_{name}.png"] = store.get_bytes(m.id, CURVE_PNG)
    return out, files


def _f(x: Any, nd: int = 3) -> str:
    return "–" if x is None else f"{float(x):.{nd}f}"


def distance_rows(q: dict[str, Any], label: Callable[[str], str] = str) -> list[list[str]]:
    """Rows of the distances table (real-train reference first, then each model), shared by the
    report and ``gdgan quality`` so both print the same figures the same way."""
    ref = q["reference"]
    rows = [
        [
            "real train (reference)",
            _f(ref["fd"], 2),
            "1.00",
            _f(ref["kid"], 4),
            _f(ref["precision"]),
            _f(ref["recall"]),
        ]
    ]
    for name, m in q["models"].items():
        d = m["distances"]
        rows.append(
            [
                label(name),
                _f(d["fd"], 2),
                _f(d["relative_fd"], 2),
                _f(d["kid"], 4),
                _f(d["precision"]),
                _f(d["recall"]),
            ]
        )
    return rows


def gan_test_rows(q: dict[str, Any], label: Callable[[str], str] = str) -> list[list[str]]:
    """Rows of the GAN-test table: the real-test ceiling first, then each model (paired and
    independent AUC, CTR shares), shared by the report and ``gdgan quality``."""
    c = q["ceiling"]
    cc = c.get("ctr") or {}
    rows = [
        [
            "real test (ceiling)",
            _f(c["gender_accuracy"]),
            _f(c["view_accuracy"]),
            "–",
            _f(c.get("finding_auc")),
            _f(cc.get("share_above_pos")),
            _f(cc.get("share_above_neg")),
        ]
    ]
    for name, m in q["models"].items():
        g = m["gan_test"]
        ind, pair = g.get("independent") or {}, g.get("paired") or {}
        ctr = ind.get("ctr") or {}
        rows.append(
            [
                label(name),
                _f(g["gender_accuracy"]),
                _f(g["view_accuracy"]),
                _f(pair.get("auc")),
                _f(ind.get("auc")),
                _f(ctr.get("share_above_pos")),
                _f(ctr.get("share_above_neg")),
            ]
        )
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _label(name: str) -> str:
    return {"stage1": "GDGAN stage 1", "stage2": "GDGAN stage 2", "acgan": "ACGAN"}.get(name, name)


def harness_html(h: dict[str, Any] | None, files: dict[str, bytes]) -> str:
    """The report's harness section (tables and curve images)."""
    from gdgan.evaluation.report import _img

    if not h or not h.get("available"):
        reason = (h or {}).get("reason", "not computed")
        return f"<p class='muted'>Quality harness: {html.escape(reason)}.</p>"
    rows = distance_rows(h, _label)
    judge = h["judge"].get("test") or {}
    intro = (
        f"<p>Judge: a CNN trained on real training images of split {h['split_seed']} only "
        f"({html.escape(str(h['judge'].get('finding_truth')))} for {html.escape(h['finding'])}); on real "
        f"test images gender accuracy {_f(judge.get('gender_accuracy'))}, "
        f"view {_f(judge.get('view_accuracy'))}, "
        f"finding AUC {_f(judge.get('finding_auc'))}"
        + (
            f", CTR mean absolute error {_f(judge.get('ctr_mae'))}"
            if judge.get("ctr_mae") is not None
            else ""
        )
        + f". {h['n']} images per set.</p>"
    )
    dist = _table(DISTANCE_HEADER, rows)
    gan = _table(GAN_TEST_HEADER, gan_test_rows(h, _label))
    curves = "".join(
        _img(files, f"quality_curve_{n}.png", f"{SET_NAMES.get(n, n)}: quality over training (EMA weights)")
        for n in ("gdgan", "acgan")
        if f"quality_curve_{n}.png" in files
    )
    return intro + dist + gan + curves
