"""Request and response models of the REST API (gateway and generator).

Every value a client sends is checked here, before any job or model is touched, so a bad request
is a 422 that names the field (pydantic's ``loc``) and never reaches a worker. Label fields are
``Literal`` types so the OpenAPI document lists the allowed names (and schemathesis can generate
valid ones).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gdgan.labels import GENDERS, NIH_SCHEMA, NO_FINDING, VIEWS, LabelSchema
from gdgan.store.base import ID_RE

# Any name: the findings a request may use are the model's (or dataset's) own label schema, checked
# against it where the model is known (generator: 422 naming the label and listing the model's).
FindingName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[^|]+$", examples=["Cardiomegaly", "Effusion"])
]
Gender = Literal[GENDERS]  # type: ignore[valid-type]
View = Literal[VIEWS]  # type: ignore[valid-type]
Preset = Literal["tiny", "demo", "paper"]
ModelKind = Literal["gdgan", "stage1", "stage2", "acgan"]
Strategy = Literal["none", "undersample", "oversample", "acgan", "gdgan"]
STRATEGIES: tuple[str, ...] = ("none", "undersample", "oversample", "acgan", "gdgan")
JobType = Literal["ingest", "train", "evaluate", "generate"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ImageFormat = Literal["zip", "png", "json"]
SEED_MAX = 2**32 - 1

ArtifactId = Annotated[
    str, Field(pattern=ID_RE.pattern, max_length=96, examples=["dataset-20260101-0123456789"])
]


def utcnow() -> str:
    return datetime.now(UTC).isoformat()


class _Strict(BaseModel):
    """Unknown fields are an error: a typo ('seeed') must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------
# datasets
class PhantomDatasetRequest(_Strict):
    """Synthetic phantom radiographs with NIH's label mix (no files needed)."""

    source: Literal["phantom"]
    n: int = Field(default=8000, ge=16, le=200_000, title="Images", description="Number of images.")
    size: Literal[32, 64, 128, 256] = 64
    seed: int = Field(default=0, ge=0, le=SEED_MAX)


_AgeBand = Annotated[
    bool,
    Field(
        description="Add the age band (edges: GDGAN_AGE_BAND_EDGES) to the general labels; "
        "images without an age are left out.",
    ),
]


class NihDatasetRequest(_Strict):
    """NIH ChestX-ray14: Data_Entry CSV + PNG folder."""

    source: Literal["nih"]
    csv: str = Field(min_length=1, max_length=1000, description="Data_Entry CSV, inside GDGAN_IMPORT_DIR.")
    images: str = Field(min_length=1, max_length=1000, description="Image folder, inside GDGAN_IMPORT_DIR.")
    size: Literal[32, 64, 128, 256] = 64
    age_band: _AgeBand = False


_PathField = Annotated[str, Field(min_length=1, max_length=1000, description="Inside GDGAN_IMPORT_DIR.")]
_Size = Literal[32, 64, 128, 256]
_Limit = Annotated[int | None, Field(default=None, ge=1, description="Only the first N usable images.")]
_Uncertainty = Literal["ones", "zeros", "ignore"]
_Laterals = Literal["skip", "keep"]
_General = Literal["auto"] | list[Literal["gender", "view", "age_band"]]
_Findings = Annotated[list[FindingName] | None, Field(default=None, max_length=500)]


class ChexpertDatasetRequest(_Strict):
    """CheXpert: train.csv/valid.csv (or their folder) + images; uncertain labels by ``uncertainty``."""

    source: Literal["chexpert"]
    csv: _PathField
    images: _PathField
    size: _Size = 64
    uncertainty: _Uncertainty = Field(default="ones", description="U-Ones, U-Zeros, or leave out.")
    laterals: _Laterals = "skip"
    findings: _Findings = None
    limit: _Limit = None
    age_band: _AgeBand = False


