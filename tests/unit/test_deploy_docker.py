"""docker/ (Dockerfiles, entry point, health check) and .dockerignore, checked without a Docker engine.

Why: images cannot be built here, so (1) hadolint lints both Dockerfiles, (2) the rules the issue
sets are asserted on the parsed Dockerfiles (multi-stage, pinned bases, non-root, HEALTHCHECK,
nothing but the venv copied into the final stage), (3) the build context is reproduced from
.dockerignore and built into a wheel, proving the image's `pip install .` gets every package and
the web client, and (4) the entry point and health check — the two scripts the image adds — are
run for real.
"""

from __future__ import annotations

import fnmatch
import http.server
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = ("Dockerfile", "Dockerfile.cuda")
ROLES = {  # entry point role -> the exact command docker-compose.yml runs for it
    "gateway": ["gdgan", "serve", "gateway", "--host", "0.0.0.0", "--port", "8000"],
    "generator": ["gdgan", "serve", "generator", "--host", "0.0.0.0", "--port", "8001"],
    "trainer": ["gdgan", "worker", "trainer"],
    "evaluator": ["gdgan", "worker", "evaluator"],
}


def venv_tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the dev extra (pip install -e '.[dev]')")
    return found


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gdgan_docker_healthcheck", DOCKER / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Dockerfile parsing -------------------------------------------------------------------------
def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def resolve_base(text: str, from_args: str) -> str:
    """The image a FROM names, with ARG defaults declared before the first FROM substituted."""
    image = from_args.split()[0]
    for name, default in re.findall(r"^ARG (\w+)=(\S+)", text.split("\nFROM ")[0], flags=re.M):
        image = image.replace("${" + name + "}", default).replace("$" + name, default)
    return image


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name: str) -> None:
    proc = subprocess.run(
        [venv_tool("hadolint"), str(DOCKER / name)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"hadolint {name}:\n{proc.stdout}{proc.stderr}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y gcc\nRUN cd /src && pip install flask\n")
    proc = subprocess.run([venv_tool("hadolint"), str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3007" in proc.stdout  # "latest" tag


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_rules(name: str) -> None:
    text = (DOCKER / name).read_text()
    parts = stages(text)
    assert len(parts) >= 2, "multi-stage build expected"
    for stage in parts:
        base = resolve_base(text, stage[0][1])
        _, _, tag = base.partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"base image {base} is not pinned"
    final = parts[-1]
    kinds = [k for k, _ in final]
    # non-root, numeric uid (so Kubernetes' runAsNonRoot can verify it)
    users = [a for k, a in final if k == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), f"final USER {users}"
    assert "HEALTHCHECK" in kinds and "ENTRYPOINT" in kinds
    # the final stage gets the built venv, not a second install: no pip, no compilers, no caches
    final_text = "\n".join(a for k, a in final if k == "RUN")
    assert "pip" not in final_text
    assert not re.search(r"\b(gcc|g\+\+|build-essential|python3[.\d]*-dev|-venv)\b", final_text)
    if "apt-get install" in final_text:
        assert "--no-install-recommends" in final_text and "rm -rf /var/lib/apt/lists/*" in final_text
    assert any(k == "COPY" and a.startswith("--from=build /opt/venv") for k, a in final)
    # the build stage keeps pip's cache out of the layers
    assert re.search(r"PIP_NO_CACHE_DIR=1", "\n".join(a for k, a in parts[0] if k == "ENV"))


def test_images_pin_the_torch_the_project_uses() -> None:
    makefile = (ROOT / "Makefile").read_text()
    torch = re.search(r"torch==([\d.]+)", makefile).group(1)
    vision = re.search(r"torchvision==([\d.]+)", makefile).group(1)
    for name in DOCKERFILES:
        text = (DOCKER / name).read_text()
        assert f"ARG TORCH_VERSION={torch}" in text and f"ARG TORCHVISION_VERSION={vision}" in text, name
    cpu, cuda = ((DOCKER / n).read_text() for n in DOCKERFILES)
    assert "download.pytorch.org/whl/cpu" in cpu
    assert re.search(r"CUDA_IMAGE=nvidia/cuda:[\d.]+-(cudnn-)?runtime-", cuda), "CUDA runtime base expected"
    cu = re.search(r"CUDA_IMAGE=nvidia/cuda:(\d+)\.(\d+)", cuda).groups()
    assert f"download.pytorch.org/whl/cu{''.join(cu)}" in cuda, "torch's CUDA build must match the base"


def test_every_copy_source_is_in_the_build_context() -> None:
    context = set(build_context_files())
    for name in DOCKERFILES:
        for kind, args in instructions((DOCKER / name).read_text()):
            if kind != "COPY" or args.startswith("--from"):
                continue
            srcs = [a for a in args.split() if not a.startswith("--")][:-1]
            for src in srcs:
                src = src.rstrip("/")
                assert src in context or any(f.startswith(src + "/") for f in context), f"{name}: COPY {src}"


# --- .dockerignore and the build context --------------------------------------------------------
def _dockerignore_patterns() -> list[tuple[bool, str]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, line.lstrip("!").strip("/")))
    return rules


def _match(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent directories; ** spans dirs."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
    return any(re.fullmatch(regex, c) for c in candidates)


def dockerignored(path: str) -> bool:
    excluded = False
    for negate, pattern in _dockerignore_patterns():
        if _match(pattern, path):
            excluded = not negate
    return excluded


def build_context_files() -> Iterator[str]:
    """The repository files `docker build .` sends (tracked or not), per .dockerignore."""
    skip_dirs = {".git", ".venv", "node_modules"}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs]
        for f in filenames:
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/")
            if not dockerignored(rel):
                yield rel


def test_dockerignore_matcher_follows_docker_semantics() -> None:
    assert _match("**/__pycache__", "shared/gdgan/__pycache__/x.pyc")
    assert _match("*", "tests/unit/test_x.py") and not _match("shared", "services/x.py")
    assert _match("**/*.py[cod]", "a/b/c.pyc") and not _match("**/*.py[cod]", "a/b/c.py")
    assert fnmatch.fnmatch("x", "*")  # sanity of the environment


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("pyproject.toml", True),
        ("README.md", True),
        ("shared/gdgan/settings.py", True),
        ("services/gateway/web/index.html", True),
        ("docker/entrypoint.sh", True),
        ("docker/healthcheck.py", True),
        (".venv/bin/python", False),
        (".git/HEAD", False),
        ("tests/unit/test_deploy_docker.py", False),
        ("shared/gdgan/__pycache__/settings.cpython-311.pyc", False),
        (".env", False),
        ("k8s/base/redis.yaml", False),
        ("gdgan.egg-info/PKG-INFO", False),
        ("docker-compose.yml", False),
        ("benchmarks/out/x.json", False),
    ],
)
def test_dockerignore(path: str, sent: bool) -> None:
    assert dockerignored(path) is not sent


