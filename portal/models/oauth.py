"""The OAuth 2 provider's records: registered clients, authorization codes and tokens.

No secret is stored in clear: client secrets, authorization codes, access and refresh tokens are
kept as their sha256 (they are long random values, so a plain digest is enough, as for API
tokens). The classes implement Authlib's model interfaces (``ClientMixin``,
``AuthorizationCodeMixin``, ``TokenMixin``) so its grants can use them directly.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models import Base, enum_type, utcnow
from portal.models.accounts import User


class GrantType(StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    CLIENT_CREDENTIALS = "client_credentials"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type, not a secret


class ClientAuthMethod(StrEnum):
    """How a client proves itself at the token endpoint (RFC 7591 names)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 - a method name
    #: A public client (a desktop tool, a notebook): no secret, PKCE only, no client credentials.
    NONE = "none"


def digest(secret: str) -> str:
    """The sha256 (hex) under which a client secret, code or token is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class OAuth2Client(Base, ClientMixin):  # type: ignore[misc]
    """An application registered by an admin: a research tool or a city app."""

    __tablename__ = "oauth2_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(48), unique=True)
    #: sha256 of the secret, shown once at registration; ``None`` for public clients.
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    grant_types: Mapped[list[str]] = mapped_column(default=list)
    #: The scopes (values of ``portal.services.access.Scope``) the client may ask for.
    scopes: Mapped[list[str]] = mapped_column(default=list)
    token_endpoint_auth_method: Mapped[ClientAuthMethod] = mapped_column(
        enum_type(ClientAuthMethod), default=ClientAuthMethod.CLIENT_SECRET_BASIC
    )
    #: A resource server trusted to introspect every token, not only its own.
    may_introspect: Mapped[bool] = mapped_column(default=False)
    #: The person responsible for the client (the researcher, the city app's team lead).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method is ClientAuthMethod.NONE

    # Authlib's ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """All the client's scopes when none are asked for; ``None`` (refused) when it asks for
        one it was not given."""
        allowed = set(self.scopes)
        if not scope:
            return " ".join(sorted(allowed))
        wanted = set(scope.split())
        return " ".join(sorted(wanted)) if wanted <= allowed else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match, never a prefix

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.client_secret_hash or not client_secret:
            return False
        return hmac.compare_digest(self.client_secret_hash, digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method.value

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and GrantType.AUTHORIZATION_CODE.value in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class OAuth2AuthorizationCode(Base, AuthorizationCodeMixin):  # type: ignore[misc]
    """A code handed to the client's redirect URI after consent; single use, ten minutes."""

    __tablename__ = "oauth2_authorization_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    oauth_client_id: Mapped[int] = mapped_column(ForeignKey("oauth2_client.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    #: The redirect URI of the authorization request, if it named one (the token request must
    #: then repeat it).
    redirect_uri: Mapped[str | None] = mapped_column(String(2000))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    #: Shared by every token that descends from this consent, to revoke them together.
    grant_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()

    client: Mapped[OAuth2Client] = relationship()
    user: Mapped[User] = relationship()

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return " ".join(self.scopes)

    def is_expired(self) -> bool:
        return aware(self.expires_at) <= utcnow()


class OAuth2Token(Base, TokenMixin):  # type: ignore[misc]
    """An access token and, for user grants, its refresh token (hashes only)."""

    __tablename__ = "oauth2_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    oauth_client_id: Mapped[int] = mapped_column(ForeignKey("oauth2_client.id"), index=True)
    #: ``None`` for client credentials: the client acts for itself.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    grant_type: Mapped[GrantType] = mapped_column(enum_type(GrantType))
    grant_id: Mapped[str] = mapped_column(String(36), index=True)
    token_type: Mapped[str] = mapped_column(String(20), default="Bearer")
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Seconds the access token lives after ``issued_at``.
    expires_in: Mapped[int] = mapped_column()
    refresh_expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    #: Revoking either token of the pair ends both.
    revoked_at: Mapped[datetime | None] = mapped_column()

    client: Mapped[OAuth2Client] = relationship()
    user: Mapped[User | None] = relationship()

    @property
    def expires_at(self) -> datetime:
        return aware(self.issued_at) + timedelta(seconds=self.expires_in)

    # Authlib's TokenMixin
    def check_client(self, client: OAuth2Client) -> bool:
        return self.oauth_client_id == client.id

    def get_scope(self) -> str:
        return " ".join(self.scopes)

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_refresh_expired(self) -> bool:
        return self.refresh_expires_at is None or aware(self.refresh_expires_at) <= utcnow()

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> OAuth2Client:
        return self.client


__all__ = [
    "ClientAuthMethod",
    "GrantType",
    "OAuth2AuthorizationCode",
    "OAuth2Client",
    "OAuth2Token",
    "digest",
]
