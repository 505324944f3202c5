"""A worker's ownership of one job (or one fan-out part), and what losing it means.

The lease is a Redis key holding the owner's name with a time-to-live (``JobStore.acquire_lease``);
a heartbeat thread renews it every third of GDGAN_JOB_LEASE_S. If a renewal finds the key gone or
held by another worker (this one stalled past the TTL, and a redelivered task took the job over),
ownership is lost for good and this worker must stop writing to the run:

- ``should_stop`` turns true, so the body stops at its next step;
- progress events are no longer published;
- the artifact store refuses to commit (``fence``): a checkpoint or model written now would race
  the new owner's, and the manifest is what makes an artifact visible, so refusing the commit
  leaves nothing behind;
- the outcome (status, parts) is not recorded: the new owner records its own.

The fence re-reads the lease from Redis just before each commit, so the window in which a stale
owner can still commit is one Redis round trip, not a heartbeat period. (Closing it completely
would need fencing tokens checked by the store itself.)
"""

from __future__ import annotations

import logging
import threading

import redis
from gdgan.jobs.records import JobStore

log = logging.getLogger("gdgan.jobs")


class LeaseLost(RuntimeError):
    """This worker no longer owns the job: another delivery of its task took it over."""


class Lease:
    """Held ownership of ``key`` by ``owner``; ``start`` begins the heartbeat, ``close`` ends it."""

    def __init__(self, jobs: JobStore, key: str, owner: str) -> None:
        self.jobs, self.key, self.owner = jobs, key, owner
        self.lost = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="gdgan-lease")

    def start(self) -> Lease:
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._closed.wait(self.jobs.lease_s / 3):
            try:
                renewed = self.jobs.renew_lease(self.key, self.owner)
            except redis.RedisError as exc:  # a blip: the next beat retries while the TTL lasts
                log.warning("lease renewal failed for %s: %s", self.key, exc)
                continue
            if not renewed and not self._closed.is_set():  # (closing: we released it ourselves)
                self._lose()
                return

    def _lose(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            try:
                holder = self.jobs.lease_owner(self.key)
            except redis.RedisError:
                holder = "?"
            log.error(
                "lost the lease of %s (now held by %s): stopping and writing nothing more to this run",
                self.key,
                holder,
            )

    def held(self) -> bool:
        """Ask Redis now (not the last heartbeat) whether this worker still owns the job."""
        if self.lost.is_set():
            return False
        if self.jobs.lease_owner(self.key) != self.owner:
            self._lose()
            return False
        return True

    def fence(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is still held (called before each commit)."""
        if not self.held():
            raise LeaseLost(f"{self.key}: another worker owns this job now; not committing")

    def close(self) -> None:
        """Stop the heartbeat and give the lease back (only if it is still ours). The heartbeat is
        joined first, so a renewal racing the release cannot report a loss that is ours."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.jobs.lease_s)
        if not self.lost.is_set():
            try:
                self.jobs.release_lease(self.key, self.owner)
            except redis.RedisError as exc:
                log.warning("could not release the lease of %s (it expires by itself): %s", self.key, exc)
