"""docker-compose.yml (+ docker-compose.gpu.yml), checked without a Docker engine.

Why these checks: nobody can run `docker compose up` on the development machines or in CI, so
every property the issue asks of the compose file is asserted here statically — the file is valid
against the official Compose Specification schema (vendored, see tests/data/compose-spec.SOURCE.md),
it runs commands that exist, sets only settings that exist (an unknown GDGAN_* variable stops a
service at start-up), and its ports, probes, bucket and credentials agree with each other. The
wiring is then proven by running it in tests/integration/test_compose_equivalence.py, which reuses
the helpers at the top of this module.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from deploy_rules import worker_grace_needed
from gdgan.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
SCHEMA_SHA256 = "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c"

GDGAN_SERVICES = ("gateway", "generator", "trainer", "evaluator")
GPU_SERVICES = ("generator", "trainer", "evaluator")
# The agreed service commands (team contract; docker/entrypoint.sh and k8s/ use the same).
EXPECTED_COMMANDS = {
    "gateway": ["gdgan", "serve", "gateway", "--host", "0.0.0.0", "--port", "8000"],
    "generator": ["gdgan", "serve", "generator", "--host", "0.0.0.0", "--port", "8001"],
    "trainer": ["gdgan", "worker", "trainer"],
    "evaluator": ["gdgan", "worker", "evaluator"],
}
KNOWN_SETTINGS = {ENV_PREFIX + name.upper() for name in Settings.model_fields}


# --- helpers (also used by tests/integration/test_compose_equivalence.py) -----------------------
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A required variable (``${VAR:?message}``) is missing, as `docker compose` would report."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose-style variable substitution: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}."""

    def sub(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if unset_or_empty else str(value)
        if op in (":?", "?"):
            if unset_or_empty:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return str(value)
        return "" if value is None else value

    return _VAR.sub(sub, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Apply :func:`interpolate` to every string value (compose does not interpolate keys)."""
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def referenced_variables(text: str) -> set[str]:
    return {m.group("braced") or m.group("plain") for m in _VAR.finditer(text) if not m.group("escaped")}


def required_variables(text: str) -> set[str]:
    return {m.group("braced") for m in _VAR.finditer(text) if m.group("op") in (":?", "?")}


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """A .env file as `docker compose` reads it (KEY=VALUE lines, # comments)."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: malformed line {raw!r}"
        env[key.strip()] = value.strip().strip("'\"")
    return env


def merge(base: Any, override: Any) -> Any:
    """Compose's override-file merge for the keys we use: mappings merge, other values replace."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


def load_compose(*files: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective compose model: files merged in order, variables from ``env`` (.env.example)."""
    env = read_env_file() if env is None else env
    model: dict[str, Any] = {}
    for f in files or (COMPOSE,):
        model = merge(model, yaml.safe_load(f.read_text()))
    return interpolate_tree(model, env)


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def option(argv: list[str], name: str) -> str:
    assert name in argv[:-1], f"{argv} has no {name} option"
    return argv[argv.index(name) + 1]


def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    # The file declares draft 2019-09 (with a non-canonical URI that jsonschema does not map).
    return jsonschema.Draft201909Validator(schema)


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE)


@pytest.fixture(scope="module")
def compose_gpu() -> dict[str, Any]:
    return load_compose(COMPOSE, COMPOSE_GPU)


# --- interpolation helper -----------------------------------------------------------------------
def test_interpolate_follows_compose_rules() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("x$A-${A}", env) == "x1-1"
    assert interpolate("${MISSING:-d} ${EMPTY:-d} ${EMPTY-d} ${A:-d}", env) == "d d  1"
    assert interpolate("$$HOME $${A}", env) == "$HOME ${A}"
    with pytest.raises(InterpolationError, match="MISSING"):
        interpolate("${MISSING:?set it}", env)
    with pytest.raises(InterpolationError, match="EMPTY"):
        interpolate("${EMPTY:?set it}", env)
    assert interpolate("${EMPTY?set it}", env) == ""


# --- schema -------------------------------------------------------------------------------------
def test_vendored_schema_is_the_recorded_file() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


@pytest.mark.parametrize(
    "files", [(COMPOSE,), (COMPOSE_GPU,), (COMPOSE, COMPOSE_GPU)], ids=["cpu", "gpu-file", "gpu-merged"]
)
def test_compose_files_validate_against_the_compose_specification(files: tuple[Path, ...]) -> None:
    validator = compose_validator()
    raw = [yaml.safe_load(f.read_text()) for f in files]
    docs = [*raw, load_compose(*files)] if len(files) == 1 else [load_compose(*files)]
    for doc in docs:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_validation_rejects_a_broken_service(compose: dict[str, Any]) -> None:
    """The validator really checks: a misspelt key and a wrong depends_on condition are errors."""
    validator = compose_validator()
    broken = copy.deepcopy(compose)
    broken["services"]["trainer"]["restrat"] = "always"
    assert any("restrat" in e.message for e in validator.iter_errors(broken))
    broken = copy.deepcopy(compose)
    broken["services"]["trainer"]["depends_on"]["redis"]["condition"] = "service_ready"
    assert list(validator.iter_errors(broken))


# --- .env.example -------------------------------------------------------------------------------
def test_every_variable_compose_needs_is_in_env_example() -> None:
    env = read_env_file()
    text = COMPOSE.read_text() + COMPOSE_GPU.read_text()
    missing = required_variables(text) - set(env)
    assert not missing, f".env.example lacks required variables {sorted(missing)}"
    # and nothing in .env.example is dead weight
    unused = set(env) - referenced_variables(text) - {"COMPOSE_PROJECT_NAME"}
    assert not unused, f".env.example sets variables no compose file uses: {sorted(unused)}"
    with pytest.raises(InterpolationError):
        load_compose(COMPOSE, env={})  # without .env, compose refuses to start


def test_env_example_sets_only_known_settings_and_no_real_secrets() -> None:
    env = read_env_file()
    unknown = {k for k in env if k.startswith(ENV_PREFIX)} - KNOWN_SETTINGS
    assert not unknown, f".env.example sets unknown settings {sorted(unknown)}"
    for key in ("GDGAN_S3_SECRET_KEY", "GDGAN_API_TOKEN"):
        assert "change-me" in env[key], f"{key} in .env.example must be an obvious placeholder"
    assert len(env["GDGAN_S3_SECRET_KEY"]) >= 8, "MinIO refuses root passwords under 8 characters"


# --- the gdgan services -------------------------------------------------------------------------
@pytest.mark.parametrize("name", GDGAN_SERVICES)
def test_service_runs_the_agreed_command_and_it_exists(compose: dict[str, Any], name: str) -> None:
    from gdgan.cli.main import app

    command = compose["services"][name]["command"]
    assert command == EXPECTED_COMMANDS[name]
    result = CliRunner().invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, f"`{' '.join(command)} --help` failed:\n{result.output}"


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, COMPOSE_GPU)], ids=["cpu", "gpu"])
def test_services_set_only_known_settings_with_valid_values(files: tuple[Path, ...]) -> None:
    model = load_compose(*files)
    for name in GDGAN_SERVICES:
        env = service_env(model["services"][name])
        unknown = set(env) - KNOWN_SETTINGS
        assert not unknown, f"{name} sets unknown variables {sorted(unknown)}"
        try:
            settings = load_settings(env)
        except SettingsError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{name}: {exc}")
        assert settings.store_url.startswith("s3://")


