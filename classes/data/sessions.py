"""The table of all 50 recording sessions (release readme, Ext. Data Table 1).

Encoded once here so that code runs without the release at hand; the test
suite checks it line by line against ``data_V4_responses/readme.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass

# The four sessions held out from ensemble training, whose neurons have
# compact models (SPEC section 1), in the shared models' neuron order.
TEST_SESSIONS = ("190923", "201025", "210225", "211022")
VALIDATION_SESSION = "210224"
BASHIVAN_SESSION = "210325"
# WE training sessions whose images 601-900 were synthesized images left out.
_WE_TRAINING_WITH_GAP = ("190924", "190925", "190926", "190927", "190928", "190929")


@dataclass(frozen=True)
class Session:
    """One recording session.

    Attributes:
        session_id: the six-digit date string, e.g. ``"190923"``.
        animal: ``"WE"``, ``"PE"`` or ``"RA"``.
        split: the readme's label: ``"train"``, ``"test"`` or ``"validation"``.
        num_neurons: recorded neurons.
        num_repeats: repeats per image as the readme gives it.
        num_images: images used, as the readme counts them.
        image_types: the readme's description of the image types.
        num_images_in_file: images in the response files (and zip); differs
            from ``num_images`` where images were left out.
    """

    session_id: str
    animal: str
    split: str
    num_neurons: int
    num_repeats: int
    num_images: int
    image_types: str
    num_images_in_file: int

    @property
    def is_held_out_test(self) -> bool:
        """Whether this is one of the four sessions with compact models."""
        return self.session_id in TEST_SESSIONS


_ROWS = """
190923 WE test 33 14 1200 1200 normal (1,200)
190924 WE train 25 13 900 1200 normal (600), active learning (300)
190925 WE train 36 14 900 1200 normal (600), active learning (300)
190926 WE train 27 15 900 1200 normal (600), active learning (300)
190927 WE train 31 11 900 1200 normal (600), active learning (300)
190928 WE train 24 13 900 1200 normal (600), active learning (300)
190929 WE train 33 15 900 1200 normal (600), active learning (300)
201016 PE train 82 6 900 600 normal (300), gaudy (300)
201017 PE train 88 7 900 600 normal (300), active learning (300), gaudy (300)
201018 PE train 80 5 600 600 normal (600)
201019 PE train 82 4 1600 1600 normal (800), active learning (400), gaudy (400)
201020 PE train 87 4 1600 1600 normal (800), active learning (400), gaudy (400)
201021 PE train 88 7 1600 1600 normal (800), active learning (400), gaudy (400)
201022 PE train 79 5 2000 2000 normal (1,000), active learning (500), gaudy (500)
201023 PE train 86 7 2000 2000 normal (1,000), active learning (500), gaudy (500)
201024 PE train 85 7 2000 2000 normal (1,000), active learning (500), gaudy (500)
201025 PE test 89 12 1200 1200 normal (1,200)
210224 PE validation 67 9 800 800 normal (800)
210225 PE test 55 6 1200 1200 normal (1,200)
210226 PE train 78 6 1600 1600 normal (600), maximizing (1,000)
210301 PE train 61 4 2000 2000 maximizing (650), validation exps. (1,350)
210302 PE train 70 5 2000 2000 maximizing (650), validation exps. (1,350)
210303 PE train 67 3 2049 2049 maximizing (2,049)
210304 PE train 65 5 1968 1968 maximizing (1,968)
210305 PE train 70 22 400 400 validation exps. (400)
210308 PE train 70 4 2000 2000 normal (500), validation exps. (1,500)
210309 PE train 56 4 2000 2000 normal (600), validation exps. (1,200), artificial (200)
210310 PE train 64 3 2000 2000 normal (1,000), gaudy (1,000)
210312 PE train 81 4 2000 2000 maximizing (2,000)
210315 PE train 65 2 2000 2000 maximizing (2,000)
210316 PE train 62 3 2000 2000 normal (1,000), gaudy (1,000)
210322 PE train 59 4 1200 1200 normal (600), Bashivan et al., 2019 (600)
210323 PE train 59 4 1200 1200 normal (600), gaudy (600)
210324 PE train 54 4 1200 1200 normal (600), gaudy (600)
210325 PE test 50 8 640 640 Bashivan et al., 2019 (640)
210326 PE train 60 4 1200 1200 normal (600), gaudy (600)
210620 RA train 42 9 1600 1600 normal (1,600)
210621 RA train 51 16 1200 1200 normal (1,200)
211008 RA train 21 24 1200 1200 normal (1,200)
211012 RA train 51 15 2000 2000 normal (1,000), gaudy (1,000)
211013 RA train 52 15 2000 2000 normal (1,000), gaudy (1,000)
211014 RA train 46 11 2000 2000 normal (1,000), gaudy (1,000)
211015 RA train 49 18 2000 2000 normal (1,000), gaudy (1,000)
211018 RA train 56 10 3000 3000 normal (1,500), gaudy (1,500)
211022 RA test 42 20 1600 1600 normal (1,600)
211025 RA train 54 16 2000 2000 normal (233), maximizing (150), gaudy (233), artificial (1,384)
211026 RA train 56 13 2000 2000 normal (660), validation exps. (840), active learning (250), gaudy (250)
211027 RA train 56 18 2000 2000 normal (240), validation exps. (1,260), active learning (250), gaudy (250)
211028 RA train 55 14 2000 2000 normal (660), validation exps. (840), active learning (250), gaudy (250)
211103 RA train 49 13 3000 3000 normal (750), maximizing (750), active learning (750), gaudy (750)
"""


def _parse_rows() -> dict[str, Session]:
    table = {}
    for line in _ROWS.strip().splitlines():
        fields = line.split(maxsplit=7)
        session_id, animal, split = fields[0], fields[1], fields[2]
        neurons, repeats, images, in_file = (int(value) for value in fields[3:7])
        table[session_id] = Session(
            session_id, animal, split, neurons, repeats, images, fields[7], in_file
        )
    return table


SESSIONS: dict[str, Session] = _parse_rows()


def get_session(session_id: str | int) -> Session:
    """Returns the table row of one session.

    Args:
        session_id: e.g. ``"190923"`` or ``190923``.

    Raises:
        ValueError: the session is not one of the 50 recorded sessions.
    """
    key = str(session_id).strip()
    if key not in SESSIONS:
        raise ValueError(
            f"Unknown session {session_id!r}. Known sessions: "
            + ", ".join(SESSIONS)
            + f". Held-out test sessions: {', '.join(TEST_SESSIONS)}."
        )
    return SESSIONS[key]


def held_out_indices(session_id: str | int) -> tuple:
    """Splits a held-out test session's images into fit and evaluation halves.

    The first half of the images (in file order) fits linear mappings and
    distillation targets; the second half is held out for evaluation.

    Returns:
        ``(fit_indices, evaluation_indices)``, 0-based int arrays.

    Raises:
        ValueError: the session is not one of the four held-out test sessions.
    """
    import numpy as np

    session = get_session(session_id)
    if not session.is_held_out_test:
        raise ValueError(
            f"Session {session.session_id} is not a held-out test session; "
            f"those are {', '.join(TEST_SESSIONS)}."
        )
    half = session.num_images_in_file // 2
    return np.arange(half), np.arange(half, session.num_images_in_file)


def training_image_indices(session_id: str | int):
    """0-based indices of the images a session contributes to training.

    The six WE training sessions use images 1-600 and 901-1200 (601-900 were
    synthesized images left out); every other session uses all its images.

    Returns:
        int array of 0-based image indices into the session's files.
    """
    import numpy as np

    session = get_session(session_id)
    if session.session_id in _WE_TRAINING_WITH_GAP:
        return np.concatenate([np.arange(0, 600), np.arange(900, 1200)])
    return np.arange(session.num_images_in_file)
