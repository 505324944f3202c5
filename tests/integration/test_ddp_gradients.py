"""DDP averages exactly the global-batch gradient, gradient penalty and R1 included (gloo, 2 ranks).

The gradient penalty and R1 differentiate the critic twice (``autograd.grad`` w.r.t. its
inputs, then ``backward``): a wrong DDP set-up either errors (a parameter marked ready twice,
a reduction never finished) or reduces only part of the gradient. Here each of two ranks takes
half of one fixed batch through the real phases and the real wrapping of
:mod:`gdgan.training.distributed`; the reference, in one process without DDP, is the mean of
the two halves' losses with the same noise streams. Every parameter's gradient must agree to
float rounding (the all-reduce sums in another order), for the critic and the generator step,
in the paper's game (WGAN-GP), the modern one (hinge + R1 + DiffAugment) and stage 2.
"""

from __future__ import annotations

import copy
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from gdgan.models.gdgan import GanConfig, build_stage1, build_stage2
from gdgan.training import distributed as dd
from gdgan.training.losses import LossWeights
from gdgan.training.phases import Batch, ConditionalPhase, Recipe, Stage2Phase

pytestmark = pytest.mark.integration
GAN = GanConfig(size=32, nz=16, ngf=8, ndf=8)
W = LossWeights()
GLOBAL_BATCH = 8
# relative to the gradient's largest entry; measured max 1.4e-7 (sum order only), 0.5-3 without DDP
TOL = 1e-5
CASES = {
    "wgan-gp": ("stage1", Recipe()),
    "hinge-r1-diffaug": ("stage1", Recipe(loss="hinge", r1_gamma=1.0, r1_every=1, diffaug="translation")),
    "stage2-wgan-gp": ("stage2", Recipe()),
}


def _phase(kind: str, recipe: Recipe) -> Any:
    torch.manual_seed(0)
    G, D = build_stage1(GAN, 2)
    if kind == "stage1":
        return ConditionalPhase("stage1", G, D, GAN.nz, W, False, recipe)
    G2, D2 = build_stage2(GAN, 14)
    return Stage2Phase(G2, D2, G, D, GAN.nz, W, recipe)


def _batch(rows: slice) -> Batch:
    g = torch.Generator().manual_seed(7)
    x = torch.rand(GLOBAL_BATCH, 1, GAN.size, GAN.size, generator=g) * 2 - 1
    general = (torch.rand(GLOBAL_BATCH, 2, generator=g) > 0.5).float()
    detail = (torch.rand(GLOBAL_BATCH, 14, generator=g) > 0.7).float()
    return Batch(x[rows], general[rows], detail[rows])


def _half(rank: int) -> slice:
    h = GLOBAL_BATCH // 2
    return slice(rank * h, (rank + 1) * h)


def _grads(m: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in m.parameters()]


def _steps(phase: Any, batches: list[Batch], seeds: list[int], d: dd.Dist) -> dict[str, list[torch.Tensor]]:
    """One critic and one generator backward, averaged over ``batches`` (one per rank, or both
    halves in the reference), with the loop's wrapping of the trained networks."""
    G, D = phase.G, phase.D
    D_ddp, G_ddp = dd.wrap(D, d), dd.wrap(G, d)
    phase.G = G_ddp
    phase.D = D_ddp
    loss = sum(phase.critic_loss(b, torch.Generator().manual_seed(s))[0] for b, s in zip(batches, seeds))
    (loss / len(batches)).backward()
    out = {"D": _grads(D)}
    phase.D = D
    D.requires_grad_(False)
    loss_g = sum(
        phase.generator_loss(b, torch.Generator().manual_seed(s + 1))[0] for b, s in zip(batches, seeds)
    )
    (loss_g / len(batches)).backward()
    D.requires_grad_(True)
    out["G"] = _grads(G)
    return out


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
        }
    )
    torch.set_num_threads(1)
    d, _ = dd.setup("cpu")
    report: dict[str, dict[str, float]] = {}
    for name, (kind, recipe) in CASES.items():
        phase = _phase(kind, recipe)
        ref_phase = copy.deepcopy(phase)
        got = _steps(phase, [_batch(_half(rank))], [100 + rank], d)
        if rank == 0:
            ref = _steps(ref_phase, [_batch(_half(0)), _batch(_half(1))], [100, 101], dd.SINGLE)
            report[name] = {
                net: max(
                    float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
                    for a, b in zip(got[net], ref[net])
                )
                for net in ("D", "G")
            }
    if rank == 0:
        Path(out).write_text(json.dumps(report))
    torch_dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_gradient_equals_the_global_batch_gradient(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    mp.spawn(_rank, args=(_free_port(), str(out)), nprocs=2, join=True)
    report = json.loads(out.read_text())
    assert set(report) == set(CASES)
    for name, nets in report.items():
        for net, rel in nets.items():
            assert rel < TOL, (
                f"{name} {net}: DDP gradient differs from the global-batch gradient by {rel:.2e}"
            )
