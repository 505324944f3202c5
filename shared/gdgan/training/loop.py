"""The training loop shared by stage 1, stage 2 and ACGAN.

One step = ``n_critic`` critic updates (each on a fresh real batch) + one generator update +
one EMA update. All randomness comes from two seeded ``torch.Generator``s (batch rows on the
CPU, noise on the training device) whose states are checkpointed with the weights and both
Adam states, so a resumed run replays the uninterrupted one bit for bit on CPU.

CUDA: bf16 autocast around the forward passes; the numerically fragile parts switch it off
and run in fp32 (the gradient penalty and its norms, stage 2's ``atanh`` logit residual); losses
cast their inputs to fp32. Channels-last memory format, optional ``torch.compile`` of the generator. Nothing
here touches CUDA unless the caller passes a CUDA device.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gdgan.progress import Progress, ProgressCallback, StopFlag, never_stop, no_progress
from gdgan.store import ArtifactStore
from gdgan.training import checkpoint as ck
from gdgan.training import distributed as dd
from gdgan.training.data import TrainData
from gdgan.training.phases import Batch
from gdgan.training.presets import TrainConfig

log = logging.getLogger(__name__)
FINAL_LOSS_WINDOW = 20  # steps averaged into a manifest's "final losses"


@dataclass
class PhaseRun:
    """Outcome of one phase: the networks (raw and EMA), loss curves and speed."""

    status: str  # "succeeded" | "cancelled"
    step: int
    total: int
    G: nn.Module
    D: nn.Module
    ema: nn.Module
    history: dict[str, list[float]]
    wall_s: float
    images_per_s: float
    checkpoint_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def final_losses(self) -> dict[str, float]:
        out = {}
        for k, v in self.history.items():
            if k != "step" and v:
                tail = v[-FINAL_LOSS_WINDOW:]
                out[k] = float(sum(tail) / len(tail))
        return out


def ema_decay_at(step: int, decay: float) -> float:
    """Warm-up so an EMA of a short run is not dominated by the initial weights."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← ema + (1 - decay)·(model - ema) for every parameter, buffers copied.

    One multi-tensor call instead of a ``lerp_`` per parameter: the same elementwise kernel (so
    the same bits, tests/unit/test_training_speed.py), without ~50 Python dispatches per step.
    """
    pe, pm = list(ema.parameters()), [p.detach() for p in model.parameters()]
    if pe:
        torch._foreach_lerp_(pe, pm, 1.0 - decay)
    be, bm = list(ema.buffers()), list(model.buffers())
    if be:
        torch._foreach_copy_(be, bm)


def make_adam(params: Any, cfg: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the preset's lr and betas, in its fused kernel on CPU and CUDA.

    The per-parameter default (``foreach=None`` means per tensor on the CPU) spends ~0.8 ms of
    Python per generator step at the demo's sizes; the fused kernel computes the same update
    (within 1e-6 after many steps, tests/unit/test_training_speed.py) in one call.
    """
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), fused=_fused_ok(device))


def _fused_ok(device: torch.device) -> bool:
    return device.type in ("cpu", "cuda")


