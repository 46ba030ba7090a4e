"""The matplotlib figure every cnnkit plot returns: drawn off-screen, shown inline in Jupyter.

cnnkit draws with :class:`matplotlib.figure.Figure` on the Agg canvas, never through
``pyplot``: no global backend switch, no window, safe in threads and on servers. Such a
figure is invisible to Jupyter unless ``%matplotlib inline`` registered a display formatter
(the cell shows ``<Figure size 720x688 with 12 Axes>``). :class:`InlineFigure` adds
``_repr_png_``, so a cell ending in ``plot_confusion_matrix(...)`` shows the picture with no
magic; in a script nothing changes (nothing is drawn until it is saved or displayed).
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure

DPI = 110  # pixels per inch of the picture a notebook shows


class InlineFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that Jupyter displays as a PNG."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DPI, facecolor="white", bbox_inches="tight")
        return buffer.getvalue()
