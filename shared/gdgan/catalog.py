"""The model catalog: which artifact kinds are generators, what an alias means, how a reference
resolves, and the short summary the APIs list.

One place, because the gateway, the generation service, the workers and the CLI must agree on
what ``"stage1"`` or a model id refers to; before, each had its own alias set. Torch-free, so the
gateway can import it without loading a network library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gdgan.store import ArtifactNotFound, ArtifactStore, Manifest

if TYPE_CHECKING:
    from gdgan.schemas import ModelSummary

MODEL_KINDS: tuple[str, ...] = ("gdgan", "gdgan-stage1", "gdgan-stage2", "acgan")
# alias -> the kind whose latest artifact it names
ALIASES: dict[str, str] = {
    "gdgan": "gdgan",
    "acgan": "acgan",
    "stage1": "gdgan-stage1",
    "stage2": "gdgan-stage2",
    "gdgan-stage1": "gdgan-stage1",
    "gdgan-stage2": "gdgan-stage2",
}


class ModelNotFound(ArtifactNotFound):
    """No such model (unknown id/alias, or the artifact is not a generator): a 404 in the APIs."""


def resolve_model(store: ArtifactStore, ref: str) -> Manifest:
    """Alias -> the latest model of that kind; an id -> its manifest if it is a model."""
    key = str(ref)
    if key in ALIASES:
        m = store.latest(ALIASES[key])
        if m is None:
            raise ModelNotFound(f"no {ALIASES[key]!r} model in the store yet (alias {key!r}): train one")
        return m
    try:
        m = store.manifest(key)
    except ArtifactNotFound:
        raise ModelNotFound(f"no model {key[:100]!r} in the store") from None
    except ValueError:
        raise ModelNotFound(f"no model {key[:100]!r}: not a valid model id or alias") from None
    if m.kind not in MODEL_KINDS:
        raise ModelNotFound(f"artifact {key!r} is a {m.kind!r}, not a model ({', '.join(MODEL_KINDS)})")
    return m


def _preset_name(preset: Any) -> str | None:
    """Model manifests record the preset's name; reports record the whole preset (a dict)."""
    if isinstance(preset, dict):
        return preset.get("name")
    return preset


def summary(m: Manifest) -> ModelSummary:
    """The list entry of a model or report: id, kind, when, on which dataset, which preset, and
    its label schema."""
    from gdgan.labels import schema_of
    from gdgan.schemas import LabelSchemaOut, ModelSummary

    return ModelSummary(
        id=m.id,
        kind=m.kind,
        created=m.created,
        dataset_id=m.config.get("dataset_id") or m.meta.get("dataset_id"),
        preset=_preset_name(m.config.get("preset") or m.meta.get("preset")),
        labels=LabelSchemaOut.of(schema_of(m.meta)),
    )


def list_models(store: ArtifactStore) -> list[ModelSummary]:
    """Every stored model, newest first."""
    return [summary(m) for m in reversed(store.list()) if m.kind in MODEL_KINDS]
