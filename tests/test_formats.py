"""PPTX, XLSX, CSV, HTML and text in legacy encodings, end to end through the app on SQLite and
PostgreSQL: real files built at test time (``tests.office_factory``) are uploaded, and a word
from each part of each must come back from keyword retrieval with that document's id (and,
for slides, the slide's page), spelled as in the original; what is not content must not.
The kind is the bytes' decision: renaming a file changes nothing of it."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from omnichat.container import Container
from omnichat.documents.models import Chunk
from omnichat.rag.retrieval import RetrievedChunk
from tests import office_factory as make
from tests.conftest import TestUser, UserFactory

DECK = [
    make.SlideSpec(
        title="Quarterly xylophone review",
        bullets=["Revenue from marzipan grew", "Costs of quinoa fell"],
        text_box="Boxed narwhal remark",
        grouped=["Grouped axolotl", "Grouped pangolin"],
        notes="Remember the capybara anecdote",
    ),
    make.SlideSpec(),  # blank: the slides after it keep their numbers
    make.SlideSpec(
        table=[["Region", "Mascot"], ["Northland", "wombat"], ["Southland", "okapi"]],
        notes="Table notes about tapirs",
    ),
    make.SlideSpec(title="Closing flamingo thoughts"),
]
DECK_WORDS = {
    "xylophone": 1,  # title
    "marzipan": 1,  # body placeholder
    "quinoa": 1,
    "narwhal": 1,  # text box
    "axolotl": 1,  # grouped shapes
    "pangolin": 1,
    "capybara": 1,  # notes
    "Mascot": 3,  # table header
    "wombat": 3,  # table cells
    "okapi": 3,
    "tapirs": 3,  # notes
    "flamingo": 4,
}
WORKBOOK = {
    "Inventory": [
        ["Gadget", "Depot", None, "Tally"],
        [None, None, None, None],
        ["sprocket", "Rotterdam", None, 42],
        ["gizmo", "Valparaíso", None, 7.5],
    ],
    "Staff Roster": [["Name", "Started"], ["Henrietta", make.TODAY], ["Bartholomew", None]],
}
CSV_ROWS = [
    ["Stadt", "Leibgericht", "Preis"],
    ["München", "Käsespätzle", "12,50 €"],
    ["Köln", "Himmel un Ääd", "9,00 €"],
]
NOT_CONTENT = ["trackingbeacon", "stylishmarker", "navigationcrumb", "copyrightfooter"]


def page_html(**overrides: object) -> bytes:
    values: dict[str, object] = {
        "title": "Annual gazebo report",
        "heading": "Lighthouse maintenance",
        "paragraphs": ["The keeper polished the fresnel lens.", "Gulls nested on the parapet."],
        "script": NOT_CONTENT[0],
        "style": NOT_CONTENT[1],
        "nav": NOT_CONTENT[2],
        "footer": NOT_CONTENT[3],
        "table": [["Tool", "Purpose"], ["chamois", "polishing"]],
    }
    return make.make_html(**{**values, **overrides})  # type: ignore[arg-type]


async def upload(
    client: httpx.AsyncClient, user: TestUser, data: bytes, filename: str
) -> httpx.Response:
    return await client.post(
        "/upload/document",
        files={"file": (filename, data, "application/octet-stream")},
        headers=user.headers,
    )


async def indexed(
    client: httpx.AsyncClient, user: TestUser, data: bytes, name: str
) -> dict[str, Any]:
    r = await upload(client, user, data, name)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    return dict(r.json())


async def found(
    container: Container, user: TestUser, document_id: str, word: str
) -> RetrievedChunk:
    """The chunk of the document that keyword retrieval finds for ``word``, holding it."""
    chunks = await container.retriever.retrieve(user.id, word, mode="keyword")
    mine = [chunk for chunk in chunks if chunk.document_id == document_id and word in chunk.text]
    assert mine, (word, [(chunk.document_id, chunk.text) for chunk in chunks])
    return mine[0]


async def chunk_texts(container: Container, document_id: str) -> str:
    async with container.database.reader() as db:
        rows = await db.scalars(select(Chunk.text).where(Chunk.document_id == document_id))
        return "\n".join(rows)


# Each Office test runs on the file as saved in Transitional form (the usual) and as saved as
# "Strict Open XML" (ISO/IEC 29500 Strict: other namespaces and relationship types).
CONFORMANCE = {"transitional": lambda data: data, "strict": make.to_strict}


@pytest.mark.parametrize("conformance", list(CONFORMANCE))
async def test_pptx_every_part_of_every_slide_is_found_on_its_page(
    client: httpx.AsyncClient, make_user: UserFactory, container: Container, conformance: str
) -> None:
    user = await make_user()
    data = CONFORMANCE[conformance](make.make_pptx(DECK))
    document = await indexed(client, user, data, "deck.pptx")

    assert document["kind"] == "pptx"
    assert document["pages"] == 4
    for word, page in DECK_WORDS.items():
        chunk = await found(container, user, document["id"], word)
        assert chunk.page == page, word
    table = await found(container, user, document["id"], "wombat")
    assert "| Region | Mascot |" in table.text
    notes = await found(container, user, document["id"], "capybara")
    assert "Notes: Remember the capybara anecdote" in notes.text


@pytest.mark.parametrize("conformance", list(CONFORMANCE))
async def test_xlsx_every_sheet_is_found_with_its_header(
    client: httpx.AsyncClient, make_user: UserFactory, container: Container, conformance: str
) -> None:
    user = await make_user()
    data = CONFORMANCE[conformance](make.make_xlsx(WORKBOOK, formula="=SUM(D3:D4)"))
    document = await indexed(client, user, data, "book.xlsx")

    assert document["kind"] == "xlsx"
    for word in ["Gadget", "Tally", "sprocket", "Rotterdam", "Valparaíso"]:
        chunk = await found(container, user, document["id"], word)
        assert "## Inventory" in chunk.text
        assert "| Gadget | Depot | Tally |" in chunk.text  # the empty column is left out
    chunk = await found(container, user, document["id"], "Henrietta")
    assert "## Staff Roster" in chunk.text
    assert "| Name | Started |\n| --- | --- |" in chunk.text
    assert "| Henrietta | 2026-03-14 |" in chunk.text
    text = await chunk_texts(container, document["id"])
    assert "| sprocket | Rotterdam | 42 |\n| gizmo | Valparaíso | 7.5 |" in text
    assert "SUM" not in text  # values, never formulas


async def test_csv_in_cp1252_is_a_table_spelled_right(
    client: httpx.AsyncClient, make_user: UserFactory, container: Container
) -> None:
    user = await make_user()
    document = await indexed(client, user, make.make_csv(CSV_ROWS), "essen.csv")

    assert document["kind"] == "csv"
    for word in ["Leibgericht", "München", "Käsespätzle", "Ääd"]:
        chunk = await found(container, user, document["id"], word)
        assert chunk.text.startswith("| Stadt | Leibgericht | Preis |\n| --- | --- | --- |")
    assert "| München | Käsespätzle | 12,50 € |" in await chunk_texts(container, document["id"])


async def test_html_main_text_is_indexed_and_its_furniture_is_not(
    client: httpx.AsyncClient, make_user: UserFactory, container: Container
) -> None:
    user = await make_user()
    document = await indexed(client, user, page_html(), "page.html")

    assert document["kind"] == "html"
    for word in ["gazebo", "Lighthouse", "fresnel", "parapet", "chamois"]:
        await found(container, user, document["id"], word)
    text = await chunk_texts(container, document["id"])
    assert text.startswith("# Annual gazebo report\n\n# Lighthouse maintenance")
    for word in [*NOT_CONTENT, "tracker", "console", "color"]:
        assert word not in text
        hits = await container.retriever.retrieve(user.id, word, mode="keyword")
        assert hits == [], word


async def test_uploaded_html_is_never_served_as_html(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    data = page_html()
    document = await indexed(client, user, data, "page.html")

    r = await client.get(
        f"/documents/{document['id']}/file", params={"inline": "true"}, headers=user.headers
    )
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == "sandbox"


LEGACY_TEXT = [
    ("notes.txt", make.GERMAN, "cp1252", "txt", ["Bärenstärke", "Größenwahn", "Käsespätzle"]),
    (
        "obst.md",
        "# Über Äpfel\n\nDie Bäume blühen früh; Süßkirschen.",
        "latin-1",
        "md",
        ["Süßkirschen", "Bäume"],
    ),
    ("menu.txt", make.FRENCH, "latin-1", "txt", ["garçon", "crème"]),
    (
        "utf16.txt",
        f"{make.GERMAN}\n{make.JAPANESE}",
        "utf-16",
        "txt",
        ["Käsespätzle", "桜餅委員会"],
    ),
    ("bom.txt", make.GERMAN, "utf-8-sig", "txt", ["Größenwahn"]),
    ("kaigi.txt", make.JAPANESE, "shift_jis", "txt", ["桜餅委員会"]),
]


@pytest.mark.parametrize(
    ("name", "text", "encoding", "kind", "words"),
    LEGACY_TEXT,
    ids=[case[2] for case in LEGACY_TEXT],
)
async def test_text_in_any_encoding_is_indexed_spelled_right(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    container: Container,
    name: str,
    text: str,
    encoding: str,
    kind: str,
    words: list[str],
) -> None:
    user = await make_user()
    document = await indexed(client, user, (text + "\n").encode(encoding), name)

    assert document["kind"] == kind
    for word in words:
        await found(container, user, document["id"], word)
    assert await chunk_texts(container, document["id"]) == text


@pytest.mark.parametrize(
    ("name", "data", "phrase"),
    [
        ("deck.pptx", make.make_not_office_zip(), "not a Word document, PowerPoint"),
        ("book.xlsx", make.make_not_office_zip(), "not a Word document, PowerPoint"),
        ("data.csv", bytes(range(256)) * 64, "without binary data"),
        ("random.txt", os.urandom(4096) + b"\x00", "without binary data"),
        ("utf16-no-bom.txt", "Hello there, no BOM".encode("utf-16-le"), "byte-order mark"),
    ],
    ids=["other-zip-as-pptx", "other-zip-as-xlsx", "binary-as-csv", "random", "utf16-no-bom"],
)
async def test_what_the_bytes_refuse_stays_refused(
    client: httpx.AsyncClient, make_user: UserFactory, name: str, data: bytes, phrase: str
) -> None:
    user = await make_user()
    r = await upload(client, user, data, name)

    assert r.status_code == 415, r.text
    assert phrase in r.json()["detail"]
    assert (await client.get("/documents", headers=user.headers)).json() == []


async def test_a_sheet_spanning_the_whole_grid_is_too_complex_and_costs_nothing_else(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    """Two values, in A1 and in the grid's last cell (XFD1048576): reading it needs more memory
    than a reader may use. A clear 422 from the worker (never the server's own memory), and the
    next upload is read as usual."""
    import io

    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet["A1"], sheet["XFD1048576"] = "alpha", "omega"
    far = io.BytesIO()
    workbook.save(far)
    user = await make_user()

    r = await upload(client, user, far.getvalue(), "far.xlsx")
    assert r.status_code == 422, r.text
    assert "too complex" in r.json()["detail"]
    assert (await client.get("/documents", headers=user.headers)).json() == []
    r = await upload(client, user, make.make_xlsx(WORKBOOK), "book.xlsx")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("name", "data", "kind", "word"),
    [
        ("deck.docx", make.make_pptx(DECK), "pptx", "wombat"),
        ("book.csv", make.make_xlsx(WORKBOOK), "xlsx", "Rotterdam"),
        ("report.pdf", make.make_xlsx(WORKBOOK), "xlsx", "Henrietta"),
        ("essen.txt", make.make_csv(CSV_ROWS), "txt", "Käsespätzle"),  # text; the name picks CSV
        ("page.md", page_html(), "html", "fresnel"),
        (
            "page.txt",
            page_html(charset="windows-1252", paragraphs=[make.GERMAN]),
            "html",
            "Bärenstärke",
        ),
    ],
    ids=["pptx-as-docx", "xlsx-as-csv", "xlsx-as-pdf", "csv-as-txt", "html-as-md", "html-1252"],
)
async def test_renaming_changes_nothing_the_bytes_decide(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    container: Container,
    name: str,
    data: bytes,
    kind: str,
    word: str,
) -> None:
    user = await make_user()
    document = await indexed(client, user, data, name)

    assert document["kind"] == kind
    chunk = await found(container, user, document["id"], word)
    if kind == "pptx":
        assert chunk.page == DECK_WORDS[word]
    if kind == "html":
        text = await chunk_texts(container, document["id"])
        assert not any(word in text for word in NOT_CONTENT)
