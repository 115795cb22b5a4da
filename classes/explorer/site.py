"""Writing the explorer's static site from the computed results.

Layout of the site (all links relative, so it works from ``file://`` and
any static host)::

    index.html                      every model as a card; filters, sorts, find
    figures.html                    scripts 1-8's figures and comparison tables
    neurons/<session>_neuron<k>.html  one page per model
    data/<stem>.js                  the model's weights and pickable images
    images/synthesized/<session>_neuron<k>_{maximize,minimize}.png
    images/release/<session>_<number>.jpg   the release's own JPEGs
    images/dots/<stem>_location.png
    figures/<script>/*.png
    tutorials/                      the rendered tutorials (python -m tutorials.build), when given
    assets/                         style sheet and scripts
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classes.compact.architecture import ModelId, load_weights_npy
from classes.explorer import charts, site_files, summaries
from classes.explorer.index_page import index_page
from classes.explorer.neuron_page import neuron_page
from classes.explorer.paper_figures import figures_page
from classes.explorer.weights_export import data_script, model_spec

# Release images per page that the live model can pick (best and worst), besides the two synthesized.
NUM_PICKS = 4


@dataclass
class ExplorerResults:
    """Everything the pages show, for the built models (release order).

    Attributes:
        models: the models with a page.
        image_set: :class:`classes.explorer.responses.ImageSet`.
        natural: ``(M, N)`` responses to the images.
        synthesized: stem -> direction -> record (:mod:`classes.explorer.synthesized`).
        dots: stem -> dot record (:mod:`classes.explorer.dot_tuning`).
        scores: stem -> held-out scores or a note (:func:`summaries.held_out_scores`).
        correlations: ``(M, M)`` signal correlations.
    """

    models: list[ModelId]
    image_set: object
    natural: np.ndarray
    synthesized: dict
    dots: dict
    scores: dict
    correlations: np.ndarray


def _label(sources_row) -> str:
    return f"release image {int(sources_row[0])}/{int(sources_row[1])}"


def _release_items(results: ExplorerResults, row: int, positions) -> list[dict]:
    sources = results.image_set.sources
    return [{"file": f"../images/release/{int(sources[index, 0])}_{int(sources[index, 1]):04d}.jpg",
             "response": float(results.natural[row, index]), "label": _label(sources[index]),
             "source": (int(sources[index, 0]), int(sources[index, 1]))} for index in positions]


def _pager(models: list[ModelId], row: int) -> dict:
    pages = [f"{identifier.session_id}_neuron{identifier.neuron}" for identifier in models]
    others = [index for index in range(len(models)) if index != row] or [row]
    chosen = others[int(np.random.default_rng(row).integers(len(others)))]
    previous, following = (row - 1) % len(models), (row + 1) % len(models)
    return {"previous": (f"{models[previous].session_id}/{models[previous].neuron}", f"{pages[previous]}.html"),
            "next": (f"{models[following].session_id}/{models[following].neuron}", f"{pages[following]}.html"),
            "random": f"{pages[chosen]}.html"}


def page_data(results: ExplorerResults, row: int, page_steps: int, data_root) -> dict:
    """What :func:`classes.explorer.neuron_page.neuron_page` shows for model ``row``."""
    identifier = results.models[row]
    facts = summaries.model_facts(identifier, data_root)
    top, bottom = summaries.natural_extremes(results.natural[row])
    synthesized = {direction: {key: value for key, value in record.items() if key != "image"}
                   | {"file": f"../images/synthesized/{facts['page']}_{direction}.png"}
                   for direction, record in results.synthesized[identifier.stem].items()}
    similar = [{"id": f"{results.models[other].session_id}/{results.models[other].neuron}", "r": value,
                "href": f"{results.models[other].session_id}_neuron{results.models[other].neuron}.html"}
               for other, value in summaries.similar_models(results.correlations, row)]
    best = int(top[0])
    return {"facts": facts, "scores": results.scores[identifier.stem], "dots": results.dots[identifier.stem],
            "synthesized": synthesized, "preferred": _release_items(results, row, top),
            "least": _release_items(results, row, bottom), "similar": similar, "pager": _pager(results.models, row),
            "best_natural": {"response": float(results.natural[row, best]),
                             "label": _label(results.image_set.sources[best])},
            "page_steps": page_steps, "num_images": int(results.natural.shape[1]), "num_models": len(results.models)}


def page_script(results: ExplorerResults, row: int, data: dict, jpegs: dict, data_root) -> str:
    """The model's ``data/<stem>.js``: weights, pickable images, response percentiles."""
    identifier = results.models[row]
    picks = data["preferred"][:NUM_PICKS] + data["least"][:NUM_PICKS]
    stimuli = [{"label": item["label"], "response": item["response"],
                "url": charts.data_url(jpegs[item["source"]], "image/jpeg")} for item in picks]
    for direction, name in (("maximize", "maximizing"), ("minimize", "minimizing")):
        record = results.synthesized[identifier.stem][direction]
        stimuli.append({"label": f"{name} synthesized image", "response": float(record["response"]),
                        "url": charts.data_url(charts.png_bytes(record["image"]), "image/png")})
    return data_script(identifier.stem, {
        "id": data["facts"]["id"], "spec": model_spec(load_weights_npy(identifier, data_root), str(identifier)),
        "quantiles": summaries.response_quantiles(results.natural[row]), "best_natural": data["best_natural"],
        "stimuli": stimuli})


