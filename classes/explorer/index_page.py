"""The explorer's front page: every built model as a card with its maximizing image.

Without JavaScript the cards are all there in the release's order; with it,
``assets/index.js`` filters and sorts them (session, animal, Pearson r,
noise-corrected R2, filters, dot selectivity) and finds a model by its id,
reading the table embedded in the page as JSON.
"""

from __future__ import annotations

import json
from html import escape

from classes.explorer.layout import attribute, fixed, page
from classes.explorer.site_files import TUTORIALS_BUILD
from classes.scoring.performance import NOISE_CORRECTED_LABEL

GUIDE = """<h2 id="guide">How to read a neuron's page</h2>
<ul>
<li><strong>The model.</strong> Each page is one compact deep network (5 convolutional layers) trained to
predict one V4 neuron of a macaque monkey: how strongly it fires, in spikes per 100 ms, to an image.</li>
<li><strong>Preferred images.</strong> The release images with the highest and lowest predicted responses, and
images synthesized to push the response up or down: what the neuron "likes".</li>
<li><strong>Try it live.</strong> Draw, upload or pick an image and the model answers in your browser; press
<em>Synthesize</em> to watch gradient ascent build an image the model likes more than any photograph.</li>
<li><strong>Weights.</strong> The whole network drawn filter by filter, as in the paper's Fig. 1j.</li>
<li><strong>Scores.</strong> How well the model predicts the real neuron on images it was not fitted on; the
noise-corrected R\u00b2 here is approximate (a Poisson noise model), as the release lacks single trials.</li>
</ul>"""


def _card(row: dict) -> str:
    scores = f"r {fixed(row['pearson_r'])} \u00b7 R\u00b2 {fixed(row['noise_corrected_r2'])}"
    return (f'<li data-id="{attribute(row["id"])}"><a href="neurons/{row["page"]}.html">'
            f'<img src="images/synthesized/{row["page"]}_maximize.png" width="112" height="112" loading="lazy" '
            f'alt="Maximizing synthesized image of model {attribute(row["id"])}">'
            f'<span class="id">{escape(row["id"])}</span><br><span class="scores">{scores}</span></a></li>')


def _controls(rows: list[dict]) -> str:
    sessions = "".join(f"<option>{session}</option>" for session in dict.fromkeys(row["session"] for row in rows))
    animals = "".join(f"<option>{animal}</option>" for animal in sorted({row["animal"] for row in rows}))
    sorts = "".join(f'<option value="{key}">{escape(label)}</option>' for key, label in (
        ("order", "release order"), ("pearson_r", "Pearson r (high first)"),
        ("noise_corrected_r2", "noise-corrected R\u00b2 (high first)"),
        ("dot_selectivity", "dot selectivity (high first)"),
        ("convolutional_filters", "filters (few first)"), ("maximizing_response", "maximizing response")))
    return f"""<form class="filters js-only" id="filters" role="search" aria-label="Filter and sort the models">
<label>Find by id <input id="find" placeholder="201025/2" autocomplete="off"></label>
<label>Session <select id="session"><option value="">all</option>{sessions}</select></label>
<label>Animal <select id="animal"><option value="">all</option>{animals}</select></label>
<label>Pearson r at least <input id="min-r" type="number" step="0.05" min="-1" max="1"></label>
<label>R\u00b2 (approx.) at least <input id="min-r2" type="number" step="0.05" min="-1" max="1"></label>
<label>Filters at most <input id="max-filters" type="number" min="1" step="1"></label>
<label>Dot selectivity at least <input id="min-dots" type="number" step="0.1"></label>
<label>Sort by <select id="sort">{sorts}</select></label>
</form>
<p id="count" aria-live="polite" class="muted"></p><p id="find-message" class="error" role="alert"></p>"""


def tutorials_paragraph(tutorials: bool) -> str:
    """The front page's line on the tutorials: a link to the site's copy, or how to build them.

    Args:
        tutorials: whether ``tutorials/index.html`` is in the site
            (:func:`classes.explorer.site_files.copy_tutorials`).
    """
    if tutorials:
        return ('<p><a href="tutorials/index.html">Tutorials</a>: the paper step by step (load and score a model, '
                "look inside it, its preferred stimuli, the dot detector, distil and prune a model), as notebooks "
                "executed with their outputs, each with a notebook to run yourself.</p>")
    return ("<p>Tutorials: not in this build. Build their pages with "
            f"<code>{escape(TUTORIALS_BUILD)}</code>, then rebuild this site: <code>script9_explorer.py</code> "
            "copies them from <code>docs/tutorials</code> (or <code>--tutorials-dir</code>).</p>")


def index_page(rows: list[dict], num_images: int, figure_scripts: list[str], notes: list[str],
               tutorials: bool) -> str:
    """The front page.

    Args:
        rows: one entry per built model (:func:`classes.explorer.summaries.index_row`), release order.
        num_images: the release images every model responded to.
        figure_scripts: the numbered scripts whose results the figures page shows.
        notes: lines shown under the introduction (e.g. a partial build).
        tutorials: whether the site holds the rendered tutorials (:func:`tutorials_paragraph`).
    """
    table_json = json.dumps(rows, allow_nan=False).replace("</", "<\\/")
    partial = "".join(f'<p class="note">{escape(note)}</p>' for note in notes)
    figures = (f"{len(figure_scripts)} of the 8 scripts' results are on it" if figure_scripts
               else "no script results were present when it was built; it says how to make them")
    body = f"""<h1>V4 explorer: {len(rows)} compact models of macaque V4 neurons</h1>
<p>Each card is one model, shown by the image synthesized to drive it most. Open one to see the release images
it prefers, its weights, how well it predicts the real neuron, its dot tuning, and to run it live in the page.
The scores are Pearson r and the noise-corrected R\u00b2, {escape(NOISE_CORRECTED_LABEL)}, on the held-out half of each
neuron's session; every model saw the same {num_images:,} release images.</p>
<p><a href="figures.html">The paper's figures as this project reproduces them</a> ({figures}).</p>
{tutorials_paragraph(tutorials)}{partial}
{_controls(rows)}
<ul class="cards" id="cards">{"".join(_card(row) for row in rows)}</ul>
{GUIDE}
<script type="application/json" id="models">{table_json}</script>"""
    return page("All models", body, scripts=("assets/index.js",),
                description="Browse 219 compact deep network models of macaque V4 neurons")
