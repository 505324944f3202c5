"""The generator's model cache: one load per model under concurrent first requests, an LRU of
``size`` models, and no per-model state left behind for a model that is not loading (real stored
ACGANs, real loads; nothing mocked)."""

from __future__ import annotations

import threading

import pytest
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.store import StoreError
from gdgan.store.local import LocalStore

from services.generator.models import ModelCache


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalStore, list[str]]:
    import torch
    from gdgan.training.api import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cache-models")
    store = LocalStore(root / "store", cache_dir=root / "cache")
    ds = make_phantom(PhantomConfig(n=64, size=32, seed=0))
    ds.save(store)
    ids = []
    for seed in range(3):
        res = train(
            "acgan", ds, store=store, preset="tiny", overrides={"steps": 1, "seed": seed}, device="cpu"
        )
        ids.append(str(res.model_id))
    return store, ids


def test_locks_live_only_while_a_model_loads(models: tuple[LocalStore, list[str]]) -> None:
    store, ids = models
    cache = ModelCache(store, size=2, alias_ttl_s=60, device="cpu")
    for mid in [*ids, ids[0], ids[1]]:
        assert cache.get(mid).model_id == mid
        assert cache.loading() == []  # nothing kept per model once its load is over
    assert cache.loaded() == [ids[0], ids[1]] and cache.loads == 5  # 0, 1, 2, then 0 and 1 again (evicted)
    for i in range(50):  # ids that never load (unknown, malformed): nothing kept either
        with pytest.raises(StoreError):
            cache.get(f"acgan-20261202-{i:010x}" if i % 2 else f"Bad/{i}")
    assert cache.loading() == []
    assert cache.loaded() == [ids[0], ids[1]]


def test_concurrent_first_requests_share_one_load(models: tuple[LocalStore, list[str]]) -> None:
    store, ids = models
    cache = ModelCache(store, size=2, alias_ttl_s=60, device="cpu")
    start = threading.Barrier(8)
    got: list[str] = []

    def request() -> None:
        start.wait()
        got.append(cache.get(ids[2]).model_id)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == [ids[2]] * 8
    assert cache.loads == 1
    assert cache.loading() == []
