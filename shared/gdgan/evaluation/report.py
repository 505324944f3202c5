"""Render the report: rows of Tables 1–2 (shared by the HTML and the CLI), the ROC figure
(the paper's Figure 3) and a self-contained HTML page (inline CSS, images as data URIs)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from gdgan.evaluation.harness_report import harness_html
from gdgan.evaluation.paper import PAPER_TABLE1, PAPER_TABLE2
from gdgan.evaluation.stats import t_interval, verdict

TEMPLATE = Path(__file__).with_name("report_template.html")
STRATEGY_LABELS = {
    "none": "None (as is)",
    "undersample": "Undersampling",
    "oversample": "Oversampling",
    "acgan": "+ ACGAN images",
    "gdgan": "+ GDGAN images",
}
SET_LABELS = {"real": "Real", "acgan": "ACGAN", "gdgan": "GDGAN"}


def _f(x: Any, nd: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    return f"{float(x):.{nd}f}"


def _p(x: Any) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def table1_rows(report: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """(network label, rows [set, IS mean, SD, n, splits, paper IS, p vs real, p vs GDGAN])."""
    inc = report["quality"]["inception_score"]
    key = "imagenet" if inc["imagenet"].get("available") else "domain"
    sec = inc[key]
    label = sec.get("network") or f"ImageNet Inception-v3 ({inc['imagenet'].get('variant')})"
    welch = sec.get("welch", {})
    rows = []
    for name in [k for k in SET_LABELS if k in sec["scores"]]:
        sc = sec["scores"][name]
        vs_real = welch.get(f"real_vs_{name}", {}).get("p") if name != "real" else None
        vs_gd = welch.get(f"{name}_vs_gdgan", {}).get("p") if name != "gdgan" else None
        rows.append(
            [
                SET_LABELS.get(name, name),
                _f(sc["mean"]),
                _f(sc["sd"]),
                _f(sc["n_images"]),
                _f(sc["n_splits"]),
                _f(PAPER_TABLE1.get(name, {}).get("mean")),
                _p(vs_real),
                _p(vs_gd),
            ]
        )
    return label, rows


TABLE1_HEADER = ["Images", "IS mean", "IS SD", "n", "splits", "paper IS", "p vs real", "p vs GDGAN"]
TABLE2_HEADER = [
    "Training set",
    "total",
    "positive",
    "AUC mean",
    "SD",
    "95% CI retrain (t, repeats)",
    "95% CI test set (bootstrap)",
    "Δ vs none",
    "Δ 95% CI retrain (t, repeats)",
    "Δ 95% CI test set (bootstrap)",
    "verdict vs none (retrain CI)",
    "paper AUC",
    "paper total/positive",
]
TABLE2_NOTE = (
    "Two 95% intervals, for two questions. 'retrain (t, repeats)': Student's t over the repeats, "
    "each a new patient split with newly trained GANs and classifier — the uncertainty of training "
    "again on new data; the verdict uses only this one. 'test set (bootstrap)': the test images "
    "resampled with the trained classifiers held fixed — how much these classifiers' AUCs move "
    "with the test sample, nothing about retraining."
)


def _ci(lo: Any, hi: Any, signed: bool = False) -> str:
    if lo is None or hi is None:
        return "–"
    return f"[{lo:+.4f}, {hi:+.4f}]" if signed else f"[{_f(lo)}, {_f(hi)}]"


def table2_rows(report: dict[str, Any]) -> list[list[str]]:
    """Rows of :data:`TABLE2_HEADER` (reports stored before the repeat-level CI was kept get it
    recomputed from their per-repeat AUCs)."""
    t2 = report["table2"]
    rows = []
    order = [s for s in report["plan"]["strategies"] if s in t2["rows"]]
    for s in order:
        r = t2["rows"][s]
        c0 = r["counts_per_repeat"][0]
        boot = r["pooled_ci"]
        rep = r.get("repeat_ci") or t_interval(r["auc_per_repeat"])
        pd = t2["paired_vs_none"].get(s)
        if pd:
            t_ci = pd.get("t_ci") or (None, None)
            delta = [
                f"{pd['mean']:+.4f}",
                _ci(*t_ci, signed=True),
                _ci(*pd["bootstrap_ci"], signed=True),
                pd.get("verdict") or verdict(pd.get("t_ci")),
            ]
        else:
            delta = ["–", "–", "–", "–"]
        paper = PAPER_TABLE2.get(s, {})
        paper_auc = _f(paper.get("auc")) + (f" ± {paper['sd']:.4f}" if paper.get("sd") else "")
        paper_counts = f"{paper['total']:,}/{paper['positives']:,}" if paper.get("total") else "–"
        rows.append(
            [
                STRATEGY_LABELS.get(s, s),
                _f(c0["total"]),
                _f(c0["positives"]),
                _f(r["auc_mean"]),
                _f(r["auc_sd"]),
                _ci(rep["lo"], rep["hi"]),
                _ci(boot["lo"], boot["hi"]),
                *delta,
                paper_auc,
                paper_counts,
            ]
        )
    return rows


def roc_png(classification: dict[str, Any], finding: str) -> bytes:
    """Figure 3: mean ROC per strategy (averaged over repeats on a common FPR grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=110)
    for s in [k for k in STRATEGY_LABELS if k in classification["rows"]]:
        row = classification["rows"][s]
        curves = [c for c in row["roc_per_repeat"] if c]
        if not curves:
            continue
        fpr = np.asarray(curves[0]["fpr"])
        tpr = np.mean([np.asarray(c["tpr"]) for c in curves], axis=0)
        ax.plot(fpr, tpr, lw=1.6, label=f"{STRATEGY_LABELS.get(s, s)} (AUC {row['auc_mean']:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(f"ROC, {finding} (mean over repeats)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _table(header: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _img(files: dict[str, bytes], name: str, alt: str) -> str:
    if name not in files:
        return f"<p class='muted'>({html.escape(alt)}: not available)</p>"
    uri = "data:image/png;base64," + base64.b64encode(files[name]).decode()
    cap = html.escape(alt)
    return f"<figure><img src='{uri}' alt='{cap}'><figcaption>{cap}</figcaption></figure>"


def _fid_section(q: dict[str, Any]) -> str:
    parts = []
    for key in ("inception", "domain"):
        sec = q["fid_kid"].get(key, {})
        if not sec.get("vs_real"):
            parts.append(
                f"<p class='muted'>{html.escape(key)} features: unavailable — "
                f"{html.escape(str(sec.get('reason', '')))}</p>"
            )
            continue
        rows = [
            [
                SET_LABELS.get(n, n),
                _f(m["fid"], 3),
                f"{m['kid']['mean']:.5f} ± {m['kid']['sd']:.5f}",
                _f(m["n_real"]),
                _f(m["n_synthetic"]),
            ]
            for n, m in sec["vs_real"].items()
        ]
        parts.append(
            f"<h4>{html.escape(sec['network'])}</h4>"
            + _table(["vs real test", "FID", "KID (mean ± SD)", "n real", "n synthetic"], rows)
        )
    return "".join(parts)


def _fidelity_section(q: dict[str, Any]) -> str:
    lf = q["label_fidelity"]
    rows = [
        [
            SET_LABELS.get(n, n),
            _f(v["finding_auc"]),
            _f(v["gender_accuracy"]),
            _f(v["view_accuracy"]),
            _f(v["general_accuracy"]),
            f"{v['n_positive']}/{v['n_negative']}",
        ]
        for n, v in lf.items()
        if isinstance(v, dict)
    ]
    return _table(["Images", "finding AUC (pos vs neg)", "gender acc.", "view acc.", "both", "pos/neg"], rows)


def _memorisation_section(q: dict[str, Any], files: dict[str, bytes]) -> str:
    mem = q["memorisation"]
    rows = []
    for n, a in mem.items():
        if not isinstance(a, dict) or "pixel" not in a:
            continue
        for space in ("pixel", "feature"):
            if space in a:
                s = a[space]
                rows.append(
                    [
                        SET_LABELS.get(n, n),
                        space,
                        _f(s["threshold"], 4),
                        f"{100 * s['share_flagged']:.2f} %",
                        _f(s["n_exact_copies"]),
                        _f(s["synthetic_to_train"].get("median"), 4),
                        _f(s["test_to_train"].get("median"), 4),
                        _f(s["n_synthetic"]),
                    ]
                )
    out = _table(
        [
            "GAN",
            "space",
            "1st pct test→train",
            "synthetic closer",
            "exact copies",
            "median syn→train",
            "median test→train",
            "n",
        ],
        rows,
    )
    for n in ("acgan", "gdgan"):
        out += _img(
            files, f"closest_{n}.png", f"{SET_LABELS[n]}: closest synthetic/training pairs (pixel space)"
        )
    return out


def render_html(report: dict[str, Any], files: dict[str, bytes]) -> str:
    """The self-contained report page."""
    q = report["quality"]
    is_label, t1 = table1_rows(report)
    inc = q["inception_score"]
    note = (
        ""
        if inc["imagenet"].get("available")
        else (
            "<p class='warn'>ImageNet inception score unavailable: "
            f"{html.escape(inc['imagenet'].get('reason', ''))}. The scores below use the domain "
            "network and are "
            "not comparable to the paper's numbers in absolute value; compare the ordering.</p>"
        )
    )
    lin = report["lineage"]
    counts_note = (
        f"Counts are those of split 0 (seed {report['splits'][0]['seed']}); positive share target "
        f"s = {report['positive_share']}."
    )
    splits_rows = [
        [
            str(s["repeat"]),
            str(s["seed"]),
            _f(s["train"]),
            _f(s["val"]),
            _f(s["test"]),
            _f(s["train_positives"]),
            _f(s["test_positives"]),
        ]
        for s in report["splits"]
    ]
    sub = {
        "title": html.escape(f"GDGAN evaluation — {report['finding']}"),
        "finding": html.escape(report["finding"]),
        "dataset": html.escape(
            f"{report['dataset']['id']} ({report['dataset'].get('source') or 'dataset'}, "
            f"{report['dataset']['n']:,} images, {report['dataset']['size']} px)"
        ),
        "created": html.escape(report["created"]),
        "code_version": html.escape(report["code_version"]),
        "preset": html.escape(report["plan"]["preset"]),
        "repeats": str(report["plan"]["repeats"]),
        "classifier": html.escape(report["preset"]["classifier"]["kind"]),
        "table1_network": html.escape(is_label),
        "table1_note": note,
        "table1": _table(TABLE1_HEADER, t1),
        "is_protocol": html.escape(
            f"{inc['protocol']['images_per_set']:,} images per set in {inc['protocol']['splits']} splits "
            f"(paper: {inc['protocol']['paper_protocol']})."
        ),
        "table2": _table(TABLE2_HEADER, table2_rows(report)),
        "table2_note": html.escape(TABLE2_NOTE),
        "counts_note": html.escape(counts_note),
        "roc": _img(files, "roc.png", f"Figure 3: ROC curves, {report['finding']}"),
        "fid": _fid_section(q),
        "fidelity": _fidelity_section(q),
        "harness": harness_html(q.get("harness"), files),
        "memorisation": _memorisation_section(q, files),
        "grids": "".join(
            _img(
                files,
                f"samples_{n}.png",
                f"{SET_LABELS[n]} samples (first half {report['finding']}, second half negatives)",
            )
            for n in ("real", "acgan", "gdgan")
        ),
        "lineage": html.escape(lin["statement"]),
        "lineage_class": "ok" if lin["all_ok"] else "warn",
        "splits": _table(["repeat", "seed", "train", "val", "test", "train pos.", "test pos."], splits_rows),
        "paper_ref": html.escape(report["paper"]["reference"]),
    }
    return Template(TEMPLATE.read_text()).substitute(sub)
