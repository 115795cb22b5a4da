"""The HTML of one neuron's page (``neurons/<session>_neuron<k>.html``).

Sections: what the model is and how well it predicts; the live model (draw,
upload or pick an image; synthesize a preferred image in the page); the
release images it likes most and least; its synthesized images; its weights
drawn layer by layer (Fig. 1j); prediction vs V4; dot tuning; the most
similar models. ``page_data`` is assembled by :mod:`classes.explorer.site`.
"""

from __future__ import annotations

from html import escape

from classes.explorer import charts
from classes.explorer.layout import attribute, definition_list, figure, link_or_text, number, page

SCRIPTS = ("assets/engine.js", "assets/synthesis.js", "assets/diagram.js", "assets/neuron.js")


def neuron_page(page_data: dict) -> str:
    """The whole page of one model."""
    facts = page_data["facts"]
    sections = [_heading(page_data), _facts(page_data), _live(page_data), _natural(page_data),
                _synthesized(page_data), _diagram(facts), _prediction(page_data), _dots(page_data),
                _similar(page_data)]
    scripts = (f"data/{facts['stem']}.js", *SCRIPTS)
    return page(f"Model of V4 neuron {facts['id']}", "\n".join(sections), root="../", scripts=scripts,
                body_attributes=f'data-model="{attribute(facts["stem"])}"',
                description=f"Compact deep network model of macaque V4 neuron {facts['id']}")


def _heading(page_data: dict) -> str:
    facts, pager = page_data["facts"], page_data["pager"]
    links = [f'<a href="{attribute(href)}" rel="{rel}" data-key="{key}">{escape(text)}</a>'
             for rel, key, text, href in (("prev", "ArrowLeft", f"\u2190 previous ({pager['previous'][0]})",
                                            pager["previous"][1]),
                                           ("next", "ArrowRight", f"next ({pager['next'][0]}) \u2192", pager["next"][1]),
                                           ("nofollow", "r", "random model", pager["random"]))]
    return (f"<h1>Model of V4 neuron {escape(facts['id'])}</h1>"
            f'<p class="muted">Session {facts["session"]} (monkey {facts["animal"]}), neuron {facts["neuron"]}: '
            "a compact deep network distilled to predict this one neuron's responses to images.</p>"
            f'<nav class="pager" aria-label="Other models">{"".join(links)}<a href="../index.html">all models</a></nav>'
            '<p class="note js-only">Keys: \u2190 and \u2192 previous and next model, r a random one.</p>')


def _facts(page_data: dict) -> str:
    facts, scores, dots = page_data["facts"], page_data["scores"], page_data["dots"]
    counts = facts["nums_filters"]
    items = [("Filters per layer", " / ".join(str(count) for count in counts) + " (layers 1-5 of the paper, code 0-4)"),
             ("Parameters", f"{facts['parameters']:,} ({facts['convolutional_filters']} convolutional filters as "
                            "the paper counts them)")]
    if "pearson_r" in scores:
        items += [("Pearson r (held-out images)", number(scores["pearson_r"])),
                  ("Noise-corrected R\u00b2", f"{number(scores['noise_corrected_r2'])}, {escape(scores['label'])}")]
    else:
        items.append(("Scores", escape(scores["note"])))
    items.append(("Dot selectivity", f"{number(dots['dot_selectivity'])} (best dot: {dots['best_polarity']}, "
                                     f"radius {dots['best_radius']:g} px; above 1: a dot drives it more than any "
                                     "normal image)"))
    return "<h2>At a glance</h2>" + definition_list(items)


def _live(page_data: dict) -> str:
    best = page_data["best_natural"]
    return f"""<h2 id="live">Try the model live</h2>
<p>Draw on the image, upload one, or pick one below: the model's response is computed in your browser from the
model's weights (no server). Responses are in the model's units; the percentile compares with its responses to the
{page_data['num_images']:,} release images.</p>
<noscript><p class="error">The live model needs JavaScript; everything else on this page works without it.</p></noscript>
<div class="live js-only">
<div>
<canvas id="stimulus" width="112" height="112" tabindex="0" role="img"
 aria-label="The stimulus image, 112 by 112 pixels; draw on it with a mouse, pen or finger"></canvas>
<p class="readout" id="response" aria-live="polite">Loading the model\u2026</p>
<p class="error" id="message" role="alert"></p>
</div>
<div>
<div class="controls">
<label>Brush colour <input type="color" id="brush-colour" value="#000000"></label>
<label>Brush size <input type="range" id="brush-size" min="1" max="20" value="4"></label>
<button type="button" id="clear">Gray image</button><button type="button" id="noise">Noise</button>
</div>
<div class="controls"><label>Upload an image <input type="file" id="upload" accept="image/*"></label></div>
<p class="note">Pick an image (its response as the build computed it is in its label):</p>
<div class="picks" id="picks"></div>
<h3>Synthesize a preferred image</h3>
<p class="note">Gradient ascent as in the paper (SPEC section 7): from noise, step up the response's gradient;
the best image is kept. The dashed line is the best release image ({number(best['response'], 4)},
{escape(best['label'])}).</p>
<div class="controls">
<label>Steps <input type="number" id="steps" min="1" max="2000" value="{page_data['page_steps']}"></label>
<label>Seed <input type="number" id="seed" min="0" max="1000000" value="0"></label>
<button type="button" id="synthesize">Synthesize</button><button type="button" id="stop" disabled>Stop</button>
</div>
<canvas id="trajectory" class="chart-canvas" width="480" height="200" role="img"
 aria-label="The response at each synthesis step"></canvas>
<p id="synthesis-status" aria-live="polite" class="note"></p>
</div>
</div>"""


