"""DICOM radiographs -> display-ready grayscale, plus the header facts an ingest keeps.

Why by hand rather than pydicom's windowing helpers: every step has a closed form the tests
check pixel by pixel, following DICOM PS3.3 C.11 in order —

1. stored values (decompressed by pydicom's pixel handlers; JPEG, JPEG-LS and JPEG 2000 through
   the pylibjpeg plugins, RLE natively);
2. modality LUT: ``x = stored · RescaleSlope + RescaleIntercept`` (a Modality LUT Sequence, rare
   in radiographs, goes through pydicom's own ``apply_modality_lut``);
3. VOI: the first window (C, W) by the linear function of C.11.2.1.2.1 to [0, 1]; an explicit VOI
   LUT Sequence through pydicom, scaled by its output bit depth; with neither, the full range the
   real bit depth allows (``BitsStored``, signed or not) through the modality LUT — the same
   "scale by the depth actually used" rule the PNG path applies;
4. MONOCHROME1 (white = low values) is inverted so that bone is bright in every image;
5. ``[0, 1] -> [0, 255]``, then the LANCZOS resize shared with PNGs.

Patient identifiers are never returned: :func:`read_header` gives sex, view, pixel spacing and
a *salted hash* input (the caller hashes ``PatientID`` at once and drops it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_VIEW_TAGS = {"PA": "PA", "AP": "AP", "POSTERO_ANTERIOR": "PA", "ANTERO_POSTERIOR": "AP"}


class DicomError(ValueError):
    """The file is not a DICOM image we can turn into a radiograph (the message says why)."""


def is_dicom(path: str | Path) -> bool:
    """By suffix, else by the 'DICM' magic at byte 128 (VinDr ships ``.dicom``, some PACS none)."""
    p = Path(path)
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    if p.suffix:
        return False
    try:
        with open(p, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


@dataclass
class DicomHeader:
    """What an ingest may keep from a header (never the patient's name or id in the clear)."""

    sex: str | None  # "M" / "F" (PatientSex), None otherwise
    view: str | None  # "PA" / "AP" (ViewPosition), None for laterals or absent
    view_raw: str  # the ViewPosition text, e.g. "LL" (reported when skipped)
    patient_key: str | None  # PatientID, to be hashed by the caller at once
    age: int | None  # PatientAge in years ("058Y")
    pixel_spacing: tuple[float, float] | None  # mm (row, column): PixelSpacing or ImagerPixelSpacing
    photometric: str
    bits_stored: int


def _first(value: Any) -> Any:
    if value is None:
        return None
    try:
        return value[0] if not isinstance(value, str | bytes) and len(value) else value
    except TypeError:
        return value


def read_header(path: str | Path) -> DicomHeader:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise DicomError(f"not a readable DICOM file ({type(exc).__name__}: {str(exc)[:100]})") from None
    sex = str(ds.get("PatientSex", "") or "").strip().upper()[:1]
    view_raw = str(ds.get("ViewPosition", "") or "").strip().upper()
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    age_txt = str(ds.get("PatientAge", "") or "").strip().upper()
    age = int(age_txt[:-1]) if len(age_txt) == 4 and age_txt[:3].isdigit() and age_txt[3] == "Y" else None
    pid = str(ds.get("PatientID", "") or "").strip() or None
    return DicomHeader(
        sex=sex if sex in ("M", "F") else None,
        view=_VIEW_TAGS.get(view_raw),
        view_raw=view_raw,
        patient_key=pid,
        age=age,
        pixel_spacing=(float(spacing[0]), float(spacing[1]))
        if spacing is not None and len(spacing) == 2
        else None,
        photometric=str(ds.get("PhotometricInterpretation", "")),
        bits_stored=int(ds.get("BitsStored", 0) or 0),
    )


def window_linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 'LINEAR' VOI function, to [0, 1]."""
    if width < 1:
        raise DicomError(f"WindowWidth {width} < 1")
    lo = center - 0.5 - (width - 1) / 2
    hi = center - 0.5 + (width - 1) / 2
    y = (x - (center - 0.5)) / (width - 1) + 0.5 if width > 1 else (x > lo).astype(np.float64)
    return np.where(x <= lo, 0.0, np.where(x > hi, 1.0, y))


def _full_range(ds: Any) -> tuple[float, float]:
    """The values the real bit depth allows, through the rescale (sorted)."""
    bits = int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 16))
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    raw = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    icpt = float(ds.get("RescaleIntercept", 0) or 0)
    a, b = raw[0] * slope + icpt, raw[1] * slope + icpt
    return (min(a, b), max(a, b))


def to_display(ds: Any) -> np.ndarray:
    """A pydicom dataset -> float64 (rows, cols) in [0, 1], bright = dense (steps 1-4 above)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(f"PhotometricInterpretation {photometric or '(none)'} is not a grayscale radiograph")
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise DicomError(f"{ds.NumberOfFrames} frames; one radiograph per file is expected")
    stored = np.asarray(ds.pixel_array)
    if stored.ndim != 2:
        raise DicomError(f"pixel data has shape {stored.shape}, expected (rows, columns)")
    if "ModalityLUTSequence" in ds:
        x = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    else:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        icpt = float(ds.get("RescaleIntercept", 0) or 0)
        x = stored.astype(np.float64) * slope + icpt
    if "VOILUTSequence" in ds:
        y = np.asarray(apply_voi_lut(stored if "ModalityLUTSequence" in ds else x, ds, index=0), np.float64)
        out_bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        y = np.clip(y / float(2**out_bits - 1), 0.0, 1.0)
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        y = window_linear(x, float(_first(ds.WindowCenter)), float(_first(ds.WindowWidth)))
    else:
        lo, hi = _full_range(ds)
        y = np.clip((x - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(x)
    if photometric == "MONOCHROME1":
        y = 1.0 - y
    return y


def decode_dicom(path: str | Path, size: int) -> tuple[np.ndarray, str, tuple[int, int]]:
    """A DICOM file -> (``size``² uint8, mode text for the report, source (width, height))."""
    import pydicom
    from PIL import Image
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
        y = to_display(ds)
    except DicomError:
        raise
    except FileNotFoundError:
        raise DicomError("file not found") from None
    except (
        InvalidDicomError,
        OSError,
        ValueError,
        EOFError,
        AttributeError,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        raise DicomError(f"cannot decode DICOM ({type(exc).__name__}: {str(exc)[:120]})") from None
    mode = f"DICOM {ds.PhotometricInterpretation} {int(ds.get('BitsStored', 0) or 0)}-bit"
    f = Image.fromarray((y * 255.0).astype(np.float32), mode="F")
    out = np.asarray(f.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mode, (int(y.shape[1]), int(y.shape[0]))
