"""Markdown pieces every report section writes alike."""

from __future__ import annotations

from pathlib import Path


def figure_link(figures, name, caption) -> str:
    """Markdown for figure `name` if it was drawn: an image, or a link for a PDF."""
    path = figures.get(name)
    if path is None:
        return ""
    if str(path).endswith(".pdf"):
        return f"[{caption}]({path})"
    return f"![{caption}]({path})"


def table(header, rows) -> str:
    """A Markdown table: the header's cells, the rule under them, a line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_section(out: Path, file_name: str, text: str) -> str:
    """Write a section to out/file_name and append it to out/report.md when there is one
    (a section of its own, also part of the whole report); return the text."""
    (out / file_name).write_text(text + "\n", encoding="utf-8")
    if (out / "report.md").exists():
        with open(out / "report.md", "a", encoding="utf-8") as stream:
            stream.write("\n" + text + "\n")
    return text
