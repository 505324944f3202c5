"""One rank of a supervised distributed run: ``python -m gdgan.training.rank_main WORKDIR``.

Started by torchrun from :func:`gdgan.training.launch.run_ranks`. Reads ``WORKDIR/spec.json``
(train() keyword arguments), stops when ``WORKDIR/stop`` appears or its supervisor process is
gone (checkpointing first, like a cancel), and on rank 0 prints progress
and preview events and writes ``WORKDIR/result.json``. A restarted group (torchrun's
``max_restarts``) resumes from the run's latest checkpoint because the run id is in the spec.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

from gdgan.progress import Progress
from gdgan.training.launch import RESULT_FILE, SPEC_FILE, STOP_FILE, emit


def main(workdir: str) -> int:
    from gdgan.settings import get_settings
    from gdgan.store import open_store
    from gdgan.training.api import train

    wd = Path(workdir)
    rank = int(os.environ.get("RANK", "0"))
    (wd / f"rank-{rank}.pid").write_text(str(os.getpid()))
    doc = json.loads((wd / SPEC_FILE).read_text())
    spec, supervisor = doc["train"], int(doc["supervisor_pid"])
    stop_file = wd / STOP_FILE

    def should_stop() -> bool:
        return stop_file.exists() or not _alive(supervisor)

    def progress(p: Progress) -> None:
        emit({"type": "progress", "progress": _plain(p)})

    def preview(phase: str, step: int, png: bytes) -> None:
        emit({"type": "preview", "phase": phase, "step": step, "png": base64.b64encode(png).decode()})

    result = train(
        spec.pop("kind"),
        spec.pop("dataset_id"),
        store=open_store(),
        progress=progress,
        should_stop=should_stop,
        preview=preview,
        preview_every=get_settings().job_preview_every_steps,
        **spec,
    )
    if rank == 0:
        tmp = wd / (RESULT_FILE + ".tmp")
        tmp.write_text(json.dumps(result.to_dict()))
        tmp.replace(wd / RESULT_FILE)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's (cannot be ours after a reuse, but alive)
        return True
    return True


def _plain(p: Progress) -> dict[str, object]:
    """Progress's constructor fields (``fraction`` is derived, not a field)."""
    d = p.to_dict()
    d.pop("fraction", None)
    return d


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
