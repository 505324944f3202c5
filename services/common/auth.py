"""Who is calling and what they may do: bearer tokens with scopes (read / generate / train / admin).

- Tokens come from typed settings (``GDGAN_API_TOKENS``, a JSON map token -> scopes; the single
  ``GDGAN_API_TOKEN`` of earlier releases is a token with every scope). With none configured the
  API is open, as a laptop's ``gdgan up`` has always been.
- The given token is compared with *every* configured one by ``hmac.compare_digest`` and no early
  exit, so the answer's timing says nothing about how much of a token matched, nor which one.
- A caller is known by ``token_id``: a hash of the token, never the token itself. It is what a
  job records as its owner and what per-token quotas count against, so neither Redis nor a job
  record ever holds a secret.
- A missing scope is a 403 that names it; a missing or wrong token is a 401.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from gdgan.settings import SCOPES, Settings, get_settings

bearer = HTTPBearer(auto_error=False, description="A token of GDGAN_API_TOKENS (or GDGAN_API_TOKEN).")

ANONYMOUS = "anonymous"


def token_id(token: str) -> str:
    """A stable, non-reversible name for a token (domain-separated SHA-256, 64 bits shown)."""
    return "tok-" + hashlib.sha256(b"gdgan-token-id\0" + token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its token's id and scopes ('admin' implies every other)."""

    id: str
    scopes: frozenset[str]

    @property
    def metered(self) -> bool:
        """Per-token quotas count a real token; with auth off (local use) there is nobody to count."""
        return self.id != ANONYMOUS

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes


def authenticate(settings: Settings, given: str | None) -> Principal:
    """The caller behind ``given`` (a bearer token, or None); 401 when auth is on and it matches none."""
    tokens = settings.token_scopes
    if not tokens:
        return Principal(ANONYMOUS, frozenset(SCOPES))
    raw = (given or "").encode()
    found: frozenset[str] | None = None
    for token, scopes in tokens.items():  # all of them, every time: constant in the token's content
        if hmac.compare_digest(raw, token.encode()) and found is None:
            found = scopes
    if found is None:
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token (Authorization: Bearer <token of GDGAN_API_TOKENS>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Principal(token_id(given or ""), found)


async def principal_dep(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The request's caller, resolved once per request (routes and scope checks share it).

    Async although it awaits nothing: it does no I/O (a few HMAC compares), and FastAPI runs a sync
    dependency on a threadpool thread, a hop that costs more CPU than the check itself."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    given = creds.credentials if creds is not None and creds.scheme.lower() == "bearer" else None
    who = authenticate(get_settings(), given)
    request.state.principal = who
    return who


def require(scope: str) -> object:
    """A route dependency: the caller must hold ``scope`` (or admin), else 403 naming it."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(who: Annotated[Principal, Depends(principal_dep)]) -> Principal:  # no I/O: no thread hop
        if not who.has(scope):
            held = ", ".join(sorted(who.scopes)) or "none"
            raise HTTPException(403, detail=f"this token lacks the {scope!r} scope (it has: {held})")
        return who

    return Depends(check)
