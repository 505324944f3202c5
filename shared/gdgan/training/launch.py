"""Launch and supervise the ranks of one distributed training run through ``torchrun``.

The launcher is PyTorch's own (``python -m torch.distributed.run``, elastic rendezvous), never a
home-made one. Two callers:

- the CLI (``gdgan train ... --nproc-per-node N``) re-runs its own command under torchrun and
  passes the exit code through (:func:`torchrun_argv`);
- the trainer worker (a job with ``nproc_per_node``) runs :mod:`gdgan.training.rank_main` under
  torchrun in its own process group and supervises it (:func:`run_ranks`): rank 0 prints
  progress events as JSON lines, which the worker publishes through the job's (lease-fenced)
  progress callback; a cancel request becomes a stop file every rank polls (they stop together
  and checkpoint); a lost lease kills the whole group; a supervisor that dies (SIGKILL) leaves
  ranks that notice it at their next step, checkpoint and exit, so the redelivered job resumes;
  a rank that dies is restarted with all the others (``max_restarts``) and the run
  resumes from its latest checkpoint, and when no restart is left the job fails with a message
  naming the rank and its exit.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdgan.progress import Progress

log = logging.getLogger(__name__)
EVENT_PREFIX = "GDGAN-EVENT "
RESULT_FILE = "result.json"
STOP_FILE = "stop"
SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class Launch:
    """How many ranks and where they meet (torchrun's flags)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None  # HOST:PORT of the c10d rendezvous (several nodes)
    rdzv_id: str = "gdgan"
    max_restarts: int = 0

    def __post_init__(self) -> None:
        if self.nproc_per_node < 1:
            raise ValueError(f"nproc_per_node: must be >= 1, got {self.nproc_per_node}")
        if self.nnodes < 1:
            raise ValueError(f"nnodes: must be >= 1, got {self.nnodes}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("rdzv_endpoint: several nodes need a rendezvous HOST:PORT")
        if self.rdzv_endpoint and not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", self.rdzv_endpoint):
            raise ValueError(f"rdzv_endpoint: expected HOST:PORT, got {self.rdzv_endpoint!r}")
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts: must be >= 0, got {self.max_restarts}")

    @property
    def distributed(self) -> bool:
        return self.nproc_per_node * self.nnodes > 1


def torchrun_argv(launch: Launch, module: str, args: list[str]) -> list[str]:
    """``python -m torch.distributed.run <launch flags> -m <module> <args>``.

    One node without an endpoint uses ``--standalone`` (a private rendezvous on a free port);
    otherwise the c10d rendezvous at ``rdzv_endpoint`` (the k8s headless service)."""
    argv = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={launch.nproc_per_node}"]
    if launch.rdzv_endpoint:
        argv += [
            f"--nnodes={launch.nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={launch.rdzv_endpoint}",
            f"--rdzv-id={launch.rdzv_id}",
        ]
    else:
        argv.append("--standalone")
    argv.append(f"--max-restarts={launch.max_restarts}")
    return [*argv, "-m", module, *args]


class RankFailure(RuntimeError):
    """The ranks of a distributed run failed and torchrun had no restart left.

    ``tail``: the end of torchrun's stderr (for the worker log, never the job record)."""

    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.tail = tail


def failure_message(rc: int, stderr_tail: str, launch: Launch) -> str:
    """One line from torchrun's failure report: which rank, how it exited, what to do.

    Only the last report counts: failures that a restart already handled are logged before it."""
    stderr_tail = stderr_tail.rsplit("Root Cause", 1)[-1]
    rank = re.findall(r"rank\s*:\s*(\d+)", stderr_tail)
    code = re.findall(r"exitcode\s*:\s*(-?\d+)", stderr_tail)
    what = f"rank {rank[0]}" if rank else "a rank"
    how = ""
    if code:
        c = int(code[0])
        how = (
            f" was killed by {signal.Signals(-c).name}"
            if c < 0 and -c in signal.valid_signals()
            else f" exited with {c}"
        )
    else:
        how = f" failed (torchrun exit {rc})"
    return (
        f"distributed training: {what}{how}; no restart left (max_restarts={launch.max_restarts}). "
        "The latest checkpoint is kept: resubmit with the same run id to resume"
    )


def run_ranks(
    spec: dict[str, Any],
    launch: Launch,
    *,
    progress: Callable[[Progress], None],
    should_stop: Callable[[], bool],
    preview: Callable[[str, int, bytes], None] | None = None,
    must_abort: Callable[[], bool] = lambda: False,
    workdir: Path | None = None,
    env: dict[str, str] | None = None,
    poll_s: float = 0.5,
) -> dict[str, Any]:
    """Run :mod:`gdgan.training.rank_main` on ``launch``'s ranks for ``spec`` (train() keyword
    arguments, JSON) and return rank 0's result dict (``TrainResult.to_dict()``).

    A failed group is relaunched, a fresh torchrun each time, up to ``launch.max_restarts`` times;
    every launch resumes the run from its latest checkpoint. (torchrun's own in-place restart
    reuses the first rendezvous, and its gloo re-connection timed out under load in testing.)
    ``workdir`` (a temporary folder by default) receives the spec, the stop file, the result and
    one ``rank-R.pid`` file per live rank (what a supervisor or a test signals)."""
    once = dataclasses.replace(launch, max_restarts=0)
    with tempfile.TemporaryDirectory(prefix="gdgan-ddp-") as tmp:
        wd = Path(workdir or tmp)
        wd.mkdir(parents=True, exist_ok=True)
        # the ranks stop (and checkpoint) by themselves if this supervisor dies: a redelivered job
        # must not meet a still-running group of the same run
        (wd / SPEC_FILE).write_text(json.dumps({"train": spec, "supervisor_pid": os.getpid()}))
        (wd / STOP_FILE).unlink(missing_ok=True)
        for attempt in range(launch.max_restarts + 1):
            try:
                return _run_group(wd, once, progress, should_stop, preview, must_abort, env, poll_s)
            except RankFailure as exc:
                if attempt == launch.max_restarts or must_abort() or should_stop():
                    raise RankFailure(
                        exc.args[0].replace("max_restarts=0", f"max_restarts={launch.max_restarts}"), exc.tail
                    ) from None
                log.warning(
                    "%s; relaunching the ranks (restart %d of %d)", exc, attempt + 1, launch.max_restarts
                )
    raise AssertionError("unreachable")


def _run_group(
    wd: Path,
    launch: Launch,
    progress: Callable[[Progress], None],
    should_stop: Callable[[], bool],
    preview: Callable[[str, int, bytes], None] | None,
    must_abort: Callable[[], bool],
    env: dict[str, str] | None,
    poll_s: float,
) -> dict[str, Any]:
    """One torchrun of the ranks, supervised until it exits."""
    (wd / RESULT_FILE).unlink(missing_ok=True)
    proc = subprocess.Popen(
        torchrun_argv(launch, "gdgan.training.rank_main", [str(wd)]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group: a cancel or a kill reaches every rank
    )
    err_tail: list[str] = []
    readers = [
        threading.Thread(target=_read_events, args=(proc.stdout, progress, preview), daemon=True),
        threading.Thread(target=_keep_tail, args=(proc.stderr, err_tail), daemon=True),
    ]
    for t in readers:
        t.start()
    while True:
        try:
            rc = proc.wait(timeout=poll_s)
            break
        except subprocess.TimeoutExpired:
            pass
        if must_abort():  # the job is someone else's now: stop writing at once
            os.killpg(proc.pid, signal.SIGKILL)
        elif should_stop():
            (wd / STOP_FILE).touch()
    for t in readers:
        t.join(timeout=10)
    if rc != 0:
        tail = "".join(err_tail)
        raise RankFailure(failure_message(rc, tail, launch), tail[-4000:])
    result = wd / RESULT_FILE
    if not result.exists():
        raise RankFailure("distributed training: the ranks exited without a result")
    return dict(json.loads(result.read_text()))


def _read_events(
    stream: Any, progress: Callable[[Progress], None], preview: Callable[[str, int, bytes], None] | None
) -> None:
    for line in stream:
        if not line.startswith(EVENT_PREFIX):
            continue
        try:
            ev = json.loads(line[len(EVENT_PREFIX) :])
        except json.JSONDecodeError:
            continue
        if ev.get("type") == "progress":
            progress(Progress(**ev["progress"]))
        elif ev.get("type") == "preview" and preview is not None:
            preview(ev["phase"], int(ev["step"]), base64.b64decode(ev["png"]))


def _keep_tail(stream: Any, tail: list[str], keep: int = 400) -> None:
    for line in stream:
        tail.append(line)
        del tail[:-keep]


def emit(event: dict[str, Any]) -> None:
    """One event line on stdout (rank 0 of :mod:`gdgan.training.rank_main`); lost, not fatal, once
    the supervisor that read them is gone (the ranks then stop on their own)."""
    try:
        sys.stdout.write(EVENT_PREFIX + json.dumps(event) + "\n")
        sys.stdout.flush()
    except OSError:  # BrokenPipeError: nobody reads any more
        pass
