"""Data governance on the artifact store: delete a dataset with everything derived from it, and
collect garbage (orphaned partial uploads, expired training checkpoints).

Lineage is what the manifests already record: ``parents`` (a model names its dataset, a bundle its
two stages, a synthetic set its model, a report its dataset and models ...), plus the two links a
checkpoint keeps in ``meta`` because it has no parents: a run record (``phase: run``) names the
dataset and stage-1 model the run trained on, so every checkpoint of that ``run_id`` derives from
them; a phase's ``done`` marker names the model it produced.

Deleting never leaves a half-visible artifact and never orphans a child: the victims are removed
children first (parents last), each manifest before its payload, so at any moment every artifact a
reader can see is complete and its ancestors exist. The ordered list is written first as a journal
(``deletions/<root>.json``); a deletion that dies half-way is finished by running it again, which
also removes the payload files of the artifacts whose manifests were already gone.

Nothing here knows about Redis: callers pass the jobs that are still queued or running, and
:func:`blocking_jobs` names those that use a victim (the gateway answers 409 with it).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from gdgan.store.base import ID_RE, MANIFEST, ArtifactNotFound, ArtifactStore, Manifest, validate_id

CHECKPOINT_KIND = "checkpoint"  # gdgan.training.checkpoint imports torch; the kind is plain data
RUN_PHASE = "run"  # gdgan.training.runs: the run record's phase


@dataclass(frozen=True)
class Victim:
    """One artifact a deletion or a garbage collection removes."""

    id: str
    kind: str  # "" for an orphan (no manifest left to say)
    bytes: int
    created: str = ""
    run_id: str | None = None  # checkpoints: the training run they belong to


@dataclass
class DeletionPlan:
    """What deleting ``root`` removes, children first and ``root`` last."""

    root: str
    victims: list[Victim]
    resumed: list[str] = field(default_factory=list)  # ids left by an interrupted deletion

    @property
    def ids(self) -> list[str]:
        return [v.id for v in self.victims]

    @property
    def total_bytes(self) -> int:
        return sum(v.bytes for v in self.victims)

    def to_dict(self) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        for v in self.victims:
            by_kind[v.kind or "orphan"] = by_kind.get(v.kind or "orphan", 0) + 1
        return {
            "root": self.root,
            "artifacts": [asdict(v) for v in self.victims],
            "counts": by_kind,
            "total_bytes": self.total_bytes,
            "resumed": self.resumed,
        }


class JobLike(Protocol):
    """The fields of ``gdgan.schemas.JobRecord`` the job check reads."""

    id: str
    type: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any]


class DatasetInUse(RuntimeError):
    """A queued or running job uses an artifact the deletion would remove."""

    def __init__(self, root: str, jobs: list[tuple[str, str, str]]) -> None:
        self.jobs = jobs
        named = ", ".join(f"{jid} ({jtype}, {status})" for jid, jtype, status in jobs)
        super().__init__(f"{root} is in use by {named}: wait for the job to end or cancel it, then retry")


# ----------------------------------------------------------------------------------- lineage ---
def _children(manifests: list[Manifest]) -> dict[str, set[str]]:
    """parent id -> ids of the artifacts derived from it."""
    kids: dict[str, set[str]] = {}
    by_run: dict[str, list[str]] = {}
    for m in manifests:
        for p in m.parents:
            kids.setdefault(p, set()).add(m.id)
        if m.kind == CHECKPOINT_KIND and m.meta.get("run_id"):
            by_run.setdefault(str(m.meta["run_id"]), []).append(m.id)
            if m.meta.get("done") and m.meta.get("model_id"):
                kids.setdefault(str(m.meta["model_id"]), set()).add(m.id)
    for m in manifests:
        if m.kind != CHECKPOINT_KIND or m.meta.get("phase") != RUN_PHASE:
            continue
        record = m.meta.get("record") or {}
        for source in (record.get("dataset_id"), record.get("stage1_model")):
            if source:
                kids.setdefault(str(source), set()).update(by_run.get(str(m.meta.get("run_id")), []))
    return kids


def _journal_key(root: str) -> str:
    return f"deletions/{root}.json"


def _read_journal(store: ArtifactStore, root: str) -> list[str]:
    try:
        return [validate_id(i) for i in json.loads(store._get_bytes(_journal_key(root)))["ids"]]
    except FileNotFoundError:
        return []


def plan_deletion(store: ArtifactStore, root: str) -> DeletionPlan:
    """Everything derived from ``root`` (transitively) and ``root`` itself, children first.

    Raises ArtifactNotFound when ``root`` is neither stored nor the root of an unfinished deletion.
    """
    validate_id(root)
    pending = _read_journal(store, root)
    manifests = store.list()
    by_id = {m.id: m for m in manifests}
    if root not in by_id and not pending:
        raise ArtifactNotFound(f"no artifact {root!r} in {store.url}")
    kids = _children(manifests)
    # post-order depth-first walk: every artifact comes after all of its descendants
    order: list[str] = []
    seen: set[str] = set()
    stack: list[tuple[str, bool]] = [(root, False)]
    while stack:
        aid, expanded = stack.pop()
        if expanded:
            order.append(aid)
            continue
        if aid in seen:
            continue
        seen.add(aid)
        stack.append((aid, True))
        stack.extend((k, False) for k in sorted(kids.get(aid, ())) if k not in seen)
    # (a child of two doomed parents is expanded once; in a DAG it is finished before either
    # parent, since a parent still being expanded would have to be its own descendant.)
    # Leftovers of an interrupted deletion (their manifests already gone) go first.
    resumed = [i for i in pending if i not in seen]
    victims = [Victim(i, "", _orphan_bytes(store, i)) for i in resumed]
    for aid in order:
        m = by_id.get(aid)
        if m is None:  # the root itself, whose manifest an interrupted deletion already removed
            victims.append(Victim(aid, "", _orphan_bytes(store, aid)))
            continue
        run_id = m.meta.get("run_id") if m.kind == CHECKPOINT_KIND else None
        victims.append(Victim(m.id, m.kind, m.total_bytes, m.created, str(run_id) if run_id else None))
    return DeletionPlan(root=root, victims=victims, resumed=resumed)


def _orphan_bytes(store: ArtifactStore, artifact_id: str) -> int:
    return sum(size for _key, size, _t in store._key_stats(artifact_id))


def _purge(store: ArtifactStore, artifact_id: str) -> None:
    """Manifest first (the artifact vanishes for readers at once), then every payload file."""
    mkey = store._key(artifact_id, MANIFEST)
    if store._exists(mkey):
        store._delete_key(mkey)
    for key in list(store._list_keys(artifact_id)):
        store._delete_key(key)
    shutil.rmtree(store.cache_dir / artifact_id, ignore_errors=True)


def execute_deletion(store: ArtifactStore, plan: DeletionPlan) -> DeletionPlan:
    """Remove the plan's artifacts in order; safe to call again after a crash (see module doc)."""
    journal = _journal_key(plan.root)
    store._put_bytes(journal, json.dumps({"root": plan.root, "ids": plan.ids}).encode())
    for aid in plan.ids:
        _purge(store, aid)
    store._delete_key(journal)
    return plan


