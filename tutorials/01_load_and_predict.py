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
# # 1. Load a compact model in every format and predict its responses
#
# Cowley, Stan, Pillow & Smith (*Compact deep neural network models of visual
# cortex*, Nature 2025) recorded neurons of macaque area V4 while the monkeys
# looked at thousands of natural images. They first fitted a large *ensemble*
# model to the recordings (25 deep networks, about 60 million parameters),
# then distilled it into one small convolutional network per neuron, a
# **compact model**, and pruned each to a few hundred filters. The release
# holds 219 compact models: one for each neuron of four held-out sessions.
#
# In this tutorial you will load one compact model from each file format of
# the release, show it images, predict its responses with
# `classes.prediction.predict`, check that every format gives the same
# responses, and compare the predictions with the neuron's recorded responses.

# %% [markdown]
# ## Setup
#
# On Colab, or any machine without this project, the next cell installs the
# project from `REPOSITORY_URL` (set it to the project's git URL first) and
# downloads the few release files this tutorial needs from the paper's
# repository, cowleygroup/V4_compact_models on GitHub. Where the project and
# the release are already at hand it changes nothing.

# %%
REPOSITORY_URL = "https://github.com/<owner>/<repository>"  # this project's git URL: set it on Colab
import importlib.util, subprocess, sys  # noqa: E401, I001
if importlib.util.find_spec("classes") is None:  # not installed here (Colab): install it from REPOSITORY_URL
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", f"git+{REPOSITORY_URL}"], check=True)
from classes.data.fetch_release import tutorial_release  # noqa: E402

data_root = tutorial_release("01")  # the release files it reads (TUTORIAL_FILES), downloaded where missing

# %% [markdown]
# Figures are drawn by matplotlib on the Agg backend, as everywhere in this
# project, and shown by leaving the figure as the last line of a cell.
# `capped(n)` is `n` unless the environment variable
# `COWLEY2023_TUTORIAL_STEPS` asks for a quick run (CI sets it).

# %%
# %matplotlib inline
import numpy as np

from classes.runtime.outputs import pyplot
from classes.runtime.step_cap import capped

plt = pyplot()

# %% [markdown]
# ## The release's files for one model
#
# Each compact model is named by its session and the neuron's index in it,
# here neuron 0 of session 190923. The release stores it four ways: a Keras
# `.keras` file, a PyTorch state dict `.pt`, its weights as a NumPy list
# (`model_weights_npy`, with the filter counts in `nums_filters`), and a text
# summary.

# %%
from classes.compact.architecture import load_nums_filters, model_file, model_id
from classes.compact.model import load_compact_model

identifier = model_id("190923", 0)
for file_format in ("keras", "torch", "npy", "nums_filters", "summary"):
    path = model_file(identifier, file_format)
    print(f"{file_format:13s} {path.relative_to(data_root)}  ({path.stat().st_size / 1000:.0f} kB)")

# %% [markdown]
# ## What is inside
#
# Every compact model has the same five convolutional layers. Layer 0 is an
# ordinary 5x5 convolution; layers 1-4 are *separable*: a 5x5 spatial filter
# per input channel, then a 1x1 mix across channels. Layers 1 and 2 halve
# the resolution, so the last layer's maps are 28x28. A dense *readout*
# weighs every position of every last-layer map into one number: the
# predicted spike count (up to an offset and scale). Pruning left each model
# its own filter counts `[K0, K1, K2, K3, K4]`, many in the first two layers
# and a handful in the last three.

# %%
from classes.compact.tools import count_convolutional_filters, count_parameters

model = load_compact_model("190923", 0)
nums_filters = load_nums_filters(identifier)
print("filters per layer:", nums_filters)
print("convolutional filters (the paper's count):", count_convolutional_filters(nums_filters))
print("parameters:", count_parameters(model))
model.summary(line_length=100)

# %% [markdown]
# ## Images in, responses out
#
# Images are 112x112 RGB. The models take them *recentred*: the raw pixel
# values minus the mean colour of the training images. Each test session's
# images are split in two halves: the first half fitted the mapping from the
# ensemble to the neurons, the second half was never used in training, so
# that is where a model is tested.

# %%
from classes.data.images import load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import held_out_indices
from classes.figures.synthesis import image_grid

_, held_out = held_out_indices("190923")
image_numbers = held_out[: capped(len(held_out), minimum=100)] + 1  # 1-based, as in image0601.jpg
raw_images = load_images("190923", image_numbers)
images = recenter_images(raw_images)
print("raw:", raw_images.dtype, raw_images.shape, "recentred:", images.dtype,
      f"{images.min():.0f}..{images.max():.0f}")

image_grid(raw_images[:6], [f"image{number:04d}" for number in image_numbers[:6]], columns=6,
           title="the first held-out images of session 190923", cell=1.3)

