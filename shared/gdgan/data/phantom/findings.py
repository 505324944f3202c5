"""Density of the 14 NIH findings, added only for the images that have each one."""

from __future__ import annotations

import numpy as np

from gdgan.data.phantom.config import ANATOMY, COARSE_GRID, FINE_GRID
from gdgan.data.phantom.texture import Noise, _interp_matrix, _s, _upsample


def _add_findings(
    D: np.ndarray,
    p: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    AX: np.ndarray,
    tw: np.ndarray,
    y_cp: np.ndarray,
    rc: np.ndarray,
    lung: np.ndarray,
    cage_above: np.ndarray,
    air_removed: np.ndarray,
    marks: np.ndarray,
    noise: Noise,
    xs: np.ndarray,
    ys: np.ndarray,
    inv_ew: np.float32,
) -> None:
    """Add the density of findings to ``D`` in place, computing each only for the images that
    have it (most images have none of a given finding, so this is the cheap path)."""
    A = ANATOMY

    def rows(key: str) -> np.ndarray:
        return np.flatnonzero(~np.isnan(p[key]))

    def c(key: str, idx: np.ndarray) -> np.ndarray:
        return p[key][idx][:, None, None]

    def on_side(idx: np.ndarray, side: np.ndarray) -> np.ndarray:
        """1 on the finding's side (-1 image left, +1 image right, 0 both), else 0."""
        return ((side == 0) | (X[idx] * side > 0)).astype(np.float32)

    # Pneumothorax: a lucent rim along the chest wall without lung markings, edged by the
    # visceral pleural line.
    idx = rows("ptx_size")
    if idx.size:
        size_, twi, rci = c("ptx_size", idx), tw[idx], rc[idx]
        rin = (1.0 - size_) ** 2
        side = on_side(idx, c("ptx_side", idx))
        ring = _s((rci - rin) * (twi * 0.5 * inv_ew)) * side
        pleural = np.clip(1.0 - np.abs(rci - rin) * (twi * 0.5 * inv_ew), 0.0, 1.0) * side
        li = lung[idx]
        D[idx] += li * (A.ptx_line * pleural - ring * (marks[idx] + A.ptx_lucency))

    # Effusion: fluid fills the costophrenic angle with a meniscus rising laterally.
    idx = rows("eff_level")
    if idx.size:
        lev, twi = c("eff_level", idx), tw[idx]
        axi = AX[idx]
        rx = axi / twi
        y_fl = y_cp[idx] - lev * (0.45 + 0.55 * rx * rx * rx)
        fluid = _s((Y[idx] - y_fl) * inv_ew * 0.5) * on_side(idx, c("eff_side", idx))
        fluid *= _s((twi * 1.02 - axi) * inv_ew)
        D[idx] += fluid * (air_removed[idx] + A.effusion_extra * cage_above[idx])

    # Nodule / mass: bright round opacities.
    for key, amp in (("nod", A.nodule), ("mass", A.mass)):
        idx = rows(f"{key}_r")
        if idx.size:
            d = np.sqrt((X[idx] - c(f"{key}_x", idx)) ** 2 + (Y[idx] - c(f"{key}_y", idx)) ** 2)
            D[idx] += amp * _s((c(f"{key}_r", idx) - d) * inv_ew)

    # Patchy (infiltration, pneumonia) and confluent (consolidation) opacities.
    patch: np.ndarray | None = None
    for key, amp, hardness, patchy in (
        ("inf", A.infiltration, 1.5, 0.65),
        ("pna", A.pneumonia, 2.5, 0.6),
        ("cons", A.consolidation, 1.3, 0.35),
    ):
        idx = rows(f"{key}_r")
        if not idx.size:
            continue
        if patch is None:
            patch = _upsample(noise.patch, _interp_matrix(ys, COARSE_GRID), _interp_matrix(xs, COARSE_GRID))
        r = c(f"{key}_r", idx)
        d2 = ((X[idx] - c(f"{key}_x", idx)) ** 2 + (Y[idx] - c(f"{key}_y", idx)) ** 2) / (r * r)
        blob = np.clip((1.0 - d2) * hardness, 0.0, 1.0)
        tex = np.clip(0.5 + 0.7 * patch[idx], 0.0, 1.0)
        D[idx] += amp * blob * (1.0 - patchy + patchy * tex) * lung[idx]

    # Atelectasis: a tilted plate-like band (its hemidiaphragm is raised in the geometry).
    idx = rows("atel_r")
    if idx.size:
        xi, yi = X[idx] - c("atel_x", idx), Y[idx] - c("atel_y", idx)
        band = _s((0.04 - np.abs(yi - 0.25 * xi)) * inv_ew)
        band = band * np.clip(1.0 - np.abs(xi) / c("atel_r", idx), 0.0, 1.0)
        D[idx] += A.atelectasis * band * lung[idx]

    # Edema: bilateral perihilar ("bat-wing") haze.
    idx = rows("edema")
    if idx.size:
        hy = c("y_apex", idx) + A.hilum_y * c("lung_len", idx)
        hd2 = ((AX[idx] - A.hilum_x * tw[idx]) * (1.0 / 0.5)) ** 2 + ((Y[idx] - hy) * (1.0 / 0.6)) ** 2
        D[idx] += A.edema * c("edema", idx) * np.clip(1.0 - hd2, 0.0, 1.0) * lung[idx]

    # Fibrosis: reticular network (zero crossings of a fine noise field), lower and peripheral.
    idx = rows("fib")
    if idx.size:
        fine = _upsample(noise.fine[idx], _interp_matrix(ys, FINE_GRID), _interp_matrix(xs, FINE_GRID))
        net = np.clip(1.0 - np.abs(fine) * 2.5, 0.0, 1.0)
        zone = np.clip(rc[idx] * 1.3 - 0.2, 0.0, 1.0)
        D[idx] += A.fibrosis * c("fib", idx) * net * zone * lung[idx]

    # Pleural thickening: a dense rim along one lateral chest wall.
    idx = rows("pt_thick")
    if idx.size:
        th = c("pt_thick", idx) / tw[idx]
        rim = _s((rc[idx] - (1.0 - th) ** 2) * tw[idx] * 0.5 * inv_ew) * on_side(idx, c("pt_side", idx))
        D[idx] += A.pleural_thickening * rim * cage_above[idx]

    # Hiatus hernia: round retrocardiac opacity with an air-fluid level.
    idx = rows("hernia_r")
    if idx.size:
        hr = c("hernia_r", idx)
        hcy = y_cp[idx] - 0.30
        d = np.sqrt((X[idx] - 0.05 * tw[idx]) ** 2 + (Y[idx] - hcy) ** 2)
        disc = _s((hr - d) * inv_ew)
        gas = disc * _s((hcy - 0.25 * hr - Y[idx]) * inv_ew)
        D[idx] += A.hernia * disc - A.hernia_gas * gas