def _gallery(items: list[dict], kind: str) -> str:
    figures = []
    for rank, item in enumerate(items, 1):
        caption = f"{number(item['response'], 4)} ({escape(item['label'])})"
        figures.append("<li>" + figure(item["file"], f"{kind} image {rank}: {item['label']}", caption) + "</li>")
    return f'<ul class="gallery">{"".join(figures)}</ul>'


def _natural(page_data: dict) -> str:
    return (f"<h2>Release images it responds to most</h2><p>Of the {page_data['num_images']:,} images in the "
            "release's zips (mostly natural photographs; some zips also hold the experiments' synthesized, gaudy "
            "and Bashivan et al. images), best first, with the model's response:</p>"
            + _gallery(page_data["preferred"], "Preferred")
            + "<h2>Release images it responds to least</h2>" + _gallery(page_data["least"], "Least-preferred"))


def _synthesized(page_data: dict) -> str:
    items = []
    for direction, name in (("maximize", "Maximizing"), ("minimize", "Minimizing")):
        record = page_data["synthesized"][direction]
        caption = (f"{name}: {number(record['response'], 4)} after {record['steps']} steps "
                   f"(from noise at {number(record['initial_response'], 3)})")
        alt = f"{name} synthesized image of model {page_data['facts']['id']}"
        items.append("<li>" + figure(record["file"], alt, caption) + "</li>")
    return ("<h2>Synthesized images</h2><p>Images made for this model by gradient ascent (maximizing) and descent "
            "(minimizing) from noise, as in the paper's Fig. 2a and Ext. Data Fig. 3.</p>"
            f'<ul class="gallery">{"".join(items)}</ul>')


def _diagram(facts: dict) -> str:
    return ("<h2>The model and all its weights</h2><p>Drawn as in the paper's Fig. 1j, layer by layer, with each "
            "BatchNormalization folded into the weights before it (the weights the live model uses). Layer 1: "
            "each filter's 5x5 colour kernel (gray is zero). Layers 2-5: each input channel's 5x5 depthwise kernel "
            "(red positive, blue negative), then the pointwise mixing of channels into filters (one row per "
            "filter). Readout: each last-layer filter's 28x28 spatial weights.</p>"
            f'<div class="diagram" id="diagram" data-counts="{" ".join(str(count) for count in facts["nums_filters"])}">'
            '<noscript><p class="note">Drawing the weights needs JavaScript.</p></noscript></div>')


def _prediction(page_data: dict) -> str:
    scores = page_data["scores"]
    if "pearson_r" not in scores:
        return f'<h2>Prediction vs V4</h2><p class="note">{escape(scores["note"])}</p>'
    chart = charts.scatter_svg(scores["predictions"], scores["observed"], "Prediction vs V4 response",
                               "model prediction", "V4 response (spikes / 100 ms)",
                               f"{len(scores['observed'])} held-out images; Pearson r {number(scores['pearson_r'])}")
    return (f"<h2>Prediction vs V4</h2><p>The held-out half of session {page_data['facts']['session']}'s images "
            f"({len(scores['observed'])} images the model was not fitted on): Pearson r "
            f"{number(scores['pearson_r'])}, raw R\u00b2 {number(scores['raw_r2'])}, noise-corrected R\u00b2 "
            f"{number(scores['noise_corrected_r2'])}, {escape(scores['label'])} (the release lacks these "
            f"sessions' single-trial repeats; see script4). V4 responses are spike counts per 100 ms, averaged "
            f"over repeats.</p>{chart}")


def _dots(page_data: dict) -> str:
    dots, stem = page_data["dots"], page_data["facts"]["stem"]
    size = charts.line_svg(dots["radii"], dots["size_tuning"], "Dot size tuning", "dot radius (pixels)",
                           "response", "Mean response to the preferred dot at the 3x3 locations around the peak",
                           baseline=dots["baseline"])
    count = charts.line_svg(dots["numbers"], dots["number_tuning"], "Dot number tuning", "number of dots",
                            "response", "Mean response to that many dots inside the receptive field",
                            baseline=dots["baseline"])
    grid = dots["grid"]
    location = figure(f"../images/dots/{stem}_location.png",
                      f"Response to a {dots['best_polarity']} dot of radius {dots['best_radius']:g} px at each of "
                      f"{grid}x{grid} locations; brightest at row {dots['peak'][0]}, column {dots['peak'][1]}",
                      "Location tuning (bright: high response)")
    return ("<h2>Dot tuning</h2>"
            f"<p>The model's preferred single dot among black and white dots of radius 2, 4 and 8 px is "
            f"{dots['best_polarity']}, radius {dots['best_radius']:g} px. Dot selectivity "
            f"{number(dots['dot_selectivity'])} (script8's definition, against the release's normal images). "
            "The dashed line is the response to the blank gray image.</p>"
            f'<div class="charts"><ul class="gallery"><li>{location}</li></ul>{size}{count}</div>')


def _similar(page_data: dict) -> str:
    items = [f"<li>{link_or_text(item['id'], item['href'])}: r = {number(item['r'])}</li>"
             for item in page_data["similar"]]
    return ("<h2>Most similar models</h2><p>Signal correlation: the Pearson correlation of two models' "
            f"responses to the same {page_data['num_images']:,} images, among the {page_data['num_models']} models "
            f"of this build.</p><ol>{''.join(items) or '<li>none (a one-model build)</li>'}</ol>")
