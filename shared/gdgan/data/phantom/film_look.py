"""The ``film`` look (fifth wave): what a reader sees on a real chest film at a glance and the
radiograph look still drew flat — soft-tissue edges that fade out, graded densities (a heart
thinner at its borders than at its centre, lungs brighter towards the bases and the periphery,
an abdomen denser than the heart, with a liver and bowel gas), humeral heads in the top corners,
branching vessels from the hila, and films that differ in exposure the way the NIH sample's do.

Every switch here is gated on ``FilmLook.film`` (the other looks stay byte for byte); the look's
own draws come from a random stream of their own, so every label, finding, patient and
ground-truth column is the same as in the radiograph look for the same seed. The CTR stays
exact: the heart's silhouette keeps its widest points, only its density inside is graded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdgan.data.phantom.config import PhantomConfig
from gdgan.data.phantom.texture import _clip01


@dataclass(frozen=True)
class FilmAnatomy:
    """Densities and shapes of the film look (frame units and densities as in ``Anatomy``)."""

    body_soft: float = 0.25  # the body outline's edge ramp is 1 / this times the anatomy's
    body_extra_scale: float = 0.55  # less soft tissue lateral to the ribs (radiograph look: 0.75)
    body_fade: float = 3.5  # tissue thickness ramps up over the outer 1 / this of the half-width
    heart_rim: float = 0.02  # the heart's own density at its border...
    heart_centre: float = 0.08  # ...and at its centre (radiograph look: 0.05 flat)
    heart_base: float = 1.0  # the heart's borders rise into the mediastinum's edges (× its half-width)
    heart_opacity: float = 0.85  # share of the lung air the heart displaces (retrocardiac lung shows)
    heart_low: float = 0.6  # the borders curve in below their widest points over this height
    abdomen: float = 0.09
    abdomen_low: float = 0.08
    abdomen_mottle: float = 0.25  # the abdomen's density × (1 + this × the smooth noise field)
    liver: float = 0.35  # the liver under the right dome: abdomen density × (1 + this)
    bowel_gas: float = 0.10
    air_rim: float = 0.30  # lung air at the cage edge relative to the middle (Anatomy: 0.35)
    air_base_fade: float = 0.30  # lung air lost towards the bases (soft tissue over them)
    vessel: float = 0.14  # vessels radiating from the hila (radiograph look: 0.09)
    vessel_ridge: float = 0.08  # branching vessels: ridges of the fine noise field near the hila
    ridge_width: float = 5.0  # 1 / |field| where a ridge fades out
    rib_scale: float = 1.15  # posterior ribs × this of the radiograph look's (the film's blur softens them)
    med_soft: float = 0.5  # the upper mediastinum's edge ramp is 1 / this times the anatomy's
    humeral: float = 0.10  # humeral heads in the top corners
    humeral_r: float = 0.13
    shoulder: float = 0.30  # soft tissue of the shoulder around the humeral head
    shoulder_r: float = 0.30
    humeral_y: float = -0.02  # ...and this far below the lung apex
    shoulder_up: float = 0.12  # shoulders meet the trunk this much higher than the radiograph look's
    humeral_x: float = 0.16  # the heads' centres lie this far lateral to the lungs
    cage_soft: float = 0.6  # the lung outline's edge ramp is 1 / this times the anatomy's
    arm_scale: float = 0.45  # the arms' density relative to the radiograph look's
    # exposure and framing fitted to the 970-image NIH sample (per view; docs/notes/phantom.md)
    level_pa: float = 0.10
    level_ap: float = -0.07
    window_pa: float = 0.94
    window_ap: float = 1.17
    shift_y_mean: float = 0.0
    shift_y_sd: float = 0.06
    arm_soft: float = 0.4  # the arms' edge ramp is 1 / this times the anatomy's


FILM = FilmAnatomy()

# Per-image grey statistics of the 970-image NIH sample at 64 px (``NIH_SAMPLE_DIR``, measured
# 2026-12-02): view -> (mean of the per-image mean grey, SD of it, mean of the per-image grey
# SD, SD of it). The film look's per-view level and window (``FilmAnatomy.level_*``,
# ``window_*``) were fitted to the first and third; the spreads follow from the film's own
# exposure draws (texture.py) and are checked against the second and fourth.
NIH_SAMPLE_GREY = {"PA": (133.3, 24.7, 61.0, 11.0), "AP": (132.3, 19.8, 53.7, 7.2)}


def draw_film_look(cfg: PhantomConfig, ap: np.ndarray) -> dict[str, np.ndarray]:
    """The film look's own per-image draws (a stream of its own: labels and the other looks'
    draws stay as they are)."""
    n = ap.shape[0]
    rng = np.random.default_rng([cfg.seed, 0xF11, 0x5])
    t = min(cfg.texture, 1.0)
    # the patient sits less steadily in height on the film (the NIH sample's darkest quarter of
    # pixels has its centroid at row 24.7 ± 5.3 of 64 on PA films, the radiograph look's 26.6 ± 2.8)
    dy = np.clip(rng.normal(0.0, FILM.shift_y_sd, n), -2.0 * FILM.shift_y_sd, 2.0 * FILM.shift_y_sd)
    return {
        "humeral_dy": rng.uniform(-0.06, 0.06, n),
        "shift_y_film": (FILM.shift_y_mean + dy) * t,
        # exposure per view, fitted to the sample's per-image grey mean and SD (docs/notes/phantom.md)
        "level_film": np.where(ap, FILM.level_ap, FILM.level_pa) * t,
        "window_film": 1.0 + (np.where(ap, FILM.window_ap, FILM.window_pa) - 1.0) * t,
    }


def apply_film_look(p: dict[str, np.ndarray], extra: dict[str, np.ndarray]) -> None:
    """Fold the film look's draws into the parameter table (in place)."""
    p["shift_y"] = p["shift_y"] + extra.pop("shift_y_film")
    p["level"] = p["level"] + extra.pop("level_film")
    p["window"] = p["window"] * extra.pop("window_film")
    p.update(extra)


