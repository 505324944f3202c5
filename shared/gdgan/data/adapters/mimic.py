"""MIMIC-CXR-JPG (PhysioNet): metadata, CheXpert-style labels, split and patient sex, joined on ids.

Files as published: ``mimic-cxr-2.0.0-metadata.csv(.gz)`` (dicom_id, subject_id, study_id,
ViewPosition, ...), ``mimic-cxr-2.0.0-chexpert.csv(.gz)`` (subject_id, study_id, 14 observations
per *study*), optionally ``mimic-cxr-2.0.0-split.csv(.gz)`` (dicom_id -> train/validate/test) and
MIMIC-IV's ``patients.csv(.gz)`` (subject_id, gender) — without it the schema has no sex. Images
lie at ``files/p10/p10000032/s50414267/<dicom_id>.jpg``. The view comes from ViewPosition;
uncertainty and laterals follow the CheXpert adapter's policies.
"""

from __future__ import annotations

from pathlib import Path

from gdgan.data.adapters.chexpert import labelled_inputs, observations, policy_report
from gdgan.data.adapters.common import (
    Record,
    Source,
    read_csv,
    resolve_under,
    sex_code,
    view_code,
)

_LATERAL = {"LATERAL", "LL", "RL", "LAO", "RAO", "LPO", "SWIMMERS", "XTABLE LATERAL"}


def read_mimic(
    metadata: str | Path,
    labels: str | Path,
    images: str | Path,
    *,
    patients: str | Path | None = None,
    split: str | Path | None = None,
    uncertainty: str = "ones",
    laterals: str = "skip",
    findings: tuple[str, ...] | None = None,
) -> Source:
    root, wanted = labelled_inputs(images, uncertainty, laterals, findings)
    report = policy_report(str(metadata), root, uncertainty, laterals)

    study_labels: dict[tuple[str, str], dict[str, str]] = {}
    _, rows = read_csv(labels, ("subject_id", "study_id", *wanted), "MIMIC-CXR CheXpert label CSV")
    for _line, row in rows:
        if row:
            study_labels[(row["subject_id"], row["study_id"])] = row
    sex: dict[str, int | None] = {}
    if patients is not None:
        _, rows = read_csv(patients, ("subject_id", "gender"), "MIMIC-IV patients CSV")
        sex = {row["subject_id"]: sex_code(row["gender"]) for _l, row in rows if row}
    parts: dict[str, int] = {}
    if split is not None:
        _, rows = read_csv(split, ("dicom_id", "split"), "MIMIC-CXR split CSV")
        parts = {row["dicom_id"]: 2 if row["split"] == "test" else 1 for _l, row in rows if row}

    records: list[Record] = []
    _, rows = read_csv(
        metadata, ("dicom_id", "subject_id", "study_id", "ViewPosition"), "MIMIC-CXR metadata CSV"
    )
    for line, row in rows:
        report.rows += 1
        if not row:
            report.bad_rows.add(f"line {line}: unreadable or wrong number of fields")
            continue
        subj, study, dicom_id = row["subject_id"], row["study_id"], row["dicom_id"]
        if not (subj.isdigit() and study.isdigit()) or not dicom_id:
            report.bad_rows.add(
                f"line {line}: subject_id {subj!r} / study_id {study!r} / dicom_id {dicom_id!r}"
            )
            continue
        key = f"files/p{subj[:2]}/p{subj}/s{study}/{dicom_id}.jpg"
        vp = row["ViewPosition"].strip().upper()
        lateral = vp in _LATERAL
        if lateral and laterals == "skip":
            report.excluded.add(f"line {line}: {dicom_id} (ViewPosition {vp})")
            continue
        lab = study_labels.get((subj, study))
        if lab is None:
            report.unknown_labels.add(f"line {line}: {dicom_id}: no label row for study {study}")
            continue
        vec = observations(lab, wanted, uncertainty, line, dicom_id, report)
        if vec is None:
            continue
        records.append(
            Record(
                line=line,
                key=key,
                path=resolve_under(root, key),
                patient=f"mimic:{subj}",
                findings=vec,
                gender=sex.get(subj),
                view=None if lateral else view_code(vp),
                split=parts.get(dicom_id, 0),
            )
        )
    general = tuple(g for g, on in (("gender", patients is not None), ("view", laterals == "skip")) if on)
    config = {"uncertainty": uncertainty, "laterals": laterals, "patients": patients is not None}
    return Source("mimic", records, wanted, report, config, general=general)
