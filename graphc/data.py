"""Datasets and mini-batching for graphc.

Loaders return NumPy arrays ready for training: images as ``float32`` in
``[0, 1]`` with shape ``(n, 784)``, labels as ``int64``.

``load_mnist`` and ``load_fashion_mnist`` look for the four official gzip'd IDX
files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``) in this order:

1. the ``path`` argument: a directory holding the four files, or a parent
   directory with a ``mnist/`` (or ``fashion-mnist/``) subdirectory holding them (each file
   gzip'd or not: ``train-images-idx3-ubyte.gz`` or ``train-images-idx3-ubyte``; the dotted
   names ``train-images.idx3-ubyte[.gz]`` are accepted too);
2. the ``GRAPHC_DATA`` environment variable, same layout as ``path``;
   then ``data/`` and ``../shared/data`` beside the source checkout and beside the working
   directory (see ``default_data_dirs``);
3. the user cache: ``$GRAPHC_CACHE_DIR/data``, else ``$XDG_CACHE_HOME/graphc/data``,
   else ``~/.cache/graphc/data``, with ``mnist/`` and ``fashion-mnist/`` subdirectories;
4. a download from the official mirrors into the cache, checked against the
   official MD5 checksums.

Files found through ``path`` or ``GRAPHC_DATA`` are not checksummed, but every file's
structure is validated (gzip stream, IDX magic number, dimensions against the
byte count, image/label counts, label range), and an official file of the other dataset or
split (Fashion-MNIST's images given to ``load_mnist``) is recognized by its checksum; a bad
file raises ``ValueError`` naming it.

The MNIST 10k test set ships inside the package, so ``load_default()`` always
works offline.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DatasetNotFoundError",
    "load_mnist",
    "load_fashion_mnist",
    "load_embedded_mnist_test",
    "load_default",
    "load",
    "xor",
    "batches",
    "train_val_split",
    "cache_dir",
]

#: Seconds to wait on each network operation of a download.
DOWNLOAD_TIMEOUT = 10.0

_IMAGE_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
_LABEL_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
_NUM_CLASSES = 10
_IMAGE_SIDE = 28
_CHUNK = 1 << 16

# Part name -> official file name.
_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# Dataset key -> display name, subdirectory, mirrors, official MD5 per file.
_DATASETS: dict[str, dict[str, Any]] = {
    "mnist": {
        "title": "MNIST",
        "subdir": "mnist",
        "mirrors": (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST",
        "subdir": "fashion-mnist",
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}

Split = tuple[np.ndarray, np.ndarray]

# MD5 of the uncompressed official files (for the images, the checksums in the team's
# shared/data/README.md): a file given for one dataset or split that is in fact another
# official one (Fashion-MNIST's files passed to load_mnist) is named, not silently loaded.
_RAW_MD5 = {
    "6bbc9ace898e44ae57da46a324031adb": ("mnist", "train-images-idx3-ubyte.gz"),
    "a25bea736e30d166cdddb491f175f624": ("mnist", "train-labels-idx1-ubyte.gz"),
    "2646ac647ad5339dbf082846283269ea": ("mnist", "t10k-images-idx3-ubyte.gz"),
    "27ae3e4e09519cfbb04c329615203637": ("mnist", "t10k-labels-idx1-ubyte.gz"),
    "f4a8712d7a061bf5bd6d2ca38dc4d50a": ("fashion-mnist", "train-images-idx3-ubyte.gz"),
    "9018921c3c673c538a1fc5bad174d6f9": ("fashion-mnist", "train-labels-idx1-ubyte.gz"),
    "8181f5470baa50b63fa0f6fddb340f0a": ("fashion-mnist", "t10k-images-idx3-ubyte.gz"),
    "15d484375f8d13e6eb1aabb0c3f46965": ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"),
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files could not be found locally nor downloaded.

    The message lists the files looked for, every place searched and how to
    provide the files (``path=`` argument or the ``GRAPHC_DATA`` variable).
    """


# --------------------------------------------------------------------------- IDX


