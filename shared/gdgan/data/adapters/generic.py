"""Any CSV: a path column plus a mapping of other columns to labels (flags or a YAML/JSON file).

The mapping (every key optional except ``path`` and ``findings``)::

    path: file                      # column with the image path, relative to the image folder
    patient: subject                # column with a patient key (hashed); default: one per image
    age: age
    sex:   {column: Sex, values: {Male: M, Female: F}}      # values: optional, M/F by default
    view:  {column: Projection, values: {PA: PA, AP: AP}}   # rows with other values: no view
    split: {column: fold, values: {train: train, test: test}}
    findings:                       # either a label-list column ...
      list: {column: Labels, separator: "|", none: "No Finding"}
    # ... or one 0/1 (true/false, yes/no) column per finding:  columns: {Cardiomegaly: cm, Effusion: eff}

With ``list``, the findings are the distinct names in the column (alphabetical) unless
``findings.names`` lists them. Sex and view are general labels when mapped and at least half of
the rows have them ("auto"); DICOM headers fill them in where the CSV cannot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gdgan.data.adapters.common import (
    NO_FINDING_NAMES,
    AdapterError,
    Record,
    Source,
    image_root,
    parse_age,
    read_csv,
    resolve_under,
    sex_code,
    view_code,
)
from gdgan.data.nih import IngestReport

TRUE = frozenset({"1", "1.0", "true", "yes", "y", "t", "positive", "pos"})
FALSE = frozenset({"0", "0.0", "false", "no", "n", "f", "negative", "neg", ""})
_KEYS = {"path", "patient", "age", "sex", "view", "split", "findings"}


def load_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping file (YAML is a superset of JSON: one loader reads both)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AdapterError(f"cannot read the label mapping {p}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise AdapterError(f"label mapping {p} must be a mapping (path:, findings:, ...)")
    return data


def check_mapping(m: dict[str, Any]) -> dict[str, Any]:
    """Validate a mapping; errors name the key."""
    unknown = set(m) - _KEYS
    if unknown:
        raise AdapterError(
            f"label mapping: unknown key {sorted(unknown)[0]!r}; known: {', '.join(sorted(_KEYS))}"
        )
    if not isinstance(m.get("path"), str) or not m["path"]:
        raise AdapterError("label mapping: 'path' must name the image path column")
    f = m.get("findings")
    if not isinstance(f, dict) or (("list" in f) == ("columns" in f)):
        raise AdapterError("label mapping: 'findings' needs exactly one of 'list' or 'columns'")
    if "list" in f and not (isinstance(f["list"], dict) and isinstance(f["list"].get("column"), str)):
        raise AdapterError("label mapping: findings.list needs a 'column'")
    if "columns" in f and not (isinstance(f["columns"], dict) and f["columns"]):
        raise AdapterError("label mapping: findings.columns must map finding names to columns")
    for k in ("sex", "view", "split"):
        v = m.get(k)
        if v is not None and not (
            isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("column"), str))
        ):
            raise AdapterError(
                f"label mapping: {k!r} must be a column name or {{column: ..., values: {{...}}}}"
            )
    return m


def _col(spec: Any) -> tuple[str | None, dict[str, str]]:
    if spec is None:
        return None, {}
    if isinstance(spec, str):
        return spec, {}
    return spec["column"], {str(k): str(v) for k, v in (spec.get("values") or {}).items()}


def _general(row: dict[str, str], spec: Any, parse: Any) -> int | None:
    col, vmap = _col(spec)
    if col is None:
        return None
    raw = row.get(col, "")
    code: int | None = parse(vmap.get(raw, raw) if vmap else raw)
    return code


def read_generic_csv(
    csv: str | Path, images: str | Path, mapping: dict[str, Any], general: tuple[str, ...] | str = "auto"
) -> Source:
    m = check_mapping(mapping)
    root = image_root(images)
    report = IngestReport(csv_path=str(csv), images_root=str(root), size=0)
    fspec = m["findings"]
    needed = [m["path"]] + [c for c in (m.get("patient"), m.get("age")) if c]
    needed += [c for c in (_col(m.get(k))[0] for k in ("sex", "view", "split")) if c]
    if "list" in fspec:
        needed.append(fspec["list"]["column"])
    else:
        needed += list(fspec["columns"].values())
    _, rows = read_csv(csv, needed, "CSV")
    table = []
    for line, row in rows:
        report.rows += 1
        if not row:
            report.bad_rows.add(f"line {line}: unreadable or wrong number of fields")
            continue
        table.append((line, row))

    if "list" in fspec:
        lspec = fspec["list"]
        sep, none = str(lspec.get("separator", "|")), lspec.get("none")
        nones = {str(none).lower()} if none else set(NO_FINDING_NAMES)

        def names_of(row: dict[str, str]) -> list[str]:
            parts = (
                [p.strip() for p in row[lspec["column"]].split(sep)]
                if sep
                else [row[lspec["column"]].strip()]
            )
            return [p for p in parts if p and p.lower() not in nones]

        given = fspec.get("names")
        findings = tuple(given) if given else tuple(sorted({n for _l, r in table for n in names_of(r)}))
        index = {n: i for i, n in enumerate(findings)}
    else:
        cols = {str(k): str(v) for k, v in fspec["columns"].items()}
        findings = tuple(cols)

    split_col, split_map = _col(m.get("split"))
    records: list[Record] = []
    for line, row in table:
        key = row[m["path"]]
        vec = np.zeros(len(findings), np.uint8)
        if "list" in fspec:
            for n in names_of(row):
                if n in index:
                    vec[index[n]] = 1
        else:
            bad = None
            for i, (name, col) in enumerate(cols.items()):
                v = row[col].strip().lower()
                if v in TRUE:
                    vec[i] = 1
                elif v not in FALSE:
                    bad = f"{name} = {row[col]!r}"
                    break
            if bad:
                report.unknown_labels.add(f"line {line} ({key}): {bad} (expected 1/0, true/false, yes/no)")
                continue
        split = 0
        if split_col:
            s = split_map.get(row[split_col], row[split_col]).strip().lower()
            split = {"train": 1, "training": 1, "test": 2, "testing": 2}.get(s, 0)
        records.append(
            Record(
                line=line,
                key=key,
                path=resolve_under(root, key),
                patient=f"csv:{row[m['patient']]}" if m.get("patient") and row[m["patient"]] else "",
                findings=vec,
                gender=_general(row, m.get("sex"), sex_code),
                view=_general(row, m.get("view"), view_code),
                age=parse_age(row[m["age"]]) if m.get("age") else -1,
                split=split,
            )
        )
    return Source("csv", records, findings, report, {"mapping": json.loads(json.dumps(m))}, general=general)
