"""HTML: the page's main text as Markdown-like blocks, read with lxml's HTML parser (libxml2,
https://lxml.de/lxmlhtml.html), which copes with the broken markup of real pages.

A file is HTML when its first markup, after any XML declaration, comments and whitespace, is
``<!DOCTYPE html``, ``<html`` or ``<head`` (``looks_like_html``). A fragment that starts with
``<p>`` or ``<div>`` is text: Markdown files (READMEs) often start that way.

Why a structural rule rather than a main-content extractor (trafilatura, readability): the files
people upload here are their own documents (saved pages, exports, reports), where every
paragraph, list and table is content, and those extractors, tuned to strip news and blog
boilerplate, drop short paragraphs, tables and whole small pages by heuristics that change
between versions. The rule here is predictable, and it removes only what is never content:

- the text comes from the page's ``<main>`` (or ``role="main"``) when it has one, else ``<body>``;
- left out with everything inside them: ``script``, ``style``, ``noscript``, ``template``,
  ``nav``, ``aside``, forms and their controls, embedded frames, objects, SVG and canvas,
  elements that are hidden (``hidden``, ``aria-hidden="true"``, ``display: none``) or whose
  ``role`` is navigation, banner, contentinfo, complementary or search, and a ``header`` or
  ``footer`` outside any ``article``, ``section`` or ``main`` (the site's, not the text's);
- kept: the ``<title>`` (as a ``#`` heading, unless the first heading already says it), headings
  as ``#`` to ``######``, paragraphs and other blocks on lines of their own, list items as
  ``- ``, ``<pre>`` as it is, tables as Markdown tables (``tables``).

The bytes are decoded by ``text``'s rule, with the charset a ``<meta>`` declares in the first
1024 bytes tried before guessing (``iso-8859-1`` and ``us-ascii`` mean windows-1252 there, as in
the WHATWG Encoding Standard).
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from omnichat.documents.extraction.errors import (
    DocumentTooComplex,
    NoExtractableText,
    UnreadableDocument,
)
from omnichat.documents.extraction.tables import TextBudget, cell_text, markdown_table
from omnichat.documents.extraction.text import TEXT_SAMPLE_BYTES, clean_text, decode_file
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

if TYPE_CHECKING:
    from omnichat.documents.extraction.parse import Deadline

_DOCUMENT_START = re.compile(
    r"\A(?:\s+|<\?xml[^>]*>|<!--.*?-->)*<(?:!doctype\s+html|html|head)(?=[\s/>])",
    re.IGNORECASE | re.DOTALL,
)
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*>")
_META_CHARSET = re.compile(rb"<meta\b[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.I)
PRESCAN_BYTES = 1024
# Labels that mean windows-1252 in HTML (WHATWG Encoding Standard).
_WINDOWS_1252_CODECS = frozenset({"latin-1", "iso8859-1", "ascii", "cp1252"})
_REMOVED_TAGS = frozenset(
    {
        *("script", "style", "noscript", "template", "nav", "aside", "form", "button"),
        *("select", "textarea", "input", "iframe", "frame", "frameset", "object", "embed"),
        *("svg", "canvas", "dialog"),
    }
)
_REMOVED_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_SECTIONING = frozenset({"article", "section", "main"})
_BLOCKS = (
    *("address", "article", "blockquote", "body", "caption", "dd", "details", "div", "dl"),
    *("dt", "figcaption", "figure", "header", "footer", "hr", "li", "main", "ol", "p"),
    *("section", "summary", "ul", "h1", "h2", "h3", "h4", "h5", "h6"),
)
# Private-use characters mark the layout in the text while whitespace is collapsed (any in the
# page itself are dropped first): a block break, a line break, a kept space, and the prefixes
# of headings (one per level) and list items.
_BLOCK, _LINE, _SPACE, _ITEM = "\ue000", "\ue001", "\ue002", "\ue003"
_HEADING = {f"h{level}": chr(0xE010 + level) for level in range(1, 7)}
_PREFIXES = {_ITEM: "- ", **{chr(0xE010 + level): "#" * level + " " for level in range(1, 7)}}
_MARKERS = re.compile("[\ue000-\ue01f]")
_SPACES = re.compile(r"\s+")
CHECK_EVERY_ELEMENTS = 10_000
MAX_HTML_DEPTH = 2048  # libxml2's nesting limit with XML_PARSE_HUGE (lxml's huge_tree)


def looks_like_html(text: str) -> bool:
    """Whether ``text`` (a file's first characters) starts an HTML document."""
    return _DOCUMENT_START.match(text.lstrip("\ufeff")[:TEXT_SAMPLE_BYTES]) is not None


def declared_charset(head: bytes) -> str | None:
    """The codec an HTML document's ``<meta>`` declares in its first 1024 bytes, if Python
    knows it; ``None`` for anything else (and for UTF-16/32, which need a BOM)."""
    if not looks_like_html(head.decode("latin-1")):
        return None
    match = _META_CHARSET.search(head[:PRESCAN_BYTES])
    if match is None:
        return None
    try:
        name = codecs.lookup(match.group(1).decode("ascii")).name
    except LookupError:
        return None
    if name.startswith(("utf-16", "utf-32")):
        return None
    return "cp1252" if name in _WINDOWS_1252_CODECS else name


def extract_html(path: Path, max_chars: int, deadline: Deadline) -> ExtractedDocument:
    """The page's main text, one page. Blocking: run it in a sandbox worker."""
    page = html_text(path.read_bytes(), deadline, max_chars)
    if not page:
        raise NoExtractableText("The HTML page contains no text")
    return ExtractedDocument(kind=DocumentKind.HTML, pages=[ExtractedPage(number=1, text=page)])


def html_text(data: bytes, deadline: Deadline, max_chars: int | None = None) -> str:
    """The main text of the HTML page ``data`` (title first, no scripts, styles or page
    furniture), ``""`` when it has none; ``max_chars``: ``DocumentTooLarge`` past it."""
    text = decode_file(data, declared=declared_charset(data[:TEXT_SAMPLE_BYTES]))
    text = _MARKERS.sub("", _XML_DECLARATION.sub("", text))
    # huge_tree: libxml2's default limits (256 levels of nesting, 10 MB text nodes) stop the
    # parse of ordinary large pages; past the huge limits (2048 levels) it stops reading, and
    # the page is refused rather than indexed in part.
    parser = etree.HTMLParser(
        remove_comments=True, remove_pis=True, no_network=True, huge_tree=True
    )
    try:
        root = etree.fromstring(text, parser)
    except (etree.ParserError, ValueError) as exc:
        raise UnreadableDocument("The HTML file is malformed and could not be read") from exc
    stopped = [e.message for e in parser.error_log if e.type_name == "ERR_RESOURCE_LIMIT"]
    if stopped:
        raise DocumentTooComplex(
            f"nests its markup more than {MAX_HTML_DEPTH} levels deep"
            if "depth" in stopped[0].lower()
            else "is past the limits of its reader"
        )
    if root is None:
        return ""
    title = _collapse(root.findtext(".//title") or "")
    body = _strip_non_content(root, deadline)
    blocks = _blocks(body, deadline) if body is not None else []
    if title and (not blocks or blocks[0].lstrip("#").strip() != title):
        blocks.insert(0, f"# {title}")
    if max_chars is not None:
        TextBudget(max_chars).spend(sum(len(block) + 2 for block in blocks))
    return clean_text("\n\n".join(blocks))


def _strip_non_content(root: etree._Element, deadline: Deadline) -> etree._Element | None:
    """Removes what is never content (the module's rule); returns the main element if the
    page has one left, else its body."""
    main: etree._Element | None = None
    removed: list[etree._Element] = []
    for count, element in enumerate(root.iter()):
        if count % CHECK_EVERY_ELEMENTS == 0:
            deadline.check()
        tag = element.tag
        if not isinstance(tag, str):
            continue
        if _is_removed(element, tag):
            removed.append(element)
        elif main is None and (tag == "main" or element.get("role") == "main"):
            main = element
    for element in removed:
        _drop(element)
    if main is not None and _attached(main, root):
        return main
    return root.find("body")


def _is_removed(element: etree._Element, tag: str) -> bool:
    if tag in _REMOVED_TAGS:
        return True
    if tag in ("header", "footer") and not any(
        ancestor.tag in _SECTIONING for ancestor in element.iterancestors()
    ):
        return True
    if not element.attrib:
        return False
    return (
        element.get("hidden") is not None
        or element.get("aria-hidden", "").strip().lower() == "true"
        or element.get("role", "").strip().lower() in _REMOVED_ROLES
        or "display:none" in element.get("style", "").replace(" ", "").lower()
    )


def _drop(element: etree._Element) -> None:
    """Removes ``element`` and what is inside it, keeping the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _attached(element: etree._Element, root: etree._Element) -> bool:
    """Not inside a subtree that was removed."""
    return element is root or any(ancestor is root for ancestor in element.iterancestors())


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _blocks(body: etree._Element, deadline: Deadline) -> list[str]:
    """The text of ``body`` in blocks: markers are set around block elements, on line breaks,
    in ``<pre>`` and in place of tables, then the text is read in one pass (``itertext``)."""
    for table in [t for t in body.iter("table") if not _inside(t, "table")]:
        _replace(table, _BLOCK + _encode(markdown_table(_table_rows(table))) + _BLOCK)
    for pre in [p for p in body.iter("pre") if not _inside(p, "pre")]:
        _replace(pre, _BLOCK + _encode("".join(pre.itertext()).strip("\n")) + _BLOCK)
    for count, element in enumerate(body.iter(*_BLOCKS)):
        if count % CHECK_EVERY_ELEMENTS == 0:
            deadline.check()
        prefix = _ITEM if element.tag == "li" else _HEADING.get(str(element.tag), "")
        element.text = _BLOCK + prefix + (element.text or "")
        element.tail = _BLOCK + (element.tail or "")
    for line_break in body.iter("br"):
        line_break.tail = _LINE + (line_break.tail or "")
    deadline.check()
    text = _SPACES.sub(" ", "".join(body.itertext()))
    blocks: list[str] = []
    pending = ""  # the prefix of a block whose text starts in a nested block
    for raw in text.split(_BLOCK):
        if not raw or raw == " ":  # between two block boundaries: most pieces
            pending = ""
            continue
        # Collapsed spaces around lines go; kept ones (``<pre>``) stay.
        lines = (line.strip(" ").replace(_SPACE, " ") for line in raw.split(_LINE))
        block = "\n".join(line for line in lines if line.strip())
        prefix = ""
        while block[:1] in _PREFIXES:
            prefix, block = block[:1], block[1:].lstrip(" ")
        if not block:
            pending = prefix  # a prefix alone: its text is in the next block
            continue
        prefix = prefix or pending
        blocks.append(_PREFIXES.get(prefix, "") + block)
        pending = ""
    return blocks


def _inside(element: etree._Element, tag: str) -> bool:
    return any(ancestor.tag == tag for ancestor in element.iterancestors())


def _table_rows(table: etree._Element) -> list[list[str]]:
    return [
        [cell_text(" ".join(cell.itertext())) for cell in row.xpath("./th | ./td")]
        for row in table.xpath("./tr | ./thead/tr | ./tbody/tr | ./tfoot/tr")
    ]


def _encode(text: str) -> str:
    """``text`` with its layout kept through the whitespace collapse."""
    return text.replace(" ", _SPACE).replace("\t", _SPACE).replace("\n", _LINE)


def _replace(element: etree._Element, text: str) -> None:
    """``element`` becomes a plain ``div`` holding ``text``."""
    tail = element.tail
    element.clear()
    element.tag, element.text, element.tail = "div", text, tail
