"""The paper's published numbers: one registry that every comparison table reads.

Each entry is a number (or a claim, where the paper states no number) of
Cowley, Stan, Pillow & Smith (bioRxiv 2023.11.22.568315; Nature 2025), with
the figure or text it comes from and its unit (SPEC section 8). Scripts put
:attr:`Published.value` in the "published" column of their tables; what the
value means and where a reader finds it are kept here, once.

Example::

    from classes.reporting.published import published

    published("signal_correlation_rho2").value    # 0.11
    published("signal_correlation_rho2").source   # "Fig. 3 (text)"
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PUBLISHED", "Published", "published"]


@dataclass(frozen=True)
class Published:
    """One published number or claim.

    Attributes:
        key: the registry's name for it.
        value: what the comparison tables print: a float, an int, or text for
            approximate numbers ("about 50") and claims without a number.
        source: where in the paper it stands (figure, panel or text).
        unit: what it counts or measures.
        description: one line saying what it is.
        error: the published s.e.m. where the paper gives one, else None.
    """

    key: str
    value: float | int | str
    source: str
    unit: str
    description: str
    error: float | None = None


_ENTRIES = (
    # Model side (Fig. 1i, Fig. 3a): checkable with the released weights.
    Published("num_compact_models", 219, "Fig. 1h-i, text", "models", "compact models, one per V4 neuron"),
    Published("median_convolutional_filters", 164, "Fig. 1i inset", "filters",
              "median convolutional filters per compact model"),
    Published("ensemble_filters", "about 150,000", "Fig. 1i inset", "filters",
              "convolutional filters of the ensemble model"),
    Published("ensemble_parameters", "about 60 million", "Fig. 1i, text", "parameters",
              "parameters of the ensemble model"),
    Published("compression", "about 5,000x", "text", "ratio",
              "ensemble parameters over a compact model's"),
    Published("early_layer_filters", "about 50", "Fig. 3a", "filters",
              "median filters in paper layers 1-2 (code layers 0-1)"),
    Published("deep_layer_filters", "5-10", "Fig. 3a", "filters",
              "median filters in paper layers 3-5 (code layers 2-4)"),
    # Against V4 (noise-corrected R2, Fig. 1b, 1h, Ext. Data Fig. 2).
    Published("ensemble_median_r2", 0.61, "Fig. 1b, 1h", "noise-corrected R2",
              "median over neurons of the ensemble model"),
    Published("compact_minus_ensemble", -0.05, "Fig. 1h", "noise-corrected R2",
              "compact models' median minus the ensemble's"),
    Published("compact_median_r2", "0.56 (0.61 - 0.05)", "Fig. 1h", "noise-corrected R2",
              "median over neurons of the compact models (the ensemble's 0.61 less 0.05)"),
    Published("rho_compact_ensemble", 0.96, "Fig. 1h", "correlation",
              "per-neuron R2 of compact and ensemble models, correlated"),
    Published("resnet50_ridge", 0.43, "Ext. Data Fig. 2", "noise-corrected R2",
              "ResNet50 features, ridge mapping, median over neurons"),
    Published("resnet50_factorized", 0.46, "Ext. Data Fig. 2", "noise-corrected R2",
              "ResNet50 features, factorized mapping, median over neurons"),
    Published("ensemble_ridge", 0.59, "Ext. Data Fig. 2", "noise-corrected R2",
              "ensemble embeddings, ridge mapping, median over neurons"),
    Published("ensemble_factorized", 0.61, "Fig. 1b, Ext. Data Fig. 2", "noise-corrected R2",
              "ensemble embeddings, factorized mapping, median over neurons"),
    # Inside the compact models (Fig. 3b-c).
    Published("kernel_similarity_claim", "higher in layers 2-3 than 4-5", "Fig. 3b", "claim",
              "kernel similarity between models by paper layer"),
    Published("cka_claim", "higher in layers 1-2 than 3-4", "Fig. 3c", "claim",
              "linear CKA between models by paper layer"),
    Published("cka_pairs", "about 23,000", "Fig. 3c", "model pairs", "pairs of compact models compared"),
    Published("signal_correlation_rho2", 0.11, "Fig. 3 (text)", "squared correlation",
              "mean squared signal correlation between compact models on 10,000 normal images"),
    # Causal tests on real neurons (Fig. 2b-f), percent change over base images.
    Published("maximizing_normal", 137.3, "Fig. 2b", "% change", "maximizing normal images", 9.2),
    Published("maximizing_synthesized", 152.8, "Fig. 2c", "% change", "maximizing synthesized images", 10.8),
    Published("adversarial_increase", 83.6, "Fig. 2d", "% change", "adversarial images, increasing"),
    Published("adversarial_decrease", -33.2, "Fig. 2d", "% change", "adversarial images, decreasing"),
    Published("smooth_minus", -46.1, "Fig. 2f", "% change", "smooth- images"),
    # The dot detector (Fig. 4): claims, no numbers.
    Published("dot_detecting_models", "some (dot-detecting models, Fig. 4)", "Fig. 4a", "claim",
              "compact models driven by a dot more than by natural images"),
    Published("dot_size_preference", "small dots (Fig. 4b)", "Fig. 4b", "claim",
              "the dot-detecting model prefers small dots"),
    Published("dot_size_invariance_layer2", "yes, a subset of the layer's filters (Fig. 4d-e)", "Fig. 4d-e",
              "claim", "cumulative ablation of paper layer 3's filters makes the response size invariant"),
    Published("dot_size_invariance_layer3", "the same, if the paper's 'layer 3' counts from 0", "Fig. 4d-e",
              "claim", "the same claim read with 0-based layer numbers"),
)

PUBLISHED: dict[str, Published] = {entry.key: entry for entry in _ENTRIES}


def published(key: str) -> Published:
    """The registry's entry ``key``.

    Raises:
        KeyError: no such entry; the message lists the registry's keys.
    """
    if key not in PUBLISHED:
        raise KeyError(f"No published number {key!r}; the registry holds {', '.join(PUBLISHED)}.")
    return PUBLISHED[key]
