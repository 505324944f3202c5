"""A stored report as markdown: Tables 1–2, the quality-harness tables and its figures.

The README and ``docs/results/paper.md`` quote the final run's numbers; copying them by hand
from the HTML page is how stale or mistyped figures get in. This renders them from
``report.json`` with the same row builders as the HTML page and the CLI
(``gdgan.evaluation.report`` and ``gdgan.evaluation.harness_report``), so all three always show
the same digits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gdgan.evaluation.harness_report import DISTANCE_HEADER, GAN_TEST_HEADER, distance_rows, gan_test_rows
from gdgan.evaluation.report import TABLE1_HEADER, TABLE2_HEADER, TABLE2_NOTE, table1_rows, table2_rows

# Figures of a report artifact worth putting in a document, in reading order, with captions.
FIGURES: tuple[tuple[str, str], ...] = (
    ("roc.png", "ROC curves per training set, mean over repeats (the paper's Figure 3)"),
    ("samples_real.png", "Real images (requested Cardiomegaly on top, negatives below)"),
    ("samples_gdgan.png", "GDGAN samples (split 0)"),
    ("samples_acgan.png", "ACGAN samples (split 0)"),
    ("quality_curve_gdgan.png", "GDGAN quality over training (EMA weights)"),
    ("quality_curve_acgan.png", "ACGAN quality over training (EMA weights)"),
    ("closest_gdgan.png", "Closest GDGAN / training pairs (memorisation audit)"),
    ("closest_acgan.png", "Closest ACGAN / training pairs (memorisation audit)"),
)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; '|' inside a cell is escaped so columns stay put."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _harness_label(name: str) -> str:
    return {"stage1": "GDGAN stage 1", "stage2": "GDGAN stage 2", "acgan": "ACGAN"}.get(name, name)


def _f(x: Any, nd: int = 3) -> str:
    return "–" if x is None else f"{float(x):.{nd}f}"


def _context(report: dict[str, Any], report_id: str) -> str:
    ds = report.get("dataset") or {}
    plan = report.get("plan") or {}
    preset = report.get("preset") or {}
    splits = report.get("splits") or []
    s0 = splits[0] if splits else {}
    n = ds.get("n")
    shape = (
        f" ({ds.get('source', '?')}, {n:,} images × {ds.get('size', '?')} px)" if isinstance(n, int) else ""
    )
    bits = [
        f"Report `{report_id}`" if report_id else "Report",
        f"code {report.get('code_version', '?')}",
        f"dataset `{ds.get('id', '?')}`{shape}",
        f"evaluation preset `{plan.get('preset', '?')}` "
        f"(GAN training preset `{preset.get('gan_preset', '?')}`)",
        f"{plan.get('repeats', '?')} patient-wise splits, GANs trained per split",
        f"split 0: {s0.get('train_positives', '?')} real training positives, "
        f"{s0.get('test', '?')} test images ({s0.get('test_positives', '?')} positive)",
    ]
    return "; ".join(bits) + "."


def _table1(report: dict[str, Any]) -> str:
    try:
        label, rows = table1_rows(report)
    except (KeyError, TypeError) as exc:  # a report without the quality section (e.g. no GAN)
        return f"Table 1 unavailable in this report ({exc})."
    out = [f"**Table 1 — inception score ({label}).**", "", md_table(TABLE1_HEADER, rows)]
    imagenet = ((report.get("quality") or {}).get("inception_score") or {}).get("imagenet") or {}
    if not imagenet.get("available"):
        out += ["", f"ImageNet IS unavailable: {imagenet.get('reason', 'not computed')}"]
    return "\n".join(out)


def _table2(report: dict[str, Any]) -> str:
    repeats = (report.get("plan") or {}).get("repeats", "?")
    return "\n".join(
        [
            f"**Table 2 — {report.get('finding', '')} classifier, {repeats} repeats** (counts: split 0).",
            "",
            md_table(TABLE2_HEADER, table2_rows(report)),
            "",
            TABLE2_NOTE,
        ]
    )


def _harness(report: dict[str, Any]) -> str:
    h = (report.get("quality") or {}).get("harness") or {}
    if not h.get("available"):
        return f"Quality harness: {h.get('reason', 'not computed')}."
    judge = (h.get("judge") or {}).get("test") or {}
    ctr = f", CTR mean absolute error {_f(judge.get('ctr_mae'))}" if judge.get("ctr_mae") is not None else ""
    intro = (
        f"**Image quality (quality harness, split {h.get('split_seed', 0)}).** Judge: a CNN trained on "
        f"real training images only ({(h.get('judge') or {}).get('finding_truth', 'label')} for "
        f"{h.get('finding', '')}); on real test images gender accuracy {_f(judge.get('gender_accuracy'))}, "
        f"view {_f(judge.get('view_accuracy'))}, finding AUC {_f(judge.get('finding_auc'))}{ctr}. "
        f"{h.get('n', '?')} images per set."
    )
    return "\n".join(
        [
            intro,
            "",
            md_table(DISTANCE_HEADER, distance_rows(h, _harness_label)),
            "",
            md_table(GAN_TEST_HEADER, gan_test_rows(h, _harness_label)),
        ]
    )


def figure_names(files: Sequence[str]) -> list[tuple[str, str]]:
    """(file, caption) of the report's figures, known ones in reading order, then any other PNG."""
    known = [(f, cap) for f, cap in FIGURES if f in files]
    seen = {f for f, _ in known}
    return known + [
        (f, f.removesuffix(".png")) for f in sorted(files) if f.endswith(".png") and f not in seen
    ]


def report_markdown(
    report: Mapping[str, Any],
    report_id: str = "",
    figures: Sequence[tuple[str, str]] = (),
) -> str:
    """Tables 1–2, the harness tables and ``figures`` ((link, caption) pairs) as one markdown
    fragment, ready to paste under a heading of the README or the results page."""
    rep = dict(report)
    parts = [_context(rep, report_id), _table1(rep), _table2(rep), _harness(rep)]
    if figures:
        parts.append("\n\n".join(f"![{cap}]({link})" for link, cap in figures))
    return "\n\n".join(parts) + "\n"
