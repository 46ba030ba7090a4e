"""What cnnkit objects look like in a Jupyter notebook: small HTML tables and a live bar.

Nothing here imports IPython until a notebook asks for it; outside Jupyter the objects keep
their short text ``repr``. The progress display writes HTML through an IPython display
handle that it updates in place (no ipywidgets needed), so it also survives in a saved or
executed notebook (nbclient keeps the last update).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from typing import Any

REFRESH_SECONDS = 0.25  # a notebook bar is redrawn at most this often


def html_table(
    rows: Iterable[Sequence[object]],
    *,
    header: Sequence[str] = (),
    caption: str = "",
    right: Sequence[int] = (),
) -> str:
    """An HTML table of ``rows`` (every cell escaped); ``right`` lists right-aligned columns."""
    parts = ["<table>"]
    if caption:
        parts.append(f'<caption style="text-align:left">{html.escape(caption)}</caption>')
    if header:
        cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        parts.append(f"<thead><tr>{cells}</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        cells = "".join(
            f'<td style="text-align:{"right" if i in right else "left"}">'
            f"{html.escape(str(cell))}</td>"
            for i, cell in enumerate(row)
        )
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def progress_html(label: str, done: int, total: int, text: str) -> str:
    """One progress line: ``label``, an HTML ``<progress>`` bar, ``done/total`` and ``text``."""
    return (
        '<div style="font-family:monospace">'
        f"{html.escape(label)} "
        f'<progress value="{done}" max="{max(total, 1)}" style="width:30ex;vertical-align:middle">'
        f"</progress> {done}/{total} {html.escape(text)}</div>"
    )


class NotebookDisplay:
    """One output area of the running cell, replaced in place on each :meth:`update`.

    Updates closer together than :data:`REFRESH_SECONDS` are skipped unless ``force``.
    """

    def __init__(self) -> None:
        from IPython.display import HTML, display

        self._html = HTML
        self._handle: Any = display(HTML(""), display_id=True)
        self._shown = 0.0

    def update(self, content: str, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._shown < REFRESH_SECONDS:
            return
        self._shown = now
        self._handle.update(self._html(content))
