"""Procedural chest radiographs with NIH ChestX-ray14's label schema, prevalences and difficulty.

The phantom stands in for the NIH images wherever they are not on the machine, so it has to
carry the signal the science depends on, and the difficulty too, not just the label table:

* **general labels change the general look** — women have a narrower, shorter thorax and breast
  shadows; AP views magnify the heart, put the scapulae over the lung fields, show poorer
  inspiration, lower contrast, and carry most of the lines, tubes and ECG electrodes;
* **Cardiomegaly is a cardiothoracic ratio (CTR) above 0.5**, but the *label* is text-mined, as
  in NIH: it is wrong at audited rates (PPV, sensitivity), and a share of the errors are
  borderline hearts that readers disagree on. ``gt_ctr`` stays exact; ``gt_cardiomegaly`` is the
  truth and ``label_flipped`` marks the disagreements (``label_noise=0`` gives clean labels);
* **confounders and texture** — devices, poor inspiration, rotation, soft-tissue and lung
  texture, exposure variation, collimation and side markers, as on real films;
* **other findings render** at their NIH rates; **patients have follow-ups** sharing anatomy.

Modules, one concern each: ``config`` (facts, models, :class:`PhantomConfig`), ``labels``
(label mix, truth behind labels, CTR), ``params`` (per-image parameters), ``confounders``
(devices, inspiration, rotation), ``texture`` (noise fields, film), ``anatomy`` (the renderer),
``findings``, ``generate`` (entry points), ``export`` (NIH's on-disk format). Every sources'
figure is listed in docs/notes/phantom.md. Everything random comes from seeded generators:
same config, same images.
"""

from gdgan.data.phantom.anatomy import render
from gdgan.data.phantom.config import (
    ANATOMY,
    CARDIAC,
    CARDIOMEGALY,
    CTR_THRESHOLD,
    NIH_AP_GIVEN_GENDER,
    NIH_CARDIOMEGALY_RATE,
    NIH_FEMALE_FRACTION,
    NIH_IMAGES_PER_PATIENT,
    NIH_PATIENTS,
    NIH_PREVALENCE,
    RENDER_CHUNK_PIXELS,
    Anatomy,
    CardiacModel,
    PhantomConfig,
    PhantomError,
)
from gdgan.data.phantom.export import NIH_CSV_COLUMNS, NIH_CSV_NAME, NIH_IMAGES_PER_FOLDER, write_nih_format
from gdgan.data.phantom.generate import GT_COLUMNS, _pixel_coords, make_phantom, phantom_labels, render_images
from gdgan.data.phantom.texture import Noise

__all__ = [
    "ANATOMY",
    "CARDIAC",
    "CARDIOMEGALY",
    "CTR_THRESHOLD",
    "GT_COLUMNS",
    "NIH_AP_GIVEN_GENDER",
    "NIH_CARDIOMEGALY_RATE",
    "NIH_CSV_COLUMNS",
    "NIH_CSV_NAME",
    "NIH_FEMALE_FRACTION",
    "NIH_IMAGES_PER_FOLDER",
    "NIH_IMAGES_PER_PATIENT",
    "NIH_PATIENTS",
    "NIH_PREVALENCE",
    "RENDER_CHUNK_PIXELS",
    "Anatomy",
    "CardiacModel",
    "Noise",
    "PhantomConfig",
    "PhantomError",
    "_pixel_coords",
    "make_phantom",
    "phantom_labels",
    "render",
    "render_images",
    "write_nih_format",
]
