"""The ensemble model's members: architecture, files, embeddings, prediction.

The ensemble (SPEC section 4, Fig. 1) reads ResNet50 features cut at
``conv4_block4_out`` ``(14, 14, 1024)``; each of its 25 members (seeds
31490 + i) maps them to V4 responses:

- ``initial_conv_layer`` 1x1 Conv2D 512, ``initial_bn``, ``initial_act`` ReLU;
- ``initial_sepconv_layer`` 3x3 SeparableConv2D 512, stride 2 (14x14 -> 7x7);
- 4 residual blocks ``layer{b}_*``: SeparableConv2D 3x3 256, BN, ReLU,
  SeparableConv2D 3x3 256, BN, ReLU, 1x1 Conv2D back to 512, added to the
  block's input;
- the factorized readout: ``mixing_stage`` 1x1 Conv2D to 200 outputs and
  ``spatial_pool_stage`` 7x7 valid DepthwiseConv2D, flattened as
  ``embeddings`` ``(None, 200)``.

The layer names, shapes and parameter counts are those of the release's
``data_ensemble_model/ensemble_model_summary.txt`` (checked by
:func:`compare_with_release_summary`). The readout is re-initialised for
every training session; on a new session the member's ``layer4_add`` maps
``(7, 7, 512)`` are the embeddings that a ridge or factorized linear mapping
takes to that session's neurons, and the ensemble's prediction is the mean
of the members' mapped predictions.
"""

from __future__ import annotations

import os
import re
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classes.data_root import resolve_data_root
from classes.quiet_tensorflow import keras, tf

NUM_MEMBERS = 25
SEED_BASE = 31490
READOUT_LAYERS = ("mixing_stage", "spatial_pool_stage")
MEMBER_FILE_PATTERN = re.compile(r"^ensemble_model_member(\d+)\.keras$")
RELEASE_MEMBER_COUNTS = {"trainable": 2_252_248, "non_trainable": 5_120, "optimizer": 2_252_250}


@dataclass(frozen=True)
class MemberConfig:
    """Sizes of an ensemble member.

    Attributes:
        feature_shape: input feature maps ``(height, width, channels)``.
        width: channels of the trunk (the 1x1 conv, the stride-2 separable
            conv and each block's output).
        block_width: channels inside each residual block.
        num_blocks: residual blocks.
        num_outputs: readout outputs (at least the neurons of any session).
    """

    feature_shape: tuple = (14, 14, 1024)
    width: int = 512
    block_width: int = 256
    num_blocks: int = 4
    num_outputs: int = 200

    def __post_init__(self):
        shape = tuple(int(value) for value in self.feature_shape)
        if len(shape) != 3 or min(shape) < 1 or shape[0] < 2 or shape[1] < 2:
            raise ValueError(
                f"feature_shape must be (height, width, channels) with height and width >= 2; "
                f"got {self.feature_shape!r}."
            )
        object.__setattr__(self, "feature_shape", shape)
        for name in ("width", "block_width", "num_blocks", "num_outputs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")

    @property
    def embedding_layer(self) -> str:
        """Name of the layer whose maps are mapped to new sessions' neurons."""
        return f"layer{self.num_blocks}_add"


FULL_CONFIG = MemberConfig()
# For tests and CI only: the same graph, a few channels wide.
TINY_CONFIG = MemberConfig(feature_shape=(14, 14, 16), width=32, block_width=16, num_outputs=96)


def member_seed(index: int, seed_base: int = SEED_BASE) -> int:
    """Seed of member ``index`` (0-based): ``31490 + index``."""
    return seed_base + int(index)


def _initializer(kind: str, seed: int | None):
    return keras.initializers.GlorotUniform(seed=seed) if kind == "glorot" else kind


