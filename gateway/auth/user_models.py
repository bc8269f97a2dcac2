"""Human users of the web console, and the one-time authorization codes they are issued.

Agency systems are OAuth clients (``oauth_clients``, client credentials); people are users
here. A user's password is stored as the client secrets are, a salted scrypt hash
(:mod:`gateway.auth.passwords`); the optional TOTP secret (RFC 6238) is stored as is, since a
TOTP check needs the secret itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UTCDateTime, utcnow

__all__ = ["AuthorizationCode", "HumanUser"]


class HumanUser(Base):
    __tablename__ = "human_users"

    username: Mapped[str] = mapped_column(String(48), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(128))
    # The person behind the account (an officer's id, 警号 or the like): one person may hold
    # several accounts, and the two-person rule compares persons, not accounts.
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    agency_code: Mapped[str] = mapped_column(String(32))
    scopes: Mapped[str] = mapped_column(String(256))
    password_hash: Mapped[str] = mapped_column(String(256))
    # Base32 (RFC 4648) shared secret; None: no second factor.
    totp_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The last TOTP time step accepted: a code is good once (RFC 6238 §5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class AuthorizationCode(Base):
    """An issued code (RFC 6749 §4.1.2), kept as its SHA-256 only, redeemable once."""

    __tablename__ = "authorization_codes"

    code_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(48))
    redirect_uri: Mapped[str] = mapped_column(String(512))
    code_challenge: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