class MimicDatasetRequest(_Strict):
    """MIMIC-CXR-JPG: metadata + CheXpert-style labels [+ MIMIC-IV patients, split] joined on ids."""

    source: Literal["mimic"]
    metadata: _PathField
    labels: _PathField
    images: _PathField
    patients: _PathField | None = None
    split: _PathField | None = None
    size: _Size = 64
    uncertainty: _Uncertainty = "ones"
    laterals: _Laterals = "skip"
    findings: _Findings = None
    limit: _Limit = None
    age_band: _AgeBand = False


class PadchestDatasetRequest(_Strict):
    """PadChest: its label-list CSV + 16-bit PNGs; findings are the labels the CSV uses."""

    source: Literal["padchest"]
    csv: _PathField
    images: _PathField
    size: _Size = 64
    laterals: _Laterals = "skip"
    findings: _Findings = None
    min_count: int = Field(default=1, ge=1)
    limit: _Limit = None
    age_band: _AgeBand = False


class VindrDatasetRequest(_Strict):
    """VinDr-CXR: DICOM images + per-radiologist labels merged by ``merge``."""

    source: Literal["vindr"]
    labels: _PathField
    images: _PathField
    test_labels: _PathField | None = None
    size: _Size = 64
    merge: Literal["majority", "any"] = Field(default="majority", description="> half, or >= 1 reader.")
    general: _General = "auto"
    limit: _Limit = None
    age_band: _AgeBand = False


class CsvDatasetRequest(_Strict):
    """Any CSV; ``mapping`` as in docs/notes/data.md (path, findings.list|columns, sex, view, ...)."""

    source: Literal["csv"]
    csv: _PathField
    images: _PathField
    mapping: dict[str, Any]
    size: _Size = 64
    general: _General = "auto"
    limit: _Limit = None
    age_band: _AgeBand = False


class FolderDatasetRequest(_Strict):
    """A tree of class folders (PNG, JPEG or DICOM); train/ and test/ on top keep that split."""

    source: Literal["folder"]
    root: _PathField
    finding: FindingName | None = Field(default=None, description="Class folders are true/false for it.")
    size: _Size = 64
    general: _General = "auto"
    limit: _Limit = None
    age_band: _AgeBand = False


AdapterDatasetRequest = (
    ChexpertDatasetRequest
    | MimicDatasetRequest
    | PadchestDatasetRequest
    | VindrDatasetRequest
    | CsvDatasetRequest
    | FolderDatasetRequest
)
DatasetRequest = Annotated[
    PhantomDatasetRequest | NihDatasetRequest | AdapterDatasetRequest, Field(discriminator="source")
]


def dataset_request_models() -> tuple[type[BaseModel], ...]:
    """The request model of every dataset source, in the order a client should offer them."""
    return (
        PhantomDatasetRequest,
        NihDatasetRequest,
        ChexpertDatasetRequest,
        MimicDatasetRequest,
        PadchestDatasetRequest,
        VindrDatasetRequest,
        CsvDatasetRequest,
        FolderDatasetRequest,
    )


class DatasetSource(BaseModel):
    source: str
    description: str = ""
    path_fields: list[str] = Field(
        default_factory=list, description="Fields naming files in GDGAN_IMPORT_DIR."
    )
    json_schema: dict[str, Any] = Field(description="JSON Schema of this source's POST /v1/datasets body.")


class DatasetSources(BaseModel):
    sources: list[DatasetSource]


class DatasetCreated(BaseModel):
    job_id: str
    dataset_id: str


class LabelSchemaOut(BaseModel):
    """A dataset's or model's labels: general labels present (maybe none), findings in order, and
    the values each general label takes (an age band's come from the edges it was ingested with)."""

    general: list[str] = Field(default_factory=lambda: list(NIH_SCHEMA.general))
    findings: list[str] = Field(default_factory=lambda: list(NIH_SCHEMA.findings))
    values: dict[str, list[str]] = Field(default_factory=NIH_SCHEMA.general_values)
    age_edges: list[int] = Field(default_factory=list, description="Age band edges in years, if any.")

    @classmethod
    def of(cls, schema: LabelSchema) -> LabelSchemaOut:
        return cls(**schema.to_dict(), values=schema.general_values())