def build_member(config: MemberConfig = FULL_CONFIG, seed: int | None = None,
                 name: str = "ensemble_member") -> keras.Model:
    """Builds an untrained member with the release's layer names.

    Args:
        config: sizes; :data:`FULL_CONFIG` is the paper's member.
        seed: seeds every kernel initialiser (layer ``k`` gets ``seed + k``);
            None for unseeded.
        name: the Keras model's name.

    Returns:
        ``keras.Model`` from ``(N, *feature_shape)`` to ``(N, num_outputs)``.
    """
    layers = keras.layers
    counter = iter(range(10_000))

    def init():
        return _initializer("glorot", None if seed is None else seed + next(counter))

    inputs = keras.Input(shape=config.feature_shape, name="feature_input")
    activity = layers.Conv2D(config.width, 1, kernel_initializer=init(),
                             name="initial_conv_layer")(inputs)
    activity = layers.BatchNormalization(name="initial_bn")(activity)
    activity = layers.Activation("relu", name="initial_act")(activity)
    trunk = layers.SeparableConv2D(
        config.width, 3, strides=2, padding="same", depthwise_initializer=init(),
        pointwise_initializer=init(), name="initial_sepconv_layer",
    )(activity)
    for block in range(1, config.num_blocks + 1):
        activity = trunk
        for stage in (1, 2):
            activity = layers.SeparableConv2D(
                config.block_width, 3, padding="same", depthwise_initializer=init(),
                pointwise_initializer=init(), name=f"layer{block}_conv{stage}",
            )(activity)
            activity = layers.BatchNormalization(name=f"layer{block}_bn{stage}")(activity)
            activity = layers.Activation("relu", name=f"layer{block}_act{stage}")(activity)
        activity = layers.Conv2D(config.width, 1, kernel_initializer=init(),
                                 name=f"layer{block}_conv3")(activity)
        trunk = layers.Add(name=f"layer{block}_add")([trunk, activity])
    mixed = layers.Conv2D(config.num_outputs, 1, kernel_initializer=init(),
                          name="mixing_stage")(trunk)
    map_size = tuple(int(value) for value in trunk.shape[1:3])
    pooled = layers.DepthwiseConv2D(map_size, padding="valid", depthwise_initializer=init(),
                                    name="spatial_pool_stage")(mixed)
    outputs = layers.Flatten(name="embeddings")(pooled)
    return keras.Model(inputs, outputs, name=name)


def member_config_of(member: keras.Model) -> MemberConfig:
    """Reads a built member's :class:`MemberConfig` off its layers."""
    try:
        blocks = sum(1 for layer in member.layers if re.fullmatch(r"layer\d+_add", layer.name))
        return MemberConfig(
            feature_shape=tuple(member.input_shape[1:]),
            width=member.get_layer("initial_conv_layer").filters,
            block_width=member.get_layer("layer1_conv1").filters,
            num_blocks=blocks,
            num_outputs=member.get_layer("mixing_stage").filters,
        )
    except ValueError as error:
        raise ValueError(f"{member.name} is not an ensemble member ({error}).") from None


def reset_readout(member: keras.Model, seed: int | None = None) -> None:
    """Re-initialises the readout (``mixing_stage``, ``spatial_pool_stage``).

    Done before training on each session, since each session has its own
    neurons. Kernels are Glorot-uniform (seeded when ``seed`` is given),
    biases zero.
    """
    for offset, layer_name in enumerate(READOUT_LAYERS):
        layer = member.get_layer(layer_name)
        kernel, bias = layer.get_weights()
        initializer = keras.initializers.GlorotUniform(
            seed=None if seed is None else seed + offset
        )
        layer.set_weights([np.asarray(initializer(kernel.shape)), np.zeros_like(bias)])


def readout_variables(member: keras.Model) -> list:
    """The trainable variables of the readout layers."""
    return [variable for name in READOUT_LAYERS
            for variable in member.get_layer(name).trainable_variables]


def member_file_name(index: int) -> str:
    """``ensemble_model_member<index>.keras`` (the release's naming)."""
    return f"ensemble_model_member{int(index)}.keras"


def find_member_files(folder) -> list[Path]:
    """Member files in a folder, sorted by member index.

    Raises:
        FileNotFoundError: the folder is missing or holds no member file;
            the message names the expected files.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Ensemble folder {folder} does not exist. It should hold the members "
            "ensemble_model_member<i>.keras (the release's data_ensemble_model/ lacks "
            "them; train them with python -m code_train_ensemble_model.train)."
        )
    found = sorted(
        (int(match.group(1)), folder / name)
        for name in os.listdir(folder)
        if (match := MEMBER_FILE_PATTERN.match(name))
    )
    if not found:
        raise FileNotFoundError(
            f"No ensemble member files ensemble_model_member<i>.keras in {folder}. The "
            "release's 25 member weights are not in this snapshot; train members with "
            "python -m code_train_ensemble_model.train --out DIR, then pass that DIR."
        )
    return [path for _, path in found]


def load_member(path) -> keras.Model:
    """Loads a member saved with :func:`save_member` (no compile state).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable Keras file, or not an ensemble member.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Ensemble member file {path} does not exist.")
    try:
        member = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ValueError(
            f"Could not load {path} ({type(error).__name__}: {error}); it is corrupt, "
            "truncated, or not a Keras 3 .keras file."
        ) from None
    member_config_of(member)
    return member


def save_member(member: keras.Model, path, overwrite: bool = True) -> Path:
    """Saves a member as ``.keras`` atomically (weights and architecture only)."""
    target = Path(path)
    if not target.name.endswith(".keras"):
        raise ValueError(f"Save members to a .keras path, got {target}.")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.part{os.getpid()}.keras")
    try:
        member.save(temporary, include_optimizer=False)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return target


