"""Library for the reproduction of Cowley, Stan, Pillow & Smith (2023/2025).

"Compact deep neural network models of visual cortex", bioRxiv
2023.11.22.568315; Nature 2025. Modules, one concept each:

- ``data_root``: where the released data lives, and its checksum manifest.
- ``sessions``: the table of all 50 recording sessions and their splits.
- ``images``: images read straight from a session's zip, with a decode cache.
- ``responses``: raw and repeat-averaged V4 responses and their splits.
- ``preprocessing``: recentring, gaudy images, grayscale, white noise, checks.
- ``compact_model``: the compact model's architecture and its loaders.
- ``compact_model_tools``: prediction, layer activity, ablation, counts.
- ``metrics``: noise-corrected R2, SNR and friends (pure NumPy).
"""

__version__ = "0.1.0"
