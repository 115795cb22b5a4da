"""Distilling and pruning compact models from a teacher (SPEC sections 2 and 6).

Four resumable stages, run in order for one or more neurons::

    python -m code_distill_and_prune.distill  --session 190923 --neuron 0
    python -m code_distill_and_prune.prune    --session 190923 --neuron 0
    python -m code_distill_and_prune.retrain  --session 190923 --neuron 0
    python -m code_distill_and_prune.evaluate --session 190923 --neuron 0

See ``readme.md`` in this folder.
"""
