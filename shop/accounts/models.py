from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    STREAMER = "streamer"
    BUYER = "buyer"
    VILLAGER = "villager"
    FARMER = "farmer"


ROLE_VALUES = ", ".join(f"'{r.value}'" for r in Role)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index(
            "ix_users_auth_changed_at",
            "auth_changed_at",
            postgresql_where=text("auth_changed_at IS NOT NULL"),
            sqlite_where=text("auth_changed_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  #: stored lower-case
    display_name: Mapped[str] = mapped_column(String(100))
    #: optional, given at sign-up; offered as the delivery phone
    phone: Mapped[str | None] = mapped_column(String(40))
    password_hash: Mapped[str] = mapped_column(String(255))  #: scrypt$N$r$p$salt$hash
    #: page cookies carry the version they were issued under; adding one ends them all
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    #: a deactivated user cannot sign in, and their tokens and page sessions stop working
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: when roles, password or status last changed, or every token was revoked: a
    #: signed token issued before is checked in the database (shop/accounts/revocations.py)
    auth_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self) -> list[str]:
        return sorted(row.role for row in self.role_rows)

    def has_role(self, *roles: str) -> bool:
        return any(row.role in roles for row in self.role_rows)


class Principal(Protocol):
    """Who is acting, as far as a service's permission checks go: a ``User`` (pages) or
    the ``Caller`` a bearer token resolves to (the API)."""

    @property
    def id(self) -> int: ...

    def has_role(self, *roles: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """The signed-in user of an API request: an id and roles, read in one small query.

    Not the ORM ``User``: every API request resolves one, and building a mapped object
    for it costs more than the query. Endpoints that need the whole user load it.
    """

    id: int
    roles: frozenset[str]

    def has_role(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (CheckConstraint(f"role IN ({ROLE_VALUES})", name="role_known"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(20), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class ApiToken(Base):
    """A bearer token (opaque or signed); only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_user_id", "user_id"),
        # every process polls the latest revocations (shop/accounts/revocations.py)
        Index(
            "ix_api_tokens_revoked_at",
            "revoked_at",
            postgresql_where=text("revoked_at IS NOT NULL"),
            sqlite_where=text("revoked_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  #: hex SHA-256
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()
