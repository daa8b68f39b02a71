"""The README stays a user's manual and docs/benchmarks.md stays the one home of the figures.

The README had grown into a lab notebook (issue 33): ~1,000 lines, a figure table of earlier
runs, lines of 400+ characters. These checks keep it short and readable, keep every benchmark
with a main named (with its current figure) in docs/benchmarks.md, and keep the links between
the pages pointing at files and headings that exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

README = Path(REPO) / "README.md"
DOCS = Path(REPO) / "docs"
BENCHMARKS_PAGE = DOCS / "benchmarks.md"
MAX_README_LINES = 350
MAX_PROSE_WIDTH = 120
# A measured figure: a number with a unit of time, rate, size or share.
FIGURE = re.compile(r"\d(?:[\d,.]*\d)?\s?(?:ms|s|min|%|×|img/s|q/s|GB/s|MB|GiB|B/reference)"
                    r"(?![\w/])")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def prose_and_table_lines(text: str) -> tuple[list[tuple[int, str]], list[str]]:
    """(number, line) of the prose outside code blocks and tables, and the table rows."""
    prose, rows, in_code = [], [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and line.lstrip().startswith("|"):
            rows.append(line)
        elif not in_code:
            prose.append((number, line))
    return prose, rows


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def benchmark_modules() -> list[str]:
    """The modules under benchmarks/ that are benchmarks: they run as `python -m` (a main)."""
    names = []
    for path in sorted((Path(REPO) / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
               for node in tree.body):
            names.append(path.stem)
    return names


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text().splitlines()
            if line.startswith("#")}


def test_readme_is_short_with_readable_lines():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    prose, _ = prose_and_table_lines(text)
    long = [f"line {number}: {len(line)} characters" for number, line in prose
            if len(line) > MAX_PROSE_WIDTH]
    assert not long, long


def test_readme_has_no_figure_tables():
    """Figures live in docs/benchmarks.md; the README links there instead of keeping tables."""
    _, rows = prose_and_table_lines(README.read_text())
    assert rows, "the README's path and documentation tables were not found"
    figure_rows = [row[:120] for row in rows
                   if FIGURE.search(row) or "python -m benchmarks" in row]
    assert not figure_rows, figure_rows


def test_figure_pattern_finds_a_measured_row():
    """The check above can fail: a row of the old README's measured table is caught."""
    old_row = ("| re-index, 300 refs | Ray Data job 8.31 images/s vs single process 9.19 "
               "(Ray overhead 10.6 %) | `python -m benchmarks.bench_reindex` |")
    assert FIGURE.search(old_row)
    assert not FIGURE.search("| `cluster/` | local services; manifests in `cluster/k8s/` |")


def test_every_benchmark_has_one_current_row():
    modules = benchmark_modules()
    assert len(modules) >= 15, modules  # the glob found the benchmarks
    _, rows = prose_and_table_lines(BENCHMARKS_PAGE.read_text())
    subjects: dict[str, int] = {}
    for row in rows:
        row_cells = cells(row)
        if len(row_cells) != 5 or set(row_cells[0]) <= {"-"} or row_cells[0] in {"benchmark",
                                                                               "what"}:
            continue
        assert DATE.match(row_cells[4]), f"no date in the row: {row[:100]}"
        assert row_cells[1] and row_cells[2] and row_cells[3], f"empty cell: {row[:100]}"
        for name in re.findall(r"`benchmarks\.(\w+)`", row_cells[0]):
            subjects[name] = subjects.get(name, 0) + 1
    missing = [name for name in modules if name not in subjects]
    assert not missing, f"benchmarks without a row in docs/benchmarks.md: {missing}"
    repeated = [name for name, count in subjects.items() if count > 1]
    assert not repeated, f"one row per benchmark (earlier figures live in git): {repeated}"


def test_links_between_pages_resolve():
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page
            if not path.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
