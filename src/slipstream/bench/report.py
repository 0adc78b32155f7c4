"""The bench's one table, for the terminal (rich) and for documents (Markdown)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

COLUMNS = ("Figure", "Value", "p50", "p99", "Errors", "Floor", "How it is measured")


@dataclass(frozen=True)
class Row:
    figure: str
    value: str = ""
    p50: str = ""
    p99: str = ""
    errors: str = ""
    floor: str = ""
    floor_met: bool | None = None  # None: no floor, or nothing measured
    notes: str = ""
    section: str = ""  # rows of one broker/store pair share a section

    def cells(self) -> tuple[str, ...]:
        floor = floor_text(self.floor, self.floor_met)
        return (self.figure, self.value, self.p50, self.p99, self.errors, floor, self.notes)


@dataclass(frozen=True)
class Report:
    title: str
    rows: list[Row]
    machine: list[tuple[str, str]] = field(default_factory=list)
    parameters: list[tuple[str, str]] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def rate(value: float | None, unit: str) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.0f} {unit}"


def duration(seconds: float | None) -> str:
    """12.3 ms under a second, 1.23 s above."""
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 1.0:
        return f"{seconds * 1000:.3g} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def mebibytes(size: int | None) -> str:
    return "—" if not size else f"{size / 2**20:,.0f} MiB"


def floor_text(floor: str, met: bool | None) -> str:
    if not floor:
        return ""
    if met is None:
        return f"{floor}: not measured"
    return f"{floor}: met" if met else f"{floor}: MISSED"


def _pairs(items: list[tuple[str, str]]) -> str:
    return "; ".join(f"{k} {v}" for k, v in items)


def rich_table(report: Report) -> Table:
    caption = Text()
    if report.machine:
        caption.append(f"machine: {_pairs(report.machine)}\n")
    if report.parameters:
        caption.append(f"parameters: {_pairs(report.parameters)}")
    for line in report.legend:
        caption.append(f"\n{line}")
    for failure in report.failures:
        caption.append(f"\nFAILED: {failure}", style="bold red")
    table = Table(title=report.title, caption=caption, caption_justify="left")
    for name in COLUMNS:
        numeric = name in ("Value", "p50", "p99", "Errors")
        wraps = name in (COLUMNS[0], COLUMNS[-1])  # the others stay whole, for the eye to scan
        table.add_column(name, justify="right" if numeric else "left", no_wrap=not wraps)
    for number, row in enumerate(report.rows):
        if number and row.section != report.rows[number - 1].section:
            table.add_section()
        cells = [Text(cell) for cell in row.cells()]
        if row.floor_met is not None:
            cells[5].stylize("green" if row.floor_met else "bold red")
        table.add_row(*cells)
    return table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: Report) -> str:
    """The same table as Markdown, with the machine and parameters above it."""
    lines = [f"**{report.title}**", ""]
    if report.machine:
        lines.append(f"Machine: {_cell(_pairs(report.machine))}.")
    if report.parameters:
        lines.append(f"Parameters: {_cell(_pairs(report.parameters))}.")
    lines.append("")
    sections = len({row.section for row in report.rows}) > 1
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---:" if c in COLUMNS[1:5] else "---" for c in COLUMNS) + "|")
    for number, row in enumerate(report.rows):
        if sections and (number == 0 or row.section != report.rows[number - 1].section):
            lines.append(f"| **{_cell(row.section)}** |" + " |" * (len(COLUMNS) - 1))
        cells = [_cell(c) for c in row.cells()]
        if row.floor_met is False:
            cells[5] = f"**{cells[5]}**"
        lines.append("| " + " | ".join(cells) + " |")
    if report.legend:
        lines.append("")
        lines.extend(f"- {_cell(line)}" for line in report.legend)
    for failure in report.failures:
        lines.append("")
        lines.append(f"**FAILED:** {_cell(failure)}")
    return "\n".join(lines) + "\n"
