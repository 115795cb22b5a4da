# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Preferred stimuli: synthesized, natural and adversarial images
#
# What does a V4 neuron want to see? A model that is accurate and small can
# answer by search: try many natural images and keep the best, or change an
# image pixel by pixel along the model's gradient until the response is as
# large as possible. The paper did both (Fig. 2) and then showed the
# resulting images to the real neurons in later sessions: the neurons
# responded more to the model's top natural images and more still to its
# synthesized images; small *adversarial* pixel changes chosen by the model
# raised or lowered their responses, as the model predicted.
#
# This tutorial makes those images for one compact model: its top natural
# images, synthesized images, and adversarial images.

# %% [markdown]
# ## Setup
#
# On Colab, or any machine without this project, the next cell installs the
# project from `REPOSITORY_URL` (set it to the project's git URL first) and
# downloads the release files this tutorial needs from the paper's
# repository. Where the project and the release are at hand it changes
# nothing.

# %%
REPOSITORY_URL = "https://github.com/<owner>/<repository>"  # this project's git URL: set it on Colab
import importlib.util, subprocess, sys  # noqa: E401, I001
if importlib.util.find_spec("classes") is None:  # not installed here (Colab): install it from REPOSITORY_URL
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", f"git+{REPOSITORY_URL}"], check=True)
from classes.data.fetch_release import tutorial_release  # noqa: E402

data_root = tutorial_release("04")  # the release files it reads (TUTORIAL_FILES), downloaded where missing

# %%
# %matplotlib inline
import numpy as np

from classes.runtime.outputs import pyplot
from classes.runtime.step_cap import capped

plt = pyplot()

# %% [markdown]
# ## The top natural images
#
# The candidate pool is every *normal* image in the release's zips (zips
# whose images are all natural photographs; other sessions also hold
# synthesized or manipulated images). Images are kept as raw pixels for
# display and recentred for the model.

# %%
from classes.compact.architecture import model_id
from classes.compact.model import load_compact_model
from classes.data.candidate_images import load_image_pool, normal_image_sessions
from classes.data.preprocessing import recenter_images
from classes.figures.synthesis import image_grid
from classes.prediction import predict

identifier = model_id("190923", 0)
model = load_compact_model(identifier.session_id, identifier.neuron)
sessions = normal_image_sessions()
pool, sources = load_image_pool(sessions, size=capped(6000, minimum=300), seed=0)
pool_responses = predict(identifier, recenter_images(pool))[0]
order = np.argsort(-pool_responses)
print(f"{len(pool)} normal images of sessions {', '.join(sessions)}; "
      f"responses {pool_responses.min():.2f}..{pool_responses.max():.2f}, mean {pool_responses.mean():.2f}")

shown = np.concatenate([order[:8], order[-4:]])
image_grid(pool[shown], [f"{sources[row, 0]}/{sources[row, 1]}: {pool_responses[row]:.2f}" for row in shown],
           columns=6, title=f"model {identifier}: its 8 best and 4 worst natural images (session/image: response)",
           cell=1.3)

# %% [markdown]
# ## Synthesized images
#
# Gradient ascent on the image (SPEC section 7): start from uniform noise,
# and at each step move every pixel along the gradient of the response,
# normalised by its root-mean-square and blurred a little (sigma 1 pixel) so
# that the image stays smooth; blur the image itself every 50 steps, and
# keep the best image seen. `synthesize_images` runs the whole loop in one
# compiled TensorFlow graph, several images at once, each from its own noise.

# %%
from classes.analysis.synthesis import DEFAULT_NUM_STEPS, synthesize_images

num_steps = capped(DEFAULT_NUM_STEPS, minimum=10)
maximizing = synthesize_images(model, num_images=4, direction="maximize", num_steps=num_steps, seed=0)
minimizing = synthesize_images(model, num_images=2, direction="minimize", num_steps=num_steps, seed=1)
print(f"{num_steps} steps; maximizing responses {np.round(maximizing.responses, 2).tolist()} "
      f"(best natural image {pool_responses.max():.2f})")

image_grid(np.concatenate([maximizing.images, minimizing.images]),
           [f"max: {value:.2f}" for value in maximizing.responses] + [f"min: {value:.2f}" for value in minimizing.responses],
           columns=6, title=f"synthesized images of {identifier}, {num_steps} gradient steps", cell=1.3)