def load_ensemble(folder, max_members: int | None = None) -> list[keras.Model]:
    """Loads the members of a folder (all, or the first ``max_members``)."""
    paths = find_member_files(folder)
    if max_members is not None:
        paths = paths[:max_members]
    members = [load_member(path) for path in paths]
    shapes = {tuple(member.input_shape[1:]) for member in members}
    if len(shapes) != 1:
        raise ValueError(f"Members in {folder} take different feature shapes: {sorted(shapes)}.")
    return members


def check_features_for(member: keras.Model, features) -> np.ndarray:
    """Validates features against a member's input shape; returns float32."""
    array = np.asarray(features)
    expected = tuple(member.input_shape[1:])
    if array.ndim != 4 or array.shape[1:] != expected:
        raise ValueError(
            f"features must be (num_images, {', '.join(map(str, expected))}) for this "
            f"member; got shape {array.shape}. Members take ResNet50 conv4_block4_out "
            "features (see classes.taskdriven_features) of the size they were built for."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("features contain NaN or infinite values.")
    return array.astype(np.float32, copy=False)


# Sub-models per (member, layer), built once: validation asks for embeddings
# after every session. Calls run eagerly: tracing would cost more than it saves.
_SUBMODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _submodel(member: keras.Model, layer_name: str | None) -> keras.Model:
    if layer_name is None:
        return member
    cache = _SUBMODELS.setdefault(member, {})
    if layer_name not in cache:
        cache[layer_name] = keras.Model(member.input, member.get_layer(layer_name).output)
    return cache[layer_name]


def _run_in_batches(member: keras.Model, layer_name: str | None, features: np.ndarray,
                    batch_size: int) -> np.ndarray:
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    model = _submodel(member, layer_name)
    outputs = [
        np.asarray(model(tf.constant(features[start : start + batch_size]), training=False))
        for start in range(0, len(features), batch_size)
    ]
    if not outputs:
        return np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
    return np.concatenate(outputs)


def member_outputs(member: keras.Model, features, batch_size: int = 64) -> np.ndarray:
    """The member's readout outputs ``(num_images, num_outputs)``."""
    return _run_in_batches(member, None, check_features_for(member, features), batch_size)


def member_embeddings(member: keras.Model, features, batch_size: int = 64) -> np.ndarray:
    """Activity of the last residual block's sum, ``(num_images, 7, 7, width)``.

    These are the embeddings that linear mappings take to new sessions.
    """
    layer_name = member_config_of(member).embedding_layer
    return _run_in_batches(member, layer_name, check_features_for(member, features), batch_size)


def ensemble_mapped_predictions(
    members, fit_features, fit_responses, evaluation_features, mapping_factory, batch_size: int = 64
) -> np.ndarray:
    """The ensemble's prediction for a new session: mean over members.

    Each member's embeddings are mapped to the session's neurons by a fresh
    mapping fit on the fitting images; the members' predictions for the
    evaluation images are averaged.

    Args:
        members: list of members.
        fit_features, evaluation_features: ResNet50 features
            ``(num_images, 14, 14, 1024)`` (or the members' input shape).
        fit_responses: ``(num_neurons, num_fit_images)``.
        mapping_factory: ``callable()`` returning an unfitted mapping with
            ``fit(features, responses)`` and ``predict(features)`` (e.g.
            :class:`classes.ridge_mapping.RidgeMapping`).

    Returns:
        ``(num_neurons, num_evaluation_images)``.
    """
    if not members:
        raise ValueError("No ensemble members given.")
    total = None
    for member in members:
        fit_embeddings = member_embeddings(member, fit_features, batch_size)
        evaluation_embeddings = member_embeddings(member, evaluation_features, batch_size)
        mapping = mapping_factory().fit(fit_embeddings, fit_responses)
        predictions = mapping.predict(evaluation_embeddings)
        total = predictions if total is None else total + predictions
    return total / len(members)


# --- The release's summary text -------------------------------------------------

_SHAPE_NUMBER = re.compile(r"None|\d+")


@dataclass(frozen=True)
class SummaryRow:
    """One layer of a Keras ``summary()`` table, as printed (names may be cut
    with ``…``)."""

    name: str
    layer_type: str
    output_shape: tuple
    parameters: int
    inputs: tuple


def _prefix_matches(printed: str, actual: str) -> bool:
    """Whether a printed (possibly ``…``-truncated) name fits an actual one."""
    if printed.endswith("…"):
        return actual.startswith(printed[:-1])
    return printed == actual


def parse_summary_tables(text: str) -> list[list[SummaryRow]]:
    """Reads every model table of a Keras 3 ``summary()`` text.

    Returns:
        One list of :class:`SummaryRow` per ``Model:`` table, in file order.
    """
    tables, rows, cells = [], None, None

    def finish_row():
        if cells and any(part.strip() for part in cells[0]):
            name_text = " ".join(part.strip() for part in cells[0] if part.strip())
            match = re.match(r"^(\S+)\s*(?:\((.*?)\)?)?$", name_text)
            if not match:
                raise ValueError(f"Cannot read the summary row {name_text!r}.")
            shape_text = " ".join(part.strip() for part in cells[1])
            numbers = _SHAPE_NUMBER.findall(shape_text)
            shape = tuple(None if value == "None" else int(value) for value in numbers)
            parameters = int(cells[2][0].strip().replace(",", "") or 0)
            inputs = []
            for part in cells[3]:
                token = part.strip().rstrip(",")
                if token and token != "-":
                    name = token.split("[")[0]
                    inputs.append(name if name.endswith("…") or "[" in token else name + "…")
            rows.append(SummaryRow(match.group(1), (match.group(2) or "").strip(),
                                   shape, parameters, tuple(inputs)))

    for line in text.splitlines():
        if line.startswith("Model:"):
            rows = []
            tables.append(rows)
            cells = None
        elif rows is None:
            continue
        elif line.startswith(("├", "└")) or line.startswith("┡"):
            finish_row()
            cells = [[], [], [], []]
        elif line.startswith("│") and cells is not None:
            parts = line.split("│")[1:-1]
            if len(parts) == 4:
                for column, part in enumerate(parts):
                    cells[column].append(part)
    return tables


def release_summary_path(data_root=None) -> Path:
    """``data_ensemble_model/ensemble_model_summary.txt`` of the release."""
    path = resolve_data_root(data_root) / "data_ensemble_model" / "ensemble_model_summary.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"Missing {path}: the release's Keras summary of the ResNet50 stage and of one "
            "ensemble member."
        )
    return path


