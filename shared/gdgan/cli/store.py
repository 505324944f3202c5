"""``gdgan data delete`` and ``gdgan store gc``: data governance on the artifact store.

Both work on the store directly (``--store`` or GDGAN_STORE_URL), like ``gdgan data show``; the logic
is :mod:`gdgan.store.governance`. Before deleting anything they ask Redis (GDGAN_REDIS_URL) which
jobs are queued or running, so a deletion never pulls data from under a job; when Redis cannot be
reached they refuse unless told that no service uses this store (``--no-job-check``).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from gdgan.cli.data import STORE_HELP, _emit_json, _open_store, _user_errors_exit, err, fail
from gdgan.cli.data import app as data_app

app = typer.Typer(help="Artifact store maintenance (garbage collection).", no_args_is_help=True)

NO_JOB_CHECK_HELP = "Do not ask Redis for running jobs (only when no service uses this store)."


def _active_jobs(skip: bool) -> list[Any]:
    """Queued and running job records from the settings' Redis; a one-line error when unreachable."""
    if skip:
        return []
    import redis

    from gdgan.jobs.records import JobStore
    from gdgan.settings import get_settings

    s = get_settings()
    try:
        jobs = JobStore.from_url(s.redis_url, s.job_ttl_s, timeout_s=3.0)
        return [r for r in jobs.list(limit=10_000) if r.status in ("queued", "running")]
    except redis.RedisError as exc:
        fail(
            f"cannot check for running jobs: Redis at {s.redis_url} (GDGAN_REDIS_URL) is unreachable "
            f"({type(exc).__name__}); pass --no-job-check if no service uses this store"
        )


def _artifact_table(title: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("id", "kind", "MB", "created"):
        t.add_column(col, justify="right" if col == "MB" else "left", no_wrap=col == "id")
    for r in rows:
        t.add_row(r["id"], r["kind"] or "(partial)", f"{r['bytes'] / 1e6:.2f}", (r.get("created") or "")[:19])
    return t


@data_app.command("delete")
def delete_cmd(
    dataset: str = typer.Argument(..., help="Dataset id (see `gdgan data list`)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted; delete nothing."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    no_job_check: bool = typer.Option(False, "--no-job-check", help=NO_JOB_CHECK_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """Delete a dataset and everything derived from it (models, checkpoints, synthetic sets,
    quality artifacts, evaluation reports). Rerunning finishes an interrupted deletion."""
    from gdgan.store import ArtifactNotFound
    from gdgan.store.governance import DatasetInUse, delete_with_lineage

    with _user_errors_exit():
        st = _open_store(store)
        try:
            m = st.manifest(dataset)
        except ArtifactNotFound:
            m = None
        if m is not None and m.kind != "dataset":
            fail(f"{dataset} is a {m.kind!r}, not a dataset")
        try:
            plan = delete_with_lineage(
                st, dataset, active_jobs=_active_jobs(no_job_check), dry_run=dry_run
            ).to_dict()
        except DatasetInUse as exc:
            fail(str(exc))
    if as_json:
        _emit_json({"dry_run": dry_run, **plan})
        return
    verb = "would delete" if dry_run else "deleted"
    Console().print(_artifact_table(f"{verb} ({len(plan['artifacts'])} artifacts)", plan["artifacts"]))
    err.print(
        f"{verb} {len(plan['artifacts'])} artifacts, {plan['total_bytes'] / 1e6:.1f} MB", highlight=False
    )


@app.command("gc")
def gc_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; remove nothing."),
    grace_s: float | None = typer.Option(
        None, "--grace-s", min=0, help="Partial uploads younger than this stay (default GDGAN_GC_GRACE_S)."
    ),
    checkpoint_ttl_s: float | None = typer.Option(
        None, "--checkpoint-ttl-s", min=0, help="Checkpoint expiry (default GDGAN_CHECKPOINT_TTL_S)."
    ),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    no_job_check: bool = typer.Option(False, "--no-job-check", help=NO_JOB_CHECK_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """Remove orphaned partial uploads (files without a manifest, older than the grace period) and
    expired training checkpoints (never those of a queued or running job)."""
    from gdgan.settings import get_settings
    from gdgan.store.governance import collect_garbage

    with _user_errors_exit():
        s = get_settings()
        st = _open_store(store)
        report = collect_garbage(
            st,
            grace_s=s.gc_grace_s if grace_s is None else grace_s,
            checkpoint_ttl_s=s.checkpoint_ttl_s if checkpoint_ttl_s is None else checkpoint_ttl_s,
            active_run_ids=[r.id for r in _active_jobs(no_job_check)],
            dry_run=dry_run,
        ).to_dict()
    if as_json:
        _emit_json(report)
        return
    rows = report["orphans"] + report["expired_checkpoints"]
    verb = "would remove" if dry_run else "removed"
    Console().print(_artifact_table(f"{verb} ({len(rows)} artifacts) in {st.url}", rows))
    err.print(
        f"{verb} {len(report['orphans'])} partial uploads and {len(report['expired_checkpoints'])} expired "
        f"checkpoints, {report['total_bytes'] / 1e6:.1f} MB",
        highlight=False,
    )