def _write_model_files(site: Path, results: ExplorerResults, row: int, data: dict, jpegs: dict, data_root) -> None:
    identifier, page = results.models[row], data["facts"]["page"]
    for direction, record in results.synthesized[identifier.stem].items():
        site_files.write_bytes(site / "images" / "synthesized" / f"{page}_{direction}.png",
                               charts.png_bytes(record["image"]))
    site_files.write_bytes(site / "images" / "dots" / f"{identifier.stem}_location.png",
                           charts.heatmap_png(results.dots[identifier.stem]["location"],
                                              scale=max(1, 112 // results.dots[identifier.stem]["grid"])))
    for item in data["preferred"] + data["least"]:
        target = site / "images" / "release" / Path(item["file"]).name
        if not target.is_file():
            site_files.write_bytes(target, jpegs[item["source"]])
    site_files.write_text(site / "data" / f"{identifier.stem}.js", page_script(results, row, data, jpegs, data_root))
    site_files.write_text(site / "neurons" / f"{page}.html", neuron_page(data))


def write_site(site: Path, results: ExplorerResults, results_dir: Path, page_steps: int, data_root,
               progress=None, tutorials_dir: Path | None = None) -> dict:
    """Writes the whole site for the built models.

    Args:
        site: the output folder.
        results: the computed results.
        results_dir: where scripts 1-8 left their results (figures page).
        page_steps: the in-page synthesis's default step budget.
        progress: optional tqdm bar, advanced once per page.
        tutorials_dir: the rendered tutorials' folder, copied into the site
            when it holds them (:func:`classes.explorer.site_files.copy_tutorials`).

    Returns:
        ``{"pages": ..., "bytes": ..., "files": ..., "figure_scripts": [...], "tutorial_files": ...}``.
    """
    site_files.copy_assets(site)
    pages = [page_data(results, row, page_steps, data_root) for row in range(len(results.models))]
    wanted = {item["source"] for data in pages for item in data["preferred"] + data["least"]}
    jpegs = site_files.release_jpegs(wanted, data_root)
    for row, data in enumerate(pages):
        _write_model_files(site, results, row, data, jpegs, data_root)
        if progress is not None:
            progress.update(1)
    site_files.remove_stale(site / "neurons", {f"{data['facts']['page']}.html" for data in pages})
    site_files.remove_stale(site / "data", {f"{data['facts']['stem']}.js" for data in pages})
    figures_html, figure_scripts = figures_page(site, results_dir)
    site_files.write_text(site / "figures.html", figures_html)
    rows = [summaries.index_row(data["facts"], data["scores"], data["dots"], results.synthesized[data["facts"]["stem"]])
            for data in pages]
    notes = [] if len(rows) == 219 else [f"A partial build: {len(rows)} of the 219 models have pages "
                                          "(python script9_explorer.py builds them all)."]
    tutorial_files = site_files.copy_tutorials(site, tutorials_dir)
    site_files.write_text(site / "index.html", index_page(rows, int(results.natural.shape[1]), figure_scripts, notes,
                                                          tutorials=tutorial_files > 0))
    size, files = site_files.folder_size(site)
    return {"pages": len(pages), "bytes": size, "files": files, "figure_scripts": figure_scripts,
            "tutorial_files": tutorial_files}
