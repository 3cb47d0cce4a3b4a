"""OpenAI's ``image_url`` content parts (``{"type": "image_url", "image_url": {"url",
"detail"}}``) as ``ImagePart``: a ``data:`` URL is decoded and checked here (a picture type
every provider takes, its size within ``MAX_IMAGE_BYTES``); an ``http(s)`` URL is kept for the
providers that fetch images themselves. OmniChat never fetches a client's URL."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from omnichat.errors import BadRequest
from omnichat.llm.types import ImagePart
from omnichat.openai_api.schemas import OtherPart

# Anthropic, Gemini, Cohere and OpenAI all take these.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_URL_CHARS = 2048
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_DETAILS = frozenset({"auto", "low", "high"})


def image_part(part: OtherPart, where: str) -> ImagePart:
    """Raises ``BadRequest`` naming ``where`` (``messages[0].content[1]``) for anything else."""
    image: Any = (part.model_extra or {}).get("image_url")
    if isinstance(image, str):  # some clients send the URL itself
        image = {"url": image}
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise BadRequest("An image_url part needs image_url.url", param=f"{where}.image_url.url")
    url, detail = image["url"], image.get("detail")
    if detail is not None and detail not in _DETAILS:
        raise BadRequest("detail is auto, low or high", param=f"{where}.image_url.detail")
    unknown = set(image) - {"url", "detail"}
    if unknown:
        raise BadRequest(
            f"Unknown image_url field '{sorted(unknown)[0]}'", param=f"{where}.image_url"
        )
    match = _DATA_URL.match(url)
    if match is None:
        if url.startswith(("https://", "http://")) and len(url) <= MAX_URL_CHARS:
            return ImagePart(url=url, detail=detail)
        raise BadRequest(
            "An image is a data: URL (base64) or an http(s) URL of at most "
            f"{MAX_URL_CHARS} characters",
            param=f"{where}.image_url.url",
        )
    media_type = match["type"].lower()
    if media_type not in IMAGE_TYPES:
        raise BadRequest(
            f"Images are {', '.join(sorted(IMAGE_TYPES))}; this one is {media_type}",
            param=f"{where}.image_url.url",
        )
    if len(match["data"]) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise BadRequest(
            f"An image may have at most {MAX_IMAGE_BYTES} bytes", param=f"{where}.image_url.url"
        )
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            "The image's data: URL is not valid base64", param=f"{where}.image_url.url"
        ) from None
    if not data:
        raise BadRequest("The image is empty", param=f"{where}.image_url.url")
    return ImagePart(url=url, media_type=media_type, data=data, detail=detail)
