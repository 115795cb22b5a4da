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
# # 3. Inside a compact model: filters, readout maps, layer activity, ablations
#
# A compact model is small enough to read. The paper's point (Fig. 3) is that
# each V4 neuron's model keeps many filters in its first two layers, which
# are alike across models (a shared early "vocabulary": higher kernel
# similarity and CKA between models in the early layers), and only a handful
# in its last three, which differ from neuron to neuron and decide what it
# responds to. This tutorial opens one model: its first
# filters, its readout (where in the image it looks), the activity of each
# layer for one image, and what happens when single filters are removed.

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

data_root = tutorial_release("03")  # the release files it reads (TUTORIAL_FILES), downloaded where missing

# %%
# %matplotlib inline
import numpy as np

from classes.runtime.outputs import pyplot
from classes.runtime.step_cap import capped

plt = pyplot()

# %% [markdown]
# ## The model and its images
#
# Model 190923/neuron0 (tutorial 1 loaded it in every format), and the
# held-out images of its session.

# %%
from classes.compact.model import load_compact_model
from classes.compact.tools import nums_filters_of
from classes.data.images import load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import held_out_indices
from classes.prediction import predict

model = load_compact_model("190923", 0)
print("filters per layer [K0..K4]:", nums_filters_of(model))
_, held_out = held_out_indices("190923")
image_numbers = held_out[: capped(len(held_out), minimum=100)] + 1
raw_images = load_images("190923", image_numbers)
images = recenter_images(raw_images)
intact = predict(model, images)[0]
print(f"{len(images)} images; responses {intact.min():.2f}..{intact.max():.2f}")

# %% [markdown]
# ## Layer 0: the first filters
#
# Layer 0 convolves the image with K0 filters of 5x5 pixels x 3 colours.
# `get_kernels(model, 0)` returns them as `(5, 5, 3, K0)`; shown as small
# colour images (each scaled to its own range) they look like little more
# than local colour and brightness contrasts: what makes the model selective
# is how the next layers combine them.

# %%
from classes.compact.tools import get_kernels

kernels = get_kernels(model, 0)["kernel"]
count = kernels.shape[-1]
columns = 12
figure, axes = plt.subplots(int(np.ceil(count / columns)), columns, figsize=(columns * 0.8, np.ceil(count / columns) * 0.8))
for index, axis in enumerate(axes.flat):
    axis.axis("off")
    if index < count:
        kernel = kernels[..., index]
        axis.imshow((kernel - kernel.min()) / (kernel.max() - kernel.min() + 1e-12), interpolation="nearest")
figure.suptitle(f"the {count} layer-0 filters (5x5 RGB)", fontsize=9)
figure

# %% [markdown]
# ## Layers 1-4: separable convolutions
#
# Each later layer first filters every input map with its own 5x5 spatial
# kernel (*depthwise*), then mixes the maps with a 1x1 convolution
# (*pointwise*): a filter of layer i is one column of the pointwise matrix.

# %%
for layer in range(1, 5):
    weights = get_kernels(model, layer)
    print(f"layer {layer}: depthwise {weights['depthwise'].shape}, pointwise {weights['pointwise'].shape}")

# %% [markdown]
# ## The readout: where the neuron looks
#
# The last layer's K4 maps are 28x28 (a 4x4-pixel grid over the image). The
# readout gives every position of every map a weight; `readout_maps`
# reshapes those weights into one 28x28 map per filter. Together they are
# the model's spatial receptive field: the neuron's response is the sum, over
# filters and positions, of activity times weight, plus a bias.

# %%
from classes.compact.tools import readout_maps

maps = readout_maps(model)
limit = np.abs(maps).max()
figure, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3), squeeze=False)
for index, (axis, weights) in enumerate(zip(axes[0], maps, strict=True)):
    shown = axis.imshow(weights, cmap="RdBu_r", vmin=-limit, vmax=limit)
    axis.set_title(f"readout map of layer-4 filter {index}", fontsize=8)
    axis.axis("off")
figure.colorbar(shown, ax=axes[0].tolist(), fraction=0.02)
figure

# %% [markdown]
# ## Activity, layer by layer, for one image
#
# `layer_activity(model, images, layer)` returns a layer's maps after its
# ReLU: 112x112 for layer 0, 56x56 for layer 1, 28x28 after. Below, the
# image that drives the model most among these, the most active map of each
# layer, and, last, each layer-4 filter's activity times its readout map:
# summed with the bias, these contributions are the response itself.

# %%
from classes.compact.tools import layer_activity

best = int(np.argmax(intact))
activity = {layer: layer_activity(model, images[best : best + 1], layer)[0] for layer in range(5)}
bias = get_kernels(model, "readout")["bias"][0]
contributions = np.transpose(activity[4], (2, 0, 1)) * maps
print(f"response {intact[best]:.4f} = sum of contributions {contributions.sum():.4f} + bias {bias:.4f}")

figure, axes = plt.subplots(1, 7, figsize=(15, 2.6))
axes[0].imshow(raw_images[best])
axes[0].set_title(f"image{image_numbers[best]:04d}", fontsize=8)
for layer in range(5):
    strongest = int(np.argmax(activity[layer].mean(axis=(0, 1))))
    axes[layer + 1].imshow(activity[layer][..., strongest], cmap="magma")
    axes[layer + 1].set_title(f"layer {layer}, filter {strongest}\n{activity[layer].shape[0]}x{activity[layer].shape[1]}",
                              fontsize=8)
total = contributions.sum(axis=0)
limit = np.abs(total).max()
axes[6].imshow(total, cmap="RdBu_r", vmin=-limit, vmax=limit)
axes[6].set_title("layer 4 x readout,\nsummed over filters", fontsize=8)
for axis in axes:
    axis.axis("off")
figure

# %% [markdown]
# ## Ablating filters
#
# The paper asks what a filter does by removing it: its kernel weights set
# to zero (`ablate_filters` returns such a copy of the model; biases and
# normalisation stay). For each filter of the deep layers, and a sample of
# the early ones, the ablated model predicts the same images, and we
# measure how much of the intact model's response variance it no longer
# follows: `1 - r²` between ablated and intact responses.

# %%
from classes.compact.tools import ablate_filters
from classes.scoring.metrics import pearson_r

nums_filters = nums_filters_of(model)
chosen = {layer: range(capped(nums_filters[layer], minimum=3)) for layer in range(5)}
effects = {}
for layer, filters in chosen.items():
    ablated = [ablate_filters(model, layer, [index]) for index in filters]
    responses = predict(ablated, images)
    effects[layer] = 1 - pearson_r(responses, np.broadcast_to(intact, responses.shape)) ** 2
    print(f"layer {layer}: {len(filters)} of {nums_filters[layer]} filters ablated one at a time; "
          f"median loss {np.nanmedian(effects[layer]):.3f}, largest {np.nanmax(effects[layer]):.3f}")

figure, axis = plt.subplots(figsize=(10, 3.2))
position = 0
for layer, values in effects.items():
    axis.bar(np.arange(position, position + len(values)), np.nan_to_num(values, nan=1.0), color=f"C{layer}",
             label=f"layer {layer}", width=0.9)
    position += len(values) + 2
axis.set_xticks([])
axis.set_ylabel("1 - r²(ablated, intact)")
axis.set_title("one filter removed at a time", fontsize=9)
axis.legend(fontsize=8, ncol=5)
figure

# %% [markdown]
# Removing one of the many early filters barely changes the model: the early
# layers are redundant, like a generic basis. Removing one of the few deep
# filters can change it a lot: those carry what is specific to this neuron.
# Tutorial 5 uses the same tool to take a dot-detecting model apart.
