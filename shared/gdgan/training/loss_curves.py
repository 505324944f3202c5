"""Loss curves of stored models, for plotting (web client, ``GET /v1/models/{id}/losses``).

Light on purpose (numpy and the store only), so the gateway can serve curves without importing
torch. The training loop records the history; :mod:`gdgan.training.artifacts` stores it as
``losses.json`` beside each phase's weights.
"""

from __future__ import annotations

import itertools

import numpy as np

from gdgan.store import ArtifactNotFound, ArtifactStore, Manifest

LOSSES_FILE = "losses.json"


def loss_curves(
    store: ArtifactStore, model: Manifest, max_points: int = 400
) -> dict[str, dict[str, list[float]]]:
    """A model's recorded loss curves per training phase, ``{phase: {"step": [...], name: [...]}}``.

    A GDGAN bundle has no curves of its own: they are its two stages'. Long runs are reduced to
    at most ``max_points`` points by averaging consecutive steps, so a 30,000-step paper run
    plots as fast as a demo and the curve keeps its trend rather than one step's noise."""
    if model.kind == "gdgan":
        phases = {
            name: store.manifest(model.meta[name]) for name in ("stage1", "stage2") if model.meta.get(name)
        }
    else:
        phases = {model.kind.removeprefix("gdgan-"): model}
    out: dict[str, dict[str, list[float]]] = {}
    for name, m in phases.items():
        try:
            hist = store.get_json(m.id, LOSSES_FILE)
        except ArtifactNotFound:  # an artifact written before curves were kept
            continue
        out[name] = _bucket_means(hist, max_points)
    return out


def _bucket_means(hist: dict[str, list[float]], max_points: int) -> dict[str, list[float]]:
    n = len(hist.get("step", []))
    if n <= max_points:
        return {k: [float(x) for x in v] for k, v in hist.items()}
    edges = np.linspace(0, n, max_points + 1).astype(int)
    out: dict[str, list[float]] = {}
    for k, v in hist.items():
        a = np.asarray(v[:n], dtype=np.float64)
        if k == "step":  # the last step of each bucket, so the x axis ends at the run's end
            out[k] = [float(a[e - 1]) for e in edges[1:]]
        else:
            out[k] = [float(a[s:e].mean()) for s, e in itertools.pairwise(edges)]
    return out


# Written by the quality harness beside a model's weights: a list of curves, each
# {"phase", "every", "points": [{"step", <headline measures>, "cpu_s"}, ...], ...}.
QUALITY_CURVE_FILE = "quality_curve.json"
_NOT_PLOTTED = frozenset({"step", "phase", "cpu_s"})


def quality_curves(store: ArtifactStore, model: Manifest) -> dict[str, dict[str, list[float | None]]]:
    """The harness's quality curves per phase, as columns like :func:`loss_curves` (a measure a
    point lacks is None, a gap in the plot). Empty when the model was trained without them."""
    if QUALITY_CURVE_FILE not in model.files:
        return {}
    out: dict[str, dict[str, list[float | None]]] = {}
    for c in store.get_json(model.id, QUALITY_CURVE_FILE):
        points = [p for p in c.get("points", []) if isinstance(p.get("step"), int | float)]
        names = [
            k
            for k in dict.fromkeys(k for p in points for k in p)
            if k not in _NOT_PLOTTED and any(isinstance(p.get(k), int | float) for p in points)
        ]
        if points and names:
            cols: dict[str, list[float | None]] = {"step": [float(p["step"]) for p in points]}
            for k in names:
                cols[k] = [float(p[k]) if isinstance(p.get(k), int | float) else None for p in points]
            out[str(c.get("phase", model.kind))] = cols
    return out
