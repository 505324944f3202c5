"""Micro-batching: concurrent requests for the same (model, stage) share one forward pass.

A single consumer takes the first waiting request, then keeps collecting requests for the same
model and stage until the batch holds GDGAN_GENERATE_MAX_BATCH images or GDGAN_GENERATE_MAX_WAIT_MS
has passed, drops requests whose callers went away, runs one forward pass in the (single) compute
thread, and hands each request its slice. Each request's latents and labels come from its own
seed (``LoadedGenerator.prepare``): the same model, seed and request on the same machine and
device give the same bytes; batched with other requests, each pixel is within 1 grey level of the
image made alone (the convolution kernels chosen depend on the batch size; see
``gdgan.training.sampling``). The metrics (images per pass, images generated) count the images
actually computed. The queue is bounded (GDGAN_GENERATE_QUEUE_SIZE requests): when full, ``submit``
raises :class:`QueueFull` and the API answers 503 with Retry-After instead of letting
memory grow. ``max_batch=1`` turns batching off (one request per pass; the benchmark's baseline).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from gdgan.training.sampling import GenRequest, LoadedGenerator
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class QueueFull(RuntimeError):
    pass


@dataclass
class _Item:
    gen: LoadedGenerator
    stage: int
    req: GenRequest
    future: asyncio.Future[np.ndarray]
    t0: float = field(default_factory=time.perf_counter)

    @property
    def key(self) -> tuple[str, int]:
        return (self.gen.model_id, self.stage)


class BatcherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_images = Histogram(
            "gdgan_generator_batch_images",
            "Images per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=registry,
        )
        self.batch_requests = Histogram(
            "gdgan_generator_batch_requests",
            "Requests sharing one forward pass",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
            registry=registry,
        )
        self.forward_seconds = Histogram(
            "gdgan_generator_forward_seconds", "Seconds per forward pass", registry=registry
        )
        self.images = Counter("gdgan_generator_images_total", "Images generated", registry=registry)
        self.rejected = Counter(
            "gdgan_generator_rejected_total", "Requests refused: queue full", registry=registry
        )
        self.queue = Gauge("gdgan_generator_queue_requests", "Requests waiting or running", registry=registry)


class Batcher:
    def __init__(self, max_batch: int, max_wait_s: float, queue_size: int, metrics: BatcherMetrics) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self.metrics = metrics
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._held: deque[_Item] = deque()
        self._pending = 0
        self._task: asyncio.Task[None] | None = None
        # one compute thread: forward passes never compete for the CPU/GPU with each other
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gdgan-forward")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def pending(self) -> int:
        return self._pending

    async def submit(self, gen: LoadedGenerator, stage: int, req: GenRequest) -> np.ndarray:
        if self._pending >= self.queue_size:
            self.metrics.rejected.inc()
            raise QueueFull(f"generator queue full ({self.queue_size} requests)")
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending += 1
        self.metrics.queue.set(self._pending)
        try:
            await self._queue.put(_Item(gen, stage, req, fut))
            return await fut
        finally:
            self._pending -= 1
            self.metrics.queue.set(self._pending)

    async def _next(self, timeout: float | None) -> _Item | None:
        if self._held:
            return self._held.popleft()
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            assert first is not None
            batch = [first]
            total = first.req.n
            deadline = time.perf_counter() + self.max_wait_s
            while total < self.max_batch:
                nxt = await self._next(deadline - time.perf_counter())
                if nxt is None:
                    break
                if nxt.key != first.key or total + nxt.req.n > self.max_batch:
                    self._held.appendleft(nxt)
                    break
                batch.append(nxt)
                total += nxt.req.n
            # a request whose caller went away is dropped before the pass, and so are its images:
            # the metrics count what was computed, not what was asked for
            batch = [b for b in batch if not b.future.cancelled()]
            if not batch:
                continue
            total = sum(b.req.n for b in batch)
            try:
                t0 = time.perf_counter()
                images = await loop.run_in_executor(self._pool, _forward, batch)
                self.metrics.forward_seconds.observe(time.perf_counter() - t0)
            except Exception as exc:
                for b in batch:
                    if not b.future.done():
                        b.future.set_exception(exc)
                continue
            self.metrics.batch_images.observe(total)
            self.metrics.batch_requests.observe(len(batch))
            self.metrics.images.inc(total)
            start = 0
            for b in batch:
                if not b.future.done():
                    b.future.set_result(images[start : start + b.req.n])
                start += b.req.n


def _forward(batch: list[_Item]) -> np.ndarray:
    gen, stage = batch[0].gen, batch[0].stage
    z = np.concatenate([b.req.z for b in batch])
    general = np.concatenate([b.req.general for b in batch])
    detail = np.concatenate([b.req.detail for b in batch])
    return gen.generate(z, general, detail, stage=stage)
