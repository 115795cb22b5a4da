"""The frame every explorer page shares, and small HTML helpers.

Pages link only to files of the site, by relative paths (``root`` is the
way back to the site's top folder, ``""`` or ``"../"``), so the site works
from ``file://`` and from any static host. Nothing is loaded from elsewhere:
system fonts, local scripts and style sheet.
"""

from __future__ import annotations

import math
from html import escape

SITE_TITLE = "V4 explorer"
PAPER = ("Cowley, Stan, Pillow & Smith, \u201cCompact deep neural network models of visual cortex\u201d, "
         "Nature 2025 (bioRxiv 2023.11.22.568315)")


def number(value, digits: int = 3) -> str:
    """A number for a page: ``digits`` significant digits; "n/a" for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def fixed(value, decimals: int = 2) -> str:
    """A number with ``decimals`` decimals; "n/a" for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{decimals}f}"


def attribute(value) -> str:
    """Text escaped for a double-quoted HTML attribute."""
    return escape(str(value), quote=True)


def link_or_text(label: str, href: str | None) -> str:
    """A link when the target page exists in this build, else plain text."""
    return f'<a href="{attribute(href)}">{escape(label)}</a>' if href else escape(label)


def page(title: str, body: str, root: str = "", scripts=(), body_attributes: str = "",
         description: str = "") -> str:
    """A whole HTML page.

    Args:
        title: the page's title (before " - V4 explorer").
        body: the HTML inside ``<main>``.
        root: relative path from the page to the site's top folder.
        scripts: site-relative script paths, loaded at the end of the body.
        body_attributes: extra attributes of ``<body>`` (e.g. ``data-model``).
        description: the page's meta description.
    """
    script_tags = "".join(f'<script src="{attribute(root + path)}"></script>\n' for path in scripts)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="description" content="{attribute(description or title)}">
<title>{escape(title)} - {SITE_TITLE}</title>
<link rel="stylesheet" href="{root}assets/explorer.css">
</head>
<body {body_attributes}>
<a class="skip" href="#main">Skip to the content</a>
<header class="site">
<a class="brand" href="{root}index.html">{SITE_TITLE}</a>
<nav aria-label="Site"><a href="{root}index.html">All models</a><a href="{root}figures.html">Paper figures</a><a href="{root}index.html#guide">How to read a page</a></nav>
</header>
<main id="main" tabindex="-1">
{body}
</main>
<footer>
<p>Compact models of macaque V4 neurons from {escape(PAPER)}, built from the authors' data release by
<code>script9_explorer.py</code>. Everything on these pages, the live model included, runs from these files alone:
nothing is fetched from the internet.</p>
</footer>
<script>document.documentElement.classList.add("has-js");</script>
{script_tags}</body>
</html>
"""


def figure(src: str, alt: str, caption: str, width: int = 112) -> str:
    """An image with its caption."""
    return (f'<figure><img src="{attribute(src)}" alt="{attribute(alt)}" width="{width}" height="{width}" '
            f'loading="lazy"><figcaption>{caption}</figcaption></figure>')


def definition_list(items) -> str:
    """``<dl>`` of (term, HTML description) pairs."""
    rows = "".join(f"<dt>{escape(term)}</dt><dd>{description}</dd>" for term, description in items)
    return f'<dl class="facts">{rows}</dl>'


def table(header, rows) -> str:
    """A table of escaped cells, scrollable sideways on narrow screens."""
    head = "".join(f'<th scope="col">{escape(str(cell))}</th>' for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
