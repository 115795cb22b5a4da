"""What every benchmark measures the same way: the matmul rate, time, memory.

Benchmarks compare paths side by side in one run on this shared machine, so
each records the machine's float32 matmul rate in the same run (the ceiling
the paths are rated against), wall and CPU seconds (CPU seconds show the work
done while the process actually ran when other jobs compete), and the peak
resident memory of each path.
"""

from __future__ import annotations

import os
import resource
import threading
import time

import numpy as np


def timed(function) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    start, cpu_start = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - start, time.process_time() - cpu_start


def matmul_rates(repeats: int, size: int = 2048) -> dict:
    """Best-of-``repeats`` single-precision matmul rates, GFLOP/s.

    Returns:
        ``{"numpy": wall rate, "tensorflow": wall rate, "tensorflow_per_cpu_second": rate}``;
        the last divides by the process's CPU time instead of wall time.
    """
    from classes.runtime.quiet_tensorflow import tf

    generator = np.random.default_rng(0)
    left = generator.standard_normal((size, size), dtype=np.float32)
    right = generator.standard_normal((size, size), dtype=np.float32)
    flops = 2 * size**3
    rates = {}
    left_tensor, right_tensor = tf.constant(left), tf.constant(right)
    for name, function in (
        ("numpy", lambda: np.matmul(left, right)),
        ("tensorflow", lambda: tf.matmul(left_tensor, right_tensor).numpy()),
    ):
        function()
        timings = [timed(function) for _ in range(repeats)]
        rates[name] = flops / min(wall for wall, _ in timings) / 1e9
    rates["tensorflow_per_cpu_second"] = flops / min(cpu for _, cpu in timings) / 1e9
    return rates


def reference_rate(*measurements: dict) -> float:
    """The best wall-clock matmul rate among measurements (before and after a run)."""
    return max(max(rates["numpy"], rates["tensorflow"]) for rates in measurements)


class PeakMemory:
    """Samples this process's resident memory (VmRSS) in a background thread."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self.start = interval, 0, 0
        self._stop = threading.Event()

    @staticmethod
    def resident_bytes() -> int:
        try:
            with open("/proc/self/statm") as stream:
                return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: fall back to the lifetime peak
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.resident_bytes())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.start = self.peak = self.resident_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exception):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.resident_bytes())


def load_average() -> float:
    """The 1-minute load average (0 where unknown)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0
