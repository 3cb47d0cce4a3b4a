"""What the app builds once at start-up and hands to requests: settings, database, services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from omnichat.accounts.service import AccountService
from omnichat.apikeys.service import ApiKeyService
from omnichat.auth.service import AddressLimits, AuthService
from omnichat.auth.tokens import AccessTokenCodec
from omnichat.blobs.base import BlobStore
from omnichat.blobs.factory import build_blob_store
from omnichat.chats.service import ChatService, ContentLimits
from omnichat.db.engine import Database, create_database
from omnichat.documents.extraction import Extractor
from omnichat.documents.ingest import Ingestor
from omnichat.documents.service import DocumentLimits, DocumentService
from omnichat.generation.hub import InProcessHub, StreamHub
from omnichat.generation.limits import build_limiter
from omnichat.generation.redis_hub import RedisHub
from omnichat.generation.service import GenerationOptions, GenerationService
from omnichat.llm.base import ChatModel, ProviderConfig
from omnichat.llm.registry import build_registry
from omnichat.llm.resilience import RetryPolicy
from omnichat.rag.chunking import Chunker
from omnichat.rag.embedders.factory import build_embedder
from omnichat.rag.embedding_service import EmbeddingService
from omnichat.rag.fair_embedding import FairDocumentEmbedding
from omnichat.rag.grounding import Grounder
from omnichat.rag.index import VectorIndex
from omnichat.rag.retrieval import RetrievalOptions, Retriever
from omnichat.rag.vectors.factory import build_vector_store
from omnichat.ratelimit import rate_window
from omnichat.settings import Settings


@dataclass(frozen=True)
class Container:
    settings: Settings
    database: Database
    auth: AuthService
    chats: ChatService
    generation: GenerationService
    api_keys: ApiKeyService
    documents: DocumentService
    accounts: AccountService
    retriever: Retriever
    vector_index: VectorIndex
    embeddings: EmbeddingService
    blobs: BlobStore


def build_container(
    settings: Settings,
    model_factories: dict[str, Callable[[ProviderConfig], ChatModel]] | None = None,
) -> Container:
    codec = AccessTokenCodec(
        settings.signing_key(), timedelta(minutes=settings.access_token_minutes)
    )
    database = create_database(settings)
    hub: StreamHub = RedisHub(settings.redis_url) if settings.redis_url else InProcessHub()
    chats = ChatService(
        ContentLimits(
            max_title_chars=settings.max_title_chars,
            max_message_chars=settings.max_message_chars,
        ),
        hub,
    )
    embedder = build_embedder(settings)
    vector_index = VectorIndex(database, build_vector_store(settings, database), embedder)
    retriever = Retriever(
        database,
        embedder,
        vector_index,
        RetrievalOptions(
            top_k=settings.rag_top_k,
            candidates=settings.rag_candidates,
            fusion=settings.rag_fusion,
            vector_weight=settings.rag_vector_weight,
        ),
    )
    generation = GenerationService(
        database=database,
        registry=build_registry(settings, model_factories),
        chats=chats,
        hub=hub,
        limiter=build_limiter(
            settings.generation_rate_limit,
            settings.max_concurrent_generations,
            settings.redis_url,
            max_followers=settings.max_followers_per_user,
        ),
        options=GenerationOptions(
            system_prompt=settings.system_prompt,
            v1_system_prompt=settings.v1_system_prompt,
            max_output_tokens=settings.max_output_tokens,
            max_choices=settings.max_choices,
            max_generation_s=settings.llm_max_generation_s,
            heartbeat_s=settings.reply_heartbeat_s,
            policy=RetryPolicy(
                max_attempts=settings.llm_max_attempts,
                base_delay_s=settings.llm_retry_base_delay_s,
                max_delay_s=settings.llm_retry_max_delay_s,
                max_retry_after_s=settings.llm_max_retry_after_s,
                first_token_timeout_s=settings.llm_first_token_timeout_s,
            ),
        ),
        grounder=Grounder(retriever),
    )
    scratch_dir = settings.data_dir / "tmp"
    chunker = Chunker.from_settings(settings)
    # One fair lane for the embedder's document work: uploads and /v1/embeddings take turns.
    document_lane = FairDocumentEmbedding(embedder, settings.embed_batch_size)
    ingestor = Ingestor(
        database,
        blobs := build_blob_store(settings),
        Extractor(settings),
        chunker,
        vector_index,
        document_lane,
        scratch_dir=scratch_dir,
    )
    api_keys = ApiKeyService()
    auth = AuthService(
        codec,
        timedelta(days=settings.refresh_token_days),
        rate_window(settings.failed_login_limit, settings.redis_url, namespace="login"),
        api_keys=api_keys,
        address_limits=AddressLimits(
            logins=rate_window(
                settings.login_address_limit, settings.redis_url, namespace="login-address"
            ),
            registrations=rate_window(
                settings.register_address_limit, settings.redis_url, namespace="register-address"
            ),
        ),
        refresh_reuse_leeway=timedelta(seconds=settings.refresh_reuse_leeway_s),
    )
    documents = DocumentService(
        database,
        blobs,
        ingestor,
        vector_index,
        chats,
        DocumentLimits(
            max_upload_bytes=settings.max_upload_bytes,
            max_documents_per_user=settings.max_documents_per_user,
            max_bytes_per_user=settings.max_document_bytes_per_user,
        ),
        scratch_dir,
        rate_window(settings.failed_upload_limit, settings.redis_url, namespace="failed-upload"),
    )
    return Container(
        settings=settings,
        database=database,
        auth=auth,
        chats=chats,
        generation=generation,
        api_keys=api_keys,
        documents=documents,
        accounts=AccountService(auth, chats, documents, hub),
        retriever=retriever,
        vector_index=vector_index,
        embeddings=EmbeddingService(document_lane, chunker),
        blobs=blobs,
    )