class DatasetSummary(BaseModel):
    id: str
    created: str
    config: dict[str, Any]
    n: int | None = None
    size: int | None = None
    labels: LabelSchemaOut = Field(default_factory=LabelSchemaOut)


class DatasetDetail(DatasetSummary):
    counts: dict[str, Any] = Field(description="Counts per label over the whole set.")
    splits: dict[str, dict[str, Any]] = Field(description="Counts per label in train/val/test (seed 0).")


class DeletedArtifact(BaseModel):
    id: str
    kind: str = Field(description="Artifact kind; empty for the leftovers of an interrupted deletion.")
    bytes: int
    created: str = ""
    run_id: str | None = Field(default=None, description="Checkpoints: the training run they belong to.")


class DatasetDeletion(BaseModel):
    root: str = Field(description="The dataset deleted (or that would be).")
    dry_run: bool
    artifacts: list[DeletedArtifact] = Field(
        description="Everything removed, in deletion order: derived artifacts first, the dataset last."
    )
    counts: dict[str, int] = Field(description="Artifacts per kind.")
    total_bytes: int
    resumed: list[str] = Field(default_factory=list, description="Ids an interrupted deletion had left.")


# --------------------------------------------------------------------------------------------
# jobs
class TrainRequest(_Strict):
    dataset_id: ArtifactId
    model: ModelKind = "gdgan"
    preset: Preset = "demo"
    split_seed: int = Field(default=0, ge=0, le=SEED_MAX)
    overrides: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields to override.")
    stage1_model: ArtifactId | None = Field(default=None, description="Stage-1 model (model=stage2 only).")
    nproc_per_node: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Data-parallel ranks (torchrun, DDP) on the trainer's machine; the global "
        "batch_size must divide by it. 1 = one process.",
    )


class EvaluateRequest(_Strict):
    dataset_id: ArtifactId
    gdgan: ArtifactId | None = Field(default=None, description="GDGAN bundle id; null = train one per split.")
    acgan: ArtifactId | None = Field(default=None, description="ACGAN id; null = train one per split.")
    repeats: int = Field(default=3, ge=1, le=10)
    preset: Preset = "demo"
    finding: FindingName = "Cardiomegaly"
    strategies: list[Strategy] = Field(default_factory=lambda: list(STRATEGIES), min_length=1)

    @field_validator("strategies")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("strategies must not repeat")
        return v


def _check_model_ref(v: str) -> str:
    from gdgan.catalog import ALIASES

    if v in ALIASES or ID_RE.fullmatch(v):
        return v
    raise ValueError(f"model must be an alias ({', '.join(ALIASES)}) or a model id, got {v[:100]!r}")


class _LabelRequest(_Strict):
    model: str = Field(
        default="gdgan",
        max_length=96,
        description="An alias (gdgan, acgan, stage1, stage2: the latest of that kind) or a model id.",
    )
    finding: FindingName | list[FindingName] | Literal["No Finding"] | None = Field(
        default=None, description="A finding, a list of findings, or null / 'No Finding' for none."
    )
    gender: Gender | None = Field(default=None, description="null = drawn from the finding's real mix.")
    view: View | None = Field(default=None, description="null = drawn from the finding's real mix.")
    age_band: str | None = Field(
        default=None,
        max_length=16,
        examples=["40-59"],
        description="An age band of the model's schema (GET /v1/models: labels.values.age_band); "
        "null = drawn from the finding's real mix.",
    )
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX, description="null = a random seed (returned).")

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return _check_model_ref(v)

    @field_validator("finding")
    @classmethod
    def _finding(cls, v: Any) -> Any:
        if v == NO_FINDING:
            return None
        if isinstance(v, list):
            if len(set(v)) != len(v):
                raise ValueError("findings must not repeat")
            return v or None
        return v


