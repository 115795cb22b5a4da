"""Small static charts and images for the explorer's pages: inline SVG and PNG bytes.

Charts are SVG text written into the page (no script needed to see them),
each with a ``<title>`` and ``<desc>`` for screen readers; images are PNG
bytes (lossless, so a picked image reaches the in-page model unchanged).
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

WIDTH, HEIGHT = 320, 240
MARGIN = {"left": 52, "right": 12, "top": 12, "bottom": 40}


def png_bytes(image: np.ndarray) -> bytes:
    """PNG of a uint8 ``(H, W, 3)`` or ``(H, W)`` image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(content: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` of some bytes."""
    return f"data:{mime};base64," + base64.b64encode(content).decode("ascii")


def heatmap_png(values, scale: int = 8, colormap: str = "viridis") -> bytes:
    """A 2-D array as a PNG, each cell ``scale`` x ``scale`` pixels, NaN drawn gray."""
    import matplotlib

    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    normalised = (values - low) / (high - low) if high > low else np.zeros_like(values)
    colours = (matplotlib.colormaps[colormap](np.nan_to_num(normalised))[..., :3] * 255).round().astype(np.uint8)
    colours[~np.isfinite(values)] = 128
    return png_bytes(np.repeat(np.repeat(colours, scale, axis=0), scale, axis=1))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``low..high``."""
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return [float(low)] if np.isfinite(low) else [0.0]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** np.floor(np.log10(raw))
    step = min((factor * magnitude for factor in (1, 2, 2.5, 5, 10) if factor * magnitude >= raw), default=raw)
    first = np.ceil(low / step) * step
    # round() can leave -0.0, which would print as "-0".
    return [float(round(value, 10)) + 0.0 for value in np.arange(first, high + step * 1e-9, step)]


class _Axes:
    """Maps data to SVG coordinates for one chart."""

    def __init__(self, xs, ys):
        xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        self.x_range = _padded_range(xs[np.isfinite(xs)])
        self.y_range = _padded_range(ys[np.isfinite(ys)])

    def x(self, value) -> float:
        low, high = self.x_range
        return MARGIN["left"] + (value - low) / (high - low) * (WIDTH - MARGIN["left"] - MARGIN["right"])

    def y(self, value) -> float:
        low, high = self.y_range
        return HEIGHT - MARGIN["bottom"] - (value - low) / (high - low) * (HEIGHT - MARGIN["top"] - MARGIN["bottom"])

    def frame(self, x_label: str, y_label: str) -> list[str]:
        parts = [f'<rect x="{MARGIN["left"]}" y="{MARGIN["top"]}" width="{WIDTH - MARGIN["left"] - MARGIN["right"]}" '
                 f'height="{HEIGHT - MARGIN["top"] - MARGIN["bottom"]}" class="frame"/>']
        for value in nice_ticks(*self.x_range):
            parts.append(f'<text x="{self.x(value):.1f}" y="{HEIGHT - MARGIN["bottom"] + 14}" '
                         f'text-anchor="middle">{value:g}</text>')
        for value in nice_ticks(*self.y_range):
            parts.append(f'<text x="{MARGIN["left"] - 4}" y="{self.y(value) + 4:.1f}" text-anchor="end">{value:g}</text>')
        parts.append(f'<text x="{(WIDTH + MARGIN["left"]) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
                     f'class="label">{escape(x_label)}</text>')
        parts.append(f'<text transform="translate(12 {(HEIGHT - MARGIN["bottom"]) / 2:.0f}) rotate(-90)" '
                     f'text-anchor="middle" class="label">{escape(y_label)}</text>')
        return parts


def _padded_range(values) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * 0.05 or max(abs(low) * 0.05, 0.5)
    return low - pad, high + pad


def _svg(title: str, description: str, body: list[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">'
            f"<title>{escape(title)}</title><desc>{escape(description)}</desc>" + "".join(body) + "</svg>")


def scatter_svg(xs, ys, title: str, x_label: str, y_label: str, description: str) -> str:
    """A scatter plot with its least-squares line."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    axes = _Axes(xs, ys)
    body = axes.frame(x_label, y_label)
    body += [f'<circle cx="{axes.x(x):.1f}" cy="{axes.y(y):.1f}" r="2" class="point"/>'
             for x, y in zip(xs, ys, strict=True) if np.isfinite(x) and np.isfinite(y)]
    if len(xs) > 1 and np.ptp(xs) > 0:
        body.append(_fit_line(axes, *np.polyfit(xs, ys, 1)))
    return _svg(title, description, body)


def _fit_line(axes: _Axes, slope: float, intercept: float) -> str:
    """The least-squares line, cut to the plot's frame."""
    low, high = axes.x_range
    if slope != 0:
        # x where the line crosses the frame's bottom and top.
        crossings = sorted((bound - intercept) / slope for bound in axes.y_range)
        low, high = max(low, crossings[0]), min(high, crossings[1])
    return (f'<line x1="{axes.x(low):.1f}" y1="{axes.y(slope * low + intercept):.1f}" x2="{axes.x(high):.1f}" '
            f'y2="{axes.y(slope * high + intercept):.1f}" class="fit"/>')


def line_svg(xs, ys, title: str, x_label: str, y_label: str, description: str, baseline=None) -> str:
    """A tuning curve: points joined by lines, optionally a dashed baseline."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    keep = np.isfinite(ys)
    axes = _Axes(xs[keep], np.append(ys[keep], [] if baseline is None else [baseline]))
    body = axes.frame(x_label, y_label)
    if baseline is not None:
        low, high = axes.x_range
        body.append(f'<line x1="{axes.x(low):.1f}" y1="{axes.y(baseline):.1f}" x2="{axes.x(high):.1f}" '
                    f'y2="{axes.y(baseline):.1f}" class="baseline"/>')
    points = " ".join(f"{axes.x(x):.1f},{axes.y(y):.1f}" for x, y in zip(xs[keep], ys[keep], strict=True))
    body.append(f'<polyline points="{points}" class="curve"/>')
    body += [f'<circle cx="{axes.x(x):.1f}" cy="{axes.y(y):.1f}" r="3" class="marker"><title>{x:g}: {y:.3g}</title>'
             "</circle>" for x, y in zip(xs[keep], ys[keep], strict=True)]
    return _svg(title, description, body)
