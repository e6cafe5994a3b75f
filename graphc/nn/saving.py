"""Saving and loading models without pickle.

A saved model is a directory holding two files:

- ``model.json``: the architecture: ``{"format": "graphc.nn.Sequential", "version": 1,
  "input_dim": [...], "seed": ..., "layers": [{"type": "Dense", "config": {...}}, ...],
  "weights": [names of the arrays in weights.npz, in get_weights() order]}``, and, for a
  model fit with a named loss, ``"loss": name`` with ``"version": 2`` (a model without one is
  still written as version 1, which older graphc reads);
- ``weights.npz``: one array per parameter (running statistics included), named like the
  parameter (``dense_0_W``, ``dense_0_b``, ...), read back with ``allow_pickle=False``.

What is saved is what ``get_weights()`` covers (trainable weights and batch-norm running
statistics), the architecture and the loss of the last ``fit`` when it was given by name
(``model.loss``: what a loaded model's ``evaluate`` computes by default, as Keras keeps the
compiled loss).  Not saved: the optimizer and its state (Keras' ``model.save`` keeps it; here a
loaded model's ``fit`` starts with a fresh optimizer, as a PyTorch ``state_dict`` of the model
alone does) and a loss given as a Python function.

``save`` writes both files into a fresh temporary directory next to ``path`` and then moves it
into place, so a reader never sees a half-written model; an existing model directory at
``path`` is replaced.  ``load`` checks everything (JSON structure, layer types and arguments,
array names, shapes and dtypes) and raises ``ValueError`` naming the offending file.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile

import numpy as np

from .layers import LAYER_TYPES
from .losses import NAMES as LOSS_NAMES
from .model import Sequential

FORMAT = "graphc.nn.Sequential"
VERSION = 2       # written when the file holds a loss; version 1 files have none
VERSIONS = (1, 2)  # read
ARCH_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
_OURS = {ARCH_FILE, WEIGHTS_FILE}


def save(model: Sequential, path) -> str:
    """Write ``model`` to the directory ``path`` (created, or replaced if it holds a saved
    model); returns ``path``.  Models with a Python-function activation cannot be
    saved (ValueError); a loss given as a function is not saved (``evaluate`` of the loaded
    model then needs ``loss=``)."""
    path = os.fspath(path)
    for layer in model.layers:
        act = getattr(layer, "activation", "linear")
        if not isinstance(act, str):
            raise ValueError(f"cannot save {layer.name}: its activation is a Python function; "
                             f"use a registered activation name")
        if type(layer).__name__ not in LAYER_TYPES:
            raise ValueError(f"cannot save {layer.name}: layer type {type(layer).__name__} is "
                             f"not one graphc.nn.load knows")
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise FileExistsError(f"{path} exists and is not a directory")
        extra = sorted(set(os.listdir(path)) - _OURS)
        if extra:
            raise FileExistsError(f"{path} exists and holds files other than a saved model "
                                  f"({', '.join(extra[:5])}); not replacing it")
    params = model.all_parameters
    names = [p.name for p in params]
    if len(set(names)) != len(names):  # cannot happen with Sequential's naming; be safe
        raise ValueError(f"parameter names are not unique: {names}")
    arch = {"format": FORMAT, "version": 1, **model.config(), "weights": names}
    if isinstance(model.loss, str) and model.loss in LOSS_NAMES:
        arch.update(version=VERSION, loss=model.loss)

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        with open(os.path.join(tmp, ARCH_FILE), "w", encoding="utf-8") as f:
            json.dump(arch, f, indent=2)
            f.write("\n")
        with open(os.path.join(tmp, WEIGHTS_FILE), "wb") as f:
            np.savez(f, **{p.name: p.value for p in params})
        if os.path.isdir(path):
            # a directory cannot be renamed over a non-empty one: move the old one aside first
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.replace(path, os.path.join(old, "model"))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _fail(file, why):
    return ValueError(f"{file}: {why}")


def _read_arch(file) -> dict:
    try:
        with open(file, "r", encoding="utf-8") as f:
            arch = json.load(f)
    except FileNotFoundError:
        raise _fail(file, "missing (not a saved graphc model directory)") from None
    except RecursionError:  # hostile nesting ("[[[[..."): the decoder runs out of stack
        raise _fail(file, "not valid JSON (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, an int of 5000 digits
        raise _fail(file, f"not valid JSON ({e})") from None
    if not isinstance(arch, dict):
        raise _fail(file, "expected a JSON object")
    if arch.get("format") != FORMAT:
        raise _fail(file, f"not a graphc model (format {arch.get('format')!r}, expected "
                          f"{FORMAT!r})")
    version = arch.get("version")
    if type(version) is not int or version not in VERSIONS:
        raise _fail(file, f"unsupported version {version!r} (this graphc reads versions "
                          f"{', '.join(map(str, VERSIONS))})")
    known = {"format", "version", "input_dim", "seed", "layers", "weights"}
    unknown = set(arch) - (known | {"loss"} if version >= 2 else known)
    if unknown:
        raise _fail(file, f"unknown key(s) {sorted(unknown)}")
    if "loss" in arch and arch["loss"] not in LOSS_NAMES:
        raise _fail(file, f"'loss' must be one of {list(LOSS_NAMES)}, got {arch['loss']!r}")
    for key in ("input_dim", "layers", "weights"):
        if not isinstance(arch.get(key), list):
            raise _fail(file, f"{key!r} must be a list")
    if not all(isinstance(n, str) for n in arch["weights"]):
        raise _fail(file, "'weights' must list array names")
    if not isinstance(arch.get("seed", 0), int):
        raise _fail(file, "'seed' must be an integer")
    return arch


def _weights_bytes(file) -> int:
    """Uncompressed size of the weights file's arrays: no parameter of a genuine model holds
    more elements than this, which bounds what the architecture may allocate."""
    try:
        with zipfile.ZipFile(file) as z:
            return sum(info.file_size for info in z.infolist())
    except FileNotFoundError:
        raise _fail(file, "missing (not a saved graphc model directory)") from None
    except (OSError, zipfile.BadZipFile, ValueError) as e:
        raise _fail(file, f"not a valid .npz file ({type(e).__name__}: {e})") from None


def _bounded_init(name, limit, file, index):
    """The initializer ``name``, refusing shapes larger than ``limit`` elements: a tampered
    model.json (units=10**12) must give a ValueError, not a MemoryError or an OOM kill while
    drawing initial weights that the saved ones would replace anyway."""
    from .layers import INITS

    def init(rng, fan_in, fan_out, shape):
        if int(np.prod(shape, dtype=object)) > limit:
            raise _fail(file, f"layer {index}: a parameter of shape {tuple(shape)} cannot come "
                              f"from a weights file of {limit} bytes")
        return INITS.get(name, INITS["zeros"])(rng, fan_in, fan_out, shape)
    return init


def _build(arch, file, limit: int) -> Sequential:
    dims = arch["input_dim"]
    if arch["weights"] and all(isinstance(d, int) and d > 0 for d in dims) \
            and int(np.prod(dims, dtype=object)) > limit:
        # the first layer with parameters has at least one per input value
        raise _fail(file, f"input_dim {arch['input_dim']} does not fit the weights file")
    layers = []
    for i, spec in enumerate(arch["layers"]):
        if not isinstance(spec, dict) or set(spec) != {"type", "config"} \
                or not isinstance(spec["config"], dict):
            raise _fail(file, f"layer {i}: expected {{\"type\": ..., \"config\": {{...}}}}")
        cls = LAYER_TYPES.get(spec["type"]) if isinstance(spec["type"], str) else None
        if cls is None:
            raise _fail(file, f"layer {i}: unknown layer type {spec['type']!r} (known: "
                              f"{sorted(LAYER_TYPES)})")
        cfg = dict(spec["config"])
        if cfg.get("init", "") is None:
            cfg.pop("init")  # a custom initializer: the saved weights replace it anyway
        try:
            layer = cls(**cfg)
        except (TypeError, ValueError) as e:
            raise _fail(file, f"layer {i} ({spec['type']}): bad config {cfg}: {e}") from None
        if isinstance(getattr(layer, "init", None), str):
            layer._saved_init = layer.init
            layer.init = _bounded_init(layer.init, limit, file, i)
        layers.append(layer)
    try:
        model = Sequential(layers, tuple(arch["input_dim"]), seed=int(arch.get("seed", 0)))
    except (TypeError, ValueError, OverflowError) as e:
        if str(e).startswith(f"{file}:"):
            raise
        raise _fail(file, f"cannot build the model: {e}") from None
    except MemoryError:
        raise _fail(file, "cannot build the model: its layers are too large") from None
    for layer in layers:  # the config (and a later save) keep the initializer's name
        if hasattr(layer, "_saved_init"):
            layer.init = layer._saved_init
            del layer._saved_init
    return model


def _read_weights(file, model: Sequential, names: list) -> list:
    params = model.all_parameters
    expected = [p.name for p in params]
    if names != expected:
        raise _fail(os.path.join(os.path.dirname(file), ARCH_FILE),
                    f"weights {names} do not match the architecture's parameters {expected}")
    try:
        with np.load(file, allow_pickle=False) as npz:
            keys = list(npz.files)
            missing = sorted(set(expected) - set(keys))
            extra = sorted(set(keys) - set(expected))
            if missing or extra:
                raise _fail(file, f"arrays do not match the model: missing {missing}, "
                                  f"unexpected {extra}")
            arrays = []
            for p in params:
                a = npz[p.name]
                if a.shape != tuple(p.shape):
                    raise _fail(file, f"array {p.name} has shape {a.shape}, the model needs "
                                      f"{tuple(p.shape)}")
                if a.dtype.kind not in "fiu":
                    raise _fail(file, f"array {p.name} has dtype {a.dtype}, expected numbers")
                arrays.append(a)
            return arrays
    except FileNotFoundError:
        raise _fail(file, "missing (not a saved graphc model directory)") from None
    except ValueError as e:
        if str(e).startswith(f"{file}:"):
            raise
        # object arrays (pickles) and malformed .npy members land here
        raise _fail(file, f"unreadable or unsafe weights ({e})") from None
    except (OSError, EOFError, KeyError) as e:
        raise _fail(file, f"not a valid .npz file ({e})") from None
    except Exception as e:  # zipfile.BadZipFile and friends
        raise _fail(file, f"not a valid .npz file ({type(e).__name__}: {e})") from None


def load(path) -> Sequential:
    """Load a model saved with ``model.save(path)``; ValueError naming the file for anything
    that is not exactly such a model (no pickle is ever read)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"{path}: not a saved graphc model directory (expected a directory "
                         f"with {ARCH_FILE} and {WEIGHTS_FILE})")
    arch_file = os.path.join(path, ARCH_FILE)
    arch = _read_arch(arch_file)
    limit = _weights_bytes(os.path.join(path, WEIGHTS_FILE))
    model = _build(arch, arch_file, limit)
    arrays = _read_weights(os.path.join(path, WEIGHTS_FILE), model, arch["weights"])
    model.set_weights(arrays)
    model.loss = arch.get("loss")
    return model
