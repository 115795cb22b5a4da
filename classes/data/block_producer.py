"""Blocks of the image stream made by a pool of worker processes, handed out in order.

A GPU trains on the stream's images far faster than one CPU core makes them
(:class:`classes.data.image_stream.ImageStream`: about 1,300 images per
second per core), so :class:`ParallelBlocks` makes blocks ``first``,
``first + 1``, ... in forked worker processes, each straight into a slot of
one anonymous shared-memory buffer (raw uint8, :meth:`ImageStream.raw_block`:
no pickling of images between processes), and hands them out in block order.
A slot is refilled with the next block as soon as its consumer gives it
back. With ``num_workers=0`` blocks are made in the calling process.

The workers are forked: they inherit the stream, and with it the base
images when the parent has read them already (call
:meth:`ImageStream.validation_images` first; otherwise each worker reads
them from the decode cache). Fork before the parent initialises CUDA.

Example::

    stream = ImageStream(seed=0, block_size=2000)
    stream.validation_images()
    with ParallelBlocks(stream, first=0, num_workers=14) as blocks:
        block = blocks.take()          # block.index 0, block.images uint8 (2000, 112, 112, 3)
        ...                            # copy block.images elsewhere, then
        blocks.give_back(block)
"""

from __future__ import annotations

import mmap
import multiprocessing
import time
import warnings
from dataclasses import dataclass

import numpy as np

from classes.data.image_stream import ImageStream
from classes.data.images import IMAGE_SIZE

# What forked workers inherit: the stream and the shared buffer of slots.
_WORKER_STATE: dict = {}


@dataclass
class Block:
    """One block handed out: its index, its images (a view of a slot) and the CPU seconds it took."""

    index: int
    images: np.ndarray
    slot: int
    cpu_seconds: float


def _make_block(index: int, slot: int) -> tuple[int, int, float]:
    """In a worker: block ``index`` into slot ``slot``; returns them and the CPU seconds used."""
    started = time.process_time()
    stream, slots = _WORKER_STATE["stream"], _WORKER_STATE["slots"]
    stream.raw_block(index, out=slots[slot])
    return index, slot, time.process_time() - started


class ParallelBlocks:
    """Blocks ``first``, ``first + 1``, ... of a stream, made ahead by worker processes.

    Args:
        stream: the :class:`ImageStream`.
        first: the first block to hand out.
        num_workers: worker processes (0: blocks are made by :meth:`take`).
        slots_per_worker: blocks made ahead per worker.

    Attributes:
        cpu_seconds: CPU seconds the workers spent on the blocks handed out.

    Raises:
        ValueError: a negative ``first`` or ``num_workers``, or ``slots_per_worker < 1``.
    """

    def __init__(self, stream: ImageStream, first: int = 0, num_workers: int = 1, slots_per_worker: int = 2):
        if first < 0 or num_workers < 0 or slots_per_worker < 1:
            raise ValueError(f"first and num_workers must be >= 0 and slots_per_worker >= 1; got "
                             f"{first}, {num_workers}, {slots_per_worker}.")
        self.stream, self.num_workers = stream, int(num_workers)
        self.next_index, self.next_submitted = int(first), int(first)
        self.cpu_seconds = 0.0
        num_slots = max(1, self.num_workers * slots_per_worker)
        shape = (num_slots, stream.block_size, IMAGE_SIZE, IMAGE_SIZE, 3)
        # Anonymous shared memory: inherited by forked workers, and not limited
        # by the size of /dev/shm (small in many containers).
        self._buffer = mmap.mmap(-1, int(np.prod(shape)))
        self.slots = np.frombuffer(self._buffer, dtype=np.uint8).reshape(shape)
        self._pending: dict[int, multiprocessing.pool.AsyncResult] = {}
        self._pool = None
        if self.num_workers:
            _WORKER_STATE.update(stream=stream, slots=self.slots)
            with warnings.catch_warnings():
                # Python 3.12+ warns when forking a process with threads (BLAS pools): the workers
                # run NumPy and PIL only and take no lock of the parent's threads.
                warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning)
                self._pool = multiprocessing.get_context("fork").Pool(self.num_workers)
            for slot in range(num_slots):
                self._submit(slot)

    def _submit(self, slot: int) -> None:
        self._pending[self.next_submitted] = self._pool.apply_async(_make_block, (self.next_submitted, slot))
        self.next_submitted += 1

    def take(self, timeout: float | None = None) -> Block | None:
        """The next block, waiting for it at most ``timeout`` seconds (None: as long as it takes).

        Returns:
            The :class:`Block`, or None when it was not ready in time (it is
            still handed out by the next call).

        Raises:
            Exception: whatever a worker raised while making the block.
        """
        if self._pool is None:
            started = time.process_time()
            images = self.stream.raw_block(self.next_index, out=self.slots[0])
            block = Block(self.next_index, images, 0, time.process_time() - started)
        else:
            result = self._pending[self.next_index]
            try:
                index, slot, seconds = result.get(timeout)
            except multiprocessing.TimeoutError:
                return None
            del self._pending[self.next_index]
            block = Block(index, self.slots[slot], slot, seconds)
        self.next_index += 1
        self.cpu_seconds += block.cpu_seconds
        return block

    def give_back(self, block: Block) -> None:
        """Frees a block's slot (its images must have been copied) for the next block to be made."""
        if self._pool is not None:
            self._submit(block.slot)

    def close(self) -> None:
        """Stops the workers (blocks being made are abandoned)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        _WORKER_STATE.clear()

    def __enter__(self) -> ParallelBlocks:
        return self

    def __exit__(self, *exception) -> None:
        self.close()
