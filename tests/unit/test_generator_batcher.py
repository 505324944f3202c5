"""The generation service's batcher with a real generator network and a real Prometheus registry:
requests cancelled while waiting are dropped from the forward pass and from the metrics."""

from __future__ import annotations

import asyncio

import numpy as np
import torch
from gdgan.models.gdgan import GanConfig, build_stage1, build_stage2
from gdgan.training.sampling import LoadedGenerator
from prometheus_client import CollectorRegistry

from services.generator.batcher import Batcher, BatcherMetrics


def _gen() -> LoadedGenerator:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = GanConfig(size=32, ngf=8, ndf=8)
    return LoadedGenerator("toy", "gdgan", cfg, {}, g1=build_stage1(cfg)[0], g2=build_stage2(cfg)[0])


def _value(registry: CollectorRegistry, name: str) -> float:
    v = registry.get_sample_value(name)
    assert v is not None, name
    return v


def test_cancelled_requests_are_not_counted() -> None:
    """Three requests (3 + 5 + 2 images) join one batch; the 5-image one is cancelled while it
    waits. The pass computes 5 images and the metrics say 5 (the old batcher said 10)."""
    gen = _gen()
    registry = CollectorRegistry()

    async def scenario() -> tuple[np.ndarray, np.ndarray]:
        batcher = Batcher(max_batch=64, max_wait_s=0.5, queue_size=8, metrics=BatcherMetrics(registry))
        batcher.start()
        try:
            reqs = [gen.prepare(k, seed=s) for k, s in ((3, 1), (5, 2), (2, 3))]
            tasks = [asyncio.create_task(batcher.submit(gen, 2, r)) for r in reqs]
            await asyncio.sleep(0.05)  # all three queued; the batch stays open for 0.5 s
            tasks[1].cancel()
            a, c = await tasks[0], await tasks[2]
            assert tasks[1].cancelled()
            return a, c
        finally:
            await batcher.stop()

    a, c = asyncio.run(scenario())
    assert a.shape == (3, 32, 32) and c.shape == (2, 32, 32)
    assert _value(registry, "gdgan_generator_images_total") == 5
    assert _value(registry, "gdgan_generator_batch_images_count") == 1  # one forward pass
    assert _value(registry, "gdgan_generator_batch_images_sum") == 5
    assert _value(registry, "gdgan_generator_batch_requests_sum") == 2
    # the survivors got their own images: within 1 grey level of each made alone (the guarantee)
    for got, (k, seed) in ((a, (3, 1)), (c, (2, 3))):
        alone = gen.sample(k, seed=seed).images
        assert np.abs(got.astype(int) - alone.astype(int)).max() <= 1
