"""Small synthetic datasets in each publisher's real layout (CSV headers, folder trees, DICOM tags).

Images are constant-valued (or simple gradients) so that the decoded pixel values have closed
forms; DICOM files are real ones written with pydicom (MONOCHROME1/2, rescale, windows,
uncompressed, RLE and JPEG 2000). Shared by the unit, integration and e2e tests.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CHEXPERT_HEADER = [
    "Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
    "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis",
    "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices",
]  # fmt: skip
VINDR_FINDINGS = ["Aortic enlargement", "Cardiomegaly", "Nodule/Mass", "Pleural effusion", "Other disease"]
# per image, one 0/1 vector per reader: a1 2 of 3 say Cardiomegaly (1 Nodule/Mass); b2 1 of 3 effusion
VINDR_VOTES = {
    "a1": [[0, 1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]],
    "b2": [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0]],
    "c3": [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]],
    "d4": [[0, 0, 0, 0, 0]] * 3,
}


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_jpeg(path: Path, value: int, side: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side), value, np.uint8)).save(path, quality=95)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    sex: str | None = "F",
    view: str | None = "PA",
    patient_id: str | None = "PID-0001",
    spacing: tuple[float, float] | None = (0.143, 0.143),
    syntax: str = "explicit",
    age: str | None = None,
) -> Path:
    """A real DICOM file (Digital X-Ray storage) with the given pixel pipeline tags."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        RLELossless,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = stored.astype(np.uint16).tobytes()
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if sex is not None:
        ds.PatientSex = sex
    if view is not None:
        ds.ViewPosition = view
    if patient_id is not None:
        ds.PatientID = patient_id
        ds.PatientName = "Doe^Jane"
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
    if age is not None:
        ds.PatientAge = age  # DICOM AS: "058Y"
    if syntax == "rle":
        ds.compress(RLELossless)
    elif syntax == "j2k":
        ds.compress(JPEG2000Lossless)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def const(value: int, side: int = 40, dtype: Any = np.uint16) -> np.ndarray:
    return np.full((side, side), value, dtype)


# ------------------------------------------------------------------------------- layouts ---
def chexpert(root: Path) -> dict[str, Any]:
    """CheXpert-v1.0-small/{train,valid}/patientN/studyM/viewK_{frontal,lateral}.jpg + the CSVs."""
    base = root / "CheXpert-v1.0-small"
    obs = CHEXPERT_HEADER[5:]

    def row(rel: str, sex: str, lateral: bool, appa: str, labels: dict[str, str]) -> list[str]:
        vals = [labels.get(o, "") for o in obs]
        return [rel, sex, "63", "Lateral" if lateral else "Frontal", appa, *vals]

    train = []
    for i in range(8):
        rel = f"CheXpert-v1.0-small/train/patient{i:05d}/study1/view1_frontal.jpg"
        write_jpeg(root / rel, 60 + 10 * i)
        labels = {"Cardiomegaly": "1.0"} if i % 2 else {"No Finding": "1.0"}
        if i == 3:
            labels["Edema"] = "-1.0"  # uncertain
        train.append(row(rel, "Female" if i % 3 else "Male", False, "AP" if i % 2 else "PA", labels))
    lat = "CheXpert-v1.0-small/train/patient00000/study1/view2_lateral.jpg"
    write_jpeg(root / lat, 90)
    train.append(row(lat, "Male", True, "", {"Cardiomegaly": "1.0"}))
    train.append(
        row("CheXpert-v1.0-small/train/patient00099/study1/view1_frontal.jpg", "Male", False, "PA", {})
    )
    train.append(row(train[0][0], "Male", False, "PA", {}))  # duplicate row
    bad = "CheXpert-v1.0-small/train/patient00050/study1/view1_frontal.jpg"
    write_jpeg(root / bad, 10)
    train.append(row(bad, "Male", False, "PA", {"Cardiomegaly": "2"}))  # unknown label value
    unk = "CheXpert-v1.0-small/train/patient00051/study1/view1_frontal.jpg"
    write_jpeg(root / unk, 10)
    train.append(row(unk, "Unknown", False, "PA", {}))  # no sex
    write_csv(base / "train.csv", CHEXPERT_HEADER, train)
    valid = []
    for i in range(3):
        rel = f"CheXpert-v1.0-small/valid/patient{64541 + i}/study1/view1_frontal.jpg"
        write_jpeg(root / rel, 100 + i)
        valid.append(row(rel, "Female", False, "PA", {"Pleural Effusion": "1.0"}))
    write_csv(base / "valid.csv", CHEXPERT_HEADER, valid)
    return {"csv": base, "images": root}


def mimic(root: Path) -> dict[str, Any]:
    files = root / "files"
    meta, labels, patients, split = [], [], [], []
    obs = CHEXPERT_HEADER[6:]
    for i in range(6):
        subj, study, did = f"1000{i:04d}", f"5000{i:04d}", f"dcm{i:02d}-aa"
        write_jpeg(files / f"p{subj[:2]}" / f"p{subj}" / f"s{study}" / f"{did}.jpg", 50 + i)
        meta.append([did, subj, study, "CHEST (PA AND LAT)", "AP" if i % 2 else "PA", 40, 40])
        labels.append([subj, study, *["1.0" if (o == "Edema" and i % 2) else "" for o in obs]])
        patients.append([subj, "F" if i < 3 else "M", 60])
        split.append([did, study, subj, "test" if i == 5 else "train"])
    # a lateral of study 0, and an image whose study has no label row
    write_jpeg(files / "p10" / "p10000000" / "s50000000" / "lat00-bb.jpg", 70)
    meta.append(["lat00-bb", "10000000", "50000000", "CHEST (PA AND LAT)", "LATERAL", 40, 40])
    meta.append(["nolab-cc", "10000009", "50000099", "CHEST", "PA", 40, 40])
    hdr = [
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
        "Rows",
        "Columns",
    ]
    out = {
        "metadata": write_csv(root / "mimic-cxr-2.0.0-metadata.csv", hdr, meta),
        "labels": write_csv(
            root / "mimic-cxr-2.0.0-chexpert.csv",
            ["subject_id", "study_id", "No Finding", *obs],
            [[r[0], r[1], "", *r[2:]] for r in labels],
        ),
        "patients": write_csv(root / "patients.csv", ["subject_id", "gender", "anchor_age"], patients),
        "split": write_csv(
            root / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id", "split"], split
        ),
        "images": root,
    }
    return out


