"""Generators loaded lazily from the store (hash-verified by the store), kept in an LRU cache.

Aliases ('gdgan', 'acgan') are re-resolved after GDGAN_GENERATE_ALIAS_TTL_S seconds, so a newly
registered latest model is served without a restart; the old one ages out of the LRU.

Concurrent first requests for one model share one load (a lock per model id). That lock exists only
while a load of its model is in flight: kept for every id ever requested, the locks would grow
without bound on a long-running service (every model ever trained, every unknown id tried).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from gdgan.catalog import ALIASES, resolve_model
from gdgan.store import ArtifactStore
from gdgan.training.sampling import LoadedGenerator, load_generator


class _Loading:
    """One model's load in flight: its lock and how many requests wait for (or hold) it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class ModelCache:
    def __init__(
        self, store: ArtifactStore, size: int, alias_ttl_s: float, device: str | None = None
    ) -> None:
        self.store = store
        self.size = size
        self.alias_ttl_s = alias_ttl_s
        self.device = device
        self._models: OrderedDict[str, LoadedGenerator] = OrderedDict()
        self._aliases: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, _Loading] = {}
        self.loads = 0

    def resolve(self, ref: str) -> str:
        """Alias or id -> model id (raises ModelNotFound, a 404)."""
        if ref in ALIASES:
            hit = self._aliases.get(ref)
            if hit and time.monotonic() - hit[0] < self.alias_ttl_s:
                return hit[1]
            mid = resolve_model(self.store, ref).id
            self._aliases[ref] = (time.monotonic(), mid)
            return mid
        return resolve_model(self.store, ref).id

    def get(self, model_id: str) -> LoadedGenerator:
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            loading = self._loading.setdefault(model_id, _Loading())
            loading.users += 1
        try:
            with loading.lock:  # one load per model even under concurrent first requests
                with self._lock:
                    if model_id in self._models:
                        return self._models[model_id]
                gen = load_generator(self.store, model_id, device=self.device)
                with self._lock:
                    self._models[model_id] = gen
                    self.loads += 1
                    while len(self._models) > self.size:
                        self._models.popitem(last=False)
                return gen
        finally:
            with self._lock:  # the last one out drops the lock, whether the load worked or not
                loading.users -= 1
                if loading.users == 0:
                    del self._loading[model_id]

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def loading(self) -> list[str]:
        """Model ids with a load in flight (the only ones holding a lock)."""
        with self._lock:
            return list(self._loading)
