"""Every model, imported in one place so metadata is complete for Alembic and tests."""

from omnichat.apikeys.models import ApiKey
from omnichat.auth.models import RefreshToken, TokenFamily, User
from omnichat.chats.models import ChatSession, Message
from omnichat.db.base import Base
from omnichat.documents.models import Chunk, Document, IndexInfo

__all__ = [
    "ApiKey",
    "Base",
    "ChatSession",
    "Chunk",
    "Document",
    "IndexInfo",
    "Message",
    "RefreshToken",
    "TokenFamily",
    "User",
]
