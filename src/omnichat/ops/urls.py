"""Backend URLs shown to operators without their secrets.

A URL's userinfo password (``scheme://user:password@host``) is never printed: targets show
``***`` in its place, and any error text (a driver's message may quote a badly written URL)
has every piece of a configured password replaced. The password is taken as everything between
the user's ``:`` and the URL's last ``@``, so a password holding ``/``, ``#`` or ``?`` (a common
unencoded mistake) is masked whole all the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_USERINFO = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):(?P<password>.*)@")
# Pieces of a password a parser may quote alone (split at the characters URLs treat as
# delimiters); shorter ones would mask ordinary words.
_PIECES = re.compile(r"[/#?:@]")
MIN_SECRET_PIECE = 4


def masked_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``."""
    return _USERINFO.sub(lambda match: f"{match['head']}:***@", url, count=1)


def url_secrets(urls: Iterable[str | None]) -> list[str]:
    """The passwords in ``urls``, whole and in the pieces a parser may quote."""
    found: list[str] = []
    for url in urls:
        match = _USERINFO.match(url or "")
        if match is None or not match["password"]:
            continue
        password = match["password"]
        found.append(password)
        found += [piece for piece in _PIECES.split(password) if len(piece) >= MIN_SECRET_PIECE]
    return sorted(set(found), key=len, reverse=True)


def scrubbed(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
