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
# # 2. Score a model against V4: raw and noise-corrected R², and why repeats matter
#
# Shown the same image again, a V4 neuron fires a different number of
# spikes. The recordings therefore show each image several times (its
# *repeats*) and average the spike counts. That average is still noisy, so
# even a perfect model, one that predicts the neuron's true mean response
# exactly, would not explain all the variance of the averages: its *raw*
# R² (the squared correlation) stays below 1, and by how much depends on how
# many repeats were averaged.
#
# The paper scores models with the **noise-corrected R²** of Pospisil & Bair
# (2021), `r2_ER`: an estimate of the R² the model would reach against the
# noise-free mean responses, computed from the raw repeats. This tutorial
# shows what it corrects, first on simulated neurons whose true responses are
# known, then on the two sessions of the release whose raw repeats are
# public: 201016 and 210325.

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

data_root = tutorial_release("02")  # the release files it reads (TUTORIAL_FILES), downloaded where missing

# %%
# %matplotlib inline
import numpy as np

from classes.runtime.outputs import pyplot
from classes.runtime.step_cap import capped

plt = pyplot()

# %% [markdown]
# ## The raw repeats
#
# `load_raw` gives a session's spike counts as `(neurons, images, repeats)`;
# an image shown fewer times than the most-repeated one is padded with NaN.
# Below, one neuron of session 201016: every dot is one presentation, the
# line is the repeat average, images sorted by it.

# %%
from classes.data.responses import load_raw

raw = {session: load_raw(session) for session in ("201016", "210325")}
for session, repeats in raw.items():
    counts = np.sum(~np.isnan(repeats), axis=2)
    print(f"{session}: {repeats.shape[0]} neurons x {repeats.shape[1]} images, "
          f"{counts.min()}-{counts.max()} repeats per image (median {np.median(counts):.0f})")

from classes.scoring.metrics import snr

neuron = int(np.argmax(snr(raw["201016"])))  # the neuron with the clearest signal
trials = raw["201016"][neuron]
average = np.nanmean(trials, axis=1)
order = np.argsort(average)
figure, axis = plt.subplots(figsize=(10, 3.4))
for repeat in range(trials.shape[1]):
    axis.plot(np.arange(len(order)), trials[order, repeat], ".", color="gray", markersize=2, alpha=0.4)
axis.plot(np.arange(len(order)), average[order], color="C3", label="repeat average")
axis.set_xlabel("image (sorted by the repeat average)")
axis.set_ylabel("spike count in 100 ms")
axis.set_title(f"session 201016, neuron {neuron}: trial-to-trial variability", fontsize=9)
axis.legend()
figure

# %% [markdown]
# ## The correction, on neurons whose truth we know
#
# Take the repeat averages of session 201016 as the *true* mean responses of
# 82 simulated neurons. Build a model whose predictions have a known R² with
# those true means (0.6: the truth plus independent noise), then simulate
# recordings: `n` Poisson trials per image. For each `n`, compare the raw R²
# of the model against the simulated averages with the noise-corrected R²
# computed from the simulated trials (`classes.scoring.metrics`).

# %%
from classes.data.responses import load_repeat_averaged
from classes.scoring.metrics import noise_corrected_r2, raw_r2

generator = np.random.default_rng(0)
true_means = load_repeat_averaged("201016")
standardized = (true_means - true_means.mean(axis=1, keepdims=True)) / true_means.std(axis=1, keepdims=True)
target_r2 = 0.6
model_predictions = standardized + np.sqrt(1 / target_r2 - 1) * generator.standard_normal(standardized.shape)
true_r2 = raw_r2(model_predictions, true_means)

repeat_counts = [2, 4, 8, 16, 32][: capped(5, minimum=3)]
simulated = {"raw R²": [], "noise-corrected R²": []}
per_neuron = {}
for count in repeat_counts:
    simulated_trials = generator.poisson(true_means[..., None], size=true_means.shape + (count,)).astype(float)
    corrected = noise_corrected_r2(model_predictions, simulated_trials)
    per_neuron[count] = {"snr": snr(simulated_trials), "error": corrected - true_r2}
    simulated["raw R²"].append(np.median(raw_r2(model_predictions, simulated_trials.mean(axis=2))))
    simulated["noise-corrected R²"].append(np.median(corrected))

figure, axis = plt.subplots(figsize=(5.5, 3.6))
for name, values in simulated.items():
    axis.plot(repeat_counts, values, "o-", label=name)
axis.axhline(np.median(true_r2), color="gray", linestyle="--", label="true R² (against the true means)")
axis.set_xscale("log", base=2)
axis.set_xlabel("repeats per image")
axis.set_ylabel("median over 82 simulated neurons")
axis.set_ylim(0, 0.8)
axis.legend(fontsize=8)
figure

# %% [markdown]
# The raw R² depends on the experiment (how many repeats, how noisy the
# neuron) as much as on the model: with 2 repeats a perfect-ish model looks
# mediocre. The noise-corrected R² recovers the true value at every repeat
# count: it subtracts the part of the averages' variance that the trial noise
# explains, estimated from the spread of the repeats.

