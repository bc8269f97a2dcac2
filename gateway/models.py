"""Every table's model, imported in one place so that Alembic sees the whole schema."""

from gateway.auth.models import OAuthClient
from gateway.db import Base

__all__ = ["Base", "OAuthClient"]
