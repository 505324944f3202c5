"""Names of the training options that configs validate, kept free of torch.

`TrainConfig` is validated in the gateway on every training request; importing the torch-backed
modules (losses, DiffAugment) there would load ~600 MB into a process that never trains.
"""

from __future__ import annotations

ADV_LOSSES: tuple[str, ...] = ("wgan-gp", "hinge", "ns")
DIFFAUG_POLICIES: tuple[str, ...] = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ("color", "translation"); "" / "none" -> (); unknown -> ValueError."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip() and p.strip().lower() != "none")
    for p in parts:
        if p not in DIFFAUG_POLICIES:
            raise ValueError(f"diffaug: unknown policy {p!r}; known: {', '.join(DIFFAUG_POLICIES)}")
    return parts
