"""MIMIC-CXR-JPG (PhysioNet): metadata, CheXpert-style labels, split and patient sex, joined on ids.

Files as published: ``mimic-cxr-2.0.0-metadata.csv(.gz)`` (dicom_id, subject_id, study_id,
ViewPosition, ...), ``mimic-cxr-2.0.0-chexpert.csv(.gz)`` (subject_id, study_id, 14 observations
per *study*), optionally ``mimic-cxr-2.0.0-split.csv(.gz)`` (dicom_id -> train/validate/test) and
MIMIC-IV's ``patients.csv(.gz)`` (subject_id, gender, anchor_age, anchor_year) — without it the
schema has no sex and no age. Images lie at ``files/p10/p10000032/s50414267/<dicom_id>.jpg``. The
view comes from ViewPosition; uncertainty and laterals follow the CheXpert adapter's policies.

- Age at the study: ``anchor_age + (year of StudyDate - anchor_year)`` (MIMIC shifts every date of
  a patient by one offset, and anchor_year is in the same shifted frame), or ``anchor_age`` when
  the metadata has no StudyDate or the patients file no anchor_year.
- Follow-up number: the study's rank (0 = first) among the subject's studies ordered by StudyDate
  and StudyTime; MIMIC's study ids are random, so without StudyDate they give no order and every
  image keeps follow-up 0 (recorded in the report's notes).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from gdgan.data.adapters.chexpert import labelled_inputs, observations, policy_report
from gdgan.data.adapters.common import (
    Record,
    Source,
    parse_age,
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
    anchor: dict[str, tuple[int, int | None]] = {}  # subject -> (anchor_age, anchor_year)
    if patients is not None:
        header, rows = read_csv(patients, ("subject_id", "gender"), "MIMIC-IV patients CSV")
        for _l, row in rows:
            if not row:
                continue
            sex[row["subject_id"]] = sex_code(row["gender"])
            age = parse_age(row.get("anchor_age", ""))
            if age >= 0:
                year = row.get("anchor_year", "")
                anchor[row["subject_id"]] = (age, int(year) if year.isdigit() else None)
    parts: dict[str, int] = {}
    if split is not None:
        _, rows = read_csv(split, ("dicom_id", "split"), "MIMIC-CXR split CSV")
        parts = {row["dicom_id"]: 2 if row["split"] == "test" else 1 for _l, row in rows if row}

    records: list[Record] = []
    studies: dict[str, set[tuple[str, str, str]]] = defaultdict(set)  # subject -> (date, time, study)
    when: list[tuple[str, str, str]] = []  # per record
    header, rows = read_csv(
        metadata, ("dicom_id", "subject_id", "study_id", "ViewPosition"), "MIMIC-CXR metadata CSV"
    )
    dated = "StudyDate" in header
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
        date = row.get("StudyDate", "")
        stamp = (date, row.get("StudyTime", "").zfill(13), study)  # StudyTime: HHMMSS[.ffffff]
        studies[subj].add(stamp)
        when.append(stamp)
        records.append(
            Record(
                line=line,
                key=key,
                path=resolve_under(root, key),
                patient=f"mimic:{subj}",
                findings=vec,
                gender=sex.get(subj),
                view=None if lateral else view_code(vp),
                age=_age_at(anchor.get(subj), date),
                split=parts.get(dicom_id, 0),
            )
        )
    if dated:
        order = {s: {st: i for i, st in enumerate(sorted(v))} for s, v in studies.items()}
        for r, stamp in zip(records, when):
            r.follow_up = order[r.patient.removeprefix("mimic:")][stamp]
    report.notes["follow_up"] = "study order by StudyDate/StudyTime" if dated else "0 (no StudyDate)"
    general = tuple(g for g, on in (("gender", patients is not None), ("view", laterals == "skip")) if on)
    config = {"uncertainty": uncertainty, "laterals": laterals, "patients": patients is not None}
    return Source("mimic", records, wanted, report, config, general=general)


def _age_at(anchor: tuple[int, int | None] | None, study_date: str) -> int:
    """Age at a study from MIMIC-IV's anchor (see the module docstring); -1 when unknown."""
    if anchor is None:
        return -1
    age, year = anchor
    if year is None or len(study_date) < 4 or not study_date[:4].isdigit():
        return age
    at = age + int(study_date[:4]) - year
    return at if 0 <= at <= 120 else -1
