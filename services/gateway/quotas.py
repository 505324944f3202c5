"""Per-token quotas and rate limits, counted in Redis so every gateway replica sees the same usage.

- Rates (jobs per hour, images per minute) use GCRA, the token-bucket family's one-key form: a
  Lua script keeps one "theoretical arrival time" per token and limit, reads the clock with Redis
  ``TIME`` (so replicas with skewed clocks agree), and answers either "admitted" or "retry in
  N ms". A request of cost ``c`` spends ``c`` units; a full bucket holds one period's worth, so a
  burst up to the whole limit passes and the rate then refills evenly.
- Concurrency (unfinished jobs, open event streams) is a set per token: a new member is added
  first and the count checked after, so two replicas admitting at the same moment can both
  refuse, never both exceed. Finished or expired jobs leave the set as they are met; a stream
  entry carries its own deadline, so one that a crashed gateway never released lapses.

Every refusal is :class:`QuotaExceeded`, which the app answers as 429 with ``Retry-After``.
Keys hold the token's id (a hash), never the token.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time

import redis
from gdgan.jobs.records import JobStore
from gdgan.schemas import TERMINAL
from gdgan.settings import Settings

PREFIX = "gdgan:quota:"
JOB_RETRY_AFTER_S = 30
"""Retry-After for a token at its concurrent-job limit: nothing says when one of its jobs ends, so
a poll-friendly half minute."""

_GCRA = """
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - period
if allow_at > now then
  return math.ceil(allow_at - now)
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
return 0
"""


class QuotaExceeded(Exception):
    """A token used up a quota; ``retry_after_s`` says when asking again can succeed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, math.ceil(retry_after_s))


def spend(r: redis.Redis, name: str, who: str, cost: int, limit: int, period_s: float, what: str) -> None:
    """Spend ``cost`` of the token's ``limit`` per ``period_s`` (``limit`` 0 = unlimited)."""
    if limit <= 0 or cost <= 0:
        return
    if cost > limit:
        raise QuotaExceeded(
            f"{cost} {what} exceeds this token's limit of {limit} per {period_s:g} s", period_s
        )
    wait_ms = int(r.eval(_GCRA, 1, f"{PREFIX}{who}:{name}", int(period_s * 1000), limit, cost))
    if wait_ms > 0:
        raise QuotaExceeded(
            f"rate limit: this token may use {limit} {what} per {period_s:g} s", wait_ms / 1000.0
        )


def admit_job(jobs: JobStore, who: str, job_id: str, settings: Settings) -> None:
    """Count ``job_id`` against the token's concurrent-job limit and job-creation rate (or refuse)."""
    limit = settings.quota_concurrent_jobs
    if limit > 0:
        key = f"{PREFIX}{who}:jobs"
        held = sorted(jobs.r.smembers(key))
        done = [j for j, st in jobs.statuses(held).items() if st is None or st in TERMINAL]
        pipe = jobs.r.pipeline()
        if done:
            pipe.srem(key, *done)
        pipe.sadd(key, job_id)
        pipe.expire(key, settings.job_ttl_s)
        pipe.scard(key)
        count = int(pipe.execute()[-1])
        if count > limit:
            jobs.r.srem(key, job_id)
            raise QuotaExceeded(
                f"this token already has {limit} unfinished jobs (GDGAN_QUOTA_CONCURRENT_JOBS); "
                "wait for one to end or cancel one",
                JOB_RETRY_AFTER_S,
            )
    try:
        spend(jobs.r, "jobs-per-hour", who, 1, settings.quota_jobs_per_hour, 3600.0, "new jobs")
    except QuotaExceeded:
        if limit > 0:
            jobs.r.srem(f"{PREFIX}{who}:jobs", job_id)
        raise


def spend_images(r: redis.Redis, who: str, n: int, settings: Settings) -> None:
    spend(r, "images-per-minute", who, n, settings.quota_images_per_minute, 60.0, "images")


class StreamSlot:
    """One of the token's open event streams (``GDGAN_SSE_MAX_STREAMS``), held while it is open."""

    def __init__(self, r: redis.Redis, who: str, settings: Settings) -> None:
        self.r, self.key = r, f"{PREFIX}{who}:streams"
        self.limit, self.ttl = settings.sse_max_streams, settings.sse_max_duration_s + 60.0
        self.member = secrets.token_hex(8)

    def acquire(self) -> None:
        now = time.time()
        pipe = self.r.pipeline()
        pipe.zremrangebyscore(self.key, "-inf", now)
        pipe.zadd(self.key, {self.member: now + self.ttl})
        pipe.expire(self.key, int(self.ttl) + 1)
        pipe.zcard(self.key)
        if int(pipe.execute()[-1]) > self.limit:
            self.release()
            raise QuotaExceeded(
                f"this token already has {self.limit} open event streams (GDGAN_SSE_MAX_STREAMS)", 5
            )

    def release(self) -> None:
        with contextlib.suppress(redis.RedisError):  # Redis away: the entry lapses at its deadline
            self.r.zrem(self.key, self.member)