def _read_gzip(path: str) -> bytes:
    """Return the decompressed content of the gzip file ``path``; a file whose name does not
    end in ``.gz`` is an uncompressed IDX file, returned as it is (unless it holds a gzip
    stream anyway).

    Raises ``ValueError`` naming ``path`` if the gzip stream is invalid or truncated, or if
    the file cannot be read.
    """
    try:
        with open(path, "rb") as raw:
            if not str(path).endswith(".gz") and raw.read(2) != b"\x1f\x8b":
                raw.seek(0)
                return raw.read()
            raw.seek(0)
            try:
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    return f.read()
            except (OSError, EOFError, zlib.error) as exc:
                raise ValueError(f"{path}: not a valid gzip file ({exc})") from exc
    except ValueError:
        raise
    except OSError as exc:  # unreadable (permissions, a directory, an I/O error)
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _check_identity(path: str, data: bytes, expected: tuple[str, str] | None) -> None:
    """``ValueError`` if ``data`` is an official file other than ``expected`` (dataset key,
    official file name)."""
    if expected is None:
        return
    found = _RAW_MD5.get(hashlib.md5(data).hexdigest())
    if found is not None and found != expected:
        raise ValueError(
            f"{path}: this is {_DATASETS[found[0]]['title']}'s {found[1][:-3]}, "
            f"expected {_DATASETS[expected[0]]['title']}'s {expected[1][:-3]}"
        )


