"""What an ingest read, kept, skipped and why: the report every adapter fills and the dataset
manifest keeps (``meta.ingest``, redacted: its examples quote source file names, which embed
patient ids, and its ``csv_path`` / ``images_root`` are folders of the server or of the user's
machine, which a reader of the store has no business seeing: only their last names are kept)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

MAX_EXAMPLES = 5  # examples kept per problem category in the report
_LINE_RE = re.compile(r"line \d+")  # a redacted example keeps only its "line N"


def _last_names(paths: str) -> str:
    """'/srv/imports/nih/Data_Entry_2017.csv' -> 'Data_Entry_2017.csv'; several (CheXpert's
    train and valid CSVs, joined by ', ') each the same way."""
    return ", ".join(PurePath(p).name for p in paths.split(", ")) if paths else paths


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
@dataclass
class Problem:
    """A category of skipped input: how many, and the first few examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)


@dataclass
class IngestReport:
    """What an ingest read, kept, skipped and why (goes into the dataset manifest's meta)."""

    csv_path: str
    images_root: str
    size: int
    rows: int = 0
    ingested: int = 0
    bad_rows: Problem = field(default_factory=Problem)
    duplicate_rows: Problem = field(default_factory=Problem)
    missing_files: Problem = field(default_factory=Problem)
    corrupt_files: Problem = field(default_factory=Problem)
    implausible_ages: Problem = field(default_factory=Problem)
    unlisted: Problem = field(default_factory=Problem)
    # used by the other adapters (gdgan.data.adapters); always zero for NIH
    unknown_labels: Problem = field(default_factory=Problem)
    excluded: Problem = field(default_factory=Problem)
    missing_general: Problem = field(default_factory=Problem)
    notes: dict[str, Any] = field(default_factory=dict)
    source_modes: dict[str, int] = field(default_factory=dict)
    non_square: int = 0
    chunks: int = 0
    chunks_reused: int = 0
    workers: int = 1
    elapsed_s: float = 0.0
    decode_cpu_s: float = 0.0  # CPU seconds the decoders spent (all workers; resumed chunks included)

    @property
    def skipped(self) -> int:
        return self.rows - self.ingested

    @property
    def images_per_s(self) -> float:
        return self.ingested / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self, *, redact: bool = False) -> dict[str, Any]:
        """The report as plain data; ``redact`` (for the stored manifest) keeps each example's
        ``line N`` only, since examples quote source file names that embed patient ids, and only
        the last name of each path (``Data_Entry_2017.csv``, ``images``), as the dataset's config
        does: the CLI's output and the job's own record still show where the data came from."""
        d = asdict(self)
        if redact:
            d["csv_path"] = _last_names(self.csv_path)
            d["images_root"] = _last_names(self.images_root)
            for v in d.values():
                if isinstance(v, dict) and isinstance(v.get("examples"), list):
                    v["examples"] = [m.group(0) if (m := _LINE_RE.match(ex)) else "-" for ex in v["examples"]]
        d["skipped"] = self.skipped
        d["images_per_s"] = round(self.images_per_s, 1)
        d["elapsed_s"] = round(self.elapsed_s, 3)
        d["decode_cpu_s"] = round(self.decode_cpu_s, 3)
        return d

    def problems(self) -> dict[str, Problem]:
        return {
            "bad rows": self.bad_rows,
            "duplicate rows": self.duplicate_rows,
            "missing files": self.missing_files,
            "corrupt files": self.corrupt_files,
            "implausible ages (kept as unknown)": self.implausible_ages,
            "not in the official lists (kept, official_split=0)": self.unlisted,
            "unknown label values": self.unknown_labels,
            "excluded by request": self.excluded,
            "lacking a general label of the schema": self.missing_general,
        }

    def summary(self) -> str:
        lines = [
            f"ingested {self.ingested} of {self.rows} rows at {self.size}px "
            f"in {self.elapsed_s:.1f}s ({self.images_per_s:.0f} images/s, {self.workers} workers; "
            f"{self.chunks_reused}/{self.chunks} chunks resumed)"
        ]
        for name, p in self.problems().items():
            if p.count:
                lines.append(f"  {name}: {p.count}; e.g. " + "; ".join(p.examples))
        return "\n".join(lines)
