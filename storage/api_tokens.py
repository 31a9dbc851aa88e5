"""Bearer tokens of the console's JSON API.

A token is 32 random bytes (URL-safe text) shown once when made; only its SHA-256 is stored
(a random token needs no slow hash: there is nothing to guess). Each token has a name, may be
revoked, and making or revoking one is audited in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from storage.admin import Actor, audit
from storage.models import ApiToken

PREFIX = "ivr_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRow:
    name: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiTokens:
    """The tokens, on an Engine the caller owns."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, actor: Actor, name: str, now: datetime) -> str:
        """A new token named ``name`` (returned in clear, once). ValueError if the name is
        taken, empty or holds a control character."""
        name = name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise ValueError("a token name has 1 to 64 printable characters")
        token = PREFIX + secrets.token_urlsafe(32)
        with Session(self.engine) as s, s.begin():
            if s.get(ApiToken, name) is not None:
                raise ValueError(f"a token named {name!r} exists")
            s.add(ApiToken(name=name, token_hash=token_hash(token), created_at=now,
                           created_by=actor.name[:100]))  # fmt: skip
            audit(s, actor, now, "token.add", name)
        return token

    def revoke(self, actor: Actor, name: str, now: datetime) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(ApiToken, name)
            if row is None or row.revoked_at is not None:
                raise ValueError(f"no live token named {name!r}")
            row.revoked_at = now
            audit(s, actor, now, "token.revoke", name)

    def rows(self) -> list[TokenRow]:
        with Session(self.engine) as s:
            return [
                TokenRow(r.name, r.created_at, r.created_by, r.revoked_at, r.last_used_at)
                for r in s.scalars(select(ApiToken).order_by(ApiToken.name))
            ]

    def check(self, token: str, now: datetime) -> str | None:
        """The name of the live token ``token``, or None; notes when it was last used."""
        digest = token_hash(token)
        with self.engine.begin() as conn:
            name = conn.scalar(
                select(ApiToken.name).where(
                    ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)
                )
            )
            if name is not None:
                conn.execute(update(ApiToken).where(ApiToken.name == name)
                             .values(last_used_at=now))  # fmt: skip
        return name
