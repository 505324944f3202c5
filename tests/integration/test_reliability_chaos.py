"""The chaos matrix: each component killed during each phase of a job, on one supervised stack.

The stack is the ``gdgan up`` stack (``Stack`` with ``watch()``, the supervisor pass ``gdgan up``
runs): Redis with its append-only file and a SeaweedFS S3 store are its own children, so killing
either is followed by the restart policy exactly as for the services. Liveness settings are short
(1 s heartbeats, 5 s to declare a worker gone) so recoveries take seconds.

Every cell asserts what issue 13 asks:

- the job ends ``succeeded``, or ``failed`` with a reason that names the fault; never stuck;
- no half-visible artifact: every manifest the store lists has all its files, sha256-verified;
- no duplicate: one dataset / one model per kind / one report / one synthetic set per job, and
  none from a job that failed;
- at most one checkpoint interval of training lost (training cells);
- the job record and its event stream survive a Redis restart (checked in every job cell).

A killed service (worker, gateway, generator) must cost only time: its jobs succeed. So must an S3
restart: store calls wait for the server within GDGAN_S3_RETRY_BUDGET_S (an outage longer than that
is ``test_reliability_faults.py``'s). Redis going away may fail a job, with a reason that names it.

Cost is bounded by sharing one stack and one pair of ``tiny`` models across the cells (see
docs/notes/reliability.md for the measured time of each cell).
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from gdgan.localstack.stack import Service, Stack
from svcstack import running, start_stack, wait_for, wait_job

pytestmark = pytest.mark.integration

EVERY = 10
LIVENESS = {"GDGAN_WORKER_HEARTBEAT_S": "1", "GDGAN_WORKER_DEAD_AFTER_S": "5"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("chaos")
    with running(start_stack(home, s3=True, env=LIVENESS), watch=0.3) as s:
        yield s


@pytest.fixture(scope="module")
def dataset(stack: Stack, api: httpx.Client) -> str:
    r = api.post("/v1/datasets", json={"source": "phantom", "n": 600, "size": 32, "seed": 5}).json()
    assert wait_job(stack.cfg.gateway_url, r["job_id"], 240)["status"] == "succeeded"
    return r["dataset_id"]


@pytest.fixture(scope="module")
def models(stack: Stack, api: httpx.Client, dataset: str) -> dict[str, str]:
    out = {}
    for kind in ("acgan", "gdgan"):
        body = {"dataset_id": dataset, "model": kind, "preset": "tiny", "overrides": {"steps": 12}}
        rec = wait_job(stack.cfg.gateway_url, api.post("/v1/jobs/train", json=body).json()["job_id"], 300)
        assert rec["status"] == "succeeded", rec
        out[kind] = rec["result"]["model_id"]
    return out


# --- helpers -----------------------------------------------------------------------------------
def _svc(stack: Stack, name: str) -> Service:
    return next(s for s in stack.services if s.name == name)


def _kill(stack: Stack, name: str) -> None:
    """SIGKILL a service, Redis or the S3 server; the supervisor brings it back. ``redis:stop`` and
    ``s3:stop`` send SIGTERM instead (an orderly stop: Redis flushes its append-only file and exits
    0, the S3 server drains), then the supervisor restarts it the same way."""
    name, _, how = name.partition(":")
    sig = signal.SIGTERM if how == "stop" else signal.SIGKILL
    if name in ("redis", "s3"):
        srv = stack.redis if name == "redis" else stack.s3
        assert srv is not None and srv.proc is not None
        before = stack.server_restarts[name]
        os.kill(srv.proc.pid, sig)
        wait_for(lambda: stack.server_restarts[name] > before and srv.running, 90, f"{name} back")
        return
    svc = _svc(stack, name)
    before = svc.restarts
    assert svc.proc is not None
    os.kill(svc.proc.pid, signal.SIGKILL)
    wait_for(lambda: svc.restarts > before and svc.alive, 60, f"{name} restarted")


def _store(stack: Stack) -> Any:
    from gdgan.store.s3 import S3Store

    e = stack.env
    return S3Store(
        bucket=e["GDGAN_STORE_URL"][len("s3://") :],
        endpoint=e["GDGAN_S3_ENDPOINT"],
        access_key=e["GDGAN_S3_ACCESS_KEY"],
        secret_key=e["GDGAN_S3_SECRET_KEY"],
        cache_dir=stack.home / "verify-cache",
    )


def _no_half_visible_artifact(stack: Stack) -> None:
    store = _store(stack)
    for m in store.list():
        for name in m.files:
            store.get_bytes(m.id, name)  # raises on a missing or corrupt payload


def _rec(api: httpx.Client, job_id: str) -> dict[str, Any]:
    return wait_for(lambda: _get(api, f"/v1/jobs/{job_id}"), 90, "the gateway to answer")


def _get(api: httpx.Client, path: str) -> Any:
    try:
        r = api.get(path)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _list(api: httpx.Client, path: str) -> list[Any]:
    """A list route's answer, waiting out a restart of the gateway or a server (``[]`` is an answer)."""
    return wait_for(lambda: (x := _get(api, path)) is not None and (x,), 90, path)[0]