# %%
figure, axis = plt.subplots(figsize=(6, 3.2))
axis.plot(maximizing.trajectory, color="C3", alpha=0.7)
axis.plot(minimizing.trajectory, color="C0", alpha=0.7)
axis.axhline(pool_responses.max(), color="gray", linestyle="--", label="best natural image")
axis.set_xlabel("gradient step")
axis.set_ylabel("model response")
axis.set_title("response along the synthesis (red: maximizing, blue: minimizing)", fontsize=9)
axis.legend(fontsize=8)
figure

# %% [markdown]
# The synthesized images drive the model far beyond any natural image: they
# concentrate the features the model likes where its readout looks (compare
# tutorial 3's readout maps). That a model's synthesized images also drove
# the *real* neuron beyond its best natural images is one of the paper's
# tests that the models capture V4, not just fit it.

# %% [markdown]
# ## Adversarial images
#
# Starting from natural images, `adversarial_images` changes pixels by small
# steps along the sign of the gradient, up (or down) the response, and stops
# before any pixel has moved more than a threshold (here 20 of 255). The
# changes are faint textures, yet the response moves a lot: the model, and
# in the paper the neuron, is sensitive to precise local features.

# %%
from classes.analysis.causal_images import DEFAULT_MAX_PIXEL_CHANGE, adversarial_images

normal_rows = np.random.default_rng(0).choice(len(pool), size=2, replace=False)
base = pool[normal_rows]
results = {direction: adversarial_images(model, base, direction, DEFAULT_MAX_PIXEL_CHANGE)
           for direction in ("increase", "decrease")}
for direction, result in results.items():
    print(f"{direction}: {np.round(result.base_responses, 2).tolist()} -> {np.round(result.responses, 2).tolist()} "
          f"(largest pixel change {result.max_pixel_change.max():.0f})")

figure, axes = plt.subplots(len(base), 4, figsize=(6.4, 1.75 * len(base)), squeeze=False)
for row in range(len(base)):
    increased, decreased = results["increase"], results["decrease"]
    panels = [(base[row], f"base: {increased.base_responses[row]:.2f}"),
              (increased.images[row], f"adversarial+: {increased.responses[row]:.2f}"),
              (decreased.images[row], f"adversarial-: {decreased.responses[row]:.2f}"),
              (128 + 4 * (increased.images[row] - base[row]), "change + (x4)")]
    for axis, (image, title) in zip(axes[row], panels, strict=True):
        axis.imshow(np.clip(image, 0, 255).astype(np.uint8))
        axis.set_title(title, fontsize=8)
        axis.axis("off")
figure.tight_layout()
figure

# %% [markdown]
# ## Where in the image: a saliency map
#
# Which parts of an image matter? Blur a small patch (15x15 pixels) centred
# at each point of a grid and record how the response changes
# (`saliency_map`). Red: smoothing there lowers the response, so the
# details there drive the model.

# %%
from classes.analysis.causal_images import saliency_map

top_image = pool[order[0]]
saliency = saliency_map(model, top_image)
limit = np.abs(saliency.change).max()
figure, axes = plt.subplots(1, 2, figsize=(7, 3.4))
axes[0].imshow(top_image)
axes[0].set_title(f"best natural image: {saliency.base_response:.2f}", fontsize=8)
shown = axes[1].imshow(saliency.change, cmap="RdBu", vmin=-limit, vmax=limit)
axes[1].set_title("response change when smoothed there", fontsize=8)
figure.colorbar(shown, ax=axes[1], fraction=0.046)
for axis in axes:
    axis.axis("off")
figure

# %% [markdown]
# ## What the paper measured on the real neurons
#
# The images above are the model's; the paper made the same kinds of images
# for neurons recorded in later sessions and showed them to those neurons.
# The changes in their responses (Fig. 2), from the project's registry of
# published numbers, compare with the percent changes that
# `script6_synthesize.py` predicts from the models:

# %%
from classes.reporting.published import published

for key in ("maximizing_normal", "maximizing_synthesized", "adversarial_increase", "adversarial_decrease",
            "smooth_minus"):
    entry = published(key)
    error = f" +/- {entry.error}" if entry.error is not None else ""
    print(f"{entry.description:32s} {entry.value:+.1f}{error} {entry.unit} ({entry.source})")