def test_settings_check_would_reject_a_typo() -> None:
    """The property the env checks rely on: an unknown GDGAN_* name is a start-up error."""
    with pytest.raises(SettingsError, match="GDGAN_REDIS_ULR"):
        load_settings({"GDGAN_REDIS_ULR": "redis://redis:6379/0"})


def test_ports_urls_and_probes_agree(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = service_env(services["gateway"])
    gw_port = option(services["gateway"]["command"], "--port")
    gen_port = option(services["generator"]["command"], "--port")
    assert (gw_port, gen_port) == (str(Settings().gateway_port), str(Settings().generator_port))
    # gateway: published on the host, container side = the port it listens on
    assert [p.split(":")[-1] for p in services["gateway"]["ports"]] == [gw_port]
    assert [str(p) for p in services["generator"]["expose"]] == [gen_port]
    # URLs other services use name the compose service and its port
    for var, svc, port in (
        ("GDGAN_GATEWAY_URL", "gateway", gw_port),
        ("GDGAN_GENERATOR_URL", "generator", gen_port),
    ):
        url = urlsplit(env[var])
        assert (url.hostname, str(url.port)) == (svc, port), var
    # health checks hit the same port, on the readiness path
    for svc, port in (("gateway", gw_port), ("generator", gen_port)):
        test = services[svc]["healthcheck"]["test"]
        url = urlsplit(option(test, "--url"))
        assert (url.hostname, str(url.port), url.path) == ("127.0.0.1", port, "/readyz"), svc
    for svc in ("trainer", "evaluator"):
        assert "--celery" in services[svc]["healthcheck"]["test"]


@pytest.mark.parametrize(
    ("module", "path"),
    [
        ("services.gateway.app", "/readyz"),
        ("services.gateway.app", "/healthz"),
        ("services.generator.app", "/readyz"),
        ("services.generator.app", "/healthz"),
    ],
)
def test_probe_paths_are_routes_of_the_services(module: str, path: str) -> None:
    import importlib

    app = importlib.import_module(module).create_app()
    assert "get" in app.openapi()["paths"].get(path, {}), f"{module} serves no GET {path}"


def test_healthcheck_script_is_the_one_in_the_image(compose: dict[str, Any]) -> None:
    for name in GDGAN_SERVICES:
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "/opt/gdgan/healthcheck.py"], name
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        text = (ROOT / "docker" / dockerfile).read_text()
        assert re.search(r"COPY .*docker/healthcheck\.py /opt/gdgan/healthcheck\.py", text), dockerfile


