"""OCR of PDF pages that have no text layer (scans, photos), offline: RapidOCR on ONNX Runtime,
its detection and recognition models shipped in the ``rapidocr-onnxruntime`` wheel; pages are
rendered with PDFium. Runs in a sandbox worker, one page per job; the engine is loaded once
per worker."""

from __future__ import annotations

from typing import Any

import numpy as np
import pypdfium2 as pdfium

from omnichat.documents.extraction.text import clean_text

# 150 dpi: small print stays legible to the recognizer, and an A4 page is ~1240 x 1754 pixels.
RENDER_SCALE = 150 / 72
MIN_CONFIDENCE = 0.5

_engine: Any = None


def ocr_engine() -> Any:
    """The worker's RapidOCR engine, loaded at its first call."""
    global _engine
    if _engine is None:
        from rapidocr_onnxruntime import RapidOCR

        _engine = RapidOCR()
    return _engine


def warm_up_ocr() -> None:
    """A sandbox worker's warm-up: loads the engine and runs it once on a small picture of a
    dark bar, so the thread pools and memory arenas of its first page already count in the
    worker's idle size."""
    picture = np.full((96, 320, 3), 255, dtype=np.uint8)
    picture[36:60, 20:300] = 0
    ocr_engine()(picture)


def ocr_pdf_page(path: str, page_number: int) -> str:
    """The text OCR reads on page ``page_number`` (1-based), lines top to bottom; "" if none."""
    document = pdfium.PdfDocument(path)
    try:
        page = document[page_number - 1]
        try:
            image = page.render(scale=RENDER_SCALE, grayscale=False).to_numpy()
        finally:
            page.close()
    finally:
        document.close()
    result, _ = ocr_engine()(image)
    lines = [text for _box, text, confidence in result or () if confidence >= MIN_CONFIDENCE]
    return clean_text("\n".join(lines))
