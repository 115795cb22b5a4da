"""The ensemble model's members: architecture, files, embeddings, prediction.

The ensemble (SPEC section 4, Fig. 1) reads ResNet50 features cut at
``conv4_block4_out`` ``(14, 14, 1024)``; each of its 25 members (seeds
31490 + i) maps them to V4 responses. The readout is re-initialised for
every training session; on a new session the member's ``layer4_add`` maps
``(7, 7, 512)`` are the embeddings that a ridge or factorized linear mapping
takes to that session's neurons, and the ensemble's prediction is the mean
of the members' mapped predictions.

This module gathers the public names of the modules that hold each concept,
so that ``from classes.ensemble_model import ...`` keeps working:

- :mod:`classes.ensemble_architecture`: sizes, layers, seeds, readout,
  parameter counts;
- :mod:`classes.ensemble_files`: member file names, saving and loading;
- :mod:`classes.ensemble_embeddings`: outputs, embeddings and the
  ensemble's mapped predictions;
- :mod:`classes.ensemble_summary`: the release's
  ``data_ensemble_model/ensemble_model_summary.txt``, parsed and compared
  with a built member.
"""

from __future__ import annotations

from classes.ensemble_architecture import (
    FULL_CONFIG,
    NUM_MEMBERS,
    READOUT_LAYERS,
    SEED_BASE,
    TINY_CONFIG,
    MemberConfig,
    build_member,
    member_config_of,
    member_seed,
    parameter_counts,
    readout_variables,
    reset_readout,
)
from classes.ensemble_embeddings import (
    check_features_for,
    ensemble_mapped_predictions,
    member_embeddings,
    member_outputs,
)
from classes.ensemble_files import (
    MEMBER_FILE_PATTERN,
    find_member_files,
    load_ensemble,
    load_member,
    member_file_name,
    save_member,
)
from classes.ensemble_summary import (
    RELEASE_MEMBER_COUNTS,
    SummaryRow,
    compare_with_summary,
    parse_summary_tables,
    release_member_table,
    release_summary_path,
)

__all__ = [
    "FULL_CONFIG",
    "MEMBER_FILE_PATTERN",
    "NUM_MEMBERS",
    "READOUT_LAYERS",
    "RELEASE_MEMBER_COUNTS",
    "SEED_BASE",
    "TINY_CONFIG",
    "MemberConfig",
    "SummaryRow",
    "build_member",
    "check_features_for",
    "compare_with_summary",
    "ensemble_mapped_predictions",
    "find_member_files",
    "load_ensemble",
    "load_member",
    "member_config_of",
    "member_embeddings",
    "member_file_name",
    "member_outputs",
    "member_seed",
    "parameter_counts",
    "parse_summary_tables",
    "readout_variables",
    "release_member_table",
    "release_summary_path",
    "reset_readout",
    "save_member",
]
