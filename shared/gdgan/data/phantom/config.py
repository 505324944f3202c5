"""What the phantom draws from: NIH's label facts, the cardiac and anatomical models, and
:class:`PhantomConfig` with the documented properties of real labels and films (sources in
docs/notes/phantom.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gdgan.labels import (
    FINDINGS,
    NIH_CARDIOMEGALY_BY_GROUP,
    NIH_FINDING_COUNTS,
    NIH_TOTAL_IMAGES,
    finding_index,
)

# --------------------------------------------------------------------------------------------
# NIH facts used as defaults
# --------------------------------------------------------------------------------------------
_GROUP_IMAGES = {k: v[1] for k, v in NIH_CARDIOMEGALY_BY_GROUP.items()}
NIH_FEMALE_FRACTION = (_GROUP_IMAGES[("F", "AP")] + _GROUP_IMAGES[("F", "PA")]) / NIH_TOTAL_IMAGES
# P(AP | gender) from the (gender, view) image counts.
NIH_AP_GIVEN_GENDER = {
    g: _GROUP_IMAGES[(g, "AP")] / (_GROUP_IMAGES[(g, "AP")] + _GROUP_IMAGES[(g, "PA")]) for g in ("M", "F")
}
NIH_CARDIOMEGALY_RATE = {k: pos / n for k, (pos, n) in NIH_CARDIOMEGALY_BY_GROUP.items()}
NIH_PREVALENCE = {name: NIH_FINDING_COUNTS[name] / NIH_TOTAL_IMAGES for name in FINDINGS}
NIH_PATIENTS = 30_805
NIH_IMAGES_PER_PATIENT = NIH_TOTAL_IMAGES / NIH_PATIENTS
NIH_AGE_MEAN, NIH_AGE_SD = 46.9, 16.6
CARDIOMEGALY = "Cardiomegaly"
CTR_THRESHOLD = 0.5

# Pixels rendered per vectorised chunk (8 images at 64 px): each float32 layer is then 128 kB
# and stays in cache, which measured ~2× faster than 128-image chunks. Part of the determinism
# contract (noise is drawn per chunk), so it is a constant rather than a config field.
RENDER_CHUNK_PIXELS = 8 * 64 * 64
# Size of the coarse noise grids that are interpolated to the image (lung texture, patches).
COARSE_GRID = 10
TEXTURE_GRID = 14
FINE_GRID = 22
# Thoracic-width physical size used for the NIH CSV's pixel spacing (mm across the frame).
FRAME_MM = 380.0


@dataclass(frozen=True)
class CardiacModel:
    """How the cardiothoracic ratio on the film is drawn (see module doc)."""

    normal_mean: float = 0.435  # PA normal CTR
    normal_sd: float = 0.03
    ap_magnification: tuple[float, float] = (1.10, 1.15)  # AP heart on film vs PA
    cardiomegaly_margin: float = 0.004  # smallest excess over 0.5 (keeps labels unambiguous)
    cardiomegaly_gamma_shape: float = 2.0  # CTR - 0.5 ~ Gamma(shape, scale): mean ≈ 0.57
    cardiomegaly_gamma_scale: float = 0.033
    cardiomegaly_max: float = 0.74
    patient_correlation: float = 0.8  # how much of a normal CTR's z-score is the patient's


CARDIAC = CardiacModel()


@dataclass(frozen=True)
class Anatomy:
    """Geometry (frame units, the image spans [-1, 1]) and densities of the rendered anatomy.

    Densities add up to a radiographic "attenuation" that the film curve maps to grey levels;
    the values were tuned by eye against NIH radiographs at 64 px (docs/img/phantom_vs_nih.png).
    """

    edge_px: float = 1.3  # anti-aliasing ramp of soft masks, in output pixels
    # body
    neck_half_width: float = 0.36
    shoulder_drop: float = 0.12  # shoulders reach trunk width this far above the lung apex...
    shoulder_span: float = 0.35  # ...rising from the neck over this height
    tissue: float = 0.50
    tissue_centre: float = 0.20
    abdomen: float = 0.08
    bowel_gas: float = 0.10
    # domes and lungs
    dome_peak: float = 0.45  # dome apex at this fraction of the thoracic half-width
    dome_medial_flat: float = 0.45
    apex_round: float = 0.6
    air: float = 0.62
    air_rim: float = 0.35  # lung air at the cage edge relative to the middle of the lung
    hilum_x: float = 0.28
    hilum_y: float = 0.52
    hilum_falloff: float = 9.0
    marking_base: float = 0.03
    vessel: float = 0.07
    vessel_spokes: float = 14.0  # radians of spoke phase per unit of sin(angle)
    marking_hilar: float = 0.12
    # heart and mediastinum
    heart_left_shift: float = 0.13
    heart_clear: float = 0.06  # lowest horizontal extreme of the heart above the left dome
    heart_density: float = 0.05
    med_half_width: float = 0.085
    med_into_heart: float = 0.65
    med_grow_start: float = 1.3  # in heart half-heights above the heart centre
    med_grow_span: float = 1.2
    knob_x: float = 0.13
    knob_y: float = 0.33
    knob_r: float = 0.07
    trachea_half_width: float = 0.03
    carina: float = 0.42
    trachea: float = 0.10
    # bones
    spine: float = 0.05
    vertebra: float = 0.085
    ribs_per_lung: float = 9.5
    rib_rise: float = -0.15
    rib_droop: float = 0.45
    rib_width: float = 0.18
    rib: float = 0.055
    rib_hidden: float = 0.7  # ribs fade over the heart and mediastinum
    clavicle_y: float = 0.17
    clavicle_ap_up: float = 0.07
    clavicle_slope_pa: float = 0.40
    clavicle_slope_ap: float = 0.10
    clavicle_half_thick: float = 0.035
    clavicle_len: float = 0.92
    clavicle: float = 0.09
    scapula_x_pa: float = 1.2
    scapula_x_ap: float = 0.80
    scapula_y: float = 0.36
    scapula_w: float = 0.20
    scapula_h: float = 0.34
    scapula: float = 0.08
    breast_x: float = 0.55
    breast_up: float = 0.22
    breast: float = 0.07
    gastric: float = 0.14
    # findings
    ptx_lucency: float = 0.10
    ptx_line: float = 0.18
    effusion_extra: float = 0.08
    nodule: float = 0.26
    mass: float = 0.30
    infiltration: float = 0.17
    pneumonia: float = 0.27
    consolidation: float = 0.32
    atelectasis: float = 0.26
    edema: float = 0.24
    fibrosis: float = 0.16
    pleural_thickening: float = 0.30
    hernia: float = 0.10
    hernia_gas: float = 0.26
    # film
    lead_sites: tuple[tuple[float, float], ...] = ((-0.55, -0.55), (0.55, -0.55), (0.62, 0.25))
    lead_r: float = 0.03
    lead: float = 0.32
    # support devices (metal and radio-opaque plastic: brighter than bone)
    tube: float = 0.30
    tube_half_width: float = 0.016
    pacer: float = 0.55
    # film realism (scaled by PhantomConfig.texture)
    soft_tissue_texture: float = 0.035
    lung_texture: float = 0.045
    film_gain: float = 1.0
    film_offset: float = 0.0


ANATOMY = Anatomy()


@dataclass(frozen=True)
class RadiographAnatomy:
    """What the ``radiograph`` look draws differently from :class:`Anatomy` (frame units and
    densities as there). Set by eye and by simple statistics (mean image, radial power) against
    the 970-image NIH sample at 64 px; see docs/notes/phantom.md."""

    # body: a narrower neck, shoulders that meet the trunk lower (dark top corners), flanks
    # widest at mid-chest
    neck_half_width: float = 0.30
    shoulder_drop: float = 0.25
    shoulder_span: float = 0.40
    neck_scale: tuple[float, float] = (0.8, 1.25)  # per film
    shoulder_shift: tuple[float, float] = (-0.12, 0.10)  # per film (frame units, + lower)
    flank_curve: float = 0.08  # the trunk is widest at mid-chest, narrower above and below
    trachea: float = 0.06
    body_extra_scale: float = 0.75
    dome_scale: float = 1.1  # higher-arched domes, deeper costophrenic angles
    med_half_width: float = 0.13  # the upper mediastinum (the aortic knob bulges from it)
    abdomen: float = 0.10
    abdomen_low: float = 0.10  # the abdomen gets denser further below the domes
    dome_round: float = 0.8  # medial flattening of the domes (1 = none)
    shoulder_thin: float = 0.15
    apex_t3: float = 0.5  # lung outline: rx² + t³·(a + (1 − a)·t²) < 1 (broad apices)
    lung_scale: float = 1.08
    thorax_scale: float = (
        1.0  # thorax width on the film (0.92 matched the mean NIH image better but made the heart smaller)
    )
    apex_up: float = 0.05
    # arms beside the chest (on ``arms_rate`` of films): a gap, then a soft-tissue band with bone
    arm_gap: tuple[float, float] = (0.0, 0.08)
    arm_width: tuple[float, float] = (0.25, 0.45)
    arm: float = 0.36
    humerus: float = 0.08
    # heart: anatomical borders (right atrium under the SVC, left ventricle under the knob)
    ra_top: float = 0.42  # top of the right-atrial arc, fraction of the lung length
    lv_top: float = 0.38  # top of the left-ventricular arc (below the knob)
    heart_left_shift: float = 0.18  # two thirds of the heart's width left of the midline
    heart_clear: float = 0.12  # widest points this far above their domes (lung lateral to the apex)
    heart_edge: float = 2.5  # the heart's borders are softer than bone edges (cardiac motion), pixels
    lv_low: float = 0.30  # the borders curve in below their widest points over this height
    arc_stretch: float = 1.1  # the arcs' parabolas start this much above their tops
    heart_density: float = 0.05
    heart_opacity: float = 0.95  # share of the lung air the heart displaces (retrocardiac lung)
    # bones: crisp posterior ribs, clavicles, a visible spine
    rib: float = 0.08
    rib_low_fade: float = 0.5  # posterior ribs fade towards the bases (more soft tissue there)
    rib_width: float = 0.25
    rib_rise: float = -0.10
    rib_droop: float = 0.50
    ribs_per_lung: float = 7.5
    clavicle: float = 0.13
    clavicle_slope: float = 0.30
    clavicle_y: float = 0.25  # the clavicles cross the lung apices
    clavicle_half_thick: float = 0.03
    spine: float = 0.07
    pedicle: float = 0.03
    # lungs: vessels a little stronger, the blotchy texture weaker (``FilmLook.texture_gain``)
    vessel: float = 0.09
    marking_base: float = 0.012
    marking_hilar: float = 0.20
    hilum_falloff: float = 40.0
    # bedside (AP) films: hazier (contrast × this, extra fog)
    ap_contrast: float = 0.85
    ap_fog: float = 0.0
    grain_scale: float = 1.0  # quantum noise of the film (downsampled NIH films carry little)
    # burnt-in markers: letters, grey level
    marker_grey: tuple[float, float] = (0.6, 0.95)


RADIOGRAPH = RadiographAnatomy()


@dataclass(frozen=True)
class FilmLook:
    """Framing and film settings that set how the phantom *looks* next to NIH films (at
    ``texture`` = 1; ``texture`` = 0 is the first phantom's flat look in every case).

    ``film`` is the default (frozen in the fifth wave, difficulty calibrated on it): the
    radiograph look with soft tissue, graded densities, shoulders and per-view exposure fitted to
    the NIH sample (film_look.py). ``radiograph`` is the fourth wave's default and ``calibrated``
    the one before it (frozen 2026-12-01), both kept byte for byte. ``nih_matched`` moves
    the look towards the 970-image NIH sample (wider framing spread, no zoom-in, darker and less
    contrasted films, softer edges, fewer side markers): it halves the domain-feature distance
    on two of three domain networks but makes Cardiomegaly much harder for the `demo`
    classifier (reference-count AUC 0.51, below the 0.57 floor), so it is opt-in and not
    calibrated (docs/notes/phantom.md).
    """

    shift_sd: float  # SD of the patient's shift on the film (frame units), clipped at 2 SD
    zoom_extra: float  # zoom-in over the first phantom's framing
    zoom_sd: float
    zoom_clip: tuple[float, float]
    marker_rate: float  # burnt-in side markers
    blur: float  # weight of the film's 1-2-1 blur
    window_shift: float  # relative change of the film's window (contrast)
    level_shift: float  # change of the film's level (brightness)
    # ---- the radiograph look's renderer (anatomy and film switches; off in the older looks,
    # whose images stay byte-identical). Anatomy switches apply at any ``texture``.
    radiograph: bool = False  # heart borders, arms, dark corners, lettered markers, sharpening
    sharpen: float = 0.0  # unsharp-mask gain of the film (digital films are edge-enhanced)
    texture_gain: float = 1.0  # scale of the smooth soft-tissue and lung texture fields
    arms_rate: float = 0.0  # films with the arms in the field beside the chest
    # ---- the film look (fifth wave): soft tissue, graded densities and per-film exposure drawn
    # from the NIH sample's spread (film_look.py); off in every other look.
    film: bool = False


LOOKS = {
    "calibrated": FilmLook(0.03, 0.08, 0.04, (0.9, 1.2), 0.6, 0.45, 0.08, -0.05),
    "nih_matched": FilmLook(0.06, 0.0, 0.08, (0.85, 1.25), 0.3, 0.8, -0.06, -0.02),
    "radiograph": FilmLook(
        shift_sd=0.05,
        zoom_extra=0.0,
        zoom_sd=0.05,
        zoom_clip=(0.85, 1.2),
        marker_rate=0.6,
        blur=0.0,
        window_shift=-0.07,
        level_shift=0.0,
        radiograph=True,
        sharpen=0.0,
        texture_gain=0.4,
        arms_rate=1.0,
    ),
    "film": FilmLook(
        shift_sd=0.05,
        zoom_extra=0.05,
        zoom_sd=0.05,
        zoom_clip=(0.85, 1.25),
        marker_rate=0.6,
        blur=0.5,
        window_shift=-0.05,
        level_shift=-0.03,
        radiograph=True,
        sharpen=0.0,
        texture_gain=0.6,
        arms_rate=0.6,
        film=True,
    ),
}
# The default look, frozen in the fifth wave before any GAN result on it: the difficulty (the
# label model below, unchanged) was calibrated on it against the mean of three phantom draws
# (docs/notes/phantom.md). The fourth wave's default stays reachable as look="radiograph".
DEFAULT_LOOK = "film"
# Order of LOOKS is the look's index in the parameter table (``p["look"]``).
LOOK_NAMES = tuple(LOOKS)
# Framing of the first phantom (texture = 0), which every look starts from.
FLAT_SHIFT_SD = 0.03
FLAT_ZOOM_SD = 0.04


class PhantomError(ValueError):
    """A phantom configuration or export request that cannot be honoured."""


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
class PhantomConfig(BaseModel):
    """What to generate. Defaults reproduce NIH ChestX-ray14's label mix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(default=8000, ge=1, le=5_000_000, description="Number of images.")
    size: int = Field(default=64, ge=32, le=256, description="Image side in pixels.")
    seed: int = Field(default=0, ge=0, description="Same seed, same images and labels.")
    prevalence: dict[str, float] = Field(
        default_factory=dict,
        description="Per-finding prevalence overrides, e.g. {'Cardiomegaly': 0.2}. Cardiomegaly keeps "
        "NIH's (gender, view) ratios, scaled to the requested overall rate.",
    )
    female_fraction: float = Field(default=NIH_FEMALE_FRACTION, ge=0.0, le=1.0)
    ap_fraction: float | None = Field(
        default=None, ge=0.0, le=1.0, description="P(AP); None = NIH's per-gender rates."
    )
    images_per_patient: float = Field(default=NIH_IMAGES_PER_PATIENT, ge=1.0, le=100.0)
    noise: float = Field(default=1.0, ge=0.0, le=5.0, description="Scale of the quantum noise.")
    first_patient_id: int = Field(default=1, ge=0)
    # ---- difficulty from documented properties of real labels and films (sources: docs/notes/phantom.md)
    label_noise: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Scale of Cardiomegaly label errors: 1 = the audited rates below, 0 = every label is "
        "the truth (gt_ctr > 0.5 iff labelled).",
    )
    label_ppv: float = Field(
        default=0.80,
        gt=0.0,
        le=1.0,
        description="Share of Cardiomegaly labels that are true (visual audit of ChestX-ray14: PPV 10-30 "
        "points below the >0.9 the text mining claimed; physicians agreed with 65-80 %).",
    )
    label_sensitivity: float = Field(
        default=0.90,
        gt=0.0,
        le=1.0,
        description="Share of true cardiomegalies that carry the label (NIH's text mining: recall ~0.9).",
    )
    reader_ctr_sd: float = Field(
        default=0.02,
        ge=0.0,
        le=0.1,
        description="Reader variability of the CTR; mislabelled hearts lie within it of 0.5 "
        "(inter-observer CV ~2 %; AP-vs-PA CTR difference SD 0.029).",
    )
    borderline_share: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="Share of label errors that are reader disagreement on a borderline heart (the rest "
        "are text-mining errors, at any heart size).",
    )
    device_rate_ap: float = Field(
        default=0.50,
        ge=0.0,
        le=1.0,
        description="AP (bedside) films with lines/tubes (CheXpert, mostly inpatient: 'Support Devices' on "
        "52 % of images).",
    )
    device_rate_pa: float = Field(default=0.05, ge=0.0, le=1.0, description="PA films with lines/tubes.")
    pacemaker_rate: float = Field(
        default=0.03, ge=0.0, le=1.0, description="Films showing a pacemaker/ICD (all views)."
    )
    ecg_lead_rate_ap: float = Field(default=0.45, ge=0.0, le=1.0, description="AP films with ECG electrodes.")
    low_inspiration_rate_ap: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="AP films taken at poor inspiration (fewer ribs above the domes, broader-looking heart).",
    )
    low_inspiration_rate_pa: float = Field(default=0.1, ge=0.0, le=1.0)
    rotation_deg: float = Field(
        default=4.0,
        ge=0.0,
        le=15.0,
        description="SD of patient rotation about the long axis (degrees): the heart and mediastinum shift "
        "off the spine.",
    )
    texture: float = Field(
        default=1.0,
        ge=0.0,
        le=3.0,
        description="Scale of film realism: soft-tissue and lung texture, exposure (gamma, window, heel "
        "effect), collimation and markers. 0 = the flat look of the first phantom.",
    )
    look: Literal["calibrated", "nih_matched", "radiograph", "film"] = Field(
        default=DEFAULT_LOOK,
        description="Framing and film settings (config.LOOKS): 'film' (the default, frozen in the fifth "
        "wave) is the radiograph look with soft tissue, graded heart and abdomen, shoulders, a softer film "
        "and per-view exposure fitted to the NIH sample; 'radiograph' (the fourth wave's default) draws a "
        "sharper film with crisp ribs, clavicles, spine, a heart with anatomical borders, arms and dark "
        "corners; 'calibrated' (frozen 2026-12-01) is the one before; both are kept byte for byte; "
        "'nih_matched' looks closer to the NIH sample by the domain network but is not calibrated "
        "(docs/notes/phantom.md).",
    )

    @field_validator("prevalence")
    @classmethod
    def _check_prevalence(cls, v: dict[str, float]) -> dict[str, float]:
        for name, p in v.items():
            finding_index(name)  # LabelError (a ValueError) naming an unknown finding
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"prevalence of {name!r} must be within [0, 1], got {p}")
        return {k: float(p) for k, p in v.items()}

    def finding_rate(self, name: str) -> float:
        """Overall target prevalence of a finding (override or NIH's)."""
        return self.prevalence.get(name, NIH_PREVALENCE[name])

    def cardiomegaly_rate(self, gender: str, view: str) -> float:
        """Cardiomegaly rate in a (gender, view) group: NIH's, scaled to any override."""
        base = NIH_CARDIOMEGALY_RATE[(gender, view)]
        if CARDIOMEGALY not in self.prevalence:
            return base
        return min(1.0, base * self.prevalence[CARDIOMEGALY] / NIH_PREVALENCE[CARDIOMEGALY])
