"""``gdgan up`` / ``gdgan down``: the local stack (see gdgan.localstack.stack)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from gdgan.localstack.stack import STATE_FILE, Stack, StackConfig, StackError, down, pid_alive, read_state


def _die(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def default_home() -> Path:
    from gdgan.settings import get_settings

    return get_settings().data_dir / "stack"


Home = Annotated[
    Path | None, typer.Option(help="Stack folder: logs, state, local store (default <data_dir>/stack).")
]


def up(
    home: Home = None,
    gateway_port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    generator_port: Annotated[int, typer.Option(help="Generator port.")] = 8001,
    redis_port: Annotated[int, typer.Option(help="Redis port (ignored with --redis-url).")] = 6379,
    redis_url: Annotated[str, typer.Option(help="Use this Redis instead of starting one.")] = "",
    store_url: Annotated[str, typer.Option(help="Store URL (default: a folder in the stack folder).")] = "",
    s3: Annotated[
        bool, typer.Option("--s3", help="Start a SeaweedFS S3 server and use it as the store.")
    ] = False,
    s3_port: Annotated[int, typer.Option(help="S3 port with --s3.")] = 8333,
    trainers: Annotated[int, typer.Option(min=0, max=16, help="Trainer workers (queue 'train').")] = 1,
    evaluators: Annotated[int, typer.Option(min=0, max=16, help="Evaluator workers (queue 'eval').")] = 1,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Return once ready; stop with 'gdgan down'.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 180.0,
) -> None:
    """Start Redis, the store, gateway, generator, a trainer and an evaluator; Ctrl-C stops all."""
    home = (home or default_home()).resolve()
    st = read_state(home)
    if st and _alive(st):
        _die(f"a stack already runs from {home} (gateway {st.get('gateway')}); stop it with 'gdgan down'")
    if detach:
        _spawn_detached(home, timeout)
        return
    cfg = StackConfig(
        home=home,
        store_url=store_url,
        redis_url=redis_url,
        redis_port=redis_port,
        gateway_port=gateway_port,
        generator_port=generator_port,
        s3=s3,
        s3_port=s3_port,
        trainers=trainers,
        evaluators=evaluators,
    )
    stack = Stack(cfg)
    typer.echo(f"starting the stack in {home} (logs: {home / 'logs'}) ...", err=True)
    try:
        stack.start(timeout=timeout)
    except (StackError, RuntimeError) as exc:
        _die(str(exc))
    s = stack.state()
    typer.echo(
        f"ready: gateway {s['gateway']} (web client at /, API docs at /docs), generator {s['generator']}",
        err=True,
    )
    typer.echo(f"redis {s['redis']}, store {s['store']}; Ctrl-C or 'gdgan down' stops everything", err=True)
    stack.supervise()
    typer.echo("stack stopped", err=True)


def _alive(st: dict) -> bool:
    try:
        os.kill(int(st.get("supervisor", 0)), 0)
        return True
    except (ProcessLookupError, ValueError, PermissionError):
        return False


def _spawn_detached(home: Path, timeout: float) -> None:
    args = [a for a in sys.argv[1:] if a not in ("--detach", "-d")]
    if "--home" not in args:
        args += ["--home", str(home)]
    home.mkdir(parents=True, exist_ok=True)
    log = home / "up.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gdgan.cli.main", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            _die(f"the stack did not start (log {log}):\n{tail}")
        st = read_state(home)
        if st and st.get("supervisor") == proc.pid:
            typer.echo(
                f"ready: gateway {st['gateway']}, generator {st['generator']}; logs {st['logs']}; "
                "stop with 'gdgan down'",
                err=True,
            )
            return
        time.sleep(0.3)
    _die(f"the stack did not become ready in {timeout:.0f} s (log {log})")


def down_cmd(home: Home = None) -> None:
    """Stop the stack started by 'gdgan up' (reads the pid file in the stack folder)."""
    home = (home or default_home()).resolve()
    if not down(home):
        _die(f"no stack runs from {home} (no {STATE_FILE})")
    typer.echo("stack stopped", err=True)


def status_cmd(home: Home = None) -> None:
    """Show the local stack: each service's pid, whether it runs, restarts and last exit code; the
    workers' heartbeats and the tasks they run (a stalled one has no live heartbeat)."""
    home = (home or default_home()).resolve()
    st = read_state(home)
    if not st or not pid_alive(int(st.get("supervisor", 0))):
        _die(f"no stack runs from {home} (start one with 'gdgan up')")
    typer.echo(f"gateway {st['gateway']}  generator {st['generator']}  redis {st['redis']}")
    typer.echo(f"{'SERVICE':<14}{'PID':>8}  {'STATE':<10}{'RESTARTS':>9}  LAST EXIT")
    for name, row in (st.get("status") or {}).items():
        pid = row.get("pid")
        alive = bool(pid) and pid_alive(int(pid))
        state = "up" if alive else ("restarting" if row.get("restart_in_s") is not None else "down")
        last = "" if row.get("last_exit") is None else str(row["last_exit"])
        typer.echo(f"{name:<14}{pid or '-':>8}  {state:<10}{row.get('restarts', 0):>9}  {last}")
    _show_heartbeats(st.get("redis") or "")


def _show_heartbeats(redis_url: str) -> None:
    import time

    import redis

    from gdgan.jobs import heartbeat

    if not redis_url:
        return
    r = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=3, decode_responses=True)
    try:
        workers = heartbeat.live_workers(r)
        running = heartbeat.running_entries(r)
    except redis.RedisError as exc:
        typer.echo(f"redis unreachable: {exc}")
        return
    finally:
        r.close()
    now = time.time()
    for w in sorted(workers, key=lambda w: w["node"]):
        task = w.get("task") or {}
        doing = "idle"
        if task:
            doing = f"job {task['job_id']}" + (f" part {task['part']}" if task.get("part") else "")
        typer.echo(f"worker {w['node']:<32} heartbeat {now - w['t']:4.1f} s ago  {doing}")
    alive = {w["id"] for w in workers}
    for e in running.values():
        if e["worker"] not in alive:
            typer.echo(
                f"STALLED job {e['job_id']} {e['task']} on {e.get('node')} (no heartbeat): redelivery pending"
            )
