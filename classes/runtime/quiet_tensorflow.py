"""Imports Keras with TensorFlow's start-up chatter removed.

Import ``keras`` and ``tf`` through this module (every module of the project
does) so that users see our progress bars and messages rather than oneDNN
and CUDA notices.

Why an environment variable is not enough: ``TF_CPP_MIN_LOG_LEVEL`` is read
by TensorFlow's logging initializer, a static constructor of
``libtensorflow_framework.so.2``, but the constructors that print "oneDNN
custom operations are on" and "Could not find cuda drivers" (with absl's
"All log messages before absl::InitializeLog() is called ..." line) run
before it in the same library, and again in a second library that carries
its own copy (``libpywrap_tflite_common.so``): that is why every script
printed the lines twice, whatever the variable said. So the import runs with
the process's standard error (file descriptor 2, which C++ writes to)
captured, and everything but those lines is passed on.
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Lines TensorFlow's libraries print while they load, on every machine without a GPU.
START_UP_LINES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
)


def _import_quietly():
    """``(keras, tensorflow)``, imported with the start-up lines removed from standard error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras
            import tensorflow
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not any(text in line for text in START_UP_LINES)))
            sys.stderr.flush()
    return keras, tensorflow


keras, tf = _import_quietly()
tf.get_logger().setLevel("ERROR")

__all__ = ["keras", "tf"]
