"""Library for the reproduction of Cowley, Stan, Pillow & Smith (2023/2025).

"Compact deep neural network models of visual cortex", bioRxiv
2023.11.22.568315; Nature 2025. Sub-packages, one concept each, from the
bottom layer up (a package imports only from those listed before it):

- ``runtime``: writing results atomically (``outputs``), the cache folder
  (``paths``), compiled C kernels (``native``), Keras and TensorFlow imported
  quietly (``quiet_tensorflow``), ``.keras`` files read with one clear error.
- ``data``: where the release is (``data_root``), its 50 sessions, images
  (with a decode cache), V4 responses, preprocessing, the image pools and the
  unbounded training-image stream.
- ``reporting``: what every numbered script does first and last
  (``script_support``), the published-vs-reproduced table (``comparison``)
  and the registry of the paper's published numbers (``published``).
- ``compact``: the compact model (``model``), working with one (``tools``),
  sizes, the shared compact models, choosing models from the command line
  (``choice``), and the PyTorch port (``torch_model``, ``torch_conversion``,
  ``torch_agreement``).
- ``prediction``: responses of models to images; ``predict`` is the entry
  point, with BatchNormalization folding and the kernel and TensorFlow engines
  behind it.
- ``scoring``: metrics (noise-corrected R2 and friends), scores against V4,
  linear mappings, calibration to spike counts, percent changes.
- ``training``: distillation, pruning, resumable checkpoints, the teacher and
  the compiled training step of a student.
- ``ensemble``: the ensemble's members, their training and the task-driven
  features.
- ``analysis``: insides of the models (kernel similarity, CKA, dot stimuli
  and the dot detector, synthesis, causal images).
- ``figures``: the figures and tables of the numbered scripts.
"""

__version__ = "0.1.0"
