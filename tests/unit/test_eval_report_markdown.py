"""The markdown rendering of a stored report (``gdgan report tables --markdown``): tables that
stay tables whatever the cells hold, and figures in reading order. The end-to-end check against
a real report is in tests/integration/test_reproduce_tiny.py."""

from __future__ import annotations

from gdgan.evaluation.report_markdown import figure_names, md_table


def test_md_table_keeps_its_columns() -> None:
    text = md_table(["a", "b|c"], [["1", "x|y"], ["2", "line\nbreak"]])
    lines = text.splitlines()
    assert len(lines) == 4  # header, rule, two rows: a newline in a cell does not add a row
    # every line splits into the same number of columns once escaped bars are set aside
    assert {ln.replace("\\|", "").count("|") for ln in lines} == {3}
    assert lines[1] == "|---|---|"


def test_figures_known_first_in_reading_order_then_the_rest() -> None:
    names = ["samples_gdgan.png", "zz_extra.png", "roc.png", "report.json", "quality_curve_gdgan.png"]
    got = [f for f, _ in figure_names(names)]
    assert got == ["roc.png", "samples_gdgan.png", "quality_curve_gdgan.png", "zz_extra.png"]
