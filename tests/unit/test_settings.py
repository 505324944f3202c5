"""Settings: typed, GDGAN_-prefixed; unknown or malformed values fail naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from gdgan.settings import SettingsError, get_settings, load_settings


def test_defaults_are_sane() -> None:
    s = load_settings({})
    assert s.device == "auto"
    assert s.redis_url.startswith("redis://")
    assert s.resolved_store_url.startswith("file://")


def test_values_are_parsed() -> None:
    s = load_settings(
        {
            "GDGAN_DEVICE": "cpu",
            "GDGAN_INGEST_WORKERS": "3",
            "GDGAN_DATA_DIR": "/tmp/x",
            "GDGAN_S3_SECURE": "1",
        }
    )
    assert s.device == "cpu" and s.ingest_workers == 3
    assert s.data_dir == Path("/tmp/x") and s.s3_secure is True
    assert s.resolved_store_url == Path("/tmp/x/store").resolve().as_uri()


def test_unknown_variable_named() -> None:
    with pytest.raises(SettingsError, match="GDGAN_DEVCE"):
        load_settings({"GDGAN_DEVCE": "cpu"})


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("GDGAN_DEVICE", "tpu"),
        ("GDGAN_INGEST_WORKERS", "many"),
        ("GDGAN_INGEST_WORKERS", "-1"),
        ("GDGAN_STORE_URL", "http://x"),
        ("GDGAN_REDIS_URL", "localhost:6379"),
        ("GDGAN_GATEWAY_PORT", "70000"),
        ("GDGAN_LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_value_named(var: str, value: str) -> None:
    with pytest.raises(SettingsError, match=var):
        load_settings({var: value})


def test_s3_store_needs_endpoint() -> None:
    with pytest.raises(SettingsError, match="GDGAN_S3_ENDPOINT"):
        load_settings({"GDGAN_STORE_URL": "s3://bucket"})
    s = load_settings({"GDGAN_STORE_URL": "s3://bucket/p", "GDGAN_S3_ENDPOINT": "127.0.0.1:9000"})
    assert s.resolved_store_url == "s3://bucket/p"


def test_secrets_not_in_repr() -> None:
    s = load_settings({"GDGAN_S3_SECRET_KEY": "topsecret", "GDGAN_API_TOKEN": "tok123"})
    assert "topsecret" not in repr(s) and "tok123" not in repr(s)
    assert s.s3_secret_key.get_secret_value() == "topsecret"


def test_process_environment_and_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GDGAN_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    assert get_settings().data_dir == tmp_path
    assert get_settings() is get_settings()
    monkeypatch.setenv("GDGAN_BOGUS", "1")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="GDGAN_BOGUS"):
        get_settings()


def test_tests_are_isolated_from_home() -> None:
    # The autouse fixture points the data and cache dirs at temporary folders.
    s = get_settings()
    assert "gdgan-home" in str(s.data_dir) and "gdgan-home" in str(s.cache_dir)
