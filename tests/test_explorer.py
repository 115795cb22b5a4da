"""The explorer's generator (script9_explorer.py, classes/explorer): pages, links, offline, data, bad input."""

from __future__ import annotations

import json
import re
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from classes.scoring.performance import NOISE_CORRECTED_LABEL
from tests.explorer_support import MODELS, PAGES, build_arguments, small_site
from tutorials.build import tutorial_sources

WEB_FILES = (".html", ".js", ".css")


class _References(HTMLParser):
    """Every URL an HTML page refers to (href, src, srcset, poster, data, action), and its ids."""

    def __init__(self):
        super().__init__()
        self.urls, self.ids = [], set()

    def handle_starttag(self, tag, attributes):
        for name, value in attributes:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src", "poster", "data", "action") and value is not None:
                self.urls.append(value)
            if name == "srcset" and value:
                self.urls += [part.strip().split(" ")[0] for part in value.split(",")]


def _parse(path: Path) -> _References:
    parser = _References()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory, data_root):
    return small_site(tmp_path_factory, data_root)


def test_every_page_exists_and_every_local_link_and_image_resolves(site):
    folder, _, record = site
    assert record["site"]["pages"] == len(MODELS)
    for page in PAGES:
        assert (folder / "neurons" / f"{page}.html").is_file()
    html_files = sorted(folder.rglob("*.html"))
    assert {path.name for path in html_files} >= {"index.html", "figures.html"}
    checked = 0
    for path in html_files:
        for url in _parse(path).urls:
            if url.startswith(("data:", "mailto:")):
                continue
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{path.name} refers to {url} outside the site"
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.is_file(), f"{path.relative_to(folder)} links to missing {url}"
            if parts.fragment and target.suffix == ".html":
                assert parts.fragment in _parse(target).ids, f"{url} names no element of {target.name}"
            checked += 1
    assert checked > 50
    assert 'href="tutorials/index.html"' in (folder / "index.html").read_text()
    # Links made by the index's script: one page per row of its table.
    rows = json.loads(re.search(r'id="models">(.*?)</script>', (folder / "index.html").read_text(), re.S).group(1))
    assert [row["page"] for row in rows] == list(PAGES)


def test_nothing_loads_from_the_internet(site):
    folder = site[0]
    files = [path for path in folder.rglob("*") if path.suffix in WEB_FILES]
    assert any(path.suffix == ".js" for path in files) and any(path.suffix == ".css" for path in files)
    # The tutorials' pages show code that names the project's git URL; they load nothing but their own
    # stylesheet beside them (no script, no other link; every src and href local:
    # test_every_page_exists_and_every_local_link_and_image_resolves).
    tutorial_pages = [path for path in files if path.parent == folder / "tutorials"]
    assert tutorial_pages
    for path in tutorial_pages:
        text = path.read_text(encoding="utf-8").replace('<link rel="stylesheet" href="style.css">', "")
        assert not re.search(r"<script|<link|<iframe|@import|url\(", text, re.I), path
    for path in set(files) - set(tutorial_pages):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), f"{path} names a web address"
        assert "@import" not in text and "@font-face" not in text, path
        if path.suffix == ".js":
            assert not re.search(r"\bfetch\(|XMLHttpRequest|import\(|WebSocket|EventSource", text), path


def test_the_site_holds_every_rendered_tutorial(site):
    folder, _, record = site
    stems = [source.stem for source in tutorial_sources()]
    assert len(stems) >= 6
    for stem in stems:
        assert (folder / "tutorials" / f"{stem}.html").is_file() and (folder / "tutorials" / f"{stem}.ipynb").is_file()
        assert f'href="{stem}.html"' in (folder / "tutorials" / "index.html").read_text()
    assert (folder / "tutorials" / "style.css").is_file()
    assert record["site"]["tutorial_files"] == 2 * len(stems) + 2  # pages, notebooks, index, stylesheet


def test_neuron_pages_show_what_the_issue_lists(site):
    folder = site[0]
    text = (folder / "neurons" / "190923_neuron0.html").read_text()
    for heading in ("Try the model live", "Release images it responds to most", "Release images it responds to least",
                    "Synthesized images", "The model and all its weights", "Prediction vs V4", "Dot tuning",
                    "Most similar models"):
        assert heading in text, heading
    assert text.count('src="../images/release/') == 16
    assert "Maximizing synthesized image" in text and "Minimizing synthesized image" in text
    assert "Pearson r" in text and escape(NOISE_CORRECTED_LABEL) in text
    assert 'rel="prev"' in text and 'rel="next"' in text and "random model" in text
    assert re.search(r'<svg class="chart"', text) and 'id="upload"' in text and 'id="synthesize"' in text
    assert all(' alt="' in tag for tag in re.findall(r"<img[^>]*>", text)), "every image has alt text"
    assert 'name="viewport"' in text and 'lang="en"' in text
    missing = (folder / "neurons" / "211022_neuron0.html").read_text()
    assert "images_211022.zip" in missing and "are not in the release" in missing
    assert "<title>Prediction vs V4 response</title>" not in missing and "<title>Prediction vs V4" in text