def release_member_table(data_root=None) -> list[SummaryRow]:
    """The member's table (the second model) of the release's summary."""
    path = release_summary_path(data_root)
    tables = parse_summary_tables(path.read_text(encoding="utf-8"))
    if len(tables) != 2:
        raise ValueError(f"{path} should hold two model summaries; found {len(tables)}.")
    return tables[1]


def _inbound_names(layer) -> list[str]:
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return []
    return [parent.operation.name for parent in nodes[0].parent_nodes]


def compare_with_summary(member: keras.Model, table: list[SummaryRow]) -> list[str]:
    """Differences between a member and a printed summary table.

    Compares, layer by layer and in order: name, type, output shape,
    parameter count and inputs.

    Returns:
        One line per difference; empty when the member matches exactly.
    """
    problems = []
    layers = member.layers
    if len(layers) != len(table):
        problems.append(f"{len(layers)} layers, the summary lists {len(table)}")
    for layer, row in zip(layers, table, strict=False):  # lengths checked above
        label = f"layer {row.name}"
        if not _prefix_matches(row.name, layer.name):
            problems.append(f"{label}: built layer is named {layer.name}")
        if row.layer_type and not _prefix_matches(row.layer_type, type(layer).__name__):
            problems.append(f"{label}: type {type(layer).__name__}, summary {row.layer_type}")
        shape = tuple(layer.output.shape)
        if shape != row.output_shape:
            problems.append(f"{label}: output shape {shape}, summary {row.output_shape}")
        if layer.count_params() != row.parameters:
            problems.append(f"{label}: {layer.count_params()} parameters, summary {row.parameters}")
        inbound = _inbound_names(layer)
        if row.inputs and (
            len(inbound) != len(row.inputs)
            or not all(_prefix_matches(p, a) for p, a in zip(row.inputs, inbound, strict=True))
        ):
            problems.append(f"{label}: inputs {inbound}, summary {list(row.inputs)}")
    return problems


def parameter_counts(member: keras.Model) -> dict:
    """Trainable, non-trainable and optimizer-slot counts of a member.

    The optimizer count is that of SGD with momentum built for the member
    (one slot per trainable weight, plus its iteration counter and learning
    rate), which the release's summary prints as 'Optimizer params'.
    """
    trainable = int(sum(np.prod(variable.shape) for variable in member.trainable_weights))
    non_trainable = int(sum(np.prod(variable.shape) for variable in member.non_trainable_weights))
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.75)
    optimizer.build(member.trainable_variables)
    optimizer_count = int(sum(np.prod(variable.shape) for variable in optimizer.variables))
    return {"trainable": trainable, "non_trainable": non_trainable, "optimizer": optimizer_count,
            "total_with_optimizer": trainable + non_trainable + optimizer_count}
