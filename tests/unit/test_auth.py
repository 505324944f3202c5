"""Tokens, scopes and what leaves the gateway, without a server: the settings that configure
tokens (a typo must stop the service), who a token is (a hash, never the token), path
redaction of job records, and the Content-Security-Policy chosen per path. The same behaviour
over real HTTP is in tests/integration/test_services_security.py."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from fastapi import HTTPException
from gdgan.schemas import JobRecord
from gdgan.settings import SCOPES, SettingsError, load_settings

from services.common.auth import ANONYMOUS, authenticate, token_id
from services.common.headers import API_CSP, APP_CSP, csp_for, docs_csp
from services.gateway.redact import SERVER_PATH, public_record

TOK = "tok-" + "x" * 20


def _settings(**env: str):
    return load_settings({f"GDGAN_{k.upper()}": v for k, v in env.items()})


def test_token_map_and_the_single_token() -> None:
    s = _settings(
        api_tokens=json.dumps({TOK: ["read", "generate"], "second-token": "train"}), api_token="legacy-1"
    )
    assert s.token_scopes == {
        TOK: frozenset({"read", "generate"}),
        "second-token": frozenset({"train"}),
        "legacy-1": frozenset(SCOPES),  # the pre-scope configuration keeps working, as admin
    }
    assert TOK not in repr(s) and "legacy-1" not in repr(s)  # secrets stay out of logs
    assert _settings().token_scopes == {}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{not json", "not JSON"),
        ("[]", "JSON object"),
        (json.dumps({TOK: ["reed"]}), "unknown scope"),
        (json.dumps({TOK: []}), "unknown scope"),
        (json.dumps({"short": ["read"]}), "shorter than 8"),
    ],
)
def test_bad_token_map_stops_start_up_naming_the_variable(raw: str, says: str) -> None:
    with pytest.raises(SettingsError) as e:
        _settings(api_tokens=raw)
    assert "GDGAN_API_TOKENS" in str(e.value) and says in str(e.value)
    assert TOK not in str(e.value)  # the error never echoes a token


def test_authenticate() -> None:
    s = _settings(api_tokens=json.dumps({TOK: ["read"], "other-token-1": ["admin"]}))
    who = authenticate(s, TOK)
    assert who.scopes == {"read"} and who.has("read") and not who.has("generate") and not who.admin
    assert who.id == token_id(TOK) and TOK not in who.id and who.metered
    assert authenticate(s, "other-token-1").has("train")  # admin implies every scope
    for bad in (None, "", TOK[:-1], TOK + "x", TOK.upper()):
        with pytest.raises(HTTPException) as e:
            authenticate(s, bad)
        assert e.value.status_code == 401
    open_api = authenticate(_settings(), None)  # auth off: local use, every scope, no quotas
    assert open_api.id == ANONYMOUS and open_api.admin and not open_api.metered


def test_token_id_is_a_stable_domain_separated_hash() -> None:
    assert token_id(TOK) == token_id(TOK) != token_id(TOK + "y")
    assert token_id(TOK) != "tok-" + hashlib.sha256(TOK.encode()).hexdigest()[:16]


def test_job_records_lose_server_paths(tmp_path: Path) -> None:
    s = _settings(data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    root = tmp_path / "imports"
    rec = JobRecord(
        id="job-ingest-20260101-0000000000",
        type="ingest",
        params={
            "source": "nih",
            "csv": str(root / "nih" / "Data_Entry.csv"),
            "images": str(root.resolve() / "nih" / "images"),
            "elsewhere": "/opt/secret/place",
            "size": 64,
        },
        error=f"cannot read {root}/nih/Data_Entry.csv under {tmp_path / 'data'}/x",
        result={"log": f"{tmp_path / 'cache'}/a.bin"},
    )
    out = public_record(rec, s, root)
    assert out.params["csv"] == "nih/Data_Entry.csv" and out.params["images"] == "nih/images"
    assert out.params["elsewhere"] == SERVER_PATH and out.params["size"] == 64
    assert out.error == "cannot read nih/Data_Entry.csv under <data_dir>/x"
    assert out.result == {"log": "<cache_dir>/a.bin"}
    assert str(tmp_path) not in out.model_dump_json()
    assert rec.params["csv"].startswith(str(root))  # the stored record keeps what the worker needs


def test_csp_by_path() -> None:
    assert csp_for("/") == csp_for("/js/app.js") == csp_for("/openapi.json") == APP_CSP
    assert csp_for("/v1/reports/report-x/html") == API_CSP and API_CSP.endswith("sandbox")
    assert "'unsafe-inline'" not in APP_CSP and "script-src 'self';" in APP_CSP
    html = b"<html><script src='x.js'></script><script>boot()</script></html>"
    digest = base64.b64encode(hashlib.sha256(b"boot()").digest()).decode()
    policy = docs_csp(html)
    assert f"'sha256-{digest}'" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