def body_tissue(body: np.ndarray, rel: np.ndarray, tissue: float, centre: float) -> np.ndarray:
    """Soft-tissue attenuation of the trunk: thickest in the middle, fading to nothing at the
    skin (a body is round, so its projected thickness falls off towards its outline)."""
    thick = _clip01((1.0 - rel) * FILM.body_fade)
    thick *= tissue + centre * (1.0 - rel * rel)
    thick *= body
    return thick


def heart_profile(heart: np.ndarray, Xh: np.ndarray, hx: np.ndarray, heart_w: np.ndarray) -> np.ndarray:
    """The heart's own density, graded: ``heart_centre`` at its centre, ``heart_rim`` at its
    borders (a heart is thicker in the middle; a flat cut-out of one tone is what gives a
    phantom away). The silhouette against the lung is not changed, so neither is the CTR."""
    u = (Xh - hx) * (2.0 / heart_w)
    g = _clip01(1.0 - u * u)
    np.sqrt(g, out=g)
    g *= FILM.heart_centre - FILM.heart_rim
    g += FILM.heart_rim
    g *= heart
    return g


def air_rows(y_rows: np.ndarray, y_apex: np.ndarray, lung_len: np.ndarray) -> np.ndarray:
    """Share of the lung air kept on each film row (B, h, 1): less towards the bases, where
    breasts, pectorals and the domes overlap the lung."""
    t = _clip01((y_rows - y_apex) * (1.0 / lung_len))
    t *= t
    t *= -FILM.air_base_fade
    t += 1.0
    return t


def vessel_ridges(fine: np.ndarray, hilar: np.ndarray) -> np.ndarray:
    """Branching vessels: the ridges (zero crossings) of a smooth noise field are a network of
    thin lines; weighted towards the hila they read as vessels fanning out into the lungs."""
    r = np.abs(fine)
    r *= -FILM.ridge_width
    r += 1.0
    r = _clip01(r)
    r *= hilar
    r *= FILM.vessel_ridge
    return r