def test_build_context_builds_a_complete_wheel(tmp_path: Path) -> None:
    """What the image's `pip install .` gets: every package, the web client and the CLI."""
    ctx = tmp_path / "context"
    for rel in build_context_files():
        dst = ctx / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst)
    assert (ctx / "README.md").exists(), "pyproject.toml's readme must be in the build context"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ctx),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("gdgan-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "gdgan/settings.py",
        "gdgan/cli/main.py",
        "gdgan/jobs/celery_app.py",
        "services/gateway/app.py",
        "services/generator/app.py",
    ):
        assert module in names, f"{module} missing from the image's package"
    web = sorted(
        p for p in (ROOT / "services/gateway/web").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    missing = [str(p.relative_to(ROOT)) for p in web if str(p.relative_to(ROOT)) not in names]
    assert not missing, f"web client files missing from the wheel (package-data): {missing}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gdgan = gdgan.cli.main:app" in zipfile.ZipFile(wheel).read(entry_points).decode()


# --- entry point --------------------------------------------------------------------------------
def _entrypoint(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_entrypoint_roles_are_the_compose_commands() -> None:
    text = (DOCKER / "entrypoint.sh").read_text()
    branches = dict(re.findall(r"^\s+(\w+)\)\n\s+exec (.+?) \"\$@\" ;;", text, flags=re.M))
    assert {k: branches[k].split() for k in ROLES} == ROLES
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {k: compose[k]["command"] for k in ROLES} == ROLES


def test_entrypoint_runs_the_cli_and_passes_other_commands_through() -> None:
    """`sh -n` parses it; a role with --help reaches the real CLI; anything else is exec'd."""
    assert subprocess.run(["sh", "-n", str(DOCKER / "entrypoint.sh")], timeout=10).returncode == 0
    proc = _entrypoint("trainer", "--help")
    assert proc.returncode == 0 and "trainer" in proc.stdout.lower(), proc.stderr
    proc = _entrypoint("echo", "passed", "through")
    assert proc.stdout.strip() == "passed through"
    proc = _entrypoint("sh", "-c", "exit 3")
    assert proc.returncode == 3


# --- health check -------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_http(http_server: int) -> None:
    hc = load_healthcheck()
    assert hc.main(["--url", f"http://127.0.0.1:{http_server}/healthz", "--timeout", "2"]) == 0
    assert hc.main(["--url", f"http://127.0.0.1:{http_server}/readyz", "--timeout", "2"]) == 1
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert hc.main(["--url", f"http://127.0.0.1:{closed}/healthz", "--timeout", "2"]) == 1


def test_healthcheck_auto_mode_finds_the_service_port(tmp_path: Path, http_server: int) -> None:
    """Auto mode (the image's HEALTHCHECK) reads the running command from /proc."""
    hc = load_healthcheck()
    fake = tmp_path / "proc"
    (fake / "1").mkdir(parents=True)
    (fake / "1" / "cmdline").write_bytes(b"/sbin/docker-init\0--\0gdgan\0")
    (fake / "7").mkdir()
    argv = [
        "/opt/venv/bin/python",
        "/opt/venv/bin/gdgan",
        "serve",
        "generator",
        "--host",
        "0.0.0.0",
        "--port",
        str(http_server),
    ]
    (fake / "7" / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    assert hc._gdgan_commands(fake) == [argv]
    original = hc._gdgan_commands
    hc._gdgan_commands = lambda proc=fake: original(proc)
    assert hc.auto_check(timeout=2) == (True, f"http://127.0.0.1:{http_server}/healthz -> HTTP 200")
    hc._gdgan_commands = lambda proc=tmp_path / "empty": original(proc)
    assert hc.auto_check(timeout=2)[0] is False


def test_healthcheck_celery_counts_a_live_lease_as_busy(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A solo-pool worker running a long task cannot answer a ping; its renewed job lease proves it
    is alive. No worker and no lease -> unhealthy; another host's lease does not count."""
    import redis
    from gdgan.jobs.records import JobStore
    from gdgan.settings import get_settings

    monkeypatch.setenv("GDGAN_REDIS_URL", redis_url)
    get_settings.cache_clear()
    import gdgan.jobs.celery_app as celery_app

    monkeypatch.setattr(celery_app, "app", celery_app.make_celery(get_settings()))
    hc = load_healthcheck()
    ok, why = hc.check_celery("pod-a", timeout=0.5)
    assert not ok and "pod-a" in why
    jobs = JobStore(redis.Redis.from_url(redis_url, decode_responses=True), ttl_s=60, lease_s=30)
    assert jobs.acquire_lease("job-1", "pod-b:12:task")
    assert hc.check_celery("pod-a", timeout=0.5)[0] is False
    assert jobs.acquire_lease("job-2:part", "pod-a:12:task")
    ok, why = hc.check_celery("pod-a", timeout=0.5)
    assert ok and "job-2" in why


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_env_sets_only_known_settings(name: str) -> None:
    """The image's own ENV is part of every container's environment: same rule as compose/k8s."""
    from gdgan.settings import load_settings

    final = (DOCKER / name).read_text().split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", final, flags=re.M):
        env.update(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", block))
    gdgan_env = {k: v for k, v in env.items() if k.startswith("GDGAN_")}
    assert {"GDGAN_DATA_DIR", "GDGAN_CACHE_DIR", "GDGAN_DEVICE"} <= set(gdgan_env)
    settings = load_settings(gdgan_env)  # raises, naming the variable, on an unknown or bad one
    assert settings.device == ("cuda" if name.endswith(".cuda") else "cpu")
