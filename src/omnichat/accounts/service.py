"""Deleting an account: the user and everything they own, in one transaction.

Sessions, messages, documents, chunks, vectors, API keys and every login (token families and
their refresh tokens) go together with the user row, or nothing does. What lives outside the
database follows the commit (``after_commit``): the originals in the blob store, the user's
Pinecone namespace, and the replies still being generated for them, which stop at once.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.apikeys.models import ApiKey
from omnichat.auth.models import RefreshToken, TokenFamily, User
from omnichat.auth.service import AuthService
from omnichat.chats.models import ChatSession, Message
from omnichat.chats.service import ChatService
from omnichat.db.unit_of_work import after_commit
from omnichat.documents.service import DocumentService
from omnichat.generation.hub import StreamHub

ACCOUNT_DELETED = "The account was deleted while the reply was being generated"


class AccountService:
    def __init__(
        self, auth: AuthService, chats: ChatService, documents: DocumentService, hub: StreamHub
    ) -> None:
        self._auth = auth
        self._chats = chats
        self._documents = documents
        self._hub = hub

    async def delete_account(self, db: AsyncSession, user: User, current_password: str) -> None:
        """Requires the current password (400 otherwise); 503 with nothing deleted when the
        originals' store does not answer. ``db`` must not have begun its transaction: indexing
        tasks are stopped first, outside it."""
        await self._auth.verify_current_password(user, current_password, "delete the account")
        # Before anything is deleted: originals left in a store that did not answer would be
        # nobody's to delete (503, the account kept).
        await self._documents.check_originals_deletable()
        await self._documents.stop_indexing_all(user.id)
        await self._documents.delete_all(db, user.id)
        await self._chats.delete_messages(db, Message.user_id == user.id, ACCOUNT_DELETED)
        await db.execute(delete(ChatSession).where(ChatSession.user_id == user.id))
        await db.execute(delete(ApiKey).where(ApiKey.user_id == user.id))
        families = select(TokenFamily.id).where(TokenFamily.user_id == user.id)
        await db.execute(delete(RefreshToken).where(RefreshToken.family_id.in_(families)))
        await db.execute(delete(TokenFamily).where(TokenFamily.user_id == user.id))
        await db.execute(delete(User).where(User.id == user.id))
        # Replies made inside requests (``/v1``, ...) have no rows the deletes above could
        # find: they are ended by user.
        after_commit(db, partial(self._hub.abandon_user, user.id, ACCOUNT_DELETED))
