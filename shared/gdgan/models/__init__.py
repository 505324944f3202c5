"""Networks: GDGAN (two stages) and the ACGAN baseline. Importing this never touches CUDA."""

from gdgan.models.acgan import N_ACGAN_LABELS, acgan_labels, build_acgan
from gdgan.models.gdgan import (
    Critic,
    GanConfig,
    Generator,
    Refiner,
    build_stage1,
    build_stage2,
    from_uint8,
    to_uint8,
)

__all__ = [
    "N_ACGAN_LABELS",
    "Critic",
    "GanConfig",
    "Generator",
    "Refiner",
    "acgan_labels",
    "build_acgan",
    "build_stage1",
    "build_stage2",
    "from_uint8",
    "to_uint8",
]
