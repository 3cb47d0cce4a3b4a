"""XLSX reading: python-calamine (what OmniChat's reader uses) against openpyxl's read-only mode
(what it used before), on the same generated workbook, alternating, median of ``--rounds``.

    .venv/bin/python -m benchmarks.xlsx_bench [--rows 30000] [--rounds 3]

The workbook: one sheet, a header and ``--rows`` rows of 8 columns (numbers and short texts),
written by openpyxl. Both readers walk every row as Python values; the figure is cells/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import openpyxl
from python_calamine import CalamineWorkbook


def make_workbook(path: Path, rows: int) -> int:
    """Writes the workbook; returns its number of cells."""
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Ledger")
    sheet.append([f"column {c}" for c in range(8)])
    for r in range(rows):
        sheet.append([r, f"item{r}", r * 0.5, "text", f"city{r % 97}", r % 7, "x", f"note{r}"])
    workbook.save(path)
    return (rows + 1) * 8


def read_calamine(path: Path) -> int:
    workbook = CalamineWorkbook.from_path(str(path))
    cells = 0
    for name in workbook.sheet_names:
        for row in workbook.get_sheet_by_name(name).iter_rows():
            cells += len(row)
    workbook.close()
    return cells


def read_openpyxl(path: Path) -> int:
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    cells = 0
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows(values_only=True):
            cells += len(row)
    workbook.close()
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    readers: dict[str, Callable[[Path], int]] = {
        "python-calamine": read_calamine,
        "openpyxl (read-only)": read_openpyxl,
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger.xlsx"
        cells = make_workbook(path, options.rows)
        times: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(options.rounds):
            for name, read in readers.items():
                started = time.perf_counter()
                assert read(path) == cells
                times[name].append(time.perf_counter() - started)
    print(f"{options.rows} rows x 8 columns ({cells:,} cells), median of {options.rounds}")
    print("| reader | seconds | cells/s |")
    print("|---|---:|---:|")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"| {name} | {median:.2f} | {cells / median:,.0f} |")


if __name__ == "__main__":
    main()
