"""Bring-your-own data through the real stack: POST /v1/datasets for every adapter source (files in
the import folder, decoded by a Celery trainer worker), then a GDGAN trained on a folder dataset
without sex or view serves images by its *own* labels, and a request for a label it does not have
is a 422 naming the label and listing the model's. Real Redis, uvicorn and Celery; nothing mocked."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import byo_layouts as L
import httpx
import pytest
from gdgan.localstack.stack import Stack
from svcstack import redis_stack, wait_job

pytestmark = pytest.mark.integration

FAST = {"steps": 6, "checkpoint_every": 3, "batch_size": 8, "ngf": 8, "ndf": 8}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("svc-byo")
    with redis_stack(home, evaluators=0, env={"GDGAN_PATIENT_ID_SALT": "byo-test"}) as s:
        yield s


def _imports(stack: Stack) -> Path:
    return Path(stack.cfg.env["GDGAN_DATA_DIR"]) / "imports"


def _rel(stack: Stack, paths: dict[str, Any]) -> dict[str, str]:
    root = _imports(stack)
    return {k: Path(v).relative_to(root).as_posix() or "." for k, v in paths.items()}


def _ingest(stack: Stack, api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/v1/datasets", json={"size": 32, **body})
    assert r.status_code == 202, r.text
    rec = wait_job(stack.cfg.gateway_url, r.json()["job_id"], timeout=180)
    assert rec["status"] == "succeeded", rec
    d = api.get(f"/v1/datasets/{r.json()['dataset_id']}").json()
    assert d["size"] == 32 and d["config"]["source"] == body["source"]
    return d


@pytest.fixture(scope="module")
def folder_dataset(stack: Stack, api: httpx.Client) -> dict[str, Any]:
    L.folder(_imports(stack) / "tree")
    return _ingest(stack, api, {"source": "folder", "root": "tree"})


def test_every_source_becomes_a_dataset_with_its_own_labels(stack: Stack, api: httpx.Client) -> None:
    root = _imports(stack)
    gv = ["gender", "view"]
    mapping = {"path": "file", "findings": {"list": {"column": "labels"}}, "sex": "Sex"}
    cases = [
        ({"source": "chexpert", "uncertainty": "zeros", **_rel(stack, L.chexpert(root / "chex"))}, 11,
         ["gender", "view"], "Cardiomegaly"),
        ({"source": "mimic", **_rel(stack, L.mimic(root / "mimic"))}, 6, ["gender", "view"], "Edema"),
        ({"source": "padchest", **_rel(stack, L.padchest(root / "pad"))}, 4, gv, "cardiomegaly"),
        ({"source": "vindr", "merge": "any", **_rel(stack, L.vindr(root / "vindr"))}, 4, ["gender", "view"],
         "Nodule/Mass"),
        ({"source": "csv", **_rel(stack, L.generic_csv(root / "gen")),
          "mapping": mapping}, 7, ["gender"], "B"),
    ]  # fmt: skip
    for body, n, general, finding in cases:
        d = _ingest(stack, api, body)
        assert d["n"] == n, (body["source"], d)
        assert d["labels"]["general"] == general and finding in d["labels"]["findings"], d["labels"]
        assert set(d["counts"]["findings"]) == set(d["labels"]["findings"])
        assert sum(d["splits"][p]["images"] for p in ("train", "val", "test")) == n
    listed = {x["id"]: x for x in api.get("/v1/datasets").json()}
    assert all("labels" in x for x in listed.values())


def test_bad_dataset_requests_are_422_naming_the_field(stack: Stack, api: httpx.Client) -> None:
    for body, field in [
        ({"source": "vindr", "labels": "x.csv", "images": ".", "merge": "vote"}, "merge"),
        ({"source": "chexpert", "csv": "../../etc/passwd", "images": "."}, "csv"),
        ({"source": "folder", "root": "/etc"}, "root"),
        ({"source": "chexpert", "csv": "x.csv", "images": ".", "uncertainty": "maybe"}, "uncertainty"),
        ({"source": "csv", "csv": "x.csv", "images": "."}, "mapping"),
    ]:
        r = api.post("/v1/datasets", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in {str(p) for e in r.json()["detail"] for p in e["loc"]}, r.text


def test_an_unusable_input_fails_the_job_with_a_clear_error(stack: Stack, api: httpx.Client) -> None:
    (_imports(stack) / "junk" / "cls").mkdir(parents=True)
    (_imports(stack) / "junk" / "cls" / "x.png").write_bytes(b"junk")
    r = api.post("/v1/datasets", json={"source": "folder", "root": "junk", "size": 32})
    rec = wait_job(stack.cfg.gateway_url, r.json()["job_id"], timeout=120)
    assert rec["status"] == "failed" and "no usable images" in rec["error"], rec
    assert r.json()["dataset_id"] not in {x["id"] for x in api.get("/v1/datasets").json()}


def test_model_on_a_folder_dataset_serves_its_own_labels(
    stack: Stack, api: httpx.Client, folder_dataset: dict[str, Any]
) -> None:
    assert folder_dataset["labels"]["general"] == [] and folder_dataset["labels"]["values"] == {}
    assert folder_dataset["labels"]["findings"] == ["Cardiomegaly", "Effusion"]
    r = api.post(
        "/v1/jobs/train",
        json={"dataset_id": folder_dataset["id"], "model": "gdgan", "preset": "tiny", "overrides": FAST},
    )
    assert r.status_code == 202, r.text
    rec = wait_job(stack.cfg.gateway_url, r.json()["job_id"], timeout=400)
    assert rec["status"] == "succeeded", rec
    model_id = rec["result"]["model_id"]
    summary = {m["id"]: m for m in api.get("/v1/models").json()["models"]}[model_id]
    assert summary["labels"] == folder_dataset["labels"]

    g = api.post("/v1/generate", json={"model": model_id, "n": 3, "finding": "Effusion", "seed": 4})
    assert g.status_code == 200, g.text
    with zipfile.ZipFile(io.BytesIO(g.content)) as zf:
        rows = list(csv.DictReader(zf.read("labels.csv").decode().splitlines()))
    assert [r["finding_labels"] for r in rows] == ["Effusion"] * 3 and {r["gender"] for r in rows} == {""}

    bad = api.post("/v1/generate", json={"model": model_id, "n": 1, "finding": "Pneumonia"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "finding"]
    msg = bad.json()["detail"][0]["msg"]
    assert "'Pneumonia'" in msg and "Cardiomegaly, Effusion" in msg
    sex = api.post("/v1/generate", json={"model": model_id, "n": 1, "finding": "Effusion", "gender": "F"})
    assert sex.status_code == 422 and sex.json()["detail"][0]["loc"] == ["body", "gender"], sex.text
    age = api.post("/v1/generate", json={"model": model_id, "n": 1, "age_band": "60+"})
    assert age.status_code == 422 and age.json()["detail"][0]["loc"] == ["body", "age_band"], age.text
    assert "general labels: none" in age.json()["detail"][0]["msg"]
    job = api.post("/v1/jobs/generate", json={"model": model_id, "n": 5, "finding": ["Effusion", "Edema"]})
    assert (
        job.status_code == 422
        and "'Edema'" in job.text
        and job.json()["detail"][0]["loc"] == ["body", "finding"]
    )
    ok = api.post("/v1/jobs/generate", json={"model": model_id, "n": 5, "finding": "Cardiomegaly", "seed": 1})
    assert ok.status_code == 202, ok.text  # queued (this stack runs no evaluator to take it)


def test_gdgan_jobs_ingest_passes_any_source_options(stack: Stack, api: httpx.Client) -> None:
    """``gdgan jobs ingest --source vindr --option merge=any ...``: the CLI client for REST jobs."""
    import json
    import os
    import subprocess
    import sys

    p = _rel(stack, L.vindr(_imports(stack) / "vindr-cli"))
    args = [sys.executable, "-m", "gdgan.cli.main", "jobs", "ingest", "--source", "vindr",
            "--images", p["images"], "--option", f"labels={p['labels']}", "--option", "merge=any",
            "--option", 'general=["gender"]', "--size", "32", "--url", stack.cfg.gateway_url,
            "--json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    d = api.get(f"/v1/datasets/{out['dataset_id']}").json()
    assert d["labels"]["general"] == ["gender"] and d["config"]["merge"] == "any"


def test_sources_endpoint_lists_every_dataset_request(api: httpx.Client) -> None:
    """GET /v1/datasets/sources (what the web form is built from) covers the request union."""
    import typing

    from gdgan.schemas import DatasetRequest

    union = typing.get_args(typing.get_args(DatasetRequest)[0])
    want = [typing.get_args(m.model_fields["source"].annotation)[0] for m in union]
    got = api.get("/v1/datasets/sources").json()["sources"]
    assert sorted(s["source"] for s in got) == sorted(want)
    folder = next(s for s in got if s["source"] == "folder")
    assert folder["path_fields"] == ["root"] and "age_band" in folder["json_schema"]["properties"]


def test_an_age_band_dataset_and_model_through_rest(stack: Stack, api: httpx.Client) -> None:
    """``age_band: true`` on a CSV with an age column: the dataset's schema gains the band (edges from
    GDGAN_AGE_BAND_EDGES), a GDGAN trained on it serves images by band, and an unknown band is a
    422 naming ``age_band`` and listing the model's bands."""
    import numpy as np

    root = _imports(stack) / "aged"
    rows = []
    for i in range(24):
        L.write_png(root / f"x{i}.png", np.full((32, 32), 8 * i, np.uint8))
        age = [25, 45, 75][i % 3] if i != 23 else ""
        rows.append([f"x{i}.png", ["No Finding", "A", "B"][i % 3], ["M", "F"][i % 2], age])
    L.write_csv(root / "l.csv", ["file", "labels", "sex", "age"], rows)
    mapping = {"path": "file", "findings": {"list": {"column": "labels"}}, "sex": "sex", "age": "age"}
    d = _ingest(stack, api, {"source": "csv", "csv": "aged/l.csv", "images": "aged", "mapping": mapping,
                             "age_band": True})  # fmt: skip
    assert d["n"] == 23  # the row without an age is left out (and counted)
    assert d["labels"]["general"] == ["gender", "age_band"] and d["labels"]["age_edges"] == [40, 60]
    assert d["labels"]["values"]["age_band"] == ["0-39", "40-59", "60+"]
    assert d["counts"]["age_band"] == {"0-39": 8, "40-59": 8, "60+": 7}
    r = api.post(
        "/v1/jobs/train", json={"dataset_id": d["id"], "model": "gdgan", "preset": "tiny", "overrides": FAST}
    )
    rec = wait_job(stack.cfg.gateway_url, r.json()["job_id"], timeout=400)
    assert rec["status"] == "succeeded", rec
    model_id = rec["result"]["model_id"]
    g = api.post(
        "/v1/generate", json={"model": model_id, "n": 4, "finding": "B", "age_band": "40-59", "seed": 2}
    )
    assert g.status_code == 200, g.text
    with zipfile.ZipFile(io.BytesIO(g.content)) as zf:
        rows_out = list(csv.DictReader(zf.read("labels.csv").decode().splitlines()))
    assert {r["age_band"] for r in rows_out} == {"40-59"} and {r["view"] for r in rows_out} == {""}
    bad = api.post("/v1/generate", json={"model": model_id, "n": 1, "age_band": "90+"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "age_band"], bad.text
    assert "'90+'" in bad.json()["detail"][0]["msg"] and "0-39, 40-59, 60+" in bad.json()["detail"][0]["msg"]
    job = api.post("/v1/jobs/generate", json={"model": model_id, "n": 2, "age_band": "old"})
    assert job.status_code == 422 and job.json()["detail"][0]["loc"] == ["body", "age_band"], job.text