# %% [markdown]
# ## The same on real recordings
#
# With real neurons the true means are unknown, but we can build an honest
# stand-in model: predict each image's response by the average of the first
# half of its repeats, and score that against the other half. The stand-in's
# errors are independent of the target's trial noise, as a real model's
# would be. Then use only `k` of the target half's repeats: the raw R² grows
# with `k`, the noise-corrected R² should not. (It needs at least 2 repeats:
# the trial variance is estimated from them.)

# %%
def split_repeats(repeats):
    """The mean of the first half of each image's repeats, and the other half (left-aligned, NaN-padded)."""
    counts = np.sum(~np.isnan(repeats), axis=2, keepdims=True)
    rank = np.arange(repeats.shape[2])
    first = rank < counts // 2
    predictor = np.nanmean(np.where(first, repeats, np.nan), axis=2)
    # Move the second half's repeats to the front, NaNs last.
    moved = np.argsort(first | np.isnan(repeats), axis=2, kind="stable")
    return predictor, np.take_along_axis(np.where(first, np.nan, repeats), moved, axis=2)


real = {}
for session, repeats in raw.items():
    predictor, target = split_repeats(repeats)
    most = int(np.sum(~np.isnan(target), axis=2).min())
    real[session] = {
        "repeats used": list(range(1, most + 1)),
        "raw R²": [np.median(raw_r2(predictor, target[..., :k].mean(axis=2))) for k in range(1, most + 1)],
        "noise-corrected R²": [np.nan] + [np.median(noise_corrected_r2(predictor, target[..., :k]))
                                          for k in range(2, most + 1)],
        "predictor": predictor, "target": target,
    }
    print(session, {name: np.round(real[session][name], 3).tolist() for name in ("raw R²", "noise-corrected R²")})

figure, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for axis, (session, result) in zip(axes, real.items(), strict=True):
    for name in ("raw R²", "noise-corrected R²"):
        axis.plot(result["repeats used"], result[name], "o-", label=name)
    axis.set_xticks(result["repeats used"])
    axis.set_xlabel("repeats of the target half used")
    axis.set_title(f"session {session}: half-repeat stand-in model", fontsize=9)
axes[0].set_ylabel("median over neurons")
axes[0].set_ylim(0, 0.8)
axes[0].legend(fontsize=8)
figure

# %% [markdown]
# ## Signal-to-noise ratio: when the correction can be trusted
#
# The correction is an estimate, and a noisy one when a neuron's responses
# are mostly trial noise. `snr` (Pospisil 2021) is the stimulus-driven
# variance of the means over the trial variance. Back on the simulated
# neurons with 4 repeats: the error of each neuron's noise-corrected R²
# (estimate minus truth) scatters around zero, more widely the lower the
# SNR. Below an SNR of about 0.15 (none of these simulated neurons is that
# weak) a neuron's score is usually left out.
#
# A common alternative correction, used by BrainScore, divides the raw R² by
# the split-half reliability of the recordings (`brainscore_r2`). On the
# real session 201016 and the stand-in model the two corrections agree
# closely (right); SPEC section 5 notes that on the paper's models the
# BrainScore-style value read about 0.15 higher.

# %%
from classes.scoring.metrics import brainscore_r2

session = "201016"
predictor, target = real[session]["predictor"], real[session]["target"]
corrected = noise_corrected_r2(predictor, target)
brainscore = brainscore_r2(predictor, target, num_splits=capped(50, minimum=5))
print(f"session {session}, stand-in model: median noise-corrected R² {np.median(corrected):.3f}, "
      f"BrainScore-style R² {np.median(brainscore):.3f}")

figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
simulation = per_neuron[4]
axes[0].scatter(simulation["snr"], simulation["error"], s=10)
axes[0].axvline(0.15, color="gray", linestyle="--", label="SNR 0.15")
axes[0].axhline(0, color="black", linewidth=0.6)
axes[0].set_xlabel("SNR (simulated, 4 repeats)")
axes[0].set_ylabel("noise-corrected R² minus true R²")
axes[0].set_title("simulated neurons: the estimate's error", fontsize=9)
axes[0].legend(fontsize=8)
axes[1].scatter(corrected, brainscore, s=10)
axes[1].plot([0, 1], [0, 1], color="gray", linewidth=0.8)
axes[1].set_xlabel("noise-corrected R² (r2_ER)")
axes[1].set_ylabel("BrainScore-style R²")
axes[1].set_title(f"session {session}, stand-in model, one dot per neuron", fontsize=9)
figure.tight_layout()
figure

# %% [markdown]
# ## What this means for the compact models
#
# The exact `r2_ER` needs the raw repeats. The release has them for these two
# sessions only, and the compact models were built for the neurons of four
# other sessions (190923, 201025, 210225, 211022), whose repeats are public
# only as averages. So on the compact models this project reports Pearson r
# and raw R² exactly, and any noise-corrected R² there rests on a model of the
# trial noise and is labelled approximate (see the README and
# `script4_compact_perf.py`). The paper's headline numbers were computed with
# the exact estimator on the full data:

# %%
from classes.reporting.published import published

for key in ("ensemble_median_r2", "compact_median_r2", "compact_minus_ensemble"):
    entry = published(key)
    print(f"{entry.description}: {entry.value} ({entry.unit}; {entry.source})")
