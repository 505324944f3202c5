"""Training checkpoints in the artifact store, keyed by run id (e.g. a job id).

A checkpoint is an artifact of kind ``checkpoint``: ``state.safetensors`` holds every tensor
(networks, EMA, both Adam states, RNG states as uint8 tensors) and ``state.json`` the rest
(step, config, optimiser hyper-parameters, loss history). Nothing is pickled, so loading a
checkpoint cannot execute code. The manifest is written last, so a worker killed mid-write
leaves the previous checkpoint as the latest visible one; only then is the older one deleted.

When a phase finishes, a small ``done`` marker records the model artifact it produced, so a
resumed multi-phase run (stage 1 -> stage 2) skips finished phases.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from gdgan.store import ArtifactNotFound, ArtifactStore, Manifest

CHECKPOINT_KIND = "checkpoint"
TENSORS_FILE = "state.safetensors"
STATE_FILE = "state.json"


def run_slug(run_id: str) -> str:
    """A run id as an artifact-id fragment (lower-case, safe characters, bounded length)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", str(run_id).lower()).strip("-_")
    return (slug or "run")[:60]


def checkpoint_id(run_id: str, phase: str, step: int) -> str:
    return f"ckpt-{run_slug(run_id)}-{phase}-{step:09d}"


def done_id(run_id: str, phase: str) -> str:
    return f"ckpt-{run_slug(run_id)}-{phase}-done"


# --- tensors <-> flat dicts ----------------------------------------------------------------------
def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def load_module_tensors(prefix: str, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    module.load_state_dict(sub, strict=True)


def optimizer_tensors(
    prefix: str, opt: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Adam state -> (tensors, JSON part). Non-tensor per-parameter values go to the JSON part."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{prefix}.{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "plain": plain}


def load_optimizer_tensors(
    prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if not k.startswith(prefix + "."):
            continue
        pid, key = k[len(prefix) + 1 :].split(".", 1)
        state.setdefault(int(pid), {})[key] = v
    for pid, st in meta.get("plain", {}).items():
        state.setdefault(int(pid), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


# --- store ---------------------------------------------------------------------------------------
def _run_checkpoints(store: ArtifactStore, run_id: str, phase: str) -> list[Manifest]:
    return [
        m
        for m in store.list(CHECKPOINT_KIND)
        if m.meta.get("run_id") == run_id and m.meta.get("phase") == phase
    ]


def latest_checkpoint(store: ArtifactStore, run_id: str, phase: str) -> Manifest | None:
    items = [m for m in _run_checkpoints(store, run_id, phase) if not m.meta.get("done")]
    return max(items, key=lambda m: m.meta["step"]) if items else None


def save_checkpoint(
    store: ArtifactStore,
    run_id: str,
    phase: str,
    step: int,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> str:
    """Write a checkpoint, then delete this run's older ones for the phase. Returns its id."""
    cid = checkpoint_id(run_id, phase, step)
    if store.exists(cid):  # the same step again (e.g. cancelled right after a resume)
        return cid
    with store.writer(CHECKPOINT_KIND, cid) as w:
        w.put_bytes(TENSORS_FILE, st_save(tensors))
        w.put_json(STATE_FILE, state)
        w.commit(config=state.get("config", {}), meta={"run_id": run_id, "phase": phase, "step": step})
    for m in _run_checkpoints(store, run_id, phase):
        if m.id != cid and not m.meta.get("done"):
            with contextlib.suppress(ArtifactNotFound):
                store.delete(m.id)
    return cid


def load_checkpoint(store: ArtifactStore, cid: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return st_load(store.get_bytes(cid, TENSORS_FILE)), store.get_json(cid, STATE_FILE)


def mark_done(store: ArtifactStore, run_id: str, phase: str, model_id: str) -> None:
    """Record that ``phase`` of ``run_id`` produced ``model_id``; drop its step checkpoints."""
    did = done_id(run_id, phase)
    if not store.exists(did):
        with store.writer(CHECKPOINT_KIND, did) as w:
            w.commit(meta={"run_id": run_id, "phase": phase, "done": True, "model_id": model_id})
    for m in _run_checkpoints(store, run_id, phase):
        if not m.meta.get("done"):
            with contextlib.suppress(ArtifactNotFound):
                store.delete(m.id)


def finished_model(store: ArtifactStore, run_id: str, phase: str) -> str | None:
    """The model id a finished phase of this run produced, if it still exists."""
    did = done_id(run_id, phase)
    if not store.exists(did):
        return None
    m = store.manifest(did)
    if m.meta.get("run_id") != run_id:
        return None
    model_id = m.meta.get("model_id")
    return model_id if model_id and store.exists(model_id) else None
