"""JSON schema of report.json (the parts a reader or a service relies on).

Kept as data so tests and clients validate reports against the same definition.
"""

from __future__ import annotations

from typing import Any

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_COUNTS = {
    "type": "object",
    "required": [
        "strategy",
        "total",
        "positives",
        "real_positives",
        "real_negatives",
        "negatives_kept",
        "positives_added_real",
        "positives_added_synthetic",
        "share",
    ],
    "properties": {"total": {"type": "integer"}, "positives": {"type": "integer"}},
}
_IS = {
    "type": "object",
    "required": ["mean", "sd", "split_scores", "n_images", "n_splits", "network"],
    "properties": {
        "mean": _NUM,
        "sd": _NUM,
        "split_scores": {"type": "array", "items": _NUM},
        "n_images": {"type": "integer"},
        "n_splits": {"type": "integer"},
    },
}
_ROW = {
    "type": "object",
    "required": [
        "auc_per_repeat",
        "auc_mean",
        "auc_sd",
        "auc_n",
        "pooled_ci",
        "counts_per_repeat",
        "roc_per_repeat",
    ],
    "properties": {
        "auc_per_repeat": {"type": "array", "items": _NUM_OR_NULL},
        "auc_mean": _NUM,
        "auc_sd": _NUM,
        "pooled_ci": {"type": "object", "required": ["auc", "lo", "hi", "n_boot", "level"]},
        "repeat_ci": {"type": "object", "required": ["mean", "lo", "hi", "n", "level"]},
        "counts_per_repeat": {"type": "array", "items": _COUNTS, "minItems": 1},
    },
}
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": [
        "schema_version",
        "created",
        "code_version",
        "plan",
        "preset",
        "finding",
        "positive_share",
        "dataset",
        "splits",
        "lineage",
        "table2",
        "quality",
        "paper",
    ],
    "properties": {
        "schema_version": {"const": 1},
        "plan": {
            "type": "object",
            "required": ["dataset_id", "finding", "repeats", "preset", "strategies", "seed"],
        },
        "splits": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["repeat", "seed", "train", "val", "test"]},
        },
        "lineage": {"type": "object", "required": ["dataset_id", "repeats", "all_ok", "statement"]},
        "table2": {
            "type": "object",
            "required": ["rows", "paired_vs_none"],
            "properties": {"rows": {"type": "object", "additionalProperties": _ROW, "minProperties": 1}},
        },
        "quality": {
            "type": "object",
            "required": [
                "inception_score",
                "fid_kid",
                "label_fidelity",
                "memorisation",
                "domain_network",
                "sets",
            ],
            "properties": {
                "inception_score": {
                    "type": "object",
                    "required": ["protocol", "domain", "imagenet"],
                    "properties": {
                        "domain": {
                            "type": "object",
                            "required": ["network", "scores", "welch"],
                            "properties": {"scores": {"type": "object", "additionalProperties": _IS}},
                        },
                        "imagenet": {"type": "object", "required": ["available"]},
                    },
                },
            },
        },
        "paper": {"type": "object", "required": ["reference", "table1", "table2"]},
    },
}


def validate_report(report: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``report`` does not fit the schema."""
    import jsonschema

    jsonschema.validate(report, REPORT_SCHEMA)
