"""API tokens: shown once when created, stored only as a SHA-256 hash.

A token is 32 random bytes (URL-safe base64) behind an `lg_` prefix, so a
leaked one is easy to spot in logs and secret scanners. Comparing hashes
looked up by an index is constant-time in the token's secret part. A token
has one scope of `SCOPES`; each scope includes the ones before it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from lockgate.errors import UsageError
from lockgate.ports.metadata import TokenRecord
from lockgate.service.audit import cli_entry
from lockgate.service.compose import Workspace

PREFIX = "lg_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

#: What a token may do, each including the ones before it: `read` (GET),
#: `run` (trigger, cancel, resume), `admin` (promote and roll back models,
#: shift and roll back routes).
SCOPES = ("read", "run", "admin")
#: Tokens created before scopes existed carry "trigger": they may read and run.
_LEGACY = {"trigger": "run"}


def scope_level(scopes: tuple[str, ...] | list[str]) -> int:
    """How far along `SCOPES` a token's scopes reach (-1: none)."""
    names = [_LEGACY.get(s, s) for s in scopes]
    return max((SCOPES.index(s) for s in names if s in SCOPES), default=-1)


def allows(scopes: tuple[str, ...] | list[str], needed: str) -> bool:
    """Whether a token with `scopes` may do what needs scope `needed`."""
    return scope_level(scopes) >= SCOPES.index(needed)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    workspace: Workspace, name: str, scope: str = "run", *, actor: str | None = None
) -> str:
    """Create a token called `name` with `scope` and return it (the only time it is visible).

    With `actor` (`cli:<user>`), an audit entry naming who created it commits
    with the token.

    Raises:
        UsageError: the name or scope is malformed, or the name is already taken.
    """
    if scope not in SCOPES:
        raise UsageError(f"unknown scope {scope!r}; one of {', '.join(SCOPES)}")
    if not _NAME.match(name):
        raise UsageError(
            f"token name {name!r} must be 1-64 letters, digits, '_', '.', '@' or '-' "
            "(e.g. ci-github or alice@laptop)"
        )
    if any(t.name == name for t in workspace.metadata.list_tokens()):
        raise UsageError(
            f"a token named {name!r} already exists (names stay taken after a revoke, "
            "so the audit trail stays unambiguous); pick another name, e.g. "
            f"{name}-2"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    audit = cli_entry(actor, f"token create --scope {scope}", f"token:{name}") if actor else None
    workspace.metadata.create_token(name, hash_token(token), (scope,), time.time(), audit=audit)
    return token


def verify(workspace: Workspace, token: str | None) -> TokenRecord | None:
    """The live token matching `token`, or None (missing, wrong or revoked)."""
    if not token or not token.startswith(PREFIX):
        return None
    return workspace.metadata.find_token(hash_token(token), time.time())


def revoke(workspace: Workspace, name: str, *, actor: str | None = None) -> None:
    """Revoke the token called `name` (audited as done by `actor`, if given).

    Raises:
        UsageError: there is no live token by that name.
    """
    audit = cli_entry(actor, "token revoke", f"token:{name}") if actor else None
    if not workspace.metadata.revoke_token(name, time.time(), audit=audit):
        raise UsageError(f"no live token named {name!r}; `lockgate token list` shows them")
