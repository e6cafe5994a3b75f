"""``gc.nn``: layers, ``Sequential`` models with ``fit`` / ``predict`` / ``evaluate``, saving.

One module per job: ``activations`` (names -> functions), ``layers`` (Dense, Dropout,
BatchNorm, Maxout, Flatten, Activation), ``losses`` (losses by name + accuracy), ``model``
(Sequential and its compiled functions), ``training`` (``fit``, early stopping, progress) and
``saving`` (``save`` / ``load``, JSON + npz, no pickle).
"""
from .activations import ACTIVATIONS
from .layers import INITS, Activation, BatchNorm, Dense, Dropout, Flatten, Layer, Maxout
from .model import Sequential
from .saving import load, save
from .training import EarlyStopping, fit

__all__ = ["ACTIVATIONS", "INITS", "Activation", "BatchNorm", "Dense", "Dropout",
           "EarlyStopping", "Flatten", "Layer", "Maxout", "Sequential", "fit", "load", "save"]
