"""Queries on the client registry. Only this module touches ``oauth_clients``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth.models import OAuthClient

__all__ = ["ClientRepository"]


class ClientRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, client_id: str) -> OAuthClient | None:
        return self.session.get(OAuthClient, client_id)

    def get_by_name(self, name: str) -> OAuthClient | None:
        return self.session.scalars(select(OAuthClient).where(OAuthClient.name == name)).first()

    def list_all(self) -> Sequence[OAuthClient]:
        return self.session.scalars(select(OAuthClient).order_by(OAuthClient.name)).all()

    def add(self, client: OAuthClient) -> None:
        self.session.add(client)
        self.session.flush()
