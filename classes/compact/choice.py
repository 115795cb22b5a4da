"""Choosing models from command-line text (``--sessions``, ``--neurons``, lists).

Shared by the scripts so that every one accepts and rejects the same
spellings with the same messages.
"""

from __future__ import annotations

from classes.compact.model import ModelId, model_id
from classes.data.sessions import TEST_SESSIONS, get_session

__all__ = ["choose_from", "choose_test_models", "parse_neurons"]


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
