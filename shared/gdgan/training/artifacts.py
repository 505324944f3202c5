"""Model artifacts: EMA generator + critic weights (safetensors), samples.png, losses.json.

The manifest's ``config`` holds the training config (``train``) and the network sizes
(``model``); ``meta`` holds provenance and results: dataset id, split seed, training-set size
and index fingerprint, final losses, speed, and ``label_mix`` — per finding (and 'No Finding',
'all') the (gender, view) counts of the training positives, from which samplers draw missing
general labels. The store adds the code version.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from safetensors.torch import save as st_save
from torch import nn

from gdgan.imaging import grid_png_bytes
from gdgan.labels import NO_FINDING, SCHEMA_KEY
from gdgan.models.gdgan import GanConfig
from gdgan.store import ArtifactStore, Manifest
from gdgan.training.loop import PhaseRun
from gdgan.training.loss_curves import LOSSES_FILE
from gdgan.training.presets import TrainConfig
from gdgan.training.sampling import (
    CRITIC_FILE,
    GENERATOR_FILE,
    LoadedGenerator,
)

SAMPLES_FILE = "samples.png"
GRID_SCALE = 2


def _weights_bytes(module: nn.Module) -> bytes:
    return st_save({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})


def sample_grid(gen: LoadedGenerator, cfg: TrainConfig) -> bytes:
    """Labelled grid: for each (gender, view) group, fixed seeds, with/without ``grid_finding``.

    GDGAN stage 2 shows each stage-1 image next to its refinements without and with the
    finding, which makes the stage-2 effect visible; stage 1 shows the four groups.
    """
    k = cfg.grid_per_group
    schema = gen.schema
    # the preset's finding when the model has it, else the schema's first (a non-NIH dataset)
    finding = cfg.grid_finding if cfg.grid_finding in schema.findings else (schema.findings or ("",))[0]
    imgs: list[np.ndarray] = []
    caps: list[str] = []
    for gi, codes in enumerate(schema.groups()):
        gname = schema.group_key(codes)
        given = dict(zip(schema.general, gname.split("/")))
        base = gen.prepare(k, None, given.get("gender"), given.get("view"), seed=cfg.seed * 1000 + gi)
        with_f = np.zeros_like(base.detail)
        if finding:
            with_f[:, schema.finding_index(finding)] = 1.0
        if gen.acgan is None and gen.g2 is None:  # stage 1
            imgs += list(gen.generate(base.z, base.general, base.detail, stage=1))
            caps += [gname] * k
            continue
        s1, none = gen.forward_both(base.z, base.general, base.detail)
        _, pos = gen.forward_both(base.z, base.general, with_f)
        for i in range(k):
            if s1 is not None and gen.acgan is None:
                imgs.append(s1[i])
                caps.append(f"{gname} stage 1")
            imgs += [none[i], pos[i]]
            caps += [f"{gname} {NO_FINDING}", f"{gname} {finding}"]
    per = 1 if (gen.acgan is not None or gen.g2 is not None) else 0
    ncol = (3 if gen.acgan is None else 2) * 2 if per else k
    return grid_png_bytes(np.stack(imgs), caps, ncol=ncol, scale=GRID_SCALE)


def write_model(
    store: ArtifactStore,
    kind: str,
    run: PhaseRun,
    cfg: TrainConfig,
    gan: GanConfig,
    sampler: LoadedGenerator,
    *,
    dataset_id: str | None,
    split_seed: int | None,
    mix: dict[str, dict[str, int]],
    parents: list[str],
    meta: dict[str, Any],
) -> Manifest:
    """Write one model artifact (manifest last)."""
    with store.writer(kind) as w:
        w.put_bytes(GENERATOR_FILE, _weights_bytes(run.ema))
        w.put_bytes(CRITIC_FILE, _weights_bytes(run.D))
        w.put_bytes(SAMPLES_FILE, sample_grid(sampler, cfg))
        w.put_json(LOSSES_FILE, run.history)
        curve = run.extra.get("quality_curve")
        if curve:
            from gdgan.training.curves import CURVE_FILE, CURVE_PNG, curves_png

            w.put_json(CURVE_FILE, [curve])
            w.put_bytes(CURVE_PNG, curves_png([curve]))
            meta = {**meta, "quality": _final_headline(curve)}
        return w.commit(
            config={"train": cfg.to_dict(), "model": gan.to_dict()},
            parents=parents,
            meta={
                "dataset_id": dataset_id,
                "split_seed": split_seed,
                "final_losses": run.final_losses(),
                "steps": run.step,
                "wall_s": round(run.wall_s, 3),
                "images_per_s": round(run.images_per_s, 2),
                "label_mix": mix,
                SCHEMA_KEY: sampler.schema.to_dict(),
                **meta,
            },
        )


def _final_headline(curve: dict[str, Any]) -> dict[str, Any] | None:
    """The last curve point (the stored weights' figures), for listings."""
    pts = curve.get("points") or []
    return {k: v for k, v in pts[-1].items() if k != "phase"} if pts else None


def write_bundle(store: ArtifactStore, stage1: Manifest, stage2: Manifest, samples_png: bytes) -> Manifest:
    """The GDGAN bundle: names both stages (parents [stage1, stage2]); load_generator follows them.
    Both stages' quality curves, when recorded, are copied into one curve file and plot."""
    from gdgan.training.curves import CURVE_FILE, CURVE_PNG, curves_png

    curves = [c for m in (stage1, stage2) if CURVE_FILE in m.files for c in store.get_json(m.id, CURVE_FILE)]
    with store.writer("gdgan") as w:
        w.put_bytes(SAMPLES_FILE, samples_png)
        if curves:
            w.put_json(CURVE_FILE, curves)
            w.put_bytes(CURVE_PNG, curves_png(curves))
        return w.commit(
            config={"model": stage1.config["model"], "stage1": stage1.config, "stage2": stage2.config},
            parents=[stage1.id, stage2.id],
            meta={
                "stage1": stage1.id,
                "stage2": stage2.id,
                "dataset_id": stage2.meta.get("dataset_id"),
                "split_seed": stage2.meta.get("split_seed"),
                "final_losses": {
                    "stage1": stage1.meta.get("final_losses"),
                    "stage2": stage2.meta.get("final_losses"),
                },
                "label_mix": stage2.meta.get("label_mix", {}),
                **({SCHEMA_KEY: stage2.meta[SCHEMA_KEY]} if SCHEMA_KEY in stage2.meta else {}),
                **({"quality": stage2.meta["quality"]} if stage2.meta.get("quality") else {}),
            },
        )
