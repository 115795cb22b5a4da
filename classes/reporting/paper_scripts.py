"""The numbered scripts that reproduce the paper, as ``reproduce_paper.py`` runs them.

One record per script: its number and file, the figure it reproduces, the
JSON file(s) holding its published-vs-reproduced ``comparison`` rows, and the
arguments of its short (``--quick``) run. The default run passes no
arguments of its own: every script runs with its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from classes.runtime.paths import REPOSITORY_ROOT


@dataclass(frozen=True)
class PaperScript:
    """One numbered script.

    Attributes:
        number: 1-8.
        name: the file's stem, e.g. ``"script4_compact_perf"``; also the name
            of its results folder under ``reproduce_paper.py``'s ``--out``.
        figure: what it reproduces, the figure column of rows that name no
            figure themselves.
        result_pattern: glob, in its results folder, of the JSON file(s)
            holding its ``comparison`` rows; a run is complete when one exists.
        quick_arguments: the arguments of its ``--quick`` run.
    """

    number: int
    name: str
    figure: str
    result_pattern: str
    quick_arguments: tuple[str, ...]

    @property
    def path(self) -> Path:
        """The script's file."""
        return REPOSITORY_ROOT / f"{self.name}.py"


PAPER_SCRIPTS = (
    PaperScript(1, "script1_plot_responses", "Ext. Data Table 1", "session_*.json", ()),
    PaperScript(2, "script2_taskdriven_vs_ensemble", "Fig. 1b", "summary.json", ()),
    PaperScript(3, "script3_load_compact_models", "released formats (no figure)", "agreement.json",
                ("--num-images", "48")),
    PaperScript(4, "script4_compact_perf", "Fig. 1h-i", "summary.json",
                ("--sessions", "190923", "--neurons", "0,1,2,3")),
    PaperScript(5, "script5_shared_compact_perf", "Fig. 3d-e", "summary.json",
                ("--teachers", "from_ensemble_model", "--filters", "5", "--sessions", "190923",
                 "--neurons", "0,1,2,3")),
    PaperScript(6, "script6_synthesize", "Fig. 2, Ext. Data Fig. 3-4", "summary.json",
                ("--steps", "20", "--num-images", "2", "--num-minimizing", "1", "--pool-size", "200",
                 "--num-base-images", "2", "--num-smooth-images", "1", "--smooth-patches", "2",
                 "--saliency-stride", "28")),
    PaperScript(7, "script7_filter_analysis", "Fig. 3a-c", "summary.json", ("--quick",)),
    PaperScript(8, "script8_dot_detector", "Fig. 4, Ext. Data Fig. 5-6", "summary.json", ("--quick",)),
)


def select_scripts(text: str | None) -> list[PaperScript]:
    """The scripts a ``--scripts`` value names, in their numbered order.

    Args:
        text: comma-separated script numbers (``"4,5"``; ranges ``"1-3"``),
            or None / ``"all"`` for every script.

    Returns:
        The chosen :class:`PaperScript` records, each once, ordered by number.

    Raises:
        ValueError: a part is not a number or a range of numbers, names no
            script (the message lists the numbers there are), or nothing is
            chosen.
    """
    if text is None or text.strip().lower() == "all":
        return list(PAPER_SCRIPTS)
    by_number = {script.number: script for script in PAPER_SCRIPTS}
    chosen = set()
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        first, _, last = part.partition("-")
        if not first.strip().isdigit() or (last and not last.strip().isdigit()):
            raise ValueError(f"--scripts takes script numbers such as 4,5 or 1-3; got {part!r}.")
        numbers = range(int(first), int(last or first) + 1)
        unknown = [number for number in numbers if number not in by_number]
        if unknown or not numbers:
            raise ValueError(f"--scripts: no script numbered {part}; the scripts are "
                             f"{', '.join(str(number) for number in by_number)}.")
        chosen.update(numbers)
    if not chosen:
        raise ValueError(f"--scripts {text!r} chooses no script; give numbers such as 4,5, or 'all'.")
    return [by_number[number] for number in sorted(chosen)]
