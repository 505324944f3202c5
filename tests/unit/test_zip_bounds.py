"""The CLI unpacks a generated zip with a bound (no zip bomb from a hostile or broken server): a
real archive of stored PNGs unpacks in full; one that inflates beyond its own size is refused
before anything large is written, even when its headers understate the sizes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from gdgan.cli.client import ClientError, save_images


def _zip(files: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_service_zip_unpacks(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    files = save_images(_zip({"img_0000.png": png, "../evil/labels.csv": b"file,finding\n"}), tmp_path)
    assert sorted(p.name for p in files) == ["img_0000.png", "labels.csv"]
    assert (tmp_path / "img_0000.png").read_bytes() == png
    assert not (tmp_path.parent / "evil").exists()  # names cannot leave the folder


def test_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    bomb = _zip({"zeros.png": bytes(64 << 20)}, zipfile.ZIP_DEFLATED)  # 64 MiB of zeros, ~64 KiB
    assert len(bomb) < 1 << 20
    with pytest.raises(ClientError, match="refused"):
        save_images(bomb, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())


def test_a_bomb_with_lying_headers_is_cut_off(tmp_path: Path) -> None:
    bomb = bytearray(_zip({"zeros.png": bytes(32 << 20)}, zipfile.ZIP_DEFLATED))
    # understate the uncompressed size in the central directory (offset 24 of its entry)
    cd = bomb.rfind(b"PK\x01\x02")
    bomb[cd + 24 : cd + 28] = (1000).to_bytes(4, "little")
    with pytest.raises((ClientError, zipfile.BadZipFile)):
        save_images(bytes(bomb), tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())
