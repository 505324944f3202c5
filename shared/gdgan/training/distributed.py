"""Data-parallel training over N processes: torch DistributedDataParallel under ``torchrun``.

A run launched by ``torchrun`` (``gdgan train ... --nproc-per-node N``, a trainer job with
``nproc_per_node``, the k8s Indexed Job) finds ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` in its
environment; :func:`setup` joins the process group (gloo on CPU, NCCL on CUDA, one GPU per local
rank). With ``WORLD_SIZE`` unset or 1 every helper here is the identity, so a single-process run
is bit-for-bit what it was before this module existed.

What changes with N ranks, and why:

- ``batch_size`` stays the **global** batch; each rank draws ``batch_size / N`` rows from its
  own shard (``idx[rank::N]``: a rank holds only its part of the images). The gradient DDP
  averages is then the gradient of the global-batch loss, because every loss term is a mean
  over samples and the models normalise per sample (GroupNorm, no BatchNorm, so no
  SyncBatchNorm is needed).
- The critic and the trained generator are wrapped in DDP. The gradient penalty / R1 take
  ``autograd.grad`` with respect to the *inputs* (not the parameters), so DDP's reducer only
  sees the final ``backward()``; each parameter's gradient arrives once and is averaged. In the
  generator step the critic is the raw module (no gradients for it are wanted, and a DDP
  forward would wait for them). Stage 2's frozen G1/D1 are plain replicas.
- Every rank has its own RNG streams (:func:`rank_seed`; rank 0 keeps the single-process seed),
  so a run is reproducible for a given world size. Checkpoints store every rank's streams; a
  resume at another world size re-derives them from (seed, step, rank) instead, so it continues
  statistically, not bit for bit.
- Weights, EMA and optimiser states are identical on every rank (DDP broadcasts rank 0's at
  wrap time and averages gradients after), so rank 0 alone writes checkpoints and artifacts
  and reports progress; the others learn artifact ids by broadcast.
- A stop request on any rank stops all of them at the same step (an all-reduce per step).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")


class DistributedError(ValueError):
    """A setting that cannot work with this world size (the message names it)."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank, world size, local rank (its GPU on a node)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


SINGLE = Dist()


def from_env() -> Dist:
    """The torchrun environment of this process (``SINGLE`` outside torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return SINGLE
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def current() -> Dist:
    """The process group this process has joined (``SINGLE`` when none)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        return Dist(
            torch_dist.get_rank(), torch_dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
        )
    return SINGLE


def setup(device: str) -> tuple[Dist, str]:
    """Join the torchrun process group if this process is one of several ranks.

    Returns the rank and the device this rank computes on: ``cuda`` becomes ``cuda:LOCAL_RANK``.
    Idempotent: a second call (stage 2 after stage 1, a test) reuses the group.
    """
    d = from_env()
    if not d.enabled:
        return current(), device
    if device.startswith("cuda"):
        if d.local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"nproc_per_node: local rank {d.local_rank} has no GPU ({torch.cuda.device_count()} visible)"
            )
        device = f"cuda:{d.local_rank}"
        torch.cuda.set_device(device)
    if not torch_dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        torch_dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return current(), device


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of one rank's streams; rank 0 at step 0 keeps ``seed`` (the single-process run).

    ``step`` > 0: the streams of a resume at a world size other than the checkpoint's."""
    if rank == 0 and step == 0:
        return seed
    h = hashlib.sha256(f"gdgan-rank:{seed}:{rank}:{step}".encode()).digest()
    return int.from_bytes(h[:8], "little") % (2**62)


def shard(idx: np.ndarray, d: Dist) -> np.ndarray:
    """This rank's part of the training indices (strided, so label mixes stay alike)."""
    if not d.enabled:
        return idx
    part = idx[d.rank :: d.world]
    if len(part) == 0:
        raise DistributedError(f"{len(idx)} training images cannot be shared by {d.world} ranks")
    return part


def local_batch(batch_size: int, d: Dist) -> int:
    """Rows per rank of the global ``batch_size``."""
    if batch_size % d.world:
        raise DistributedError(
            f"batch_size: the global batch {batch_size} must divide by the world size {d.world}"
        )
    return batch_size // d.world


def wrap(module: nn.Module, d: Dist) -> nn.Module:
    """``module`` in DDP when there are several ranks (the module itself otherwise)."""
    if not d.enabled:
        return module
    dev = next(module.parameters()).device
    ids = [dev.index] if dev.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def any_rank(flag: bool, d: Dist, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on at least one (a collective call)."""
    if not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """The mean of ``t`` over ranks: per-rank loss parts -> the global batch's (a collective)."""
    if not d.enabled:
        return t
    t = t.detach().float().clone()
    torch_dist.all_reduce(t)
    return t / d.world


def gather_objects(obj: Any, d: Dist) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank; a collective call)."""
    if not d.enabled:
        return [obj]
    out: list[Any] = [None] * d.world
    torch_dist.all_gather_object(out, obj)
    return out


def main_then_broadcast(fn: Callable[[], T], d: Dist) -> T:
    """Run ``fn`` on rank 0 only and hand its result to every rank.

    An exception on rank 0 is re-raised on every rank, so a refused resume fails the whole job
    instead of leaving the other ranks waiting in the next collective."""
    if not d.enabled:
        return fn()
    box: list[Any] = [None]
    if d.is_main:
        try:
            box[0] = ("ok", fn())
        except Exception as exc:  # handed to every rank, raised there
            box[0] = ("error", exc)
    torch_dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value  # type: ignore[no-any-return]


# --- RNG streams in checkpoints --------------------------------------------------------------------
def _rng_key(name: str, rank: int) -> str:
    return f"rng.{name}" if rank == 0 else f"rng.{name}.{rank}"  # rank 0: the single-process keys


def rng_tensors(rows: torch.Generator, noise: torch.Generator, d: Dist) -> dict[str, torch.Tensor]:
    """Every rank's (rows, noise) stream states as checkpoint tensors (a collective call)."""
    states = gather_objects((rows.get_state(), noise.get_state().cpu()), d)
    out: dict[str, torch.Tensor] = {}
    for r, (rs, ns) in enumerate(states):
        out[_rng_key("rows", r)] = rs
        out[_rng_key("noise", r)] = ns
    return out


def load_rng(
    tensors: dict[str, torch.Tensor],
    saved_world: int,
    rows: torch.Generator,
    noise: torch.Generator,
    d: Dist,
    base_seed: int,
    step: int,
) -> bool:
    """Restore this rank's streams from a checkpoint; True when restored exactly.

    At another world size than the checkpoint's the streams are re-derived from (seed, step,
    rank): the data shards and the per-rank batch differ anyway, so nothing could replay."""
    if saved_world == d.world and _rng_key("rows", d.rank) in tensors:
        rows.set_state(tensors[_rng_key("rows", d.rank)])
        noise.set_state(tensors[_rng_key("noise", d.rank)].to(noise.get_state().device))
        return True
    s = rank_seed(base_seed, d.rank, step)
    rows.manual_seed(s)
    noise.manual_seed(s + 1)
    return False