def padchest(root: Path) -> dict[str, Any]:
    """16-bit PNGs in ImageDir subfolders; Labels as Python-list text."""
    rows = []
    spec = [
        ("['normal']", "PA", "M"),
        ("['cardiomegaly']", "PA", "F"),
        ("['cardiomegaly', 'pleural effusion']", "AP_horizontal", "F"),
        ("['pleural effusion']", "AP", "M"),
        ("['cardiomegaly']", "L", "M"),  # lateral
        ("['exclude']", "PA", "M"),  # the publisher's exclusion
        ("nan", "PA", "F"),  # no labels
        ("['normal']", "PA", "O"),  # sex other
    ]
    for i, (labels, proj, sex) in enumerate(spec):
        name = f"img_{i:03d}.png"
        write_png(root / str(i % 2) / name, const(1000 * (i + 1)))
        rows.append([name, str(i % 2), f"S{i}", f"P{i // 2}", sex, proj, labels, "1950"])
    hdr = [
        "ImageID",
        "ImageDir",
        "StudyID",
        "PatientID",
        "PatientSex_DICOM",
        "Projection",
        "Labels",
        "PatientBirth",
    ]
    return {
        "csv": write_csv(root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", hdr, rows),
        "images": root,
    }


def vindr(root: Path) -> dict[str, Any]:
    """train/<id>.dicom with 3 readers per image; test/<id>.dicom with consensus labels."""
    rows = []
    votes = VINDR_VOTES
    kinds = {
        "a1": {"photometric": "MONOCHROME1"},
        "b2": {"slope": 2.0, "intercept": -100.0, "window": (2500.0, 2001.0), "syntax": "rle"},
        "c3": {"syntax": "j2k", "sex": "M", "view": "AP"},
        "d4": {"sex": None, "view": "LL"},
    }
    for k, (iid, v) in enumerate(votes.items()):
        write_dicom(
            root / "train" / f"{iid}.dicom",
            const(1000 + 500 * k),
            patient_id=f"VINDR-SECRET-{k}",
            **kinds[iid],
        )
        for r, vv in enumerate(v):
            rows.append([iid, f"R{r + 1}", *vv, int(sum(vv) == 0)])
    rows.append(["zz-missing", "R1", 0, 1, 0, 0, 0, 0])
    rows.append(["b2", "R9", 0, 1, "x", 0, 0, 0])  # bad value
    labels = write_csv(
        root / "annotations" / "image_labels_train.csv",
        ["image_id", "rad_id", *VINDR_FINDINGS, "No finding"],
        rows,
    )
    write_dicom(root / "test" / "t1.dicom", const(3000), sex="F", view="PA", patient_id="VINDR-SECRET-T")
    test = write_csv(
        root / "annotations" / "image_labels_test.csv",
        ["image_id", *VINDR_FINDINGS, "No finding"],
        [["t1", 0, 0, 0, 1, 0, 0]],
    )
    return {"labels": labels, "test_labels": test, "images": root}


def generic_csv(root: Path) -> dict[str, Any]:
    rows = []
    for i in range(6):
        write_png(root / "imgs" / f"x{i}.png", np.full((36, 30), 40 * i, np.uint8))  # non-square
        sex, view, labels = ["Male", "Female"][i % 2], ["PA", "AP"][i // 3], ["A|B", "No Finding", "B"][i % 3]
        rows.append(
            [
                f"imgs/x{i}.png",
                sex,
                view,
                f"S{i // 2}",
                labels,
                int(i % 3 == 0),
                "test" if i == 5 else "train",
            ]
        )
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "imgs" / "rgb.png")
    rows.append(["imgs/rgb.png", "Male", "PA", "S9", "A", 1, "train"])
    (root / "imgs" / "broken.png").write_bytes(b"not a png")
    rows.append(["imgs/broken.png", "Male", "PA", "S9", "A", 1, "train"])
    rows.append(["../outside.png", "Male", "PA", "S9", "A", 1, "train"])
    rows.append(["imgs/x1.png", "Male", "PA", "S9", "A", "maybe", "train"])
    hdr = ["file", "Sex", "Projection", "subject", "labels", "cardio", "fold"]
    return {"csv": write_csv(root / "labels.csv", hdr, rows), "images": root}


def folder(root: Path, dicom: bool = False) -> dict[str, Any]:
    """train/ and test/ over class folders (Cardiomegaly, Effusion, No Finding)."""
    k = 0
    for part, n in (("train", 4), ("test", 2)):
        for cls in ("Cardiomegaly", "Effusion", "No Finding"):
            for i in range(n):
                k += 1
                if dicom and cls == "Effusion":
                    write_dicom(
                        root / part / cls / f"e{i}.dcm",
                        const(2000 + k),
                        patient_id=f"F-{k}",
                        sex="M",
                        view="AP",
                    )
                else:
                    write_png(root / part / cls / f"{cls[:2]}{i}.png", np.full((32, 32), 10 * k, np.uint8))
    return {"root": root}