def _wait_end(api: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (x := _get(api, f"/v1/jobs/{job_id}"))
            and x["status"] in ("succeeded", "failed", "cancelled")
            and x
        ),
        timeout,
        f"job {job_id} to end",
        interval=0.5,
    )


def _ended_well(rec: dict[str, Any], fault_words: tuple[str, ...]) -> None:
    """Succeeded, or failed with a reason that names the fault."""
    if rec["status"] == "failed":
        assert any(w in (rec["error"] or "").lower() for w in fault_words), rec["error"]
    else:
        assert rec["status"] == "succeeded", rec


def _events(stack: Stack, job_id: str) -> list[tuple[str, dict]]:
    """The job's whole stored event stream, read straight from Redis."""
    import json

    r = redis.Redis.from_url(stack.env["GDGAN_REDIS_URL"], decode_responses=True)
    try:
        return [(f["event"], json.loads(f["data"])) for _, f in r.xrange(f"gdgan:job:{job_id}:events")]
    finally:
        r.close()


FAULT_WORDS = ("redis", "connection", "s3", "store", "heartbeat")


def _kill_during(
    stack: Stack, api: httpx.Client, job_id: str, component: str, timeout: float = 900
) -> dict[str, Any]:
    """Kill ``component`` while the job runs and wait for the job's end. A killed service (worker,
    gateway) or a restarted S3 server costs nothing but time: the job succeeds. Redis going away
    may fail it, with a reason naming the fault. Either way the record and every event stored
    before the kill survive (Redis: its append-only file)."""
    before = _events(stack, job_id)
    _kill(stack, component)
    rec = _wait_end(api, job_id, timeout)
    print(f"chaos {component}: job {rec['status']} {rec.get('error') or ''}")  # for the matrix (-s)
    if component.partition(":")[0] == "redis":
        _ended_well(rec, FAULT_WORDS)
    else:  # a service restarted, or S3 back within GDGAN_S3_RETRY_BUDGET_S: only time is lost
        assert rec["status"] == "succeeded", rec
    after = _events(stack, job_id)
    assert [e for e, _ in after[: len(before)]] == [e for e, _ in before]
    return rec


def _one_new(before: list[str], after: list[str], rec: dict[str, Any], key: str) -> None:
    """No duplicate and nothing orphaned: a succeeded job registered exactly its one artifact
    (``rec['result'][key]``), a failed one none."""
    new = [x for x in after if x not in before]
    if rec["status"] == "succeeded":
        assert new == [rec["result"][key]], (new, rec["result"])
    else:
        assert new == [], new


def _train(api: httpx.Client, dataset: str, model: str, steps: int) -> str:
    body = {
        "dataset_id": dataset,
        "model": model,
        "preset": "tiny",
        "overrides": {"steps": steps, "checkpoint_every": EVERY},
    }
    return api.post("/v1/jobs/train", json=body).json()["job_id"]


def _lost_at_most_one_interval(events: list[tuple[str, dict]], phase: str) -> None:
    """After the restart, the phase resumes at or after its last checkpoint before the kill."""
    prog = [d for e, d in events if e == "progress" and "step" in d and d.get("phase") == phase]
    drops = [i for i in range(1, len(prog)) if prog[i]["step"] < prog[i - 1]["step"]]
    for i in drops:
        assert prog[i]["step"] >= prog[i - 1]["step"] - EVERY - 2, (prog[i - 1], prog[i])
        assert prog[i]["step"] > 0


# --- the matrix ----------------------------------------------------------------------------------
TRAIN_CELLS = [
    ("trainer-0", "stage1"),
    ("trainer-0", "stage2"),
    ("redis", "stage1"),
    ("s3", "stage2"),
    ("redis:stop", "stage2"),
    ("s3:stop", "stage1"),
    ("gateway", "stage1"),
]