def _read_idx(path: str, magic: int, expected: tuple[str, str] | None = None) -> np.ndarray:
    """Read a gzip'd IDX file of unsigned bytes and return it as a uint8 array.

    Args:
        path: the ``.gz`` file.
        magic: the expected magic number (2051 for images, 2049 for labels).

    Raises:
        ValueError: naming ``path``, for a bad gzip stream, a wrong magic number,
            or a data size that does not match the dimensions in the header.
    """
    data = _read_gzip(path)
    _check_identity(path, data, expected)
    if len(data) < 4:
        raise ValueError(f"{path}: file too short for an IDX header ({len(data)} bytes)")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise ValueError(f"{path}: bad IDX magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX header ({len(data)} bytes, expected {header})"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(data) - header
    if actual != expected:
        raise ValueError(
            f"{path}: IDX header declares shape {dims} ({expected} bytes of data) "
            f"but the file holds {actual} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_images(path: str, expected: tuple[str, str] | None = None) -> np.ndarray:
    """Read an IDX image file: ``(N, 28, 28)`` uint8."""
    images = _read_idx(path, _IMAGE_MAGIC, expected)
    if images.shape[1:] != (_IMAGE_SIDE, _IMAGE_SIDE):
        raise ValueError(
            f"{path}: images are {images.shape[1]}x{images.shape[2]}, "
            f"expected {_IMAGE_SIDE}x{_IMAGE_SIDE}"
        )
    return images


def _read_labels(path: str, expected: tuple[str, str] | None = None) -> np.ndarray:
    """Read an IDX label file: ``(N,)`` uint8 with values in ``0..9``."""
    labels = _read_idx(path, _LABEL_MAGIC, expected)
    if labels.size and int(labels.max()) >= _NUM_CLASSES:
        bad = int(np.argmax(labels >= _NUM_CLASSES))
        raise ValueError(
            f"{path}: label {int(labels[bad])} at index {bad} is out of range "
            f"0..{_NUM_CLASSES - 1}"
        )
    return labels


def _load_split(images_path: str, labels_path: str, key: str | None = None,
                split: str = "") -> Split:
    """Load one split: ``X`` float32 ``(n, 784)`` in ``[0, 1]``, ``y`` int64 ``(n,)``.

    ``key`` and ``split`` (``"train"``/``"test"``): the dataset the files must be, when an
    official file of another dataset or split is to be rejected."""
    images = _read_images(images_path,
                          None if key is None else (key, _FILES[f"{split}_images"]))
    labels = _read_labels(labels_path,
                          None if key is None else (key, _FILES[f"{split}_labels"]))
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels"
        )
    X = images.reshape(len(images), -1).astype(np.float32)
    X /= np.float32(255.0)
    return X, labels.astype(np.int64)


# ----------------------------------------------------------------------- lookup


def cache_dir() -> str:
    """Return graphc's data cache directory (it may not exist yet).

    ``$GRAPHC_CACHE_DIR/data`` if set, else ``$XDG_CACHE_HOME/graphc/data``, else
    ``~/.cache/graphc/data``.
    """
    root = os.environ.get("GRAPHC_CACHE_DIR")
    if root:
        return os.path.join(os.path.expanduser(root), "data")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return os.path.join(os.path.expanduser(xdg), "graphc", "data")
    return os.path.join(os.path.expanduser("~"), ".cache", "graphc", "data")


def _names_of(name: str) -> tuple[str, ...]:
    """The file names accepted for the official file ``name`` (``train-images-idx3-ubyte.gz``),
    in order of preference: itself, uncompressed (``train-images-idx3-ubyte``), and the dotted
    names of some distributions (``train-images.idx3-ubyte``, gzip'd or not)."""
    raw = name[:-3]
    dotted = raw.replace("-idx", ".idx")
    return (name, raw, dotted + ".gz", dotted)


def _find(directory: str, name: str) -> str | None:
    for candidate in _names_of(name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _has_files(directory: str) -> bool:
    """True if ``directory`` holds all four files (official names, gzip'd or not)."""
    return all(_find(directory, name) is not None for name in _FILES.values())


def default_data_dirs() -> list[str]:
    """Data directories searched after $GRAPHC_DATA and before the cache: ``data/`` in a source
    checkout, and the ``shared/data`` directory beside it (where this project's team keeps
    MNIST and Fashion-MNIST), then the same two relative to the working directory (``data/``
    and ``../shared/data`` from the project root, for an installed graphc), when they exist."""
    checkout = Path(__file__).resolve().parent.parent
    cwd = Path.cwd()
    dirs = [checkout / "data", checkout.parent / "shared" / "data",
            cwd / "data", cwd.parent / "shared" / "data"]
    out: list[str] = []
    for d in dirs:
        if d.is_dir() and str(d.resolve()) not in out:
            out.append(str(d.resolve()))
    return out


def _candidates(root: str, subdir: str) -> list[str]:
    """Directories to try under a user-given root, in order."""
    root = os.path.expanduser(os.fspath(root))
    return [os.path.join(root, subdir), root]


def _paths_in(directory: str) -> dict[str, str]:
    return {part: _find(directory, name) or os.path.join(directory, name)
            for part, name in _FILES.items()}


def _how_to_provide(key: str) -> str:
    info = _DATASETS[key]
    loader = "load_mnist" if key == "mnist" else "load_fashion_mnist"
    return (
        f"To provide the files, put the four official files (gzip'd or not) in a directory DIR "
        f"(or in DIR/{info['subdir']}/) and either call graphc.data.{loader}(path=DIR) "
        f"or set the environment variable GRAPHC_DATA=DIR. "
        f"graphc.data.load_default() loads the MNIST 10k test set shipped with graphc "
        f"and needs no files."
    )


def _locate(key: str, path: str | os.PathLike[str] | None) -> tuple[dict[str, str], bool]:
    """Find (or download) a dataset's four files.

    Returns:
        ``(paths, from_cache)``: part name -> file path, and whether they are in the
        cache (and so were downloaded by graphc).
    """
    info = _DATASETS[key]
    files = ", ".join(_FILES.values())

    if path is not None:
        if os.path.isfile(os.path.expanduser(os.fspath(path))):
            raise DatasetNotFoundError(
                f"{info['title']}: path={os.fspath(path)!r} is a file; give the directory "
                f"holding the four files ({files}). " + _how_to_provide(key)
            )
        tried = _candidates(path, info["subdir"])
        for directory in tried:
            if _has_files(directory):
                return _paths_in(directory), False
        raise DatasetNotFoundError(
            f"{info['title']} files ({files}) not found in "
            + " nor ".join(tried)
            + ". "
            + _how_to_provide(key)
        )

    looked: list[str] = []
    env = os.environ.get("GRAPHC_DATA")
    if env:
        for directory in _candidates(env, info["subdir"]):
            if _has_files(directory):
                return _paths_in(directory), False
            missing = "" if os.path.isdir(directory) else ", no such directory"
            looked.append(f"{directory} (from GRAPHC_DATA{missing})")
    else:
        looked.append("$GRAPHC_DATA (not set)")

    for root in default_data_dirs():
        for directory in _candidates(root, info["subdir"]):
            if _has_files(directory):
                return _paths_in(directory), False
        looked.append(f"{root} (data directory)")

    cache = os.path.join(cache_dir(), info["subdir"])
    if _has_files(cache):
        return _paths_in(cache), True
    looked.append(f"{cache} (cache)")

    errors = _download_missing(key, cache)
    if not errors:
        return _paths_in(cache), True
    raise DatasetNotFoundError(
        f"{info['title']} files ({files}) are not available locally and could not "
        f"be downloaded.\nLooked in:\n"
        + "".join(f"  - {place}\n" for place in looked)
        + "Download failed:\n"
        + "".join(f"  - {err}\n" for err in errors)
        + _how_to_provide(key)
    )


# --------------------------------------------------------------------- download


def _download(url: str, dest: str, md5: str, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Download ``url`` to ``dest`` atomically, checking its MD5.

    The data goes to a temporary file in ``dest``'s directory, which replaces
    ``dest`` only once complete and verified.

    Raises:
        OSError: on network failure (``urllib.error.URLError`` is one) or a write
            error.
        ValueError: if the downloaded data does not match ``md5``.
    """
    directory = os.path.dirname(dest) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(dest) + ".",
                               suffix=".part")
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                bar = _progress_bar(response, os.path.basename(dest))
                try:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        digest.update(chunk)
                        out.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
        if digest.hexdigest() != md5:
            raise ValueError(
                f"checksum mismatch for {url}: MD5 {digest.hexdigest()}, expected {md5}"
            )
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _progress_bar(response: Any, name: str) -> Any:
    """A tqdm progress bar for a download if tqdm is installed, else ``None``."""
    headers = getattr(response, "headers", None)
    length = headers.get("Content-Length") if headers is not None else None
    total = int(length) if length and str(length).isdigit() else None
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"graphc: downloading {name} ...", file=sys.stderr)
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=f"graphc: {name}", leave=False)


def _download_missing(key: str, directory: str) -> list[str]:
    """Download the dataset files missing from ``directory``.

    Each file is tried on every mirror in turn. Stops at the first file that no
    mirror can supply.

    Returns:
        The error messages, empty on success.
    """
    info = _DATASETS[key]
    for name in _FILES.values():
        dest = os.path.join(directory, name)
        if os.path.isfile(dest):
            continue
        errors = []
        for mirror in info["mirrors"]:
            url = mirror + name
            try:
                _download(url, dest, info["md5"][name])
                break
            except (OSError, ValueError) as exc:
                # URLError, socket timeouts and HTTP errors are OSErrors.
                errors.append(f"{url}: {exc}")
        else:
            return errors
    return []


# ---------------------------------------------------------------------- loaders


def _load_dataset(key: str, path: str | os.PathLike[str] | None) -> tuple[Split, Split]:
    paths, from_cache = _locate(key, path)
    try:
        train = _load_split(paths["train_images"], paths["train_labels"], key, "train")
        test = _load_split(paths["test_images"], paths["test_labels"], key, "test")
    except ValueError as exc:
        if from_cache:
            raise ValueError(f"{exc} (delete the file to download it again)") from exc
        raise
    return train, test


def load_mnist(path: str | os.PathLike[str] | None = None) -> tuple[Split, Split]:
    """Load MNIST (60,000 training and 10,000 test handwritten digits).

    Args:
        path: a directory holding the four official gzip'd IDX files, or a parent
            directory with a ``mnist/`` subdirectory holding them. If ``None``, look
            in ``$GRAPHC_DATA``, then ``data/`` and ``../shared/data``, then the cache,
            then download (see the module doc).

    Returns:
        ``(X_train, y_train), (X_test, y_test)``: images as float32 in ``[0, 1]``
        with shape ``(n, 784)``, labels as int64 in ``0..9``.

    Raises:
        DatasetNotFoundError: if the files are not found and cannot be downloaded.
        ValueError: if a file is corrupted or inconsistent (the message names it).
    """
    return _load_dataset("mnist", path)


def load_fashion_mnist(path: str | os.PathLike[str] | None = None) -> tuple[Split, Split]:
    """Load Fashion-MNIST (60,000 training and 10,000 test images of clothing).

    Same conventions as :func:`load_mnist`; the subdirectory name is
    ``fashion-mnist/``.
    """
    return _load_dataset("fashion-mnist", path)


def _embedded_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "datasets", "mnist")


def load_embedded_mnist_test() -> Split:
    """Load the MNIST 10k test set shipped inside graphc (works offline).

    Returns:
        ``(X, y)``: float32 images in ``[0, 1]`` of shape ``(10000, 784)`` and int64
        labels of shape ``(10000,)``.
    """
    directory = _embedded_dir()
    return _load_split(
        os.path.join(directory, _FILES["test_images"]),
        os.path.join(directory, _FILES["test_labels"]),
    )


def load_default() -> Split:
    """The default dataset: the shipped MNIST 10k test set, as ``(X, y)``.

    See :func:`load_embedded_mnist_test`.
    """
    return load_embedded_mnist_test()


def load(name: str, path: str | os.PathLike[str] | None = None) -> Any:
    """Load a dataset by name.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"`` (also ``"fashion_mnist"``,
            ``"fashion"``), ``"default"`` or ``"xor"``; case-insensitive.
        path: passed to the MNIST / Fashion-MNIST loaders; ignored by ``"default"``
            and ``"xor"``, which need no files.

    Returns:
        For ``"mnist"`` and ``"fashion-mnist"``: ``(X_train, y_train), (X_test, y_test)``.
        For ``"default"`` and ``"xor"``: ``(X, y)``.

    Raises:
        ValueError: for an unknown name.
    """
    key = name.strip().lower().replace("_", "-")
    if key == "mnist":
        return load_mnist(path)
    if key in ("fashion-mnist", "fashion", "fashionmnist"):
        return load_fashion_mnist(path)
    if key == "default":
        return load_default()
    if key == "xor":
        return xor()
    raise ValueError(
        f"unknown dataset {name!r}; expected 'mnist', 'fashion-mnist', 'default' or 'xor'"
    )


def xor() -> Split:
    """The XOR truth table.

    Returns:
        ``(X, y)``: ``X`` float32 of shape ``(4, 2)`` with rows ``[0, 0], [0, 1],
        [1, 0], [1, 1]``; ``y`` float32 ``[0, 1, 1, 0]`` of shape ``(4,)``.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0], dtype=np.float32)
    return X, y


