"""``gdgan demo`` ends with the harness figures: the table rows come from the report's section."""

from __future__ import annotations

from gdgan.cli.demo import QUALITY_COLUMNS, quality_rows


def test_quality_rows_read_the_harness_section_with_the_ceiling_first() -> None:
    report = {
        "quality": {
            "harness": {
                "available": True,
                "ceiling": {
                    "gender_accuracy": 0.97,
                    "view_accuracy": 0.99,
                    "finding_auc": 0.95,
                    "ctr": {"share_above_pos": 0.9, "share_above_neg": 0.05},
                },
                "models": {
                    "stage2": {
                        "distances": {"relative_fd": 2.5, "precision": 0.7, "recall": 0.55},
                        "gan_test": {
                            "gender_accuracy": 0.88,
                            "view_accuracy": 0.99,
                            "paired": {"auc": 0.93},
                            "independent": {
                                "auc": 0.91,
                                "ctr": {"share_above_pos": 0.85, "share_above_neg": 0.1},
                            },
                        },
                    },
                    "acgan": {"distances": {"relative_fd": 4.0}, "gan_test": {}},
                },
            }
        }
    }
    rows = quality_rows(report)
    assert [r[0] for r in rows] == ["real test (ceiling)", "GDGAN", "ACGAN"]
    assert all(len(r) == 1 + len(QUALITY_COLUMNS) for r in rows)
    keys = [k for k, _ in QUALITY_COLUMNS]
    gd = dict(zip(keys, rows[1][1:]))
    assert gd["relative_fd"] == "2.500" and gd["finding_auc_independent"] == "0.910"
    assert gd["ctr_share_pos"] == "0.850" and gd["ctr_share_neg"] == "0.100"
    assert dict(zip(keys, rows[2][1:]))["recall"] == "—"  # missing figures are shown as such
    assert dict(zip(keys, rows[0][1:]))["view_accuracy"] == "0.990"
    assert quality_rows({"quality": {"harness": {"available": False}}}) == []
    assert quality_rows({}) == []
