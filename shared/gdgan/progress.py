"""One progress record for every long task: the CLI draws it, the job system publishes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Progress:
    phase: str  # e.g. "stage1", "stage2", "ingest", "classifier none r0"
    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    images_per_s: float | None = None
    eta_s: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fraction"] = self.fraction
        return d


class Cancelled(RuntimeError):
    """A long task stopped because its ``should_stop`` flag said so (not a failure).

    Every task-specific cancel exception derives from it, so the job runner recognises a
    cancellation by type."""


ProgressCallback = Callable[[Progress], None]
# (phase, step, PNG of the sample grid): a training run's live preview
PreviewCallback = Callable[[str, int, bytes], None]
StopFlag = Callable[[], bool]


def no_progress(_: Progress) -> None:
    """Default callback: report nothing."""


def never_stop() -> bool:
    return False
