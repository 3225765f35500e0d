"""Markdown pieces every report section writes alike."""

from __future__ import annotations


def figure_link(figures, name, caption) -> str:
    """Markdown for figure `name` if it was drawn: an image, or a link for a PDF."""
    path = figures.get(name)
    if path is None:
        return ""
    if str(path).endswith(".pdf"):
        return f"[{caption}]({path})"
    return f"![{caption}]({path})"
