"""Scripts start without TensorFlow's start-up lines on standard error."""

from __future__ import annotations

import os
import subprocess
import sys

from classes.runtime.paths import REPOSITORY_ROOT
from classes.runtime.quiet_tensorflow import START_UP_LINES

# What TensorFlow 2.21 printed, twice, at the start of every script.
BANNER = ("absl::InitializeLog", "oneDNN custom operations", "cuda drivers", "cudart_stub", "port.cc")


def run_python(arguments: list[str]) -> subprocess.CompletedProcess:
    """Python in a fresh process from the repository root, with a user's environment."""
    environment = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, *arguments], cwd=REPOSITORY_ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_a_script_that_imports_tensorflow_starts_quietly():
    result = run_python(["script4_compact_perf.py", "--help"])
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert not [line for line in result.stderr.splitlines() if any(text in line for text in BANNER)], result.stderr


def test_other_lines_written_during_the_import_still_reach_standard_error():
    # A line written to file descriptor 2 while TensorFlow loads is not one of
    # the start-up lines: it must come through, once, and in full.
    program = (
        "import importlib.abc, os, sys\n"
        "class Loud(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'tensorflow':\n"
        "            os.write(2, b'a line that matters\\n')\n"
        "            print('and a Python warning', file=sys.stderr)\n"
        "sys.meta_path.insert(0, Loud())\n"
        "from classes.runtime.quiet_tensorflow import tf\n"
        "print(float(tf.constant(2.0) + 1.0))\n"
    )
    result = run_python(["-c", program])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3.0"
    assert result.stderr.count("a line that matters\n") == 1
    assert result.stderr.count("and a Python warning\n") == 1
    assert not [line for line in result.stderr.splitlines() if any(text in line for text in START_UP_LINES)]