def use_fused(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """A checkpoint's param_groups carry the optimiser flags it was saved with (an older
    checkpoint: per-tensor Adam); a resumed run keeps the fast kernel, the state is the same."""
    for group in opt.param_groups:
        group["fused"] = _fused_ok(device)
        group["foreach"] = None


def make_generators(seed: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """(rows generator on the CPU, noise generator on ``device``), both seeded from ``seed``."""
    rows = torch.Generator(device="cpu")
    rows.manual_seed(seed)
    noise = torch.Generator(device=device)
    noise.manual_seed(seed + 1)
    return rows, noise


def _autocast(device: torch.device, cfg: TrainConfig) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cuda" and cfg.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_phase(
    phase: Any,  # ConditionalPhase | Stage2Phase
    data: TrainData,
    cfg: TrainConfig,
    *,
    total: int,
    store: ArtifactStore,
    run_id: str,
    device: torch.device,
    seed_offset: int = 0,
    progress: ProgressCallback | None = None,
    should_stop: StopFlag | None = None,
    state_extra: dict[str, Any] | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> PhaseRun:
    """Train ``phase`` for ``total`` steps, resuming from this run's latest checkpoint if any.

    ``on_step(step, ema)`` (optional) runs after every step with the EMA generator (the quality
    curve of :mod:`.curves`, the recipe benchmark); it must not touch the training RNGs or the
    networks' weights.
    """
    progress = progress or no_progress
    should_stop = should_stop or never_stop
    dist = dd.current()  # several ranks under torchrun: see gdgan.training.distributed
    G, D = phase.G, phase.D
    if device.type == "cuda" and cfg.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = make_adam(G.parameters(), cfg, device)
    opt_d = make_adam(D.parameters(), cfg, device)
    rows_gen, noise_gen = make_generators(dd.rank_seed(cfg.seed + seed_offset, dist.rank), device)
    history: dict[str, list[float]] = {"step": []}
    start = 0

    latest = ck.latest_checkpoint(store, run_id, phase.name)
    if latest is not None:
        tensors, state = ck.load_checkpoint(store, latest.id)
        if state_extra and state.get("extra", {}).get("data_digest") != state_extra.get("data_digest"):
            raise ValueError(
                f"checkpoint {latest.id} was trained on other data (training indices differ); "
                "use a new run id"
            )
        ck.load_module_tensors("G", G, tensors)
        ck.load_module_tensors("D", D, tensors)
        ck.load_module_tensors("ema", ema, tensors)
        ck.load_optimizer_tensors("opt_g", opt_g, tensors, state["opt_g"])
        ck.load_optimizer_tensors("opt_d", opt_d, tensors, state["opt_d"])
        use_fused(opt_g, device)
        use_fused(opt_d, device)
        history = state["history"]
        start = int(state["step"])
        saved_world = int(state.get("world_size", 1))
        if not dd.load_rng(tensors, saved_world, rows_gen, noise_gen, dist, cfg.seed + seed_offset, start):
            log.warning("%s: resuming a %d-rank checkpoint on %d ranks", phase.name, saved_world, dist.world)

    def save(step: int) -> str | None:
        tensors = {**ck.module_tensors("G", G), **ck.module_tensors("D", D), **ck.module_tensors("ema", ema)}
        tg, jg = ck.optimizer_tensors("opt_g", opt_g)
        td, jd = ck.optimizer_tensors("opt_d", opt_d)
        tensors.update(tg)
        tensors.update(td)
        tensors.update(dd.rng_tensors(rows_gen, noise_gen, dist))  # collective: every rank calls save
        if not dist.is_main:
            return None
        state = {
            "step": step,
            "world_size": dist.world,
            "phase": phase.name,
            "config": cfg.to_dict(),
            "opt_g": jg,
            "opt_d": jd,
            "history": history,
            "extra": state_extra or {},
        }
        return ck.save_checkpoint(store, run_id, phase.name, step, tensors, state)

    D_ddp = dd.wrap(D, dist)  # the critic step's; the generator step uses the raw critic
    G_ddp = dd.wrap(G, dist)
    G_fwd = torch.compile(G_ddp) if (cfg.compile and device.type == "cuda") else G_ddp
    phase.G = G_fwd
    batch_size = dd.local_batch(cfg.batch_size, dist)  # cfg.batch_size is the global batch
    pending: list[tuple[int, torch.Tensor]] = []
    names: list[str] = []

    def flush() -> None:
        if not pending:
            return
        vals = torch.stack([v for _, v in pending]).float().cpu().tolist()
        for (s, _), row in zip(pending, vals):
            history["step"].append(s)
            for n, x in zip(names, row):
                history.setdefault(n, []).append(float(x))
        pending.clear()

    imgs_per_step = cfg.batch_size * cfg.n_critic
    t0 = time.perf_counter()
    last_report = 0.0
    step = start
    ckpt_id: str | None = None
    status = "succeeded"
    G.train()
    D.train()
    while step < total:
        if dd.any_rank(should_stop(), dist, device):
            status = "cancelled"
            break
        for i in range(cfg.n_critic):
            phase.critic_iter = step * cfg.n_critic + i  # lazy R1 is keyed on it: resume-exact
            b = Batch(*data.batch(batch_size, rows_gen))
            phase.D = D_ddp
            with _autocast(device, cfg):
                loss_d, parts_d = phase.critic_loss(b, noise_gen)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        b = Batch(*data.batch(batch_size, rows_gen))
        phase.D = D
        D.requires_grad_(False)
        with _autocast(device, cfg):
            loss_g, parts_g = phase.generator_loss(b, noise_gen)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        ema_update(ema, G, ema_decay_at(step, cfg.ema_decay))
        step += 1
        if on_step is not None:
            on_step(step, ema)

        if not names:
            names = [f"d_{k}" for k in parts_d] + [f"g_{k}" for k in parts_g]
        parts = torch.stack([*parts_d.values(), *parts_g.values()]).float()
        pending.append((step, dd.mean_over_ranks(parts, dist)))  # the global batch's losses
        if step % cfg.checkpoint_every == 0 and step < total:
            flush()
            ckpt_id = save(step)
        now = time.perf_counter() - t0
        if step == total or now - last_report >= cfg.progress_interval_s:
            flush()
            last_report = now
            done = step - start
            ips = done * imgs_per_step / now if now > 0 else 0.0
            eta = (total - step) * now / done if done else None
            losses = {n: history[n][-1] for n in names if history.get(n)}
            progress(Progress(phase.name, step, total, losses, ips, eta))

    flush()
    wall = time.perf_counter() - t0
    phase.G, phase.D = G, D
    if status == "cancelled":
        ckpt_id = save(step)
        progress(Progress(phase.name, step, total, {}, None, None, message="cancelled"))
    ips = (step - start) * imgs_per_step / wall if wall > 0 else 0.0
    G.eval()
    D.eval()
    return PhaseRun(status, step, total, G, D, ema, history, wall, ips, ckpt_id)
