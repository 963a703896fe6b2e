"""CouchDB 3's JWT authentication (`jwt_authentication_handler`), HS256 only.

`Authorization: Bearer <jwt>`: a token signed with the server's `--jwt-secret` names
its user in `sub` and the user's roles in the roles claim (CouchDB's `roles_claim_name`,
`_couchdb.roles` by default; a token without it may carry them in `_roles`, as other
CouchDB-style servers issue them). `exp` is required and enforced, `nbf` enforced when
present. Every refusal is `401 unauthorized`, with CouchDB's reasons.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from .errors import CouchError

__all__ = ["DEFAULT_ROLES_CLAIM", "JWTVerifier"]

DEFAULT_ROLES_CLAIM = "_couchdb.roles"
"""CouchDB's default `[jwt_auth] roles_claim_name`."""
FALLBACK_ROLES_CLAIM = "_roles"
"""Read when the default claim is absent (only while the claim name is the default)."""


def _refuse(reason: str) -> CouchError:
    return CouchError(401, "unauthorized", reason)


def _b64url(part: str) -> bytes:
    try:
        return base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("Malformed token") from None


def _json_object(part: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64url(part))
    except (ValueError, RecursionError):
        raise _refuse("Malformed token") from None
    if not isinstance(value, dict):
        raise _refuse("Malformed token")
    return value


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _refuse(f"Invalid {name} claim")
    return float(value)


@dataclass(frozen=True)
class JWTVerifier:
    """Checks HS256 bearer tokens signed with `secret`."""

    secret: bytes
    roles_claim: str = DEFAULT_ROLES_CLAIM

    def verify(self, token: str, now: float) -> tuple[str, list[str]]:
        """The user name and roles of a valid token, or `CouchError` 401.

        Args:
            token: The token (what follows `Bearer `).
            now: The time, in seconds since the epoch.
        """
        parts = token.strip().split(".")
        if len(parts) != 3 or not all(parts[:2]):
            raise _refuse("Malformed token")
        header = _json_object(parts[0])
        # One algorithm: `none`, RS256 with the secret as a "public key" and the like are refused.
        if header.get("alg") != "HS256":
            raise _refuse("Invalid alg header parameter")
        expected = hmac.new(self.secret, f"{parts[0]}.{parts[1]}".encode("ascii", "replace"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _b64url(parts[2])):
            raise _refuse("Bad HMAC")
        claims = _json_object(parts[1])
        exp = _number(claims, "exp")
        if exp is None:
            raise _refuse("Missing exp claim")
        if exp <= now:
            raise _refuse("exp not in future")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now:
            raise _refuse("nbf not in past")
        user = claims.get("sub")
        if not isinstance(user, str) or not user:
            raise _refuse("Token missing sub claim.")
        claim = self.roles_claim
        if claim == DEFAULT_ROLES_CLAIM and claim not in claims and FALLBACK_ROLES_CLAIM in claims:
            claim = FALLBACK_ROLES_CLAIM
        roles = claims.get(claim, [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise _refuse(f"The {claim} claim must be an array of strings")
        return user, roles
