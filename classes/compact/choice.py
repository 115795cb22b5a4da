"""Choosing models from command-line text (``--sessions``, ``--neurons``, lists).

Shared by the scripts so that every one accepts and rejects the same
spellings with the same messages.
"""

from __future__ import annotations

import numpy as np

from classes.compact.architecture import ModelId, all_model_ids, model_id, parse_model_stem
from classes.data.sessions import TEST_SESSIONS, get_session

__all__ = [
    "choose_from",
    "choose_test_models",
    "parse_model",
    "parse_model_list",
    "parse_neurons",
    "spread_models",
]


def choose_from(text: str, allowed, name: str, convert=str) -> list:
    """Items of a comma-separated ``--name`` value, checked against ``allowed``.

    Args:
        text: e.g. ``"5,200"`` or ``"all"`` (every allowed item).
        allowed: the valid items, in their canonical order.
        name: the flag's name without dashes, used in messages.
        convert: turns one item's text into a value (``str``, ``int``).

    Returns:
        The chosen items in the order given, duplicates dropped.

    Raises:
        ValueError: an item that does not convert or is not allowed; nothing chosen.
    """
    if text.strip() == "all":
        return list(allowed)
    chosen = []
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            value = convert(item.strip())
        except ValueError:
            raise ValueError(f"--{name}: {item!r} is not valid; choose from {', '.join(map(str, allowed))}.") from None
        if value not in allowed:
            raise ValueError(f"--{name}: {item!r} is not one of {', '.join(map(str, allowed))}.")
        chosen.append(value)
    if not chosen:
        raise ValueError(f"--{name} chose nothing.")
    return list(dict.fromkeys(chosen))


def parse_neurons(neurons_text: str, session: str) -> list[int]:
    """0-based neuron indices of ``--neurons`` (``"all"`` or ``"0,3,7"``) for one session.

    Raises:
        ValueError: text that is not comma-separated integers or ``all``.
    """
    if neurons_text.strip() == "all":
        return list(range(get_session(session).num_neurons))
    try:
        return [int(text) for text in neurons_text.split(",") if text.strip()]
    except ValueError:
        raise ValueError(f"--neurons must be comma-separated integers or 'all'; got {neurons_text!r}.") from None


def choose_test_models(sessions_text: str, neurons_text: str, release_order: bool = False) -> list[ModelId]:
    """Compact-model ids of the chosen test sessions and neurons.

    Args:
        sessions_text: comma-separated test sessions (``190923,201025``) or ``all``.
        neurons_text: ``all`` or comma-separated 0-based neuron indices,
            applied to every chosen session.
        release_order: order the sessions as the release does (190923,
            201025, 210225, 211022: the shared models' output order)
            instead of as given.

    Returns:
        ``ModelId`` values, session by session.

    Raises:
        ValueError: a session that is not a test session; bad neuron text or
            an index out of range; nothing chosen.
    """
    if sessions_text.strip() == "all":
        sessions = list(TEST_SESSIONS)
    else:
        sessions = [text.strip() for text in sessions_text.split(",") if text.strip()]
        for session in sessions:
            if get_session(session).session_id not in TEST_SESSIONS:
                raise ValueError(
                    f"--sessions: {session} is not a test session; choose from {', '.join(TEST_SESSIONS)}."
                )
        sessions = [get_session(session).session_id for session in dict.fromkeys(sessions)]
    if release_order:
        sessions = [session for session in TEST_SESSIONS if session in sessions]
    chosen = [model_id(session, neuron) for session in sessions for neuron in parse_neurons(neurons_text, session)]
    if not chosen:
        raise ValueError("No models chosen; check --sessions and --neurons.")
    return chosen


def parse_model(text: str, flag: str = "--model") -> ModelId:
    """One compact model from ``"190923/0"``, ``"190923/neuron0"`` or ``"compact_model_190923_neuron0"``.

    Raises:
        ValueError: text that names no released compact model; the message
            names ``flag`` and shows the accepted spelling.
    """
    item = str(text).strip()
    try:
        if item.startswith("compact_model_"):
            return parse_model_stem(item)
        session, separator, neuron = item.partition("/")
        if not separator:
            raise ValueError("no '/'")
        return model_id(session, int(neuron.removeprefix("neuron")))
    except ValueError as error:
        raise ValueError(f"{flag}: cannot read {item!r} as session/neuron, e.g. 190923/0 ({error})") from None


def parse_model_list(text: str, flag: str = "--models") -> list[ModelId]:
    """``"all"`` or comma-separated models (see :func:`parse_model`), duplicates dropped.

    Raises:
        ValueError: an item that names no released compact model, or nothing chosen.
    """
    if text.strip() == "all":
        return all_model_ids()
    chosen = [parse_model(item, flag) for item in text.split(",") if item.strip()]
    if not chosen:
        raise ValueError(f"{flag} chose no model.")
    return list(dict.fromkeys(chosen))


def spread_models(num_models: int | None, flag: str = "--num-models") -> list[ModelId]:
    """All 219 models, or ``num_models`` of them spread evenly over the release's order.

    Args:
        num_models: how many; None for all.
        flag: names the option in messages.

    Raises:
        ValueError: ``num_models`` is not a positive integer.
    """
    models = all_model_ids()
    if num_models is None:
        return models
    if isinstance(num_models, bool) or not isinstance(num_models, (int, np.integer)) or num_models < 1:
        raise ValueError(f"{flag} must be a positive number of models (1-{len(models)}); got {num_models!r}.")
    if num_models >= len(models):
        return models
    return [models[index] for index in np.linspace(0, len(models) - 1, num_models).round().astype(int)]
