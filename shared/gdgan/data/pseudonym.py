"""Salted hashes for everything in a dataset that names a patient (issue 13, data item).

A stored dataset must not let anyone who holds it (a colleague, a backup, a leaked bucket) look a
patient up: NIH's ``Patient ID``, and the source file names, which embed it (NIH
``<patient>_<nnn>.png``, CheXpert ``patientNNNNN/study1/...``, MIMIC ``p10/p10000032/s5.../...``).
Both become HMAC-SHA256 digests under one salt, ``GDGAN_PATIENT_ID_SALT`` (stable across ingests)
or, when unset, a fresh random one that is never stored, so a digest cannot be reversed by hashing
candidate ids. Splits and de-duplication only need equality, which the digests keep.

A user who needs to trace an image back to its file asks the ingest CLI for a key map
(``--write-key-map PATH``): a local CSV, never written to the artifact store.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import numpy as np

KEY_HEX = 24  # 96 bits: no collision among millions of images (birthday bound ~2^48)
HASHED_KEY_RE = re.compile(rf"^k-[0-9a-f]{{{KEY_HEX}}}(\.[a-z0-9]{{1,6}})?$")
KEY_COLUMN = "image_index"
_SUFFIX_RE = re.compile(r"\.[a-z0-9]{1,6}")


def _salt_key(salt: str | None) -> tuple[bytes, str]:
    """The HMAC key and a one-line description for the manifest (which never holds the salt)."""
    if salt is None:
        from gdgan.settings import get_settings

        salt = get_settings().patient_id_salt.get_secret_value()
    how = "hmac-sha256, salt from GDGAN_PATIENT_ID_SALT" if salt else "hmac-sha256, random salt not stored"
    return (salt or secrets.token_hex(32)).encode(), how


def patient_hasher(salt: str | None = None) -> tuple[Callable[[str], int], str]:
    """(raw patient key -> non-negative int32, how): an HMAC-SHA256 of the key under the salt."""
    key, how = _salt_key(salt)

    def h(raw: str) -> int:
        return int.from_bytes(hmac.new(key, raw.encode(), hashlib.sha256).digest()[:4], "little") & 0x7FFFFFFF

    return h, how


def key_hasher(salt: str | None = None) -> tuple[Callable[[str], str], str]:
    """(source file key -> ``k-<24 hex>.<suffix>``, how), under the same salt as the patient ids.

    The suffix (``.png``, ``.jpg``, ``.dcm``) names no one and keeps the key a valid file name, so
    exports that write one file per row still work. Keys already hashed are returned unchanged.
    """
    key, how = _salt_key(salt)

    def h(raw: str) -> str:
        if HASHED_KEY_RE.match(raw):
            return raw
        digest = hmac.new(key, b"key:" + raw.encode(), hashlib.sha256).hexdigest()[:KEY_HEX]
        suffix = PurePosixPath(raw).suffix.lower()
        return f"k-{digest}{suffix if _SUFFIX_RE.fullmatch(suffix) else ''}"

    return h, how


def is_hashed(keys: Iterable[str]) -> bool:
    return all(HASHED_KEY_RE.match(str(k)) for k in keys)


def pseudonymise_keys(
    labels: dict[str, np.ndarray], salt: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """The label table with ``image_index`` hashed, the map hashed -> source key, and how.

    Idempotent: a table whose keys are all hashed (a dataset loaded from a store) is returned as
    is, with an empty map.
    """
    keys = labels.get(KEY_COLUMN)
    if keys is None or is_hashed(keys.tolist()):
        return labels, {}, "hmac-sha256"
    h, how = key_hasher(salt)
    raw = [str(k) for k in keys.tolist()]
    hashed = [h(k) for k in raw]
    return {**labels, KEY_COLUMN: np.array(hashed, dtype=str)}, dict(zip(hashed, raw)), how


def write_key_map(path: str | Path, key_map: dict[str, str], dataset_id: str) -> Path:
    """Write ``image_index,source_key`` rows for one stored dataset to a local CSV (mode 0600)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset_id", KEY_COLUMN, "source_key"])
        for hashed, raw in key_map.items():
            w.writerow([dataset_id, hashed, raw])
    p.chmod(0o600)
    return p
