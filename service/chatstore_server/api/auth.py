"""Who is calling, and may they: API keys and JWTs, scoped to tenants and a mode.

Credentials come as `authorization: Bearer <token>` metadata. A token is an API key
(looked up by its SHA-256; the server never stores keys) or, when a JWT key is
configured, a JWT whose claims name its tenants and mode.

Authorization is decided from the request's `tenant_id` alone, before anything is
looked up, so a caller learns nothing about another tenant's sessions: the answer is
the same PERMISSION_DENIED whether they exist or not (AIP-193).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import jwt

from chatstore_server.api.errors import ApiError

# Methods that only read; every other chatstore method writes.
READ_METHODS = frozenset(
    f"/chatstore.v1.SessionService/{name}"
    for name in (
        "GetSession",
        "ListSessions",
        "ListMessages",
        "GetMessage",
        "GetContextWindow",
        "ListEvents",
        "ListCheckpoints",
        "GetCheckpoint",
        "WatchSession",
        "GetSharedState",
    )
)
ALL_TENANTS = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    name: str
    tenants: frozenset[str] | None
    """The tenants it may act for; None means all."""
    read_only: bool


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What one configured API key (by its SHA-256) allows."""

    name: str
    sha256: str
    tenants: Sequence[str]
    read_only: bool


@dataclass(frozen=True, slots=True)
class JwtPolicy:
    """How bearer JWTs are verified and read."""

    key: str
    algorithms: Sequence[str]
    audience: str | None = None
    issuer: str | None = None
    tenants_claim: str = "tenants"
    mode_claim: str = "chatstore_mode"


def _tenants(values: Iterable[str]) -> frozenset[str] | None:
    tenants = frozenset(values)
    return None if ALL_TENANTS in tenants else tenants


def _unauthenticated(reason: str, message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message, reason=reason)


class Authenticator:
    """Checks every call's credentials; with none configured, lets every call through."""

    def __init__(self, keys: Sequence[KeyGrant] = (), jwt_policy: JwtPolicy | None = None) -> None:
        self._keys = {k.sha256: Principal(k.name, _tenants(k.tenants), k.read_only) for k in keys}
        self._jwt = jwt_policy
        self.enabled = bool(self._keys) or jwt_policy is not None

    def authenticate(self, metadata: Iterable[Any] | None) -> Principal | None:
        """The caller, from its `authorization` metadata; None when auth is off.

        Raises:
            ApiError: UNAUTHENTICATED if the credential is missing or invalid.
        """
        if not self.enabled:
            return None
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if not isinstance(header, str) or not header.lower().startswith("bearer "):
            raise _unauthenticated(
                "CREDENTIALS_MISSING", "send an API key or JWT as `authorization: Bearer ...`"
            )
        token = header[len("bearer ") :].strip()
        principal = self._keys.get(hashlib.sha256(token.encode()).hexdigest())
        if principal is None and self._jwt is not None:
            principal = self._from_jwt(token)
        if principal is None:
            raise _unauthenticated("CREDENTIALS_INVALID", "the credential is not valid")
        return principal

    def _from_jwt(self, token: str) -> Principal | None:
        policy = self._jwt
        assert policy is not None
        try:
            claims = jwt.decode(
                token,
                policy.key,
                algorithms=list(policy.algorithms),
                audience=policy.audience,
                issuer=policy.issuer,
                options={"require": ["exp"], "verify_aud": policy.audience is not None},
            )
        except jwt.PyJWTError:
            return None
        tenants = claims.get(policy.tenants_claim)
        if isinstance(tenants, str):
            tenants = [tenants]
        if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
            return None
        mode = claims.get(policy.mode_claim, "read_only")
        return Principal(str(claims.get("sub", "jwt")), _tenants(tenants), mode != "read_write")

    @staticmethod
    def authorize(principal: Principal | None, tenant_id: str, method: str) -> None:
        """Whether `principal` may call `method` for `tenant_id`.

        Raises:
            ApiError: PERMISSION_DENIED for a tenant the credential does not cover, or a
                write with a read-only credential.
        """
        if principal is None:
            return
        if principal.tenants is not None and tenant_id not in principal.tenants:
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the credential does not cover tenant {tenant_id!r}",
                reason="TENANT_NOT_ALLOWED",
                metadata={"tenant_id": tenant_id},
            )
        if principal.read_only and method not in READ_METHODS:
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                "the credential is read-only",
                reason="READ_ONLY_CREDENTIAL",
                metadata={"method": method.rsplit("/", 1)[-1]},
            )
