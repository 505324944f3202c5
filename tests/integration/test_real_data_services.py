"""The experiment on real radiographs through the services only: the shared 970-image NIH sample
(``POST /v1/datasets`` with the NIH source, then an evaluation job), and the same images as a
plain class-folder tree with no sex or view (``source: folder``, then an evaluation job).

Real Redis, uvicorn, Celery trainer and evaluator workers; the tiny presets, one split. What a
970-image set can tell is little (66 Cardiomegaly images, ~13 in a test part): this checks that
the whole pipeline runs on real data and on a non-NIH schema, not the size of any effect.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gdgan.localstack.stack import Stack
from sampledata import nih_sample_dir
from svcstack import redis_stack, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.nih_sample]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    sample = nih_sample_dir()
    home = tmp_path_factory.mktemp("svc-real")
    imports = home / "imports"
    shutil.copytree(sample, imports / "nih")
    rows = list(csv.DictReader((sample / "Data_Entry_2017_v2020.csv").open()))
    for r in rows:  # the same images as a class tree: the labels are the folders, no sex or view
        cls = {"Cardiomegaly": "Cardiomegaly", "No Finding": "No Finding"}.get(r["Finding Labels"])
        if cls is None and "Cardiomegaly" in r["Finding Labels"].split("|"):
            cls = "Cardiomegaly"
        if cls:
            (imports / "tree" / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(sample / "images" / r["Image Index"], imports / "tree" / cls / r["Image Index"])
    # a fixed salt: the folder images are their own patients, hashed; with the default random salt
    # each ingest draws another patient-wise split (its AUCs then swing by ~0.2 from run to run)
    env = {"GDGAN_IMPORT_DIR": str(imports), "GDGAN_PATIENT_ID_SALT": "real-data-test"}
    with redis_stack(home, env=env) as s:
        yield s


def _evaluate(stack: Stack, api: httpx.Client, dataset: dict) -> dict:
    r = api.post(
        "/v1/jobs/evaluate", json={"dataset_id": dataset["dataset_id"], "preset": "tiny", "repeats": 1}
    )
    assert r.status_code == 202, r.text
    rec = wait_job(stack.cfg.gateway_url, r.json()["job_id"], timeout=1500)
    assert rec["status"] == "succeeded", rec
    report_id = rec["result"]["report_id"]
    report = api.get(f"/v1/reports/{report_id}").json()
    # kept for reading the figures (BYO_REPORT_DIR, default the stack's folder)
    dest = Path(os.environ.get("BYO_REPORT_DIR", stack.cfg.home)) / f"real-{dataset['source']}.json"
    dest.write_text(json.dumps(report, default=str))
    # the report is about this dataset: every strategy scored on its test part, GANs from its own
    # training part (lineage), the paired differences to "none" with their intervals
    assert report["finding"] == "Cardiomegaly" and report["dataset"]["id"] == dataset["dataset_id"]
    assert report["lineage"]["all_ok"] is True
    rows = report["table2"]["rows"]
    assert set(rows) == {"none", "undersample", "oversample", "acgan", "gdgan"}
    assert all(0.0 <= rows[s]["auc_mean"] <= 1.0 for s in rows)
    split = report["splits"][0]
    assert split["test_positives"] > 0 and split["train_positives"] > 0
    assert split["train"] + split["val"] + split["test"] == dataset["n"]  # every image in one part
    for s, diff in report["table2"]["paired_vs_none"].items():
        lo, hi = diff["bootstrap_ci"]
        assert lo <= diff["mean"] <= hi, (s, diff)
    return report


def _ingest(stack: Stack, api: httpx.Client, body: dict) -> dict:
    r = api.post("/v1/datasets", json=body)
    assert r.status_code == 202, r.text
    rec = wait_job(stack.cfg.gateway_url, r.json()["job_id"], timeout=300)
    assert rec["status"] == "succeeded", rec
    return {**api.get(f"/v1/datasets/{r.json()['dataset_id']}").json(), "dataset_id": r.json()["dataset_id"],
            "source": body["source"]}  # fmt: skip


def test_nih_sample_through_the_services(stack: Stack, api: httpx.Client) -> None:
    d = _ingest(stack, api, {"source": "nih", "csv": "nih/Data_Entry_2017_v2020.csv", "images": "nih/images",
                             "size": 64})  # fmt: skip
    assert d["n"] == 970 and d["counts"]["findings"]["Cardiomegaly"] == 66
    _evaluate(stack, api, d)


def test_class_folders_without_sex_or_view_through_the_services(stack: Stack, api: httpx.Client) -> None:
    d = _ingest(stack, api, {"source": "folder", "root": "tree", "size": 64})
    assert d["labels"]["general"] == [] and d["labels"]["findings"] == ["Cardiomegaly"]
    assert d["counts"]["findings"]["Cardiomegaly"] == 66
    _evaluate(stack, api, d)
