"""What two users' long PDFs cost a third user's one-page upload.

Starts ``omnichat serve`` (SQLite, the local embedder, two parser workers by default) as a
subprocess. Two users each upload a long PDF (``--pages`` pages of dense text) at once, in the
background (``?background=true``), with the chunk cap at ``--max-chunks`` so that each ends in
a 413 while it is chunked (its reading and chunking are measured, not an hour of embedding);
meanwhile a third user uploads a one-page PDF every ``--every-s`` seconds and waits for it to
be ready.
Reported: the third user's upload times (p50, max, count) while the long PDFs were being read,
and how long those took to fail.

    .venv/bin/python -m benchmarks.parse_fairness [--pages 4000] [--server-src PATH]

``--server-src`` runs the server from another checkout's ``src`` (an A/B in one sitting).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from fpdf import FPDF

from benchmarks.upload_cost import local_server, login, report

LINE = "The harbour ledger lists ship {n}, its cargo of {c} crates and the tide at {t} metres."


def long_pdf(pages: int) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=7)
    for page in range(pages):
        pdf.add_page()
        for row in range(40):
            n = page * 40 + row
            pdf.cell(0, 4, LINE.format(n=n, c=n * 7 % 911, t=n % 13), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def one_page_pdf(note: int) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, f"Note {note}: the pilot boards at dawn.")
    return bytes(pdf.output())


async def measure(base: str, pages: int, every_s: float) -> dict[str, float]:
    data = long_pdf(pages)
    async with httpx.AsyncClient(base_url=base, timeout=900) as client:
        heavy = [await login(client, "heavy-a"), await login(client, "heavy-b")]
        other = await login(client, "other")
        warm = await client.post(
            "/upload/document",
            files={"file": ("warm.pdf", one_page_pdf(0), "application/pdf")},
            headers=other,
        )
        assert warm.status_code == 200, warm.text
        started = time.perf_counter()
        ids = []
        for headers in heavy:
            response = await client.post(
                "/upload/document",
                params={"background": "true"},
                files={"file": ("ledger.pdf", data, "application/pdf")},
                headers=headers,
            )
            assert response.status_code == 202, response.text
            ids.append((headers, response.json()["id"]))

        async def heavy_done() -> float:
            while True:
                states = [
                    (await client.get(f"/documents/{doc}", headers=headers)).json()["status"]
                    for headers, doc in ids
                ]
                if all(state != "processing" for state in states):
                    return time.perf_counter() - started
                await asyncio.sleep(0.25)

        done = asyncio.create_task(heavy_done())
        times: list[float] = []
        note = 1
        while not done.done():
            began = time.perf_counter()
            response = await client.post(
                "/upload/document",
                files={"file": (f"note{note}.pdf", one_page_pdf(note), "application/pdf")},
                headers=other,
            )
            assert response.status_code == 200, response.text
            times.append(time.perf_counter() - began)
            await client.delete(f"/documents/{response.json()['id']}", headers=other)
            note += 1
            await asyncio.sleep(every_s)
        heavy_s = await done
    return {
        "long_pdf_mb": len(data) / 2**20,
        "long_pdfs_s": heavy_s,
        "other_p50_s": statistics.median(times),
        "other_max_s": max(times),
        "other_count": len(times),
    }


async def main(pages: int, every_s: float, server_src: str | None, max_chunks: int) -> None:
    with local_server(server_src, OMNICHAT_MAX_CHUNKS_PER_DOCUMENT=str(max_chunks)) as (base, _):
        result = await measure(base, pages, every_s)
    report(server_src, result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=4000)
    parser.add_argument("--every-s", type=float, default=0.5)
    parser.add_argument("--server-src", default=None)
    parser.add_argument("--max-chunks", type=int, default=10_000)
    options = parser.parse_args()
    asyncio.run(main(options.pages, options.every_s, options.server_src, options.max_chunks))
