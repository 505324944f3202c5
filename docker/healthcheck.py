"""Container health check for the gdgan image (Docker HEALTHCHECK, compose, Kubernetes exec probes).

One image runs four services, so one script checks all of them:

    healthcheck.py --url http://127.0.0.1:8000/readyz   web service: HTTP 200 = healthy
    healthcheck.py --celery                             Celery worker on this host answers a ping
    healthcheck.py                                      auto: find the gdgan process in /proc and
                                                        pick the check (web: /healthz; worker: ping)

Exit status 0 = healthy, 1 = unhealthy (what Docker and the kubelet expect); one line on stdout says
why. Only the standard library is needed for the HTTP check, so it costs a few milliseconds.

Why the worker check is more than a ping: the trainer runs Celery's *solo* pool, which executes a
task in the main thread and answers no control command (ping included) until the task ends; a
training task takes hours. So when no pong comes back, the worker still counts as alive if it holds
a job *lease* in Redis (``gdgan:job:<id>:lease``, renewed by the running task every few seconds and
expiring otherwise, see gdgan.jobs.records). A hung or dead worker stops renewing; its lease lapses
and the check fails. The equivalent manual check with Celery's own CLI is::

    celery -A gdgan.jobs.celery_app inspect ping --timeout 5 | grep "@$HOSTNAME"
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

LEASE_PATTERN = "gdgan:job:*:lease"


def check_http(url: str, timeout: float) -> tuple[bool, str]:
    """GET ``url``; healthy only on HTTP 200 (a 503 from /readyz means "not ready yet")."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200, f"{url} -> HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} -> HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} -> {exc}"


def _ping_worker(hostname: str, timeout: float) -> list[str]:
    """Names of the Celery workers on ``hostname`` that answered a ping.

    ``gdgan worker trainer|evaluator`` names its node "<role>-<pid>@<host>" (gdgan.cli.serve: several
    workers may share a host), so the name cannot be known here: ping every worker for ``timeout``
    seconds and keep the replies from this host.
    """
    from gdgan.jobs.celery_app import app

    replies = app.control.ping(timeout=timeout) or []
    names = [name for reply in replies for name in reply]
    return [n for n in names if n.split("@", 1)[-1] == hostname]


def _held_leases(hostname: str) -> list[str]:
    """Job leases whose owner names this host: proof that a busy solo worker is making progress."""
    import redis
    from gdgan.settings import get_settings

    client = redis.Redis.from_url(
        get_settings().redis_url, socket_connect_timeout=3, socket_timeout=3, decode_responses=True
    )
    try:
        held = []
        for key in client.scan_iter(match=LEASE_PATTERN, count=500):
            owner = client.get(key)  # "<hostname>:<pid>:<task id>" (gdgan.jobs.tasks)
            if owner and owner.split(":", 1)[0] == hostname:
                held.append(key)
        return held
    finally:
        client.close()


def check_celery(hostname: str, timeout: float) -> tuple[bool, str]:
    """Healthy when this host's worker answers a ping, or is busy holding a live job lease."""
    try:
        names = _ping_worker(hostname, timeout)
        if names:
            return True, f"pong from {', '.join(sorted(names))}"
        leases = _held_leases(hostname)
    except Exception as exc:  # broker down, bad settings: all mean "not healthy"
        return False, f"celery check failed: {type(exc).__name__}: {exc}"
    if leases:
        return True, f"busy: {hostname} holds {', '.join(sorted(leases))}"
    return (
        False,
        f"no Celery worker on {hostname} answered a ping within {timeout:g}s and it holds no job lease",
    )


def _gdgan_commands(proc: Path = Path("/proc")) -> list[list[str]]:
    """Argument vectors of the running gdgan service processes (this container's, in practice)."""
    found = []
    for entry in proc.glob("[0-9]*/cmdline"):
        try:
            argv = [a.decode(errors="replace") for a in entry.read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if any(Path(a).name == "gdgan" for a in argv[:2]) and ("serve" in argv or "worker" in argv):
            found.append(argv)
    return found


def auto_check(timeout: float) -> tuple[bool, str]:
    """Pick the check from the running command: ``serve X --port P`` -> /healthz; ``worker`` -> ping."""
    commands = _gdgan_commands()
    if not commands:
        return False, "no gdgan service process is running"
    argv = commands[0]
    if "worker" in argv:
        return check_celery(socket.gethostname(), timeout)
    port = argv[argv.index("--port") + 1] if "--port" in argv[:-1] else None
    if port is None:
        port = "8001" if "generator" in argv else "8000"
    return check_http(f"http://127.0.0.1:{port}/healthz", timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--url", help="HTTP URL that must answer 200")
    mode.add_argument("--celery", action="store_true", help="ping the Celery worker on this host")
    parser.add_argument("--hostname", default=None, help="worker host name (default: this host's)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    args = parser.parse_args(argv)
    if args.url:
        ok, why = check_http(args.url, args.timeout)
    elif args.celery:
        ok, why = check_celery(args.hostname or socket.gethostname(), args.timeout)
    else:
        ok, why = auto_check(args.timeout)
    print(("healthy: " if ok else "unhealthy: ") + why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
