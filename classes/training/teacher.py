"""The teacher that labels the image stream, and its per-block cache.

A compact model is distilled on a teacher's responses to the images of
:class:`classes.data.image_stream.ImageStream`. The teacher is a released
model run through :func:`classes.prediction.predict`:

- ``kind="compact"``: one released compact model (e.g. ``"190923/0"``), one
  output;
- ``kind="shared"``: a released shared compact model (by default
  ``from_ensemble_model`` with 200 filters), all 219 outputs in one pass, in
  :func:`classes.compact.architecture.all_model_ids` order.

:class:`TeacherCache` keeps the responses to each block in a ``.npy`` file
named by the teacher's and the stream's fingerprints, so a block is labelled
once however many runs train on it.

Example::

    stream = ImageStream(seed=0)
    cache = TeacherCache("cache/teacher", Teacher("shared"), stream)
    targets = cache.block_targets(0)[cache.teacher.column("190923", 0)]
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from classes.compact.architecture import (
    ModelId,
    all_model_ids,
    load_weights_npy,
    model_file,
    model_id,
    nums_filters_from_weights,
)
from classes.compact.choice import parse_model
from classes.compact.shared_model import (
    NUM_OUTPUTS,
    check_teacher_and_filters,
    load_shared_compact_model,
    shared_model_path,
)
from classes.compact.tools import nums_filters_of
from classes.data.data_root import sha256_of_file
from classes.data.image_stream import ImageStream
from classes.prediction import predict
from classes.runtime.outputs import write_npy

KINDS = ("compact", "shared")
DEFAULT_SHARED_MODEL = "from_ensemble_model/200"
_REDOWNLOAD = "Download it again from the release (cowleygroup/V4_compact_models) or run a script with --verify."


def _compact_id(model) -> ModelId:
    if isinstance(model, ModelId):
        return model_id(model.session_id, model.neuron)
    if isinstance(model, tuple) and len(model) == 2:
        return model_id(*model)
    return parse_model(str(model), "model")


def _shared_name(model) -> tuple[str, int]:
    teacher, separator, num_filters = str(model).rpartition("/")
    if not separator or not num_filters.isdigit():
        raise ValueError(
            f"A shared teacher is named '<teacher>/<filters>', e.g. {DEFAULT_SHARED_MODEL!r}; got {model!r}."
        )
    return check_teacher_and_filters(teacher, int(num_filters))


class Teacher:
    """A released model whose responses are the distillation targets.

    Args:
        kind: ``"compact"`` or ``"shared"``.
        model: for ``"compact"``, a released model (``"190923/0"``, a
            ``(session, neuron)`` pair or a ModelId); for ``"shared"``,
            ``"<teacher>/<filters>"``, default ``"from_ensemble_model/200"``.
        data_root: the release folder (None: resolved as usual).
        engine: :func:`classes.prediction.predict`'s engine.

    Attributes:
        name: the model's canonical name.
        weight_file: the file the responses come from.
        num_outputs: 1 for a compact teacher, 219 for a shared one.
        nums_filters: the teacher's filters per layer ``[K0..K4]`` (a shared
            model's trunk for a shared teacher).

    Raises:
        ValueError: unknown kind or model; a corrupt weight file (the message
            names it and says what to do).
        FileNotFoundError: the weight file is missing.
    """

    def __init__(self, kind: str, model=None, data_root=None, engine: str = "auto"):
        if kind not in KINDS:
            raise ValueError(f"Teacher kind must be one of {', '.join(KINDS)}; got {kind!r}.")
        self.kind, self.data_root, self.engine = kind, data_root, engine
        if kind == "compact":
            if model is None:
                raise ValueError("A compact teacher needs model=, a released compact model, e.g. '190923/0'.")
            self._model = _compact_id(model)
            self.name = str(self._model)
            self.weight_file = model_file(self._model, "npy", data_root)
            self.num_outputs = 1
            try:
                self.nums_filters = nums_filters_from_weights(load_weights_npy(self._model, data_root))
            except ValueError as error:
                raise ValueError(f"Teacher {self.name}: {error} {_REDOWNLOAD}") from None
        else:
            teacher, num_filters = _shared_name(DEFAULT_SHARED_MODEL if model is None else model)
            self.name = f"{teacher}/{num_filters}"
            self.weight_file = shared_model_path(teacher, num_filters, data_root)
            self._model = load_shared_compact_model(teacher, num_filters, data_root)
            self.nums_filters = nums_filters_of(self._model)
            self.num_outputs = NUM_OUTPUTS
        self.weight_sha256 = sha256_of_file(self.weight_file)

    def __repr__(self) -> str:
        return f"Teacher(kind={self.kind!r}, model={self.name!r})"

    def responses(self, images) -> np.ndarray:
        """The teacher's responses to recentred images.

        Args:
            images: recentred ``(num_images, 112, 112, 3)``.

        Returns:
            float32 ``(num_outputs, num_images)``.
        """
        return predict(self._model, images, engine=self.engine, data_root=self.data_root)

    def column(self, session, neuron) -> int:
        """Row of :meth:`responses` that belongs to one neuron.

        Raises:
            ValueError: an unknown neuron, or (compact teacher) a neuron other
                than the teacher's own.
        """
        identifier = model_id(session, neuron)
        if self.kind == "shared":
            return all_model_ids().index(identifier)
        if identifier != self._model:
            raise ValueError(
                f"The compact teacher {self.name} has one output, its own neuron; got {identifier}. "
                "Use the shared teacher for other neurons."
            )
        return 0

    def describe(self) -> dict:
        """Identity of the teacher: kind, model name, weight file and its SHA-256."""
        return {"kind": self.kind, "model": self.name, "weight_file": str(self.weight_file),
                "weight_sha256": self.weight_sha256}

    def fingerprint(self) -> str:
        """Short hash of kind, model and the weight file's SHA-256."""
        text = f"{self.kind}|{self.name}|{self.weight_sha256}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class TeacherCache:
    """The teacher's responses to the stream's blocks, computed once per block.

    Files are ``<folder>/teacher_<teacher fp>_<stream fp>_block<index:06d>.npy``
    and ``..._validation.npy``, written atomically; a file that does not load,
    has the wrong shape or dtype, or holds NaN is recomputed and replaced.

    Args:
        folder: where the files live (created when missing).
        teacher: a :class:`Teacher`.
        stream: a :class:`classes.data.image_stream.ImageStream`.
    """

    def __init__(self, folder, teacher: Teacher, stream: ImageStream):
        self.folder, self.teacher, self.stream = Path(folder), teacher, stream

    def path(self, suffix: str) -> Path:
        """The cache file of ``"block000012"`` or ``"validation"``."""
        stem = f"teacher_{self.teacher.fingerprint()}_{self.stream.fingerprint()}_{suffix}"
        return self.folder / f"{stem}.npy"

    def block_targets(self, index, images=None) -> np.ndarray:
        """Teacher responses to block ``index`` of the stream.

        Args:
            index: the block (0, 1, 2, ...).
            images: ``stream.block(index)[0]`` when the caller has it already
                (saves generating the block again on a cache miss).

        Returns:
            float32 ``(num_outputs, block_size)``.

        Raises:
            ValueError: a bad index, or ``images`` of another shape than a block.
        """
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"block index must be a non-negative integer; got {index!r}.")
        block_shape = (self.stream.block_size, 112, 112, 3)
        if images is not None and np.shape(images) != block_shape:
            raise ValueError(f"images of block {index} must have shape {block_shape}; got {np.shape(images)}.")

        def compute():
            return self.teacher.responses(self.stream.block(index)[0] if images is None else images)

        return self._cached(self.path(f"block{int(index):06d}"), self.stream.block_size, compute)

    def validation_targets(self) -> np.ndarray:
        """Teacher responses to the stream's validation images: float32 ``(num_outputs, num_validation)``."""
        return self._cached(
            self.path("validation"),
            len(self.stream.validation_positions),
            lambda: self.teacher.responses(self.stream.validation_images()),
        )

    def extra_targets(self, name: str, images) -> np.ndarray:
        """Teacher responses to another named image set (e.g. mirrored validation images), cached like the blocks.

        Args:
            name: the set's name in the cache file (letters, digits, ``_``);
                one name must always stand for the same images.
            images: recentred ``(n, 112, 112, 3)``.

        Returns:
            float32 ``(num_outputs, n)``.
        """
        if not name.replace("_", "").isalnum():
            raise ValueError(f"An image set's name holds letters, digits and '_' only; got {name!r}.")
        return self._cached(self.path(f"set_{name}"), len(images), lambda: self.teacher.responses(images))

    def _cached(self, path: Path, num_images: int, compute) -> np.ndarray:
        expected = (self.teacher.num_outputs, num_images)
        if path.is_file():
            try:
                targets = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError):
                targets = None  # corrupt or truncated: recomputed below
            if (
                targets is not None
                and targets.shape == expected
                and targets.dtype == np.float32
                and np.all(np.isfinite(targets))
            ):
                return targets
        targets = np.asarray(compute(), dtype=np.float32)
        if targets.shape != expected:
            raise ValueError(f"The teacher gave responses of shape {targets.shape}; expected {expected}.")
        write_npy(path, targets)
        return targets