# ----------------------------------------------------------------------------------- jobs ---
def _strings(obj: Any, key: str = "") -> Iterable[tuple[str, str]]:
    """(field name, value) of every string in a job's parameters, at any depth."""
    if isinstance(obj, str):
        yield key, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, str(k))
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _strings(v, key)


def blocking_jobs(
    store: ArtifactStore, plan: DeletionPlan, jobs: Iterable[JobLike]
) -> list[tuple[str, str, str]]:
    """(id, type, status) of every queued or running job that reads or writes a victim: an id in
    its parameters or results, a model alias (``gdgan``, ``stage1`` ...) that resolves to a victim,
    or a training run whose checkpoints are victims (the run id is the job id)."""
    from gdgan.catalog import ALIASES

    doomed = set(plan.ids)
    runs = {v.run_id for v in plan.victims if v.run_id}
    latest: dict[str, bool] = {}

    def alias_hit(value: str) -> bool:
        kind = ALIASES[value.lower()]
        if kind not in latest:
            m = store.latest(kind)
            latest[kind] = m is not None and m.id in doomed
        return latest[kind]

    out: list[tuple[str, str, str]] = []
    for job in jobs:
        if job.status not in ("queued", "running"):
            continue
        hit = job.id in runs
        for key, value in _strings([job.params, job.result]):
            if hit:
                break
            # a training job's ``model`` is the kind to train, not a model reference
            is_ref = not (job.type == "train" and key == "model")
            hit = value in doomed or (is_ref and value.lower() in ALIASES and alias_hit(value))
        if hit:
            out.append((job.id, job.type, job.status))
    return out