# --- dependencies, restarts, limits, volumes, scaling -------------------------------------------
def test_startup_order_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("redis", "minio"):
        assert services[name]["healthcheck"]["test"], name
    for name in GDGAN_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["minio"]["condition"] == "service_healthy"
        assert deps["minio-init"]["condition"] == "service_completed_successfully"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_restart_policies_and_resource_limits(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name == "minio-init":
            assert svc["restart"] == "no"  # one-shot
            continue
        assert svc["restart"] in ("unless-stopped", "always"), name
        limits = svc["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[kmg]", limits["memory"]), name


def test_state_lives_in_named_volumes_and_redis_persists(compose: dict[str, Any]) -> None:
    volumes = compose["volumes"]
    for svc, volume in (("redis", "redis-data"), ("minio", "minio-data")):
        assert f"{volume}:/data" in compose["services"][svc]["volumes"]
        assert volume in volumes
    command = compose["services"]["redis"]["command"]
    assert option(command, "--appendonly") == "yes"


def test_workers_and_generator_can_be_scaled(compose: dict[str, Any]) -> None:
    """`--scale trainer=N` fails with a fixed container name or a published host port."""
    for name, svc in compose["services"].items():
        assert "container_name" not in svc, name
        if name != "gateway":
            assert "ports" not in svc, f"{name} publishes host ports"
        assert "hostname" not in svc, name


def test_bucket_endpoint_and_credentials_match_minio(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = service_env(services["gateway"])
    bucket = urlsplit(env["GDGAN_STORE_URL"]).netloc
    init_script = " ".join(services["minio-init"]["command"])
    assert re.search(rf"mc mb --ignore-existing \S+/{re.escape(bucket)}(\s|$)", init_script)
    assert "http://minio:9000" in init_script
    assert env["GDGAN_S3_ENDPOINT"] == "minio:9000"
    assert "server" in services["minio"]["command"]  # API on the default :9000
    minio_env = service_env(services["minio"])
    assert env["GDGAN_S3_ACCESS_KEY"] == minio_env["MINIO_ROOT_USER"]
    assert env["GDGAN_S3_SECRET_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
    assert env["GDGAN_REDIS_URL"] == "redis://redis:6379/0"


def test_images_are_pinned_and_gdgan_services_build_from_the_dockerfile(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned image {image}"
        if name in GDGAN_SERVICES:
            assert svc["build"]["dockerfile"] == "docker/Dockerfile"
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


# --- GPU override -------------------------------------------------------------------------------
def test_gpu_override_reserves_nvidia_gpus(compose_gpu: dict[str, Any]) -> None:
    services = compose_gpu["services"]
    for name in GPU_SERVICES:
        svc = services[name]
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices), name
        assert service_env(svc)["GDGAN_DEVICE"] == "cuda"
        assert svc["deploy"]["resources"]["limits"], f"{name}: the override dropped the limits"
    for name in GDGAN_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile.cuda"
        assert services[name]["image"].endswith("-cuda")
        assert services[name]["command"] == EXPECTED_COMMANDS[name]
    assert "reservations" not in services["gateway"].get("deploy", {}).get("resources", {})
    assert service_env(services["gateway"])["GDGAN_DEVICE"] == "cpu"


def test_gpu_override_gives_the_trainer_every_gpu(compose_gpu: dict[str, Any]) -> None:
    """A job with nproc_per_node = the host's GPU count runs one DDP rank per GPU in one trainer."""
    (dev,) = compose_gpu["services"]["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert dev["count"] == "all" and dev["driver"] == "nvidia"
    for name in ("generator", "evaluator"):  # the others keep one GPU each
        (d,) = compose_gpu["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert d["count"] == 1, name


@pytest.mark.parametrize("name", ["generator", "trainer", "evaluator"])
def test_torch_threads_match_the_cpu_limit(compose: dict[str, Any], name: str) -> None:
    """torch would start one thread per host core; inside a CPU limit that only causes throttling."""
    svc = compose["services"][name]
    limit = float(svc["deploy"]["resources"]["limits"]["cpus"])
    assert int(service_env(svc)["GDGAN_NUM_THREADS"]) == int(limit)


def test_workers_have_the_time_to_checkpoint_when_stopped(compose: dict[str, Any]) -> None:
    """`docker compose stop` / `down`: SIGTERM through tini (``init``), then SIGKILL after
    ``stop_grace_period``, which must cover a step and a checkpoint write through an S3 restart."""
    for name in ("trainer", "evaluator"):
        svc = compose["services"][name]
        grace = svc["stop_grace_period"]
        seconds = int(grace[:-1]) * {"s": 1, "m": 60, "h": 3600}[grace[-1]]
        assert svc["init"] is True and seconds >= worker_grace_needed(service_env(svc)), (name, grace)