@pytest.mark.parametrize(("component", "phase"), TRAIN_CELLS, ids=[f"{c}-{p}" for c, p in TRAIN_CELLS])
def test_training_survives(stack: Stack, api: httpx.Client, dataset: str, component: str, phase: str) -> None:
    kinds_before = [m["kind"] for m in api.get("/v1/models").json()["models"]]
    job_id = _train(api, dataset, "gdgan", steps=60)
    wait_for(
        lambda: (p := _rec(api, job_id)["progress"])["phase"] == phase and p["step"] >= 2 * EVERY + 2,
        600,
        f"{phase} past two checkpoints",
        interval=0.2,
    )
    rec = _kill_during(stack, api, job_id, component, 600)
    if rec["status"] == "succeeded":
        _lost_at_most_one_interval(_events(stack, job_id), phase)
        kinds = [m["kind"] for m in api.get("/v1/models").json()["models"]]
        new = sorted(kinds)
        for k in kinds_before:
            new.remove(k)
        assert new == ["gdgan", "gdgan-stage1", "gdgan-stage2"], new  # one of each, no duplicate
    _no_half_visible_artifact(stack)


# a dataset job (phantom ingest, trainer queue), the same dataset/evaluation/generate job under each
# kill; Redis and S3 are SIGKILLed (their SIGTERM cells are the training ones: the supervisor
# restarts a stopped server exactly as a killed one)
JOB_KILLS = ["redis", "s3", "gateway"]


@pytest.mark.parametrize("component", ["trainer-0", *JOB_KILLS])
def test_dataset_job_survives(stack: Stack, api: httpx.Client, component: str) -> None:
    before = [d["id"] for d in api.get("/v1/datasets").json()]
    r = api.post("/v1/datasets", json={"source": "phantom", "n": 6000, "size": 32, "seed": 9}).json()
    wait_for(lambda: _rec(api, r["job_id"])["progress"]["step"] > 0, 240, "ingest under way", interval=0.1)
    rec = _kill_during(stack, api, r["job_id"], component)
    _one_new(before, [d["id"] for d in _list(api, "/v1/datasets")], rec, "dataset_id")
    if rec["status"] == "succeeded":
        assert rec["result"]["dataset_id"] == r["dataset_id"]
    _no_half_visible_artifact(stack)


def _report_ids(api: httpx.Client) -> list[str]:
    return [x["id"] for x in _list(api, "/v1/reports")]


def _evaluation_ended(api: httpx.Client, rec: dict[str, Any], reports_before: list[str]) -> None:
    """Every part done when it succeeded; one new report, or none when it failed."""
    if rec["status"] == "succeeded":
        assert all(s == "succeeded" for s in rec["parts"].values()), rec["parts"]
    _one_new(reports_before, _report_ids(api), rec, "report_id")


@pytest.mark.parametrize("component", ["evaluator-0", *JOB_KILLS])
def test_evaluation_survives_a_kill_among_classifiers(
    stack: Stack, api: httpx.Client, dataset: str, models: dict[str, str], component: str
) -> None:
    reports_before = _report_ids(api)
    body = {
        "dataset_id": dataset,
        "gdgan": models["gdgan"],
        "acgan": models["acgan"],
        "repeats": 1,
        "preset": "tiny",
        "strategies": ["none", "undersample", "gdgan"],
    }
    job_id = api.post("/v1/jobs/evaluate", json=body).json()["job_id"]
    wait_for(
        lambda: any(p.startswith("clf:") and s == "running" for p, s in _rec(api, job_id)["parts"].items()),
        300,
        "a classifier part running",
        interval=0.1,
    )
    rec = _kill_during(stack, api, job_id, component)
    _evaluation_ended(api, rec, reports_before)
    _no_half_visible_artifact(stack)


@pytest.mark.parametrize("component", ["trainer-0", "evaluator-0"])
def test_evaluation_survives_a_kill_in_the_gan_fan_out(
    stack: Stack, api: httpx.Client, dataset: str, component: str
) -> None:
    """No models given: the evaluation trains a GDGAN on the split (a 'gan:' part, trainer queue)
    and the trainer or the evaluator is killed while that part runs. A killed trainer's part is
    redelivered and resumes its run (the run id is the plan's); a killed evaluator loses only the
    parts it held, which are redelivered. Exactly one model of each kind, one report."""
    store = _store(stack)
    reports_before = _report_ids(api)
    models_before = {m.id for m in store.list() if m.kind.startswith("gdgan")}
    # each cell a plan of its own: the split's GAN runs are keyed by the plan, so a second job with
    # the same plan would find the first one's models instead of training (and the evaluator cell
    # gets one more classifier part to hold while the GAN trains)
    strategies = ["none", "gdgan"] if component == "trainer-0" else ["none", "undersample", "gdgan"]
    body = {"dataset_id": dataset, "repeats": 1, "preset": "tiny", "strategies": strategies}
    job_id = api.post("/v1/jobs/evaluate", json=body).json()["job_id"]
    wait_for(  # stage 1 ('gan:gdgan1:r0') or stage 2 + bundle ('gan:gdgan:r0'): both train the run
        lambda: "running" in {_rec(api, job_id)["parts"].get(p) for p in ("gan:gdgan1:r0", "gan:gdgan:r0")},
        300,
        "a GAN part",
        interval=0.05,
    )
    rec = _kill_during(stack, api, job_id, component)
    _evaluation_ended(api, rec, reports_before)
    trained = sorted(m.kind for m in store.list() if m.kind.startswith("gdgan") and m.id not in models_before)
    assert trained == ["gdgan", "gdgan-stage1", "gdgan-stage2"], trained  # no duplicate model
    _no_half_visible_artifact(stack)


