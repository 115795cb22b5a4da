"""Imports Keras with TensorFlow's start-up chatter turned down.

Import ``keras`` through this module so that users see our progress bars
and messages rather than oneDNN and CUDA notices.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")

__all__ = ["keras", "tf"]
