"""Model responses to images: :func:`predict` is the entry point.

``from classes.prediction import predict`` takes compact models (released
ids, Keras models, weight lists) and shared compact models, and returns one
row of responses per model output. The modules behind it:

- ``api``: :func:`predict` itself and the choice of engine.
- ``folding``: BatchNormalization folded into the convolutions, for compact
  and shared models alike (one function, ``fold_trunk``), and the FLOP count.
- ``stacked``: many compact models prepared together (``StackedModels``)
  and evaluated by one engine.
- ``kernel`` (with ``kernel.c``): the compiled C engine (AVX-512, AVX2 or
  portable vector code, chosen for the CPU).
- ``graph``: the TensorFlow engine, one traced graph for models of any sizes.
- ``shared``: shared compact models on either engine.
"""

from classes.prediction.api import predict

__all__ = ["predict"]
