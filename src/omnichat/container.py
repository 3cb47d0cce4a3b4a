"""What the app builds once at start-up and hands to requests: settings, database, services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from omnichat.auth.service import AuthService
from omnichat.auth.tokens import AccessTokenCodec
from omnichat.chats.service import ChatService, ContentLimits
from omnichat.db.engine import Database, create_database
from omnichat.settings import Settings


@dataclass(frozen=True)
class Container:
    settings: Settings
    database: Database
    auth: AuthService
    chats: ChatService


def build_container(settings: Settings) -> Container:
    codec = AccessTokenCodec(
        settings.signing_key(), timedelta(minutes=settings.access_token_minutes)
    )
    return Container(
        settings=settings,
        database=create_database(settings),
        auth=AuthService(codec, timedelta(days=settings.refresh_token_days)),
        chats=ChatService(
            ContentLimits(
                max_title_chars=settings.max_title_chars,
                max_message_chars=settings.max_message_chars,
            )
        ),
    )