def delete_with_lineage(
    store: ArtifactStore, root: str, *, active_jobs: Iterable[JobLike] = (), dry_run: bool = False
) -> DeletionPlan:
    """Plan, refuse when a job uses a victim (:class:`DatasetInUse`), then delete (unless dry run)."""
    plan = plan_deletion(store, root)
    busy = blocking_jobs(store, plan, active_jobs)
    if busy:
        raise DatasetInUse(root, busy)
    return plan if dry_run else execute_deletion(store, plan)


# -------------------------------------------------------------------------------------- gc ---
@dataclass
class GcReport:
    orphans: list[Victim]
    expired_checkpoints: list[Victim]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "orphans": [asdict(v) for v in self.orphans],
            "expired_checkpoints": [asdict(v) for v in self.expired_checkpoints],
            "total_bytes": sum(v.bytes for v in self.orphans + self.expired_checkpoints),
        }


def _age_s(when: datetime | str, now: datetime) -> float:
    t = datetime.fromisoformat(when) if isinstance(when, str) else when
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (now - t).total_seconds()


def collect_garbage(
    store: ArtifactStore,
    *,
    grace_s: float,
    checkpoint_ttl_s: float,
    active_run_ids: Iterable[str] = (),
    dry_run: bool = False,
    now: datetime | None = None,
) -> GcReport:
    """Remove (a) partial uploads: artifact folders with no manifest whose newest file is older than
    ``grace_s`` (a writer still uploading is younger; a crashed one never comes back), and (b) step
    checkpoints created more than ``checkpoint_ttl_s`` ago whose run is not an active job's.

    Run records and ``done`` markers stay (a few hundred bytes each): a later ``--resume`` of the
    run still finds its finished phases and is still checked against what it started with.
    """
    now = now or datetime.now(UTC)
    active = set(active_run_ids)
    orphans: list[Victim] = []
    for aid in sorted(set(store._list_ids())):
        if not ID_RE.fullmatch(aid) or store._exists(store._key(aid, MANIFEST)):
            continue
        stats = list(store._key_stats(aid))
        if not stats or min(_age_s(t, now) for _k, _s, t in stats) < grace_s:
            continue
        orphans.append(Victim(aid, "", sum(s for _k, s, _t in stats)))
    expired = [
        Victim(m.id, m.kind, m.total_bytes, m.created, str(m.meta["run_id"]))
        for m in store.list(CHECKPOINT_KIND)
        if "step" in m.meta
        and not m.meta.get("done")
        and str(m.meta.get("run_id")) not in active
        and _age_s(m.created, now) >= checkpoint_ttl_s
    ]
    if not dry_run:
        for v in orphans + expired:
            _purge(store, v.id)
    return GcReport(orphans=orphans, expired_checkpoints=expired, dry_run=dry_run)
