"""Inline SVG plots (no scripts, no fonts from the network): bar charts and heatmaps.

Each plot is an ``<svg class="plot">`` whose bars/cells carry ``data-value`` attributes, so a
test can read back what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

W, H = 360, 170
PAD_L, PAD_B, PAD_T = 36, 44, 16


def bars(labels: Sequence[str], counts: Sequence[int], title: str, color: str) -> str:
    """A bar chart of ``counts``; labels under the bars (rotated) when there is room."""
    n = max(1, len(counts))
    top = max(counts, default=0) or 1
    bw = (W - PAD_L - 8) / n
    ph = H - PAD_B - PAD_T
    out = [
        f'<svg class="plot" role="img" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - 4}" y2="{H - PAD_B}" stroke="#888"/>',
        f'<text x="{PAD_L - 4}" y="{PAD_T + 4}" text-anchor="end" class="tick">{top}</text>',
    ]
    every = max(1, math.ceil(n / 10))
    for i, (label, c) in enumerate(zip(labels, counts, strict=True)):
        h = ph * c / top
        x = PAD_L + i * bw
        out.append(
            f'<rect class="bar" data-value="{c}" x="{x + 1:.1f}" y="{H - PAD_B - h:.1f}" '
            f'width="{max(bw - 2, 1):.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{escape(label)}: {c}</title></rect>"
        )
        if i % every == 0:
            tx, ty = x + bw / 2, H - PAD_B + 10
            out.append(
                f'<text class="tick" x="{tx:.1f}" y="{ty}" text-anchor="end" '
                f'transform="rotate(-40 {tx:.1f} {ty})">{escape(label[:14])}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def heatmap(names: Sequence[str], matrix: Sequence[Sequence[float]], title: str) -> str:
    """A correlation matrix in [-1, 1]: blue negative, red positive; values in each cell."""
    n = len(names)
    cell = 44
    left, top = 110, 10
    size_w, size_h = left + n * cell + 8, top + n * cell + 8
    out = [
        f'<svg class="plot heatmap" role="img" width="{size_w}" height="{size_h}" '
        f'viewBox="0 0 {size_w} {size_h}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for i, row in enumerate(matrix):
        y = top + i * cell
        out.append(
            f'<text class="tick" x="{left - 4}" y="{y + cell / 2 + 4}" text-anchor="end">'
            f"{escape(names[i][:16])}</text>"
        )
        for j, v in enumerate(row):
            x = left + j * cell
            shown = "n/a" if math.isnan(v) else f"{v:.2f}"
            out.append(
                f'<rect class="cell" data-value="{shown}" x="{x}" y="{y}" width="{cell - 2}" '
                f'height="{cell - 2}" fill="{_color(v)}"/>'
                f'<text class="cellv" x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" '
                f'text-anchor="middle">{shown}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _color(v: float) -> str:
    if math.isnan(v):
        return "#ddd"
    a = min(1.0, abs(v))
    base = (200, 60, 50) if v > 0 else (50, 90, 200)
    r, g, b = (round(255 - (255 - c) * a) for c in base)
    return f"rgb({r},{g},{b})"
