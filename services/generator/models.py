"""Generators loaded lazily from the store (hash-verified by the store), kept in an LRU cache.

Aliases ('gdgan', 'acgan') are re-resolved after GDGAN_GENERATE_ALIAS_TTL_S seconds, so a newly
registered latest model is served without a restart; the old one ages out of the LRU.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from gdgan.catalog import ALIASES, resolve_model
from gdgan.store import ArtifactStore
from gdgan.training.sampling import LoadedGenerator, load_generator


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
        self._load_locks: dict[str, threading.Lock] = {}
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
            lock = self._load_locks.setdefault(model_id, threading.Lock())
        with lock:  # one load per model even under concurrent first requests
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

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)
