"""Who may do what: one permission table (role → actions) and the FastAPI dependency that checks it.

Every route but ``/healthz`` (and the static files of the page, which hold no data) depends on
:func:`require`; a missing or bad token is 401, a valid token without the permission is 403.

Example:
    >>> allowed("operator", "ack"), allowed("viewer", "ack"), allowed("viewer", "read")
    (True, False, True)
"""
from __future__ import annotations

from fastapi import Depends, Request

from dashboards.api.errors import ApiError
from dashboards.api.tokens import Identity

#: action → roles allowed. Reading is open to every role; each change names its action here.
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset({"viewer", "operator", "department", "controller", "admin"}),
    "ack": frozenset({"operator", "admin"}),
    "silence": frozenset({"operator", "admin"}),
    "subscriptions": frozenset({"department", "admin"}),
    "priority": frozenset({"controller", "admin"}),
    "audit": frozenset({"operator", "admin"}),
    "tokens": frozenset({"admin"}),
    "rules": frozenset({"admin"}),
}


def allowed(role: str, action: str) -> bool:
    return role in PERMISSIONS[action]


async def identity(request: Request) -> Identity:
    """The caller's identity from ``Authorization: Bearer <token>``; 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, text = header.partition(" ")
    if scheme.lower() != "bearer" or not text.strip():
        raise ApiError(401, "Authorization", "a bearer token is required (Authorization: Bearer cbt_...)")
    who = await request.app.state.ctx.tokens.verify(text.strip())
    if who is None:
        raise ApiError(401, "Authorization", "token unknown, revoked or expired")
    return who


def require(action: str):
    """Dependency: the caller's identity, if its role may perform ``action`` (else 403)."""
    if action not in PERMISSIONS:
        raise KeyError(f"unknown permission {action!r}")

    async def check(who: Identity = Depends(identity)) -> Identity:
        if not allowed(who.role, action):
            raise ApiError(403, "Authorization", f"role {who.role!r} may not {action}")
        return who

    return check
