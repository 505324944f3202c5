"""Fixtures shared by the integration modules that start a service stack."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from gdgan.localstack.stack import Stack


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    """A gateway client on the requesting module's own ``stack`` fixture."""
    with httpx.Client(base_url=stack.cfg.gateway_url, timeout=60) as c:
        yield c