# %% [markdown]
# `predict` is the one entry point for responses. It takes one model or a
# list of them, each a released id (`"190923/0"`, a `(session, neuron)` pair
# or a `ModelId`), a Keras model, a weight list or a shared compact model,
# and returns one row per model: `(num_models, num_images)`. Released ids
# run on a fast path (batch normalisation folded into the convolutions, a
# compiled kernel where the CPU allows it); `engine="keras"` calls the Keras
# model itself, the reference.

# %%
from classes.prediction import predict

responses = predict("190923/0", images)
print("responses:", responses.shape, responses.dtype)
order = np.argsort(-responses[0])[:6]
image_grid(raw_images[order], [f"response {responses[0, index]:.2f}" for index in order], columns=6,
           title="the six held-out images that drive the model most", cell=1.3)

# %% [markdown]
# ## Every format gives the same responses
#
# Load the model from each format and predict the same images. The
# `.keras` model called by Keras is the reference; the table gives each
# format's largest difference from it, in units of the responses' standard
# deviation. PyTorch is optional: its rows need `pip install torch`.

# %%
from classes.compact.architecture import load_weights_npy
from classes.compact.torch_agreement import relative_max_difference
from classes.compact.torch_conversion import (
    load_torch_compact_model,
    torch_model_from_keras_weights,
)
from classes.compact.torch_model import predict_responses_torch, torch_available

reference = predict(model, images, engine="keras")[0]
formats = {
    "released id, fast path": predict(identifier, images)[0],
    ".npy weights built into Keras": predict(load_compact_model("190923", 0, "npy"), images, engine="keras")[0],
    "weight list, fast path": predict([load_weights_npy(identifier)], images)[0],
}
if torch_available():
    formats[".pt file (PyTorch)"] = predict_responses_torch(load_torch_compact_model("190923", 0), images)
    formats["PyTorch port of the Keras weights"] = predict_responses_torch(
        torch_model_from_keras_weights(model), images)
for name, values in formats.items():
    print(f"{name:35s} max |difference| / s.d. = {relative_max_difference(reference, values):.1e}")

# %% [markdown]
# All agree to float precision except the release's `.pt` file, off by a
# few percent of the s.d.: those files were exported for PyTorch's default
# batch-normalisation epsilon (1e-5 instead of Keras's 1e-3), which matters
# where a deep layer's variance is tiny. The port built from the Keras
# weights keeps Keras's epsilon and matches (`docs/torch_port.md`).

# %% [markdown]
# ## A shared compact model: one network, 219 neurons
#
# The paper also distilled *shared* compact models (Fig. 3d-e): the first
# layers are shared by all 219 neurons, with K filters each, and every
# neuron gets its own readout. `predict` returns one row per output; the
# columns of one session's neurons are in `session_columns`.

# %%
from classes.compact.shared_model import load_shared_compact_model, session_columns
from classes.scoring.metrics import pearson_r

shared = load_shared_compact_model("from_ensemble_model", 75)
shared_responses = predict(shared, images)
column = session_columns("190923")[0]
print("shared model outputs:", shared_responses.shape)
print(f"r(shared output of 190923/neuron0, compact model) = "
      f"{pearson_r(shared_responses[column], reference)[0]:.3f}")

# %% [markdown]
# ## Many models at once, and the neurons they model
#
# A list of ids predicts many models in one call. Here: the models of every
# neuron of session 190923, on the held-out images. Each model's predictions
# can be set against its neuron's recorded responses (spike counts averaged
# over repeats). Tutorial 2 explains how to score that agreement properly.

# %%
from classes.data.responses import load_held_out
from classes.data.sessions import get_session

neurons = range(capped(get_session("190923").num_neurons, minimum=4))
session_models = [model_id("190923", neuron) for neuron in neurons]
predictions = predict(session_models, images)
_, recorded, _ = load_held_out("190923")  # the held-out half, in the order of image_numbers
recorded = recorded[list(neurons)][:, : len(image_numbers)]
correlations = pearson_r(predictions, recorded)
print(f"{len(session_models)} models x {len(image_numbers)} images; "
      f"median r(model, neuron) = {np.median(correlations):.2f}")

figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].scatter(predictions[0], recorded[0], s=8, alpha=0.6)
axes[0].set_xlabel("model 190923/neuron0: predicted response")
axes[0].set_ylabel("recorded spike count (repeat average)")
axes[0].set_title(f"one neuron: r = {correlations[0]:.2f}", fontsize=9)
axes[1].hist(correlations, bins=15)
axes[1].set_xlabel("Pearson r between model and neuron")
axes[1].set_ylabel("neurons")
axes[1].set_title("every neuron of session 190923", fontsize=9)
figure.tight_layout()
figure

# %% [markdown]
# The predictions follow the recorded responses' ups and downs across images
# ("wiggles"); their offset and scale are arbitrary (some outputs are even
# negative), which is why the paper compares them with correlation-based
# scores. Next, tutorial 2 asks how good such a score can be when the
# recorded responses themselves are noisy.
