"""``train()``: the one entry point the CLI, the trainer worker and the evaluation call.

``kind``: ``stage1`` | ``stage2`` (needs ``stage1_model``) | ``gdgan`` (stage 1, then stage 2
with G1/D1 frozen, then a bundle artifact naming both) | ``acgan``. Every phase checkpoints to
the store under ``run_id``; calling ``train`` again with the same ``run_id`` resumes (finished
phases are skipped, the running one continues from its latest checkpoint). What the run was
started with is stored (:mod:`gdgan.training.runs`); a call that contradicts it (another
preset or override, other data, another stage-1 model) raises :class:`ConfigError`.
``should_stop`` is polled every step; when it returns True a checkpoint is written and the
result has status ``"cancelled"``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load

from gdgan.data.dataset import ImageDataset, load_dataset
from gdgan.data.splits import patient_split
from gdgan.labels import schema_of
from gdgan.models.acgan import build_acgan
from gdgan.models.gdgan import GanConfig, build_stage1, build_stage2
from gdgan.progress import PreviewCallback, ProgressCallback, StopFlag
from gdgan.store import ArtifactStore, Manifest, new_id
from gdgan.training import checkpoint as ck
from gdgan.training import distributed as dd
from gdgan.training.artifacts import SAMPLES_FILE, sample_grid, write_bundle, write_model
from gdgan.training.data import TrainData, index_digest
from gdgan.training.loop import PhaseRun, run_phase
from gdgan.training.losses import LossWeights
from gdgan.training.phases import ConditionalPhase, Recipe, Stage2Phase
from gdgan.training.presets import ConfigError, TrainConfig, get_config
from gdgan.training.runs import RunRecord, check_resume, load_run_record, save_run_record
from gdgan.training.sampling import CRITIC_FILE, GENERATOR_FILE, LoadedGenerator, label_mix, resolve_model

log = logging.getLogger(__name__)

KINDS = ("stage1", "stage2", "gdgan", "acgan")
ARTIFACT_KIND = {"stage1": "gdgan-stage1", "stage2": "gdgan-stage2", "acgan": "acgan"}
SEED_OFFSET = {"stage1": 0, "stage2": 1000, "acgan": 2000}  # distinct streams per phase


@dataclass
class TrainResult:
    status: str  # "succeeded" | "cancelled"
    model_id: str | None  # the final artifact (bundle for "gdgan"); None when cancelled
    model_ids: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    steps: dict[str, int] = field(default_factory=dict)
    final_losses: dict[str, dict[str, float]] = field(default_factory=dict)
    wall_s: float = 0.0
    checkpoint_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "status": self.status,
            "model_ids": self.model_ids,
            "run_id": self.run_id,
            "steps": self.steps,
            "final_losses": self.final_losses,
            "wall_s": round(self.wall_s, 3),
            "checkpoint_id": self.checkpoint_id,
        }


def _weights(cfg: TrainConfig, findings: tuple[str, ...] | list[str] | None = None) -> LossWeights:
    """The loss weights; with ``findings`` (stage 2's detail columns) ``focus_weight`` scales
    the focus finding's column of the detail BCE (absent finding or weight 1: all columns 1)."""
    cols = None
    if findings is not None and cfg.focus_weight != 1.0 and cfg.focus_finding in findings:
        cols = tuple(cfg.focus_weight if f == cfg.focus_finding else 1.0 for f in findings)
    return LossWeights(
        gp=cfg.gp_lambda,
        aux_real=cfg.aux_real,
        aux_fake=cfg.aux_fake,
        general=cfg.lambda_general,
        mse=cfg.lambda_mse,
        detail_cols=cols,
    )


def _recipe(cfg: TrainConfig) -> Recipe:
    return Recipe(loss=cfg.loss, r1_gamma=cfg.r1_gamma, r1_every=cfg.r1_every, diffaug=cfg.diffaug)


def _gan(cfg: TrainConfig) -> GanConfig:
    return GanConfig(
        size=cfg.size,
        nz=cfg.nz,
        ngf=cfg.ngf,
        ndf=cfg.ndf,
        max_mult=cfg.max_mult,
        cond=cfg.g_cond,
        mbstd=cfg.mbstd,
        projection=cfg.projection,
    )


def _seeded_build(seed: int, builder: Any, gan: GanConfig) -> Any:
    """Build networks with a seeded init without disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(gan)


def _phase_config(store: ArtifactStore, run_id: str, phase: str, cfg: TrainConfig) -> TrainConfig:
    """A resumed phase continues with the config it started with."""
    latest = ck.latest_checkpoint(store, run_id, phase)
    if latest is None or not latest.config:
        return cfg
    resumed = TrainConfig.from_dict(latest.config)
    if resumed != cfg:
        log.info("run %s phase %s: resuming with its checkpointed config", run_id, phase)
    return resumed


class _Context:
    """What every phase of one train() call shares."""

    def __init__(
        self,
        ds: ImageDataset,
        idx: np.ndarray,
        split_seed: int | None,
        store: ArtifactStore,
        run_id: str,
        device: torch.device,
        progress: ProgressCallback | None,
        should_stop: StopFlag | None,
    ) -> None:
        self.ds, self.idx, self.split_seed, self.store = ds, idx, split_seed, store
        self.run_id, self.device, self.progress, self.should_stop = run_id, device, progress, should_stop
        self.schema = ds.schema
        self.mix = label_mix(ds.general()[idx], ds.detail()[idx], ds.schema)
        self.digest = index_digest(idx)
        self._data: dict[tuple[int, bool], TrainData] = {}
        self.preview: PreviewCallback | None = None
        self.preview_every = 0
        self.dist = dd.current()

    def data(self, cfg: TrainConfig) -> TrainData:
        cl = self.device.type == "cuda" and cfg.channels_last
        key = (cfg.size, cl)
        if key not in self._data:
            part = dd.shard(self.idx, self.dist)  # each rank holds only its part
            self._data[key] = TrainData.from_dataset(self.ds, part, cfg.size, self.device, cl)
        return self._data[key]

    def _on_step(self, name: str, cfg: TrainConfig, total: int, sampler_for: Any) -> Any:
        """Every ``preview_every`` steps, the model's sample grid (the one its artifact will keep:
        fixed seeds, the same label groups) drawn from the EMA weights so far. The grid's latents
        come from numpy generators, never torch's global RNG, so a watched run stays identical
        to an unwatched one (tests/unit/test_training_preview.py)."""
        preview, every = self.preview, self.preview_every
        if preview is None or every <= 0:
            return None

        def on_step(step: int, ema: torch.nn.Module) -> None:
            if step % every == 0 or step == total:
                preview(name, step, sample_grid(sampler_for(ema), cfg))

        return on_step

    def run(self, phase: Any, cfg: TrainConfig, sampler_for: Any = None) -> PhaseRun:
        data = self.data(cfg)
        if phase.name != "stage1" and cfg.focus_finding:  # only finding-conditioned phases
            if cfg.focus_finding in self.schema.findings:
                data = data.with_focus(self.schema.findings.index(cfg.focus_finding), cfg.focus_share)
            else:  # a preset's focus on a dataset without that finding: plain batches
                log.warning(
                    "focus_finding %r: not a finding of this dataset; plain batches", cfg.focus_finding
                )
        total = cfg.total_steps(len(self.idx), phase.name)  # the whole split, not this rank's part
        watch = sampler_for is not None and self.dist.is_main  # rank 0 speaks for the run
        preview = self._on_step(phase.name, cfg, total, sampler_for) if watch else None
        curve = self.curve(phase.name, cfg, total, sampler_for) if watch else None
        hooks = [h for h in (preview, curve) if h is not None]

        def on_step(step: int, ema: torch.nn.Module) -> None:
            for hook in hooks:
                hook(step, ema)

        run = run_phase(
            phase,
            data,
            cfg,
            total=total,
            store=self.store,
            run_id=self.run_id,
            device=self.device,
            seed_offset=SEED_OFFSET[phase.name],
            progress=self.progress if self.dist.is_main else None,
            should_stop=self.should_stop,
            state_extra={"data_digest": self.digest},
            on_step=on_step if hooks else None,
        )
        if curve is not None:
            run.extra["quality_curve"] = curve.to_dict()
        return run

    def curve(self, name: str, cfg: TrainConfig, total: int, sampler_for: Any) -> Any:
        """The quality-curve hook of this phase (None when ``quality_every`` is 0)."""
        from gdgan.training.curves import build_curve

        return build_curve(
            name,
            cfg,
            total,
            self.ds,
            self.idx,
            self.split_seed,
            self.store,
            sampler_for,
            self.progress or (lambda _p: None),
        )

    def write(
        self,
        kind: str,
        run: PhaseRun,
        cfg: TrainConfig,
        sampler: LoadedGenerator,
        parents: list[str],
        meta: dict[str, Any],
    ) -> Manifest:
        parents = ([self.ds.id] if self.ds.id else []) + parents
        m = write_model(
            self.store,
            kind,
            run,
            cfg,
            _gan(cfg),
            sampler,
            dataset_id=self.ds.id,
            split_seed=self.split_seed,
            mix=self.mix,
            parents=parents,
            meta={
                "run_id": self.run_id,
                "n_train": len(self.idx),
                "train_digest": self.digest,
                "device": self.device.type,
                **meta,
            },
        )
        ck.mark_done(self.store, self.run_id, run_phase_name(kind), m.id)
        return m


def run_phase_name(kind: str) -> str:
    return {"gdgan-stage1": "stage1", "gdgan-stage2": "stage2", "acgan": "acgan"}[kind]


def _train_conditional(ctx: _Context, name: str, cfg: TrainConfig) -> tuple[str | None, PhaseRun | None]:
    """Stage 1 or ACGAN. Returns (model id or None if cancelled, run or None if already done)."""
    done = ck.finished_model(ctx.store, ctx.run_id, name)
    if done:
        return done, None
    cfg = _phase_config(ctx.store, ctx.run_id, name, cfg)
    gan = _gan(cfg)
    sch = ctx.schema
    n_labels = sch.n_general + sch.n_findings if name == "acgan" else sch.n_general
    builder = build_acgan if name == "acgan" else build_stage1
    G, D = _seeded_build(cfg.seed + SEED_OFFSET[name], lambda g: builder(g, n_labels), gan)
    G.to(ctx.device)
    D.to(ctx.device)
    phase = ConditionalPhase(name, G, D, cfg.nz, _weights(cfg), name == "acgan", _recipe(cfg))
    kind = ARTIFACT_KIND[name]

    def sampler_for(ema: torch.nn.Module) -> LoadedGenerator:
        if name == "acgan":
            return LoadedGenerator("training", kind, gan, ctx.mix, acgan=ema, device=ctx.device, schema=sch)
        return LoadedGenerator("training", kind, gan, ctx.mix, g1=ema, device=ctx.device, schema=sch)

    run = ctx.run(phase, cfg, sampler_for)
    if run.status != "succeeded":
        return None, run
    model_id = dd.main_then_broadcast(
        lambda: ctx.write(kind, run, cfg, sampler_for(run.ema), [], {}).id, ctx.dist
    )
    return model_id, run


def _load_stage1(ctx: _Context, stage1_id: str) -> tuple[Manifest, torch.nn.Module, torch.nn.Module]:
    m = resolve_model(ctx.store, stage1_id)
    if m.kind == "gdgan":
        m = ctx.store.manifest(m.meta["stage1"])
    if m.kind != "gdgan-stage1":
        raise ConfigError(f"stage1_model {stage1_id!r} is a {m.kind!r}, not a GDGAN stage-1 model")
    gan = GanConfig(**m.config["model"])
    s1_schema = schema_of(m.meta)
    if s1_schema.general != ctx.schema.general:
        raise ConfigError(
            f"stage1_model {m.id} was trained on general labels {list(s1_schema.general)}, "
            f"this dataset has {list(ctx.schema.general)}"
        )
    G1, D1 = build_stage1(gan, s1_schema.n_general)
    G1.load_state_dict(st_load(ctx.store.get_bytes(m.id, GENERATOR_FILE)))
    D1.load_state_dict(st_load(ctx.store.get_bytes(m.id, CRITIC_FILE)))
    return m, G1.to(ctx.device), D1.to(ctx.device)


def _train_stage2(ctx: _Context, cfg: TrainConfig, stage1_id: str) -> tuple[str | None, PhaseRun | None]:
    done = ck.finished_model(ctx.store, ctx.run_id, "stage2")
    if done:
        return done, None
    cfg = _phase_config(ctx.store, ctx.run_id, "stage2", cfg)
    s1, G1, D1 = _load_stage1(ctx, stage1_id)
    s1_gan = GanConfig(**s1.config["model"])
    if s1_gan.size != cfg.size or s1_gan.nz != cfg.nz:
        raise ConfigError(
            f"size/nz ({cfg.size}, {cfg.nz}) differ from stage-1 model {s1.id} ({s1_gan.size}, {s1_gan.nz})"
        )
    gan = _gan(cfg)
    if ctx.schema.n_findings == 0:
        raise ConfigError("the dataset has no detail findings: stage 2 has nothing to condition on")
    nf = ctx.schema.n_findings
    G2, D2 = _seeded_build(cfg.seed + SEED_OFFSET["stage2"], lambda g: build_stage2(g, nf), gan)
    phase = Stage2Phase(
        G2.to(ctx.device), D2.to(ctx.device), G1, D1, cfg.nz, _weights(cfg, ctx.schema.findings), _recipe(cfg)
    )

    def sampler_for(ema: torch.nn.Module) -> LoadedGenerator:
        return LoadedGenerator(
            "training", "gdgan-stage2", gan, ctx.mix, g1=G1, g2=ema, device=ctx.device, schema=ctx.schema
        )

    run = ctx.run(phase, cfg, sampler_for)
    if run.status != "succeeded":
        return None, run
    model_id = dd.main_then_broadcast(
        lambda: ctx.write("gdgan-stage2", run, cfg, sampler_for(run.ema), [s1.id], {"stage1": s1.id}).id,
        ctx.dist,
    )
    return model_id, run


def _resolve_dataset(store: ArtifactStore, dataset: ImageDataset | str) -> ImageDataset:
    if isinstance(dataset, ImageDataset):
        return dataset
    return load_dataset(store, str(dataset))


def _check_run(
    store: ArtifactStore,
    run_id: str,
    kind: str,
    ds: ImageDataset,
    preset: str,
    overrides: dict[str, Any] | None,
    split_seed: int,
    train_idx: np.ndarray | None,
    idx: np.ndarray,
    cfg: TrainConfig,
    stage1_model: str | None,
) -> str | None:
    """Store what this run is started with, or refuse a call that contradicts the stored run.

    Returns the stage-1 model id to use: the one the run started with, so a resumed stage 2
    refines the same G1 even if an alias such as ``gdgan`` now points elsewhere.
    """
    stored = load_run_record(store, run_id)
    resolved = None
    if stage1_model and not (stored and stored.stage1_given == stage1_model):
        resolved = resolve_model(store, stage1_model).id
    asked = RunRecord(
        kind=kind,
        dataset_id=ds.id,
        preset=preset,
        overrides={k: str(v) for k, v in (overrides or {}).items()},
        split_seed=split_seed if train_idx is None else None,
        train_digest=index_digest(idx),
        config=cfg.to_dict(),
        stage1_given=stage1_model,
        stage1_model=resolved,
    )
    if stored is None:
        save_run_record(store, run_id, asked)
        return resolved or stage1_model
    check_resume(run_id, stored, asked)
    return stored.stage1_model or stage1_model


def train(
    kind: str,
    dataset: ImageDataset | str,
    *,
    store: ArtifactStore,
    preset: str = "demo",
    overrides: dict[str, Any] | None = None,
    split_seed: int = 0,
    train_idx: np.ndarray | None = None,
    stage1_model: str | None = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopFlag | None = None,
    device: str | torch.device | None = None,
    preview: PreviewCallback | None = None,
    preview_every: int = 0,
    stop_after: str | None = None,
) -> TrainResult:
    """Train ``kind`` on ``dataset`` (object or dataset id); see the module docstring.

    ``preview(phase, step, png)``: every ``preview_every`` steps (and at a phase's last step) the
    sample grid of the model so far, so a person can watch it learn (0 = never).

    ``stop_after="stage1"`` (kind ``gdgan`` only): return once stage 1 is stored (``model_id`` =
    the stage-1 model). The same call without it, same ``run_id``, then skips the finished
    stage 1 and trains stage 2 and the bundle — what an uninterrupted call gives, bit for bit on
    CPU (both load G1 from the stored artifact). The evaluation runs the two halves as separate
    tasks so the trainers' queue holds shorter pieces (docs/notes/evaluation.md)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown training kind {kind!r}; expected one of {', '.join(KINDS)}")
    if stop_after is not None and not (kind == "gdgan" and stop_after == "stage1"):
        raise ConfigError(
            f"stop_after: only 'stage1' of kind 'gdgan' can be trained alone, got {stop_after!r}"
        )
    if kind == "stage2" and not stage1_model:
        raise ConfigError("stage2 training needs stage1_model (a gdgan-stage1 or gdgan model id)")
    cfg = get_config(preset, overrides)
    ds = _resolve_dataset(store, dataset)
    if train_idx is None:
        split = patient_split(
            ds.labels["patient_id"], split_seed, official_split=ds.labels.get("official_split")
        )
        idx = split.train
    else:
        idx = np.asarray(train_idx, dtype=np.int64)
        if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= len(ds):
            raise ConfigError(f"train_idx: need a non-empty 1-D array of indices into {len(ds)} images")
    from gdgan.settings import get_settings, resolve_device

    device = resolve_device(None if device is None else str(device))
    dist, device = dd.setup(device)  # joins the torchrun process group when there is one
    if get_settings().num_threads:  # e.g. 1 on a shared machine, where OpenMP threads thrash
        torch.set_num_threads(get_settings().num_threads)
    if dist.enabled and not run_id:
        raise ConfigError("run_id: every rank of a distributed run must be given the same run id")
    run_id = run_id or new_id("run")
    s1 = stage1_model
    stage1_model = dd.main_then_broadcast(
        lambda: _check_run(store, run_id, kind, ds, preset, overrides, split_seed, train_idx, idx, cfg, s1),
        dist,
    )
    ctx = _Context(ds, idx, split_seed, store, run_id, torch.device(device), progress, should_stop)
    ctx.preview, ctx.preview_every = preview, preview_every
    result = TrainResult(status="succeeded", model_id=None, run_id=ctx.run_id)

    def record(name: str, model_id: str | None, run: PhaseRun | None) -> bool:
        if run is not None:
            result.steps[name] = run.step
            result.final_losses[name] = run.final_losses()
            result.wall_s += run.wall_s
            result.checkpoint_id = run.checkpoint_id
        if model_id is None:
            result.status = "cancelled"
            return False
        result.model_ids[name] = model_id
        result.model_id = model_id
        return True

    if kind in ("stage1", "acgan"):
        record(kind, *_train_conditional(ctx, kind, cfg))
        return result
    if kind == "stage2":
        assert stage1_model is not None
        record("stage2", *_train_stage2(ctx, cfg, stage1_model))
        return result
    # gdgan: stage 1 -> stage 2 -> bundle
    s1_id, run1 = _train_conditional(ctx, "stage1", cfg)
    if not record("stage1", s1_id, run1) or stop_after == "stage1":
        return result
    assert s1_id is not None
    s2_id, run2 = _train_stage2(ctx, cfg, s1_id)
    if not record("stage2", s2_id, run2):
        return result
    assert s2_id is not None

    def bundle_id() -> str:
        done = ck.finished_model(store, ctx.run_id, "bundle")
        if done is not None:
            return done
        s1m, s2m = store.manifest(s1_id), store.manifest(s2_id)
        bm = write_bundle(store, s1m, s2m, store.get_bytes(s2_id, SAMPLES_FILE))
        ck.mark_done(store, ctx.run_id, "bundle", bm.id)
        return bm.id

    record("gdgan", dd.main_then_broadcast(bundle_id, dist), None)
    return result
