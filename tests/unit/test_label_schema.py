"""Label schemas: datasets and models carry theirs; networks are sized from it; requests are
checked against the model's own labels; NIH's schema stays the default for older artifacts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gdgan.data.dataset import ImageDataset, load_dataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.labels import FINDINGS, NIH_SCHEMA, SCHEMA_KEY, LabelError, LabelSchema, schema_of
from gdgan.store.local import LocalStore
from gdgan.training.api import train
from gdgan.training.sampling import label_mix, load_generator

FAST = {"steps": 3, "checkpoint_every": 2, "batch_size": 8, "ngf": 8, "ndf": 8}
VIEW_ABC = LabelSchema(general=("view",), findings=("A", "B", "C"))
NONE_XY = LabelSchema(general=(), findings=("X", "Y"))


def test_schema_values_and_errors() -> None:
    assert NIH_SCHEMA.findings == FINDINGS and NIH_SCHEMA.general_columns == ("gender=F", "view=AP")
    assert NIH_SCHEMA.groups() == ((0, 0), (0, 1), (1, 0), (1, 1))
    assert [NIH_SCHEMA.group_key(g) for g in NIH_SCHEMA.groups()] == ["M/PA", "M/AP", "F/PA", "F/AP"]
    assert VIEW_ABC.groups() == ((0,), (1,)) and VIEW_ABC.group_key((1,)) == "AP"
    assert NONE_XY.groups() == ((),) and NONE_XY.group_key(()) == "all"
    assert LabelSchema.from_dict(VIEW_ABC.to_dict()) == VIEW_ABC
    assert schema_of({}) == NIH_SCHEMA and schema_of({SCHEMA_KEY: NONE_XY.to_dict()}) == NONE_XY
    with pytest.raises(LabelError, match=r"unknown finding 'Cardiomegaly'.*A, B, C"):
        VIEW_ABC.finding_index("Cardiomegaly")
    with pytest.raises(LabelError, match="no 'gender' label"):
        VIEW_ABC.check_general("gender", "F")
    with pytest.raises(LabelError, match="unknown view 'LL'"):
        VIEW_ABC.check_general("view", "LL")
    with pytest.raises(LabelError, match="order"):
        LabelSchema(general=("view", "gender"))
    with pytest.raises(LabelError, match="repeat"):
        LabelSchema(findings=("A", "A"))
    with pytest.raises(LabelError, match="bad finding name"):
        LabelSchema(findings=("A|B",))
    assert (
        VIEW_ABC.decode(VIEW_ABC.encode(["C", "A"])) == "A|C" and VIEW_ABC.decode([0, 0, 0]) == "No Finding"
    )


def _relabel(ds: ImageDataset, schema: LabelSchema, seed: int) -> ImageDataset:
    rng = np.random.default_rng(seed)
    labels = dict(ds.labels)
    labels["findings"] = (rng.random((len(ds), schema.n_findings)) < 0.3).astype(np.uint8)
    if not schema.has("gender"):
        labels["gender"] = np.zeros(len(ds), np.uint8)
    if not schema.has("view"):
        labels["view"] = np.zeros(len(ds), np.uint8)
    return ImageDataset(images=np.asarray(ds.images), labels=labels, config={"source": "test"}, schema=schema)


def test_label_mix_groups_follow_the_schema() -> None:
    general = np.array([[0], [1], [1], [1]], np.float32)
    detail = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0]], np.float32)
    mix = label_mix(general, detail, VIEW_ABC)
    assert mix["A"] == {"PA": 1, "AP": 1} and mix["No Finding"] == {"PA": 0, "AP": 1}
    assert mix["all"] == {"PA": 1, "AP": 3}
    assert label_mix(np.zeros((3, 0), np.float32), detail[:3, :2], NONE_XY)["X"] == {"all": 2}


@pytest.fixture(scope="module")
def store_with_schemas(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalStore, dict[str, str]]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("schemas")
    store = LocalStore(root / "store", cache_dir=root / "cache")
    base = make_phantom(PhantomConfig(n=80, size=32, seed=3))
    ids: dict[str, str] = {}
    for name, schema in (("view_abc", VIEW_ABC), ("none_xy", NONE_XY)):
        ds = _relabel(base, schema, seed=len(name))
        ds.save(store)
        assert ds.id is not None
        ids[f"{name}:dataset"] = ds.id
        res = train("gdgan", ds.id, store=store, preset="tiny", overrides=FAST, device="cpu")
        ids[f"{name}:gdgan"] = res.model_ids["gdgan"]
        assert all(math.isfinite(v) for v in res.final_losses["stage1"].values())
    res = train("acgan", ids["view_abc:dataset"], store=store, preset="tiny", overrides=FAST, device="cpu")
    ids["view_abc:acgan"] = res.model_ids["acgan"]
    return store, ids


def test_dataset_records_and_reloads_its_schema(
    store_with_schemas: tuple[LocalStore, dict[str, str]],
) -> None:
    store, ids = store_with_schemas
    ds = load_dataset(store, ids["view_abc:dataset"])
    assert ds.schema == VIEW_ABC and ds.general().shape == (80, 1) and ds.detail().shape == (80, 3)
    counts = store.manifest(ds.id).meta["counts"]
    assert (
        counts["gender"] == {}
        and set(counts["view"]) == {"PA", "AP"}
        and set(counts["findings"]) == {"A", "B", "C"}
    )
    none = load_dataset(store, ids["none_xy:dataset"])
    assert none.general().shape == (80, 0) and store.manifest(none.id).meta["counts"]["group"] == {}


def test_models_are_sized_by_and_carry_the_schema(
    store_with_schemas: tuple[LocalStore, dict[str, str]],
) -> None:
    store, ids = store_with_schemas
    g = load_generator(store, ids["view_abc:gdgan"], device="cpu")
    assert (
        g.schema == VIEW_ABC and store.manifest(ids["view_abc:gdgan"]).meta[SCHEMA_KEY] == VIEW_ABC.to_dict()
    )
    assert g.g1 is not None and g.g1.fc.in_features == g.nz + 1  # one general column (view)
    assert g.g2 is not None and g.g2.inp[0].in_channels == 1 + 3  # image + three findings
    b = g.sample(6, finding="B", view="AP", seed=1)
    assert b.images.shape == (6, 32, 32) and (b.findings[:, 1] == 1).all() and (b.view == 1).all()
    assert {r["gender"] for r in b.label_rows()} == {""} and b.label_rows()[0]["finding_labels"] == "B"
    with pytest.raises(LabelError, match=r"unknown finding 'Cardiomegaly'.*A, B, C"):
        g.sample(1, finding="Cardiomegaly")
    with pytest.raises(LabelError, match="no 'gender' label"):
        g.sample(1, finding="A", gender="F")
    a = load_generator(store, ids["view_abc:acgan"], device="cpu")
    assert a.acgan is not None and a.acgan.fc.in_features == a.nz + 1 + 3
    assert a.sample(2, finding="C", seed=0).findings[:, 2].all()
    u = load_generator(store, ids["none_xy:gdgan"], device="cpu")
    assert u.g1 is not None and u.g1.fc.in_features == u.nz  # unconditional stage 1
    assert u.sample(3, finding="Y", seed=2).label_rows()[0] == {
        "finding_labels": "Y",
        "gender": "",
        "view": "",
    }
    # same seed, same images: the schema changes nothing about determinism
    assert np.array_equal(u.sample(3, finding="Y", seed=2).images, u.sample(3, finding="Y", seed=2).images)
