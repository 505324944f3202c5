"""What a training run was started with, stored under its run id.

``gdgan train KIND --resume RUN_ID`` then needs nothing else: the dataset, preset, overrides,
split seed and stage-1 model come from this record, and a call that asks for something else
for the same run (another preset, a changed ``--set``, other training data, another stage-1
model) is refused with the fields named, instead of being silently ignored or failing in a
later phase. The record is a small ``checkpoint``-kind artifact next to the run's checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gdgan.store import ArtifactNotFound, ArtifactStore
from gdgan.training.checkpoint import CHECKPOINT_KIND, run_slug
from gdgan.training.presets import ConfigError

RUN_PHASE = "run"


@dataclass(frozen=True)
class RunRecord:
    kind: str
    dataset_id: str | None  # None: an in-memory dataset (library callers)
    preset: str
    overrides: dict[str, str]  # as given (strings, as on the command line)
    split_seed: int | None  # None when the caller passed explicit training indices
    train_digest: str  # the training indices' digest: the data actually trained on
    config: dict[str, Any]  # the resolved TrainConfig
    stage1_given: str | None = None  # as asked (id or alias)
    stage1_model: str | None = None  # the id it resolved to when the run started
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def record_id(run_id: str) -> str:
    return f"ckpt-{run_slug(run_id)}-{RUN_PHASE}"


def load_run_record(store: ArtifactStore, run_id: str) -> RunRecord | None:
    try:
        m = store.manifest(record_id(run_id))
    except (ArtifactNotFound, ValueError):
        return None
    if m.meta.get("run_id") != run_id or "record" not in m.meta:  # another id with the same slug
        return None
    return RunRecord.from_dict(m.meta["record"])


def save_run_record(store: ArtifactStore, run_id: str, record: RunRecord) -> None:
    rid = record_id(run_id)
    if store.exists(rid):
        return
    with store.writer(CHECKPOINT_KIND, rid) as w:
        w.commit(meta={"run_id": run_id, "phase": RUN_PHASE, "record": record.to_dict()})


def _started_with(r: RunRecord) -> str:
    sets = " ".join(f"{k}={v}" for k, v in r.overrides.items())
    return (
        f"{r.kind} on {r.dataset_id or 'an in-memory dataset'}, preset {r.preset!r}"
        + (f", --set {sets}" if sets else "")
        + (f", split seed {r.split_seed}" if r.split_seed is not None else "")
        + (f", stage 1 {r.stage1_model}" if r.stage1_model else "")
    )


def check_resume(run_id: str, stored: RunRecord, asked: RunRecord) -> None:
    """Raise :class:`ConfigError` naming every field where ``asked`` contradicts the run."""
    bad: list[str] = []
    if stored.kind != asked.kind:
        bad.append(f"kind {asked.kind!r}")
    if stored.dataset_id and asked.dataset_id and stored.dataset_id != asked.dataset_id:
        bad.append(f"dataset {asked.dataset_id}")
    seeds = (stored.split_seed, asked.split_seed)
    if None not in seeds and seeds[0] != seeds[1]:
        bad.append(f"split seed {asked.split_seed}")
    elif stored.train_digest != asked.train_digest:
        bad.append("other data (training indices differ)")
    for k in sorted(set(stored.config) | set(asked.config)):
        if stored.config.get(k) != asked.config.get(k):
            bad.append(f"{k}={asked.config.get(k)} (run has {stored.config.get(k)})")
    if asked.stage1_given and asked.stage1_given not in (stored.stage1_given, stored.stage1_model):
        bad.append(f"stage 1 {asked.stage1_given}")
    if bad:
        raise ConfigError(
            f"run {run_id} was started as {_started_with(stored)}; this call asks for "
            f"{', '.join(bad)}. Resume with the run's own settings (drop those flags) or use a new run id"
        )