class GenerateRequest(_LabelRequest):
    """Synchronous generation (generator service). The cap on ``n`` is GDGAN_GENERATE_MAX_N."""

    n: int = Field(default=16, ge=1, description="Images to generate (1..GDGAN_GENERATE_MAX_N).")
    stage: Literal[1, 2] = Field(default=2, description="GDGAN only: 1 = stage-1 (general) images.")
    format: ImageFormat = "zip"

    @field_validator("n")
    @classmethod
    def _cap(cls, v: int) -> int:
        from gdgan.settings import get_settings

        cap = get_settings().generate_max_n
        if v > cap:
            raise ValueError(f"at most {cap} images per request (GDGAN_GENERATE_MAX_N)")
        return v


class GenerateJobRequest(_LabelRequest):
    """Asynchronous generation: large sets become a stored 'synthetic' artifact."""

    n: int = Field(default=1000, ge=1, le=100_000)
    stage: Literal[1, 2] = 2


class JobCreated(BaseModel):
    job_id: str
    status: JobStatus = "queued"


class JobProgress(BaseModel):
    """``fraction`` and ``eta_s`` are the whole job's (one bar across its phases); ``step``/``total``
    and ``phase_fraction`` are the current phase's, ``phases`` the job's phases in order."""

    phase: str = ""
    step: int = 0
    total: int = 0
    fraction: float = 0.0
    eta_s: float | None = None
    phase_fraction: float | None = None
    phases: list[str] = Field(default_factory=list)
    losses: dict[str, float] = Field(default_factory=dict)
    images_per_s: float | None = None
    message: str = ""
    worker: str = Field(default="", description="host:pid:task of the worker that reported it.")


class RunningOn(BaseModel):
    """A worker running (part of) a job, read from the heartbeats when the record is served."""

    part: str | None = None
    worker: str = Field(description="Celery node name of the worker.")
    since: str = Field(description="When this worker took the task.")
    heartbeat_age_s: float | None = Field(description="Seconds since its last heartbeat; null = none left.")
    stalled: bool = Field(description="Three heartbeats missed; redelivered after GDGAN_WORKER_DEAD_AFTER_S.")


class JobRecord(BaseModel):
    """The job record kept in Redis (and returned by GET /v1/jobs/{id})."""

    id: str
    type: JobType
    status: JobStatus = "queued"
    params: dict[str, Any] = Field(default_factory=dict)
    progress: JobProgress = Field(default_factory=JobProgress)
    created: str = Field(default_factory=utcnow)
    started: str | None = None
    finished: str | None = None
    updated: str = Field(default_factory=utcnow)
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    cancel_requested: bool = False
    attempts: int = 0
    parts: dict[str, str] = Field(default_factory=dict, description="Fan-out parts and their status.")
    owner: str | None = Field(
        default=None, description="Id (a hash) of the token that created it; it and admin may cancel it."
    )
    running_on: list[RunningOn] = Field(
        default_factory=list, description="Live view of the workers running it (not stored)."
    )
    stalled: bool = Field(default=False, description="Running, but a worker stopped sending heartbeats.")

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class JobList(BaseModel):
    jobs: list[JobRecord]


class CancelResponse(BaseModel):
    job_id: str
    status: JobStatus
    cancel_requested: bool


# --------------------------------------------------------------------------------------------
# models and reports
class ModelSummary(BaseModel):
    id: str
    kind: str
    created: str
    dataset_id: str | None = None
    preset: str | None = None
    labels: LabelSchemaOut = Field(default_factory=LabelSchemaOut, description="The model's label schema.")


class ModelDetail(ModelSummary):
    config: dict[str, Any]
    meta: dict[str, Any]
    parents: list[str]
    lineage: list[dict[str, Any]] = Field(description="Ancestors, nearest first: id, kind, created.")
    files: dict[str, int] = Field(description="Payload file sizes in bytes.")


class LossCurves(BaseModel):
    """``phases``: per training phase (stage1, stage2, acgan), ``step`` and one list per loss term;
    ``quality``: the same for the quality harness's measures, when the run recorded them."""

    model_id: str
    phases: dict[str, dict[str, list[float]]]
    quality: dict[str, dict[str, list[float | None]]] = Field(default_factory=dict)


class ModelList(BaseModel):
    models: list[ModelSummary]


class GeneratorModels(BaseModel):
    loaded: list[str]
    available: list[ModelSummary]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
