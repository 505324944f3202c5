"""All configuration in one typed place.

Every value comes from an environment variable with the ``GDGAN_`` prefix (or a ``.env`` file).
Unknown ``GDGAN_*`` variables and malformed values fail at start-up with a message that names
the variable, because a typo in a deployment manifest should stop a service, not silently fall
back to a default.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "GDGAN_"
SCOPES = ("read", "generate", "train", "admin")
"""What a token may do: read (GETs, event streams), generate (images now or as a job), train
(datasets, training and evaluation jobs), admin (everything, anyone's job, /metrics)."""


class SettingsError(ValueError):
    """A configuration value is unknown or malformed; the message names the variable."""


def _default_data_dir() -> Path:
    return Path(user_data_dir("gdgan", appauthor=False))


def _default_cache_dir() -> Path:
    return Path(user_cache_dir("gdgan", appauthor=False))


class Settings(BaseSettings):
    """Service and library configuration (environment variables ``GDGAN_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", env_file=None)

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(default_factory=_default_data_dir, description="Root for local state.")
    cache_dir: Path = Field(default_factory=_default_cache_dir, description="Downloaded artifacts.")
    store_url: str = Field(
        default="",
        description="file:///path (default: <data_dir>/store) or s3://bucket[/prefix].",
    )
    s3_endpoint: str = Field(default="", description="host:port or http(s)://host:port of the S3 API.")
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = ""
    s3_secure: bool | None = Field(default=None, description="TLS; default from the endpoint scheme.")
    s3_retry_budget_s: float = Field(
        default=120.0,
        ge=0,
        description="How long one store call of a worker or the CLI waits for an S3 endpoint that refuses "
        "connections, answers 5xx or cuts a transfer (a restart) before failing with StoreUnavailable. "
        "0 = fail at the first error.",
    )
    s3_service_retry_budget_s: float = Field(
        default=1.0,
        ge=0,
        description="The same wait for the gateway and the generator: an HTTP request answers 503 + "
        "Retry-After soon rather than holding its connection through an S3 restart.",
    )
    s3_retry_backoff_s: float = Field(
        default=0.5, gt=0, description="First pause between S3 attempts; it doubles with each attempt."
    )
    s3_retry_backoff_max_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest pause between S3 attempts. Keep it well under GDGAN_JOB_HANG_TIMEOUT_S: "
        "a task asleep between attempts shows the same stack, like a hung one.",
    )
    # --- garbage collection (gdgan.store.governance; `gdgan store gc`) ----------------------------
    gc_grace_s: float = Field(
        default=24 * 3600.0,
        ge=0,
        description="A partial upload (files, no manifest) younger than this may still be in progress: "
        "`gdgan store gc` leaves it.",
    )
    checkpoint_ttl_s: float = Field(
        default=14 * 24 * 3600.0,
        ge=0,
        description="`gdgan store gc` removes training checkpoints older than this (a run not resumed "
        "by then starts afresh); run records and finished-phase markers stay.",
    )

    # --- coordination ----------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    job_ttl_s: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="Seconds a finished job's record, events and parts stay in Redis after it ends; a "
        "queued or running job never expires (gdgan.jobs.records).",
    )
    job_events_ttl_s: int = Field(
        default=3600,
        gt=0,
        description="Seconds a finished job's event stream is kept (at most GDGAN_JOB_TTL_S); only a "
        "client resuming with Last-Event-ID reads it, and it is most of a finished job's Redis memory.",
    )
    job_events_maxlen: int = Field(
        default=2000,
        ge=10,
        description="Events kept per job stream (approximate cap); older progress lines are trimmed.",
    )
    visibility_timeout_s: int = Field(default=12 * 3600, gt=0, description="Redis redelivery window.")
    job_lease_s: float = Field(
        default=30.0, gt=0, description="A running job's owner lease; a redelivered task waits it out."
    )
    job_progress_interval_s: float = Field(
        default=0.5, ge=0, description="Minimum seconds between stored progress events of one job."
    )
    job_preview_every_steps: int = Field(
        default=50, ge=0, description="A training job's live sample grid, every this many steps; 0 = none."
    )
    # --- liveness (gdgan.jobs.heartbeat) ---------------------------------------------------------
    worker_heartbeat_s: float = Field(
        default=5.0, gt=0, description="Seconds between a worker's heartbeats and its stalled-job scans."
    )
    worker_dead_after_s: float = Field(
        default=30.0, gt=0, description="A worker silent this long is gone; its tasks are redelivered."
    )
    job_max_redeliveries: int = Field(
        default=3, ge=0, description="Redeliveries of a lost or hung worker's task before its job fails."
    )
    job_hang_timeout_s: float = Field(
        default=900.0,
        ge=0,
        description="A task whose main thread shows the same stack this long is hung: its worker "
        "restarts and the task is redelivered. 0 = off.",
    )
    task_soft_time_limit_s: float = Field(
        default=48 * 3600.0,
        ge=0,
        description="A task running longer is interrupted (SoftTimeLimitExceeded); its job fails. 0 = off.",
    )
    task_time_limit_s: float = Field(
        default=48 * 3600.0 + 600,
        ge=0,
        description="Hard limit: a task still running is failed and its worker restarted. 0 = off.",
    )

    # --- compute ---------------------------------------------------------------------------------
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int = Field(default=0, ge=0, description="torch CPU threads; 0 = library default.")
    ddp_max_restarts: int = Field(
        default=1,
        ge=0,
        description="A distributed training job's restarts of all ranks after one dies (each resumes "
        "from the latest checkpoint); 0 = fail the job at once.",
    )
    ingest_workers: int = Field(default=0, ge=0, description="NIH ingest decoder threads; 0 = CPU count.")
    age_band_edges: str = Field(
        default="40,60",
        description=(
            "Edges (years) of the age-band general label an ingest records when asked for one: "
            "'40,60' gives the bands 0-39, 40-59, 60+. Stored in each dataset's label schema."
        ),
    )
    patient_id_salt: SecretStr = Field(
        default=SecretStr(""),
        description="Salt of the patient-id hash adapters store; empty = a fresh random salt per ingest.",
    )

    # --- services --------------------------------------------------------------------------------
    api_token: SecretStr = Field(
        default=SecretStr(""),
        description="One bearer token with every scope (admin); empty = see api_tokens.",
    )
    api_tokens: SecretStr = Field(
        default=SecretStr(""),
        description='JSON {"<token>": ["read", "generate", "train", "admin"], ...}: tokens and their scopes. '
        "With neither this nor api_token set the API is open (local use only).",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve /metrics without a token; by default it needs the admin scope when auth is on.",
    )
    # --- per-token quotas (0 = no limit), counted in Redis across replicas; off with auth off -----
    quota_concurrent_jobs: int = Field(default=8, ge=0, description="Unfinished jobs one token may have.")
    quota_jobs_per_hour: int = Field(default=120, ge=0, description="Jobs one token may create per hour.")
    quota_images_per_minute: int = Field(
        default=2048, ge=0, description="Images one token may generate per minute (POST /v1/generate)."
    )
    sse_max_streams: int = Field(default=8, ge=1, description="Open event streams per token.")
    sse_max_duration_s: float = Field(
        default=3600.0,
        gt=0,
        description="An event stream closes after this long; clients resume (Last-Event-ID).",
    )
    sse_redis_connections: int = Field(
        default=64, ge=1, description="Redis connections all of one gateway's event streams share."
    )
    gateway_url: str = "http://127.0.0.1:8000"
    generator_url: str = "http://127.0.0.1:8001"
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    generator_port: int = Field(default=8001, ge=1, le=65535)
    generate_max_n: int = Field(default=256, ge=1, le=4096, description="Cap on n per request.")
    generate_max_batch: int = Field(default=64, ge=1)
    generate_max_wait_ms: float = Field(default=10.0, ge=0)
    generate_queue_size: int = Field(default=64, ge=1)
    model_cache_size: int = Field(default=4, ge=1)
    generate_alias_ttl_s: float = Field(
        default=2.0, ge=0, description="Seconds a 'latest' model alias stays resolved in the generator."
    )
    generator_malloc_arenas: int = Field(
        default=2,
        ge=0,
        description="glibc malloc arenas of the generator process (as MALLOC_ARENA_MAX): fewer arenas "
        "hold fewer freed blocks of the many request sizes; 0 = glibc's default (8 per core).",
    )
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    import_dir: Path | None = Field(
        default=None,
        description="The only folder POST /v1/datasets (source nih) may read; default <data_dir>/imports.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    client_reconnects: int = Field(
        default=30,
        ge=0,
        description="Times the CLI reconnects to a gateway that went away while following a job.",
    )
    client_reconnect_interval_s: float = Field(
        default=2.0, gt=0, description="Seconds between the CLI's reconnection attempts."
    )

    # --- evaluation ------------------------------------------------------------------------------
    inception_weights: str = Field(default="", description="Path or store key of Inception-v3 weights.")
    inception_sha256: str = ""

    @field_validator("age_band_edges")
    @classmethod
    def _age_edges(cls, v: str) -> str:
        from gdgan.labels import LabelError, check_age_edges

        try:
            check_age_edges([x for x in v.split(",") if x.strip()])
        except LabelError as exc:
            raise ValueError(f"GDGAN_AGE_BAND_EDGES: {exc}") from None
        return v

    def age_edges(self) -> tuple[int, ...]:
        """:attr:`age_band_edges` as whole years."""
        return tuple(int(x) for x in self.age_band_edges.split(",") if x.strip())

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, v: str) -> str:
        if v and not (v.startswith("file://") or v.startswith("s3://")):
            raise ValueError("must start with file:// or s3://")
        if v.startswith("s3://") and len(v) <= len("s3://"):
            raise ValueError("s3:// URL needs a bucket name")
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    _token_scopes: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _parse_tokens(self) -> Settings:
        """The token -> scopes map, checked at start-up: a typo in a scope must stop the service."""
        import json

        out: dict[str, frozenset[str]] = {}
        raw = self.api_tokens.get_secret_value().strip()
        if raw:
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"GDGAN_API_TOKENS is not JSON ({exc.msg})") from None
            if not isinstance(data, dict) or not data:
                raise ValueError('GDGAN_API_TOKENS must be a JSON object {"<token>": ["read", ...]}')
            for i, (token, scopes) in enumerate(data.items()):
                if not isinstance(token, str) or len(token) < 8:
                    raise ValueError(f"GDGAN_API_TOKENS: token #{i + 1} is shorter than 8 characters")
                if isinstance(scopes, str):
                    scopes = [scopes]
                bad = [s for s in scopes if s not in SCOPES] if isinstance(scopes, list) else [scopes]
                if bad or not scopes:
                    known = ", ".join(SCOPES)
                    msg = f"GDGAN_API_TOKENS: token #{i + 1} has unknown scope(s) {bad}; known: {known}"
                    raise ValueError(msg)
                out[token] = frozenset(scopes)
        single = self.api_token.get_secret_value()
        if single:  # the one-token configuration of earlier releases: every scope
            out[single] = frozenset(SCOPES)
        self._token_scopes = out
        return self

    @property
    def token_scopes(self) -> dict[str, frozenset[str]]:
        """Configured tokens and their scopes; empty = authentication off."""
        return self._token_scopes

    @model_validator(mode="after")
    def _check_s3(self) -> Settings:
        if self.store_url.startswith("s3://") and not self.s3_endpoint:
            raise ValueError("GDGAN_S3_ENDPOINT is required when GDGAN_STORE_URL is s3://")
        if self.worker_dead_after_s <= self.worker_heartbeat_s:
            raise ValueError("GDGAN_WORKER_DEAD_AFTER_S must exceed GDGAN_WORKER_HEARTBEAT_S")
        hang = self.job_hang_timeout_s
        if hang and self.s3_retry_backoff_max_s >= hang:
            raise ValueError(
                "GDGAN_S3_RETRY_BACKOFF_MAX_S must be below GDGAN_JOB_HANG_TIMEOUT_S: a task pausing "
                "between S3 attempts that long would be taken for a hung one"
            )
        soft, hard = self.task_soft_time_limit_s, self.task_time_limit_s
        if soft and hard and hard <= soft:
            raise ValueError("GDGAN_TASK_TIME_LIMIT_S (hard) must exceed GDGAN_TASK_SOFT_TIME_LIMIT_S")
        return self

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or (self.data_dir / "store").resolve().as_uri()


def _check_unknown_env(environ: dict[str, str]) -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default: the process environment), with named errors."""
    env = dict(os.environ if environ is None else environ)
    _check_unknown_env(env)
    try:
        if environ is None:
            return Settings()
        # Explicit mapping: pass values by field name so the process environment is not consulted.
        values = {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        return Settings.model_validate(values)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = err.get("loc") or ()
            name = ENV_PREFIX + str(loc[0]).upper() if loc else "GDGAN settings"
            parts.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(parts)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once. Tests clear it with ``get_settings.cache_clear()``."""
    return load_settings()


_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(setting: str | None = None, source: str | None = None) -> str:
    """``setting`` (else ``GDGAN_DEVICE``) as a torch device string, checked against this machine.

    'auto' picks CUDA when available; 'cuda'/'cuda:N' without a usable GPU is a
    :class:`SettingsError` naming ``source`` (default: ``GDGAN_DEVICE`` when the setting is
    used, else ``device``) instead of a failure deep inside the first tensor op. Only call this
    inside the process that will compute, never in a parent that forks afterwards (CUDA cannot
    survive a fork); ``torch.cuda.is_available()`` does not initialise CUDA.
    """
    name = source or ("GDGAN_DEVICE" if setting is None else "device")
    choice = str(setting or get_settings().device).strip().lower()
    if not _DEVICE_RE.fullmatch(choice):
        raise SettingsError(f"{name}: unknown device {choice!r}; expected auto, cpu, cuda or cuda:N")
    if choice == "cpu":
        return choice
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise SettingsError(f"{name}={choice!r} but CUDA is not available on this machine; use cpu or auto")
    index = int(choice.split(":", 1)[1]) if ":" in choice else 0
    if index >= torch.cuda.device_count():
        raise SettingsError(f"{name}={choice!r} but this machine has {torch.cuda.device_count()} GPU(s)")
    return choice