# (component killed, the service the request goes to): the generator's own cell calls it directly;
# the others go through the gateway, as users do (it streams the generator's answer through)
REQUEST_CELLS = [("generator", "generator"), ("gateway", "gateway"), ("redis", "gateway"), ("s3", "gateway")]


@pytest.mark.parametrize(("component", "via"), REQUEST_CELLS, ids=[c for c, _ in REQUEST_CELLS])
def test_generation_request_during_a_kill(
    stack: Stack, models: dict[str, str], component: str, via: str
) -> None:
    url = stack.cfg.generator_url if via == "generator" else stack.cfg.gateway_url
    body = {"model": models["gdgan"], "n": 64, "seed": 7, "format": "zip"}
    reference = httpx.post(f"{url}/v1/generate", json=body, timeout=120)
    assert reference.status_code == 200
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["resp"] = httpx.post(f"{url}/v1/generate", json=body, timeout=120)
        except httpx.HTTPError as exc:  # the connection died with the process: no partial body
            outcome["error"] = exc

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.05)
    _kill(stack, component)
    t.join(150)
    if "resp" in outcome:  # whole (it finished before the kill, or never needed the server)
        r = outcome["resp"]  # or, through the gateway, 503 + Retry-After: the generator was down
        assert r.status_code == 200 or (r.status_code == 503 and "retry-after" in r.headers), r.text
        if r.status_code == 200:
            assert r.content == reference.content
    else:
        assert isinstance(outcome["error"], httpx.TransportError)
    again = wait_for(lambda: _post_ok(url, body), 120, "the generator back")
    assert again.content == reference.content
    assert len(zipfile.ZipFile(io.BytesIO(again.content)).namelist()) == 64 + 1


def _post_ok(url: str, body: dict[str, Any]) -> httpx.Response | None:
    try:
        r = httpx.post(f"{url}/v1/generate", json=body, timeout=120)
    except httpx.HTTPError:
        return None
    assert r.status_code < 500 or r.status_code == 503, r.text
    return r if r.status_code == 200 else None


@pytest.mark.parametrize("component", ["evaluator-0", *JOB_KILLS])
def test_evaluation_survives_a_kill_in_the_report(
    stack: Stack, api: httpx.Client, dataset: str, models: dict[str, str], component: str
) -> None:
    reports_before = _report_ids(api)
    body = {
        "dataset_id": dataset,
        "gdgan": models["gdgan"],
        "acgan": models["acgan"],
        "repeats": 1,
        "preset": "tiny",
        "strategies": ["none", "gdgan"],
    }
    job_id = api.post("/v1/jobs/evaluate", json=body).json()["job_id"]
    wait_for(
        lambda: _rec(api, job_id)["parts"].get("report") == "running", 300, "the report part", interval=0.05
    )
    rec = _kill_during(stack, api, job_id, component)
    _evaluation_ended(api, rec, reports_before)
    _no_half_visible_artifact(stack)


@pytest.mark.parametrize("component", ["evaluator-0", *JOB_KILLS])
def test_generate_job_survives(
    stack: Stack, api: httpx.Client, models: dict[str, str], component: str
) -> None:
    store = _store(stack)
    sets_before = [m.id for m in store.list("synthetic")]
    job_id = api.post("/v1/jobs/generate", json={"model": models["gdgan"], "n": 3000, "seed": 4}).json()[
        "job_id"
    ]
    wait_for(lambda: _rec(api, job_id)["progress"]["step"] > 0, 300, "generation under way", interval=0.05)
    rec = _kill_during(stack, api, job_id, component, 600)
    _one_new(sets_before, [m.id for m in store.list("synthetic")], rec, "artifact_id")
    _no_half_visible_artifact(stack)
