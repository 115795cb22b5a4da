"""Distilling, pruning and retraining compact models from a teacher (SPEC sections 2 and 6).

One command runs the four resumable stages (distil, prune, retrain,
evaluate) for one neuron::

    python -m code_distill_and_prune.run --session 190923 --neuron 0 --teacher compact

See ``readme.md`` in this folder.
"""