def test_scores_are_script4s(site, data_root):
    from classes.compact.architecture import model_id
    from classes.scoring.held_out import score_models_on_held_out

    _, cache, _ = site
    folder = site[0]
    rows, notes = score_models_on_held_out([model_id("190923", 0), model_id("211022", 0)], data_root=data_root)
    index = json.loads(re.search(r'id="models">(.*?)</script>', (folder / "index.html").read_text(), re.S).group(1))
    by_id = {row["id"]: row for row in index}
    assert by_id["190923/0"]["pearson_r"] == pytest.approx(rows[0]["pearson_r"], abs=1e-5)
    # The headline estimator of script4 (per-image repeat counts, validated Fano factor), not the Poisson one.
    assert by_id["190923/0"]["noise_corrected_r2"] == pytest.approx(rows[0]["noise_corrected_r2"], abs=1e-5)
    assert rows[0]["noise_corrected_r2"] != pytest.approx(rows[0]["noise_corrected_r2_poisson"], abs=1e-3)
    assert by_id["211022/0"]["pearson_r"] is None and any("211022" in note for note in notes)


def test_preferred_images_carry_keras_responses(site, data_root):
    from classes.compact.model import load_compact_model
    from classes.compact.tools import predict_responses
    from classes.data.images import load_images
    from classes.data.preprocessing import recenter_images

    text = (site[0] / "neurons" / "201025_neuron2.html").read_text()
    shown = re.findall(r'images/release/(\d+)_(\d+)\.jpg" alt="[^"]*" width="112" height="112" loading="lazy">'
                       r"<figcaption>([-\d.e]+) ", text)
    assert len(shown) == 16
    model = load_compact_model("201025", 2, data_root=data_root)
    responses = [float(value) for _, _, value in shown]
    for session, number, value in shown[:3] + shown[-3:]:
        image = recenter_images(load_images(session, [int(number)], data_root=data_root))
        assert predict_responses(model, image)[0] == pytest.approx(float(value), abs=1e-3)
    assert responses[:8] == sorted(responses[:8], reverse=True) and responses[8:] == sorted(responses[8:])
    assert min(responses[:8]) > max(responses[8:])


def test_exported_weights_are_the_folded_weights(data_root):
    from classes.compact.architecture import load_weights_npy, model_id
    from classes.explorer.weights_export import browser_arrays, encode_array, model_spec
    from classes.prediction.folding import FOLDED_NAMES, fold_weights

    weights = load_weights_npy(model_id("201025", 2), data_root)
    folded = dict(zip(FOLDED_NAMES, fold_weights(weights).arrays, strict=True))
    arrays = browser_arrays(weights)
    np.testing.assert_array_equal(arrays["kernel0"].transpose(2, 3, 1, 0), folded["kernel0"])
    np.testing.assert_array_equal(arrays["depthwise3"].transpose(1, 2, 0)[..., None], folded["depthwise3"])
    np.testing.assert_array_equal(arrays["pointwise1"].T[None, None], folded["pointwise1"])
    np.testing.assert_array_equal(arrays["readout_map"].transpose(1, 2, 0), folded["readout_map"])
    spec = model_spec(weights)
    assert spec["nums_filters"] == [int(array.size) for name, array in folded.items() if name.startswith("bias")]
    assert spec["arrays"]["bias2"] == encode_array(folded["bias2"])