# --------------------------------------------------------------------- batching


def _check_pair(X: Any, y: Any) -> None:
    if len(X) != len(y):
        raise ValueError(f"X and y have different lengths: {len(X)} != {len(y)}")


def batches(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: int | None = 0,
) -> Iterator[Split]:
    """Iterate over ``(Xb, yb)`` mini-batches covering every sample exactly once.

    The arguments are checked when ``batches`` is called, not at the first batch.

    Args:
        X: samples, indexed along the first axis.
        y: targets, same length as ``X``.
        batch_size: samples per batch (>= 1); the last batch may be smaller.
        shuffle: visit the samples in a random order.
        seed: seed of the shuffle (the same seed gives the same order); ``None``
            for a fresh random order.

    Raises:
        ValueError: if ``batch_size < 1`` or ``len(X) != len(y)``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_pair(X, y)
    X = np.asarray(X)
    y = np.asarray(y)
    n = len(X)
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    return _iterate(X, y, int(batch_size), order)


def _iterate(
    X: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray | None
) -> Iterator[Split]:
    for start in range(0, len(X), batch_size):
        if order is None:
            yield X[start:start + batch_size], y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            yield X[idx], y[idx]



# -- fit's mini-batches: gathered a chunk at a time into reused buffers ------------------------

#: Bytes of samples gathered per chunk by ``_reused_batches`` (rounded down to whole batches,
#: at least one, at most ``_CHUNK_MAX_BATCHES``).  One call per chunk rather than per batch
#: saves the per-call overhead (cffi, waking the OpenMP team): measured in fit's loop on the
#: MNIST-size epoch, 32 batches of 128 gather in ~0.020 s per epoch against ~0.030 s batch by
#: batch and ~0.045 s for numpy's fancy indexing.
_CHUNK_BYTES = 16 << 20
_CHUNK_MAX_BATCHES = 32

# Rows ``src[idx[i]]`` copied to ``dst[i]``; the OpenMP threads take contiguous ranges of the
# destination (one thread below 256 KiB).  Random rows of a large array miss the caches and
# the TLB, so two threads keep twice the misses in flight.  (Software prefetching of the next
# rows was measured and did not help.)
_GATHER_C = r"""
#include "gc_runtime.h" /* gc_set_threads / gc_get_threads / gc_threads, as in every module */
void gc_gather_rows(const char *src, const int64_t *idx, int64_t n, int64_t row_bytes,
                    char *dst) {
    int parallel = n > 1 && n * row_bytes >= (1 << 18);
    #pragma omp parallel if(parallel) num_threads(gc_threads())
    {
        int64_t t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        for (int64_t i = n * t / T; i < n * (t + 1) / T; i++)
            memcpy(dst + i * row_bytes, src + idx[i] * row_bytes, (size_t)row_bytes);
    }
}
"""

_gather_lib: Any = None  # False: unavailable (no compiler, no cffi, build failed)


def _gather_rows_fn() -> Any:
    """``gc_gather_rows`` compiled with the C backend's compiler and flags, through its disk
    cache; None where it cannot be built (the caller gathers with numpy)."""
    global _gather_lib
    if _gather_lib is None:
        try:
            _gather_lib = _build_gather()
        except Exception:  # no compiler, no cffi, a failed build: numpy does the gather
            _gather_lib = False
    return _gather_lib or None


def _build_gather() -> Any:
    import cffi

    from .runtime import cpu

    ffi = cffi.FFI()
    ffi.cdef("void gc_gather_rows(const char *src, const int64_t *idx, int64_t n, "
             "int64_t row_bytes, char *dst); void gc_set_threads(int n);"
             "int gc_get_threads(void);")
    lib, _ = cpu.build_module(_GATHER_C, ffi)
    return ffi, lib


class _Gatherer:
    """``take(idx, out)``: ``out[:len(idx)] = a[idx]`` for one array, compiled where possible."""

    def __init__(self, a: np.ndarray, use_c: bool):
        self.a = a
        self.fn = None
        if use_c and a.ndim >= 1 and a.flags.c_contiguous and a.dtype != object and a.size:
            self.fn = _gather_rows_fn()
        if self.fn is not None:
            ffi, lib = self.fn
            self.row_bytes = a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64))
            self.src = ffi.cast("char *", ffi.from_buffer(a))
            self._keep = a

    def take(self, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        m = len(idx)
        if self.fn is None:  # mode="clip": no buffered copy of out (the indices are valid)
            return np.take(self.a, idx, axis=0, out=out[:m], mode="clip")
        ffi, lib = self.fn
        lib.gc_gather_rows(self.src, ffi.cast("int64_t *", ffi.from_buffer(idx)), m,
                           self.row_bytes, ffi.cast("char *", ffi.from_buffer(out)))
        return out[:m]


def _reused_batches(
    X: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True,
    seed: int | None = 0, chunk_batches: int | None = None, use_c: bool = True,
) -> Iterator[Split]:
    """The mini-batches of ``batches(X, y, batch_size, shuffle, seed)`` (the same samples in
    the same order), for ``fit``'s loop.  Shuffled batches are gathered ``chunk_batches`` at a
    time (default: about ``_CHUNK_BYTES`` of samples) into two buffers allocated once, by a
    small compiled OpenMP row gather when ``use_c`` and gcc allow, else ``np.take``.

    The yielded arrays are views of those buffers, overwritten by a later chunk: they are only
    valid until the next iteration.  Never hand them to user code; ``batches`` is the public,
    copying iterator.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    n = len(X)
    batch_size = int(batch_size)
    if not shuffle or n == 0:  # unshuffled batches are views of X already: nothing to gather
        yield from _iterate(X, y, batch_size, None)
        return
    # exactly the order batches() draws
    order = np.random.default_rng(seed).permutation(n).astype(np.int64, copy=False)
    if chunk_batches is None:
        row_bytes = max(X[:1].nbytes + y[:1].nbytes, 1)
        chunk_batches = _CHUNK_BYTES // (batch_size * row_bytes)
        chunk_batches = min(max(chunk_batches, 1), _CHUNK_MAX_BATCHES)
    chunk = min(max(int(chunk_batches), 1) * batch_size, n)
    gx, gy = _Gatherer(X, use_c), _Gatherer(y, use_c)
    bx = np.empty((chunk,) + X.shape[1:], X.dtype)
    by = np.empty((chunk,) + y.shape[1:], y.dtype)
    for c in range(0, n, chunk):
        idx = order[c:c + chunk]
        xc, yc = gx.take(idx, bx), gy.take(idx, by)
        for s in range(0, len(idx), batch_size):
            yield xc[s:s + batch_size], yc[s:s + batch_size]


def train_val_split(
    X: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int | None = 0
) -> tuple[Split, Split]:
    """Split a data set into shuffled training and validation parts.

    Args:
        X: samples, indexed along the first axis.
        y: targets, same length as ``X``.
        val_fraction: fraction of the samples for validation, in ``[0, 1)``; the
            count is rounded to the nearest integer.
        seed: seed of the shuffle (the same seed gives the same split).

    Returns:
        ``(X_tr, y_tr), (X_val, y_val)``.

    Raises:
        ValueError: for mismatched lengths, a fraction outside ``[0, 1)``, or a
            split that would leave no training sample.
    """
    _check_pair(X, y)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    X = np.asarray(X)
    y = np.asarray(y)
    n = len(X)
    n_val = int(round(n * float(val_fraction)))
    if n - n_val < 1:
        raise ValueError(
            f"val_fraction={val_fraction} leaves no training sample out of {n}"
        )
    order = np.random.default_rng(seed).permutation(n)
    val, tr = order[:n_val], order[n_val:]
    return (X[tr], y[tr]), (X[val], y[val])
