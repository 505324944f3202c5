"""Job lifecycle through the real stack: Redis, gateway + generator (uvicorn), Celery trainer and
evaluator processes. Dataset -> training -> models -> generation -> evaluation fan-out -> report,
with progress over server-sent events, and cancellation."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gdgan.localstack.stack import Stack
from svcstack import redis_stack, sse, wait_for, wait_job

pytestmark = pytest.mark.integration

TINY = {"steps": 12, "checkpoint_every": 4}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("svc-jobs")
    with redis_stack(home) as s:
        yield s


@pytest.fixture(scope="module")
def dataset_id(stack: Stack, api: httpx.Client) -> str:
    r = api.post("/v1/datasets", json={"source": "phantom", "n": 1500, "size": 32, "seed": 3})
    assert r.status_code == 202, r.text
    body = r.json()
    events = list(sse(stack.cfg.gateway_url, body["job_id"], timeout=120))
    kinds = [e for e, _ in events]
    assert kinds[0] == "job" and kinds[-1] == "status", kinds
    assert events[-1][1]["status"] == "succeeded", events[-1]
    return body["dataset_id"]


@pytest.fixture(scope="module")
def models(stack: Stack, api: httpx.Client, dataset_id: str) -> dict[str, str]:
    ids = {}
    for kind in ("gdgan", "acgan"):
        r = api.post(
            "/v1/jobs/train",
            json={"dataset_id": dataset_id, "model": kind, "preset": "tiny", "overrides": TINY},
        )
        assert r.status_code == 202, r.text
        ids[kind] = r.json()["job_id"]
    out = {}
    for kind, job_id in ids.items():
        rec = wait_job(stack.cfg.gateway_url, job_id, timeout=300)
        assert rec["status"] == "succeeded", rec
        out[kind] = rec["result"]["model_id"]
    return out


def test_dataset_record_and_counts(api: httpx.Client, dataset_id: str) -> None:
    d = api.get(f"/v1/datasets/{dataset_id}").json()
    assert d["n"] == 1500 and d["size"] == 32
    assert sum(d["counts"]["gender"].values()) == 1500
    assert sum(d["splits"][p]["images"] for p in ("train", "val", "test")) == 1500
    # the split counts are the core library's (gdgan.data.dataset.split_counts): the same keys as
    # the whole set's counts and 'gdgan data show' (the gateway's own copy lacked group, no_finding)
    assert set(d["splits"]["train"]) == set(d["counts"]) >= {"group", "no_finding"}
    assert dataset_id in [x["id"] for x in api.get("/v1/datasets").json()]


def test_nih_ingest_job_reads_the_import_folder(stack: Stack, api: httpx.Client) -> None:
    """source=nih: NIH-format files inside the import folder become a dataset through a job."""
    from gdgan.data.phantom import PhantomConfig, make_phantom, write_nih_format

    imports = Path(stack.cfg.env["GDGAN_DATA_DIR"]) / "imports" / "nihset"
    ds = make_phantom(PhantomConfig(n=60, size=32, seed=11))
    write_nih_format(ds, imports)
    r = api.post(
        "/v1/datasets",
        json={"source": "nih", "csv": "nihset/Data_Entry_2017.csv", "images": "nihset", "size": 32},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    rec = wait_job(stack.cfg.gateway_url, body["job_id"], timeout=120)
    assert rec["status"] == "succeeded", rec
    d = api.get(f"/v1/datasets/{body['dataset_id']}").json()
    assert d["n"] == 60 and d["size"] == 32
    assert d["counts"]["findings"]["Cardiomegaly"] == int(ds.labels["findings"][:, 1].sum())
    outside = api.post(
        "/v1/datasets", json={"source": "nih", "csv": "/etc/passwd", "images": "nihset", "size": 32}
    )
    assert outside.status_code == 422 and "csv" in outside.text


def test_training_streams_progress_and_registers_model(
    stack: Stack, api: httpx.Client, dataset_id: str
) -> None:
    r = api.post(
        "/v1/jobs/train",
        json={"dataset_id": dataset_id, "model": "acgan", "preset": "tiny", "overrides": TINY},
    )
    job_id = r.json()["job_id"]
    events = list(sse(stack.cfg.gateway_url, job_id, timeout=300))
    statuses = [d["status"] for e, d in events if e in ("job", "status")]  # "job": the snapshot
    progress = [d for e, d in events if e == "progress"]
    assert statuses[-1] == "succeeded", events[-3:]
    assert statuses[0] in ("queued", "running")
    assert progress, "no progress events were streamed"
    last = progress[-1]
    assert last["total"] == TINY["steps"] and last["step"] == TINY["steps"]
    assert 0.0 <= progress[0]["fraction"] <= last["fraction"] == 1.0
    assert last["losses"], "losses are part of the progress"
    rec = api.get(f"/v1/jobs/{job_id}").json()
    assert rec["status"] == "succeeded" and rec["finished"] and rec["started"] and rec["error"] is None
    model_id = rec["result"]["model_id"]
    m = api.get(f"/v1/models/{model_id}").json()
    assert m["kind"] == "acgan" and dataset_id in [x["id"] for x in m["lineage"]]
    assert model_id in [x["id"] for x in api.get("/v1/models").json()["models"]]
    png = api.get(f"/v1/models/{model_id}/samples.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    # a finished job: late SSE subscribers get the record and the stream ends
    late = list(sse(stack.cfg.gateway_url, job_id, timeout=30))
    assert late[0][0] == "job" and late[0][1]["status"] == "succeeded"
    assert job_id in [j["id"] for j in api.get("/v1/jobs", params={"type": "train"}).json()["jobs"]]


def test_model_alias_resolves_to_the_latest_model(api: httpx.Client, models: dict[str, str]) -> None:
    """Every alias of gdgan.catalog, the one alias set the gateway, generator and library share
    (the gateway used to know only 'gdgan' and 'acgan': 'stage1' was a 404)."""
    from gdgan.catalog import ALIASES

    for alias, kind in ALIASES.items():
        r = api.get(f"/v1/models/{alias}")
        assert r.status_code == 200, r.text
        latest = next(m["id"] for m in api.get("/v1/models").json()["models"] if m["kind"] == kind)
        assert r.json()["id"] == latest and r.json()["kind"] == kind


def test_generate_through_gateway_is_deterministic(api: httpx.Client, models: dict[str, str]) -> None:
    body = {"model": "gdgan", "n": 5, "finding": "Cardiomegaly", "seed": 11, "format": "zip"}
    a = api.post("/v1/generate", json=body)
    b = api.post("/v1/generate", json=body)
    assert a.status_code == 200, a.text
    assert a.headers["x-gdgan-seed"] == "11"
    assert a.headers["x-gdgan-model-id"] == models["gdgan"]  # the alias resolves to the latest
    assert a.content == b.content
    with zipfile.ZipFile(io.BytesIO(a.content)) as zf:
        names = zf.namelist()
        assert sorted(n for n in names if n.endswith(".png")) == [f"img_{i:06d}.png" for i in range(5)]
        rows = list(csv.DictReader(io.StringIO(zf.read("labels.csv").decode())))
        assert tuple(rows[0]) == ("file", "finding_labels", "gender", "view", "model_id", "seed", "stage")
        assert [r["finding_labels"] for r in rows] == ["Cardiomegaly"] * 5
        assert {(r["model_id"], r["seed"], r["stage"]) for r in rows} == {(models["gdgan"], "11", "2")}
    other = api.post("/v1/generate", json={**body, "seed": 12})
    assert other.content != a.content
    js = api.post("/v1/generate", json={**body, "format": "json", "gender": "F", "view": "AP"}).json()
    assert len(js["images"]) == 5 and all(i["gender"] == "F" and i["view"] == "AP" for i in js["images"])
    grid = api.post("/v1/generate", json={**body, "format": "png", "model": models["acgan"]})
    assert grid.headers["content-type"] == "image/png" and grid.headers["x-gdgan-model-id"] == models["acgan"]


def test_generate_job_stores_synthetic_set(stack: Stack, api: httpx.Client, models: dict[str, str]) -> None:
    r = api.post(
        "/v1/jobs/generate", json={"model": models["gdgan"], "n": 40, "finding": "Cardiomegaly", "seed": 1}
    )
    assert r.status_code == 202, r.text
    rec = wait_job(stack.cfg.gateway_url, r.json()["job_id"], timeout=120)
    assert rec["status"] == "succeeded", rec
    z = api.get(rec["result"]["download"])
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".png")]) == 40


def test_cancel_running_job_then_409(stack: Stack, api: httpx.Client, dataset_id: str) -> None:
    r = api.post(
        "/v1/jobs/train",
        json={"dataset_id": dataset_id, "model": "acgan", "preset": "tiny", "overrides": {"steps": 100000}},
    )
    job_id = r.json()["job_id"]
    wait_for(
        lambda: api.get(f"/v1/jobs/{job_id}").json()["progress"]["step"] > 0,
        180,
        "the training to make progress",
    )
    c = api.post(f"/v1/jobs/{job_id}/cancel")
    assert c.status_code == 202 and c.json()["cancel_requested"] is True
    rec = wait_job(stack.cfg.gateway_url, job_id, timeout=60)
    assert rec["status"] == "cancelled" and rec["progress"]["step"] < 100000
    again = api.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_cancel_queued_job_is_immediate(api: httpx.Client, dataset_id: str) -> None:
    # occupy the only trainer, then queue a second job and cancel it before it starts
    busy = api.post(
        "/v1/jobs/train",
        json={"dataset_id": dataset_id, "model": "acgan", "preset": "tiny", "overrides": {"steps": 100000}},
    ).json()["job_id"]
    queued = api.post(
        "/v1/jobs/train", json={"dataset_id": dataset_id, "model": "acgan", "preset": "tiny"}
    ).json()
    c = api.post(f"/v1/jobs/{queued['job_id']}/cancel").json()
    assert c["status"] == "cancelled"
    api.post(f"/v1/jobs/{busy}/cancel")
    time.sleep(0.5)
    assert api.get(f"/v1/jobs/{queued['job_id']}").json()["status"] == "cancelled"


def test_evaluation_fans_out_and_assembles_report(
    stack: Stack, api: httpx.Client, dataset_id: str, models: dict[str, str]
) -> None:
    r = api.post(
        "/v1/jobs/evaluate",
        json={
            "dataset_id": dataset_id,
            "gdgan": models["gdgan"],
            "acgan": models["acgan"],
            "repeats": 1,
            "preset": "tiny",
        },
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    events = list(sse(stack.cfg.gateway_url, job_id, timeout=900))
    assert events[-1][1].get("status") == "succeeded", events[-5:]
    rec = api.get(f"/v1/jobs/{job_id}").json()
    expected = {"gan:gdgan:r0", "gan:acgan:r0", "sec:quality", "sec:harness"} | {
        f"clf:{s}:r0" for s in ("none", "undersample", "oversample", "acgan", "gdgan")
    }
    assert expected <= set(rec["parts"]), rec["parts"]
    assert all(rec["parts"][p] == "succeeded" for p in expected)
    # every part ran as its own task and reported separately
    part_events = {d["part"] for e, d in events if e == "part" and d["status"] == "succeeded"}
    assert expected <= part_events
    report_id = rec["result"]["report_id"]
    rep = api.get(f"/v1/reports/{report_id}").json()
    assert set(rep["table2"]["rows"]) == {"none", "undersample", "oversample", "acgan", "gdgan"}
    # the quality sections were computed as their own parts, then read by the report task
    assert "inception_score" in rep["quality"] and "harness" in rep["quality"]
    parts_seen = [(i, d) for i, (e, d) in enumerate(events) if e == "part"]
    sec_done = [i for i, d in parts_seen if d["part"].startswith("sec:") and d["status"] == "succeeded"]
    rep_start = min(i for i, d in parts_seen if d["part"] == "report")
    assert len(sec_done) == 2 and max(sec_done) < rep_start
    # make demo's 16 images come from the models the report names, whatever 'latest' is later
    from gdgan.cli.demo import report_models

    assert report_models(rep) == {"gdgan": models["gdgan"], "acgan": models["acgan"]}
    html = api.get(f"/v1/reports/{report_id}/html")
    assert html.status_code == 200 and "<html" in html.text.lower()
    listed = api.get("/v1/reports")
    assert listed.status_code == 200, listed.text
    assert report_id in [r["id"] for r in listed.json()]


def test_cli_client_verbs(stack: Stack, tmp_path: Path, models: dict[str, str]) -> None:
    import json
    import subprocess
    import sys

    env = {**stack.env, "GDGAN_GATEWAY_URL": stack.cfg.gateway_url}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gdgan.cli.main",
            "generate",
            "--n",
            "4",
            "--finding",
            "Cardiomegaly",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "imgs"),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["seed"] == 3 and len(list((tmp_path / "imgs").glob("img_*.png"))) == 4
    assert (tmp_path / "imgs" / "labels.csv").exists() and (tmp_path / "imgs" / "grid.png").exists()
    ls = subprocess.run(
        [sys.executable, "-m", "gdgan.cli.main", "jobs", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ls.returncode == 0 and json.loads(ls.stdout)["jobs"]
    bad = subprocess.run(
        [sys.executable, "-m", "gdgan.cli.main", "jobs", "show", "job-nope-20260101-0000000000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "404" in bad.stderr and "Traceback" not in bad.stderr