def test_rebuild_reads_the_cache_and_reuses_script6_images(site, data_root, tmp_path, monkeypatch):
    from PIL import Image

    import script9_explorer as script9
    from classes.analysis import synthesis_sheet
    from classes.compact.architecture import model_id
    from classes.explorer import dot_tuning, responses

    _, cache, _ = site
    script6 = tmp_path / "script6_all"
    image = np.zeros((1, 112, 112, 3), np.uint8)
    image[0, 30:80, 40:60] = [250, 20, 90]
    record = synthesis_sheet.make_record(model_id("190923", 0), 1.25, -0.5, np.linspace(-1, 1, 20), None, "none",
                                         {"steps": 300, "seed": 0, "grayscale": False})
    synthesis_sheet.write_record(script6, model_id("190923", 0), image, record)
    darkest = np.full((112, 112, 3), 7, np.uint8)
    minimizing, minimizing_record = synthesis_sheet.direction_paths(script6, model_id("190923", 0), "minimize")
    minimizing_record.write_text(json.dumps({"response": -2.5, "initial_response": 0.1, "steps": 300, "seed": 0,
                                             "trajectory": [0.1, -2.5]}))
    np.save(minimizing, darkest)

    def refuse(*args, **kwargs):
        raise AssertionError("a rebuild must read the cache")

    for module in (responses, dot_tuning):
        monkeypatch.setattr(module, "predict", refuse)
    monkeypatch.setattr(synthesis_sheet, "synthesize_compact_models", refuse)
    arguments = build_arguments(tmp_path / "site", cache, data_root, MODELS[:2])
    arguments[arguments.index("--script6-dir") + 1] = str(script6)
    result = script9.main(arguments)
    assert result["site"]["pages"] == 2 and result["timings_seconds"]["total"] < 60
    shown = np.asarray(Image.open(tmp_path / "site" / "images" / "synthesized" / "190923_neuron0_maximize.png"))
    np.testing.assert_array_equal(shown, image[0])
    page = (tmp_path / "site" / "neurons" / "190923_neuron0.html").read_text()
    assert "Maximizing: 1.25 after 300 steps" in page and "Minimizing: -2.5 after 300 steps" in page
    shown = np.asarray(Image.open(tmp_path / "site" / "images" / "synthesized" / "190923_neuron0_minimize.png"))
    np.testing.assert_array_equal(shown, darkest)
    index = (tmp_path / "site" / "index.html").read_text()
    assert "A partial build: 2 of the 219 models" in index
    # No tutorials built: the front page says how, and links to none.
    assert "python -m tutorials.build --out docs/tutorials" in index and "Tutorials: not in this build" in index
    assert not re.search(r'href="[^"]*tutorials', index) and not (tmp_path / "site" / "tutorials").exists()


def test_the_default_tutorials_folder_is_the_one_tutorials_build_writes():
    import script9_explorer as script9
    from tutorials.build import DEFAULT_OUTPUT

    assert script9.TUTORIALS_DIR == DEFAULT_OUTPUT
    assert script9.parse_arguments([]).tutorials_dir == DEFAULT_OUTPUT


def test_bad_input_gives_a_clear_message(data_root, tmp_path):
    import script9_explorer as script9

    with pytest.raises(SystemExit) as unknown:
        script9.main(build_arguments(tmp_path / "a", tmp_path / "cache", data_root, ["190923/99"]))
    assert "190923" in str(unknown.value.code) and "neurons 0..32" in str(unknown.value.code)
    root = tmp_path / "release_without_images"
    (root / "data_V4_responses").mkdir(parents=True)
    for name in ("data_compact_models", "data_shared_compact_models", "data_ensemble_model"):
        (root / name).symlink_to(Path(data_root) / name)
    for name in ("responses_repeat_averaged", "responses_raw"):
        (root / "data_V4_responses" / name).symlink_to(Path(data_root) / "data_V4_responses" / name)
    with pytest.raises(SystemExit) as no_images:
        script9.main(build_arguments(tmp_path / "b", tmp_path / "cache", root, ["190923/0"]))
    assert "holds no image zips" in str(no_images.value.code)
    assert not (tmp_path / "b" / "index.html").exists()


def test_distinct_images_predicts_each_image_once_and_maps_every_copy(monkeypatch):
    import hashlib

    from classes.explorer import responses

    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    images[3] = images[5] = images[1]
    images[4] = images[0]
    first, copy_of = responses.distinct_images(images)
    np.testing.assert_array_equal(first, [0, 1, 2])
    np.testing.assert_array_equal(copy_of, [0, 1, 2, 1, 0, 1])
    np.testing.assert_array_equal(images[first][copy_of], images)

    class Colliding:
        """Every image gets the same digest: images must still be told apart by their pixels."""

        def __init__(self, data):
            self.data = data

        def digest(self):
            return b"same"

    monkeypatch.setattr(hashlib, "sha256", Colliding)
    first, copy_of = responses.distinct_images(images)
    np.testing.assert_array_equal(first, [0, 1, 2])
    np.testing.assert_array_equal(copy_of, [0, 1, 2, 1, 0, 1])
