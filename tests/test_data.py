"""Tests for graphc.data: IDX loaders, lookup order, downloads, batching."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import graphc.data as data

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EMBEDDED = ROOT / "graphc" / "datasets" / "mnist"

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

needs_shared_mnist = pytest.mark.skipif(
    not (SHARED / "mnist" / TRAIN_IMAGES).is_file(), reason=f"no MNIST files in {SHARED}"
)
needs_shared_fashion = pytest.mark.skipif(
    not (SHARED / "fashion-mnist" / TRAIN_IMAGES).is_file(),
    reason=f"no Fashion-MNIST files in {SHARED}",
)


# ------------------------------------------------------------------- helpers


def _offline_urlopen(url, *args, **kwargs):
    raise urllib.error.URLError(f"network disabled in tests ({url})")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No GRAPHC_DATA, a private cache directory and no network, unless a test says so."""
    monkeypatch.delenv("GRAPHC_DATA", raising=False)
    monkeypatch.setattr(data, "default_data_dirs", lambda: [])  # not the checkout's shared data
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", _offline_urlopen)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Raw IDX bytes for a uint8 array (magic 0x08 << 8 | ndim unless given)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + array.tobytes()


def write_gz(path: Path, raw: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw))
    return path


def synthetic_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


SYN_TRAIN = synthetic_split(7, seed=1)
SYN_TEST = synthetic_split(3, seed=2)


def synthetic_files(directory: Path, marker: int = 0) -> dict[str, bytes]:
    """Write four small valid dataset files into ``directory``; return their gz bytes.

    ``marker`` is stored in the first training label, to tell directories apart.
    """
    train_labels = SYN_TRAIN[1].copy()
    train_labels[0] = marker
    raws = {
        TRAIN_IMAGES: idx_bytes(SYN_TRAIN[0]),
        TRAIN_LABELS: idx_bytes(train_labels),
        TEST_IMAGES: idx_bytes(SYN_TEST[0]),
        TEST_LABELS: idx_bytes(SYN_TEST[1]),
    }
    return {name: write_gz(directory / name, raw).read_bytes() for name, raw in raws.items()}


def marker_of(result) -> int:
    (_, y_train), _ = result
    return int(y_train[0])


def check_arrays(X, y, n):
    assert X.shape == (n, 784) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert y.min() >= 0 and y.max() <= 9


# ------------------------------------------------------------------- xor


def test_xor_exact_values():
    X, y = data.xor()
    assert X.dtype == np.float32 and X.shape == (4, 2)
    assert y.dtype == np.float32 and y.shape == (4,)
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1, 0])
    X[0, 0] = 5  # a fresh copy each call
    assert data.xor()[0][0, 0] == 0
    np.testing.assert_array_equal(data.load("xor")[1], y)


# ------------------------------------------------------------------- embedded default


def test_embedded_files_are_official():
    md5 = {name: hashlib.md5((EMBEDDED / name).read_bytes()).hexdigest()
           for name in (TEST_IMAGES, TEST_LABELS)}
    assert md5 == {TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
                   TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c"}


def test_embedded_default_loads():
    X, y = data.load_embedded_mnist_test()
    check_arrays(X, y, 10000)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    np.testing.assert_array_equal(np.bincount(y, minlength=10),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    X2, y2 = data.load_default()
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    X3, y3 = data.load("default", path="/ignored")
    np.testing.assert_array_equal(y3, y)


# ------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """The real MNIST, loaded once through GRAPHC_DATA."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_DATA", str(SHARED))
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(urllib.request, "urlopen", _offline_urlopen)
        return data.load_mnist()


@needs_shared_mnist
def test_load_mnist_via_graphc_data(mnist):
    (X_train, y_train), (X_test, y_test) = mnist
    check_arrays(X_train, y_train, 60000)
    check_arrays(X_test, y_test, 10000)
    np.testing.assert_array_equal(y_train[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842,
                                             5421, 5918, 6265, 5851, 5949]
    # The test split is the one shipped with graphc.
    X_emb, y_emb = data.load_default()
    np.testing.assert_array_equal(X_test, X_emb)
    np.testing.assert_array_equal(y_test, y_emb)


@needs_shared_mnist
def test_load_mnist_real_pixels_are_scaled_bytes(mnist):
    (X_train, _), _ = mnist
    with gzip.open(SHARED / "mnist" / TRAIN_IMAGES) as f:
        raw = f.read(16 + 784)
    first = np.frombuffer(raw, np.uint8, offset=16)
    np.testing.assert_array_equal(X_train[0], first.astype(np.float32) / 255)


@needs_shared_fashion
def test_load_fashion_mnist_via_graphc_data(monkeypatch):
    monkeypatch.setenv("GRAPHC_DATA", str(SHARED))
    (X_train, y_train), (X_test, y_test) = data.load("fashion-mnist")
    check_arrays(X_train, y_train, 60000)
    check_arrays(X_test, y_test, 10000)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    np.testing.assert_array_equal(y_train[:5], [9, 0, 0, 3, 0])


# ------------------------------------------------------------------- lookup order


def test_path_argument_direct_and_parent(tmp_path):
    synthetic_files(tmp_path / "flat", marker=1)
    synthetic_files(tmp_path / "tree" / "mnist", marker=2)
    synthetic_files(tmp_path / "tree" / "fashion-mnist", marker=3)
    (X_train, y_train), (X_test, y_test) = data.load_mnist(tmp_path / "flat")
    check_arrays(X_train, y_train, 7)
    check_arrays(X_test, y_test, 3)
    np.testing.assert_array_equal(X_train, SYN_TRAIN[0].reshape(7, 784) / np.float32(255))
    np.testing.assert_array_equal(y_test, SYN_TEST[1])
    assert marker_of(data.load_mnist(str(tmp_path / "flat"))) == 1
    assert marker_of(data.load_mnist(tmp_path / "tree")) == 2
    assert marker_of(data.load_fashion_mnist(tmp_path / "tree")) == 3
    assert marker_of(data.load("Fashion_MNIST", path=tmp_path / "tree")) == 3
    assert marker_of(data.load("mnist", path=tmp_path / "tree")) == 2


def test_path_argument_without_files_raises(tmp_path):
    synthetic_files(tmp_path / "cache" / "data" / "mnist")  # never used: path is strict
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_mnist(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and TRAIN_IMAGES in message
    assert "GRAPHC_DATA" in message
    assert isinstance(info.value, OSError)


def test_graphc_data_direct_and_subdir(tmp_path, monkeypatch):
    synthetic_files(tmp_path / "flat", marker=4)
    synthetic_files(tmp_path / "tree" / "fashion-mnist", marker=5)
    monkeypatch.setenv("GRAPHC_DATA", str(tmp_path / "flat"))
    assert marker_of(data.load_mnist()) == 4
    monkeypatch.setenv("GRAPHC_DATA", str(tmp_path / "tree"))
    assert marker_of(data.load_fashion_mnist()) == 5


def test_lookup_priority(tmp_path, monkeypatch):
    synthetic_files(tmp_path / "cache" / "data" / "mnist", marker=6)
    assert marker_of(data.load_mnist()) == 6  # cache
    synthetic_files(tmp_path / "env" / "mnist", marker=7)
    monkeypatch.setenv("GRAPHC_DATA", str(tmp_path / "env"))
    assert marker_of(data.load_mnist()) == 7  # GRAPHC_DATA before the cache
    synthetic_files(tmp_path / "arg", marker=8)
    assert marker_of(data.load_mnist(tmp_path / "arg")) == 8  # path before GRAPHC_DATA
    # GRAPHC_DATA without this dataset falls through to the cache.
    monkeypatch.setenv("GRAPHC_DATA", str(tmp_path / "arg" / "nothing-here"))
    assert marker_of(data.load_mnist()) == 6


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "g"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert data.cache_dir() == str(tmp_path / "g" / "data")
    monkeypatch.delenv("GRAPHC_CACHE_DIR")
    assert data.cache_dir() == str(tmp_path / "x" / "graphc" / "data")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == str(tmp_path / "home" / ".cache" / "graphc" / "data")


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("cifar10")


# ------------------------------------------------------------------- corrupted files


def _expect_bad(path: Path, directory: Path, match: str = ""):
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        data.load_mnist(directory)
    assert match in str(info.value)


def test_truncated_gzip_raises(tmp_path):
    directory = tmp_path / "d"
    synthetic_files(directory)
    target = directory / TEST_LABELS
    shutil.copyfile(EMBEDDED / TEST_LABELS, target)  # a real file, then cut it short
    target.write_bytes(target.read_bytes()[:2000])
    _expect_bad(target, directory, "gzip")


def test_not_gzip_raises(tmp_path):
    directory = tmp_path / "d"
    synthetic_files(directory)
    target = directory / TRAIN_IMAGES
    target.write_bytes(idx_bytes(SYN_TRAIN[0]))  # uncompressed
    _expect_bad(target, directory, "gzip")


def test_corrupted_gzip_crc_raises(tmp_path):
    directory = tmp_path / "d"
    synthetic_files(directory)
    target = directory / TRAIN_LABELS
    blob = bytearray(target.read_bytes())
    blob[-6] ^= 0xFF  # damage the CRC32 trailer
    target.write_bytes(bytes(blob))
    _expect_bad(target, directory)


@pytest.mark.parametrize("name, magic", [(TRAIN_IMAGES, 2049), (TEST_LABELS, 2051),
                                         (TEST_LABELS, 0x12345678)])
def test_wrong_magic_raises(tmp_path, name, magic):
    directory = tmp_path / "d"
    synthetic_files(directory)
    arrays = {TRAIN_IMAGES: SYN_TRAIN[0], TEST_LABELS: SYN_TEST[1]}
    raw = bytearray(idx_bytes(arrays[name]))
    raw[:4] = struct.pack(">I", magic)
    target = write_gz(directory / name, bytes(raw))
    _expect_bad(target, directory, "magic")


def test_short_data_raises(tmp_path):
    directory = tmp_path / "d"
    synthetic_files(directory)
    target = write_gz(directory / TRAIN_IMAGES, idx_bytes(SYN_TRAIN[0])[:-100])
    _expect_bad(target, directory, "bytes")


def test_truncated_header_raises(tmp_path):
    directory = tmp_path / "d"
    synthetic_files(directory)
    target = write_gz(directory / TEST_IMAGES, idx_bytes(SYN_TEST[0])[:10])
    _expect_bad(target, directory, "header")


def test_wrong_image_size_raises(tmp_path):
    directory = tmp_path / "d"
    synthetic_files(directory)
    target = write_gz(directory / TEST_IMAGES, idx_bytes(np.zeros((3, 28, 27), np.uint8)))
    _expect_bad(target, directory, "28x28")


def test_count_mismatch_raises(tmp_path):
    directory = tmp_path / "d"
    synthetic_files(directory)
    target = write_gz(directory / TEST_LABELS, idx_bytes(SYN_TEST[1][:2]))
    _expect_bad(target, directory, "3 images")


def test_label_out_of_range_raises(tmp_path):
    directory = tmp_path / "d"
    synthetic_files(directory)
    labels = SYN_TRAIN[1].copy()
    labels[4] = 10
    target = write_gz(directory / TRAIN_LABELS, idx_bytes(labels))
    _expect_bad(target, directory, "index 4")


def test_files_from_graphc_data_are_not_checksummed(tmp_path, monkeypatch):
    synthetic_files(tmp_path / "mnist")  # valid structure, not the official MD5s
    monkeypatch.setenv("GRAPHC_DATA", str(tmp_path))
    (X_train, _), _ = data.load_mnist()
    assert X_train.shape == (7, 784)


# ------------------------------------------------------------------- downloads


def test_offline_gives_clear_error(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_mnist()
    message = str(info.value)
    for expected in (TRAIN_IMAGES, TEST_LABELS, "GRAPHC_DATA", "path=",
                     str(tmp_path / "cache" / "data" / "mnist"),
                     "https://ossci-datasets.s3.amazonaws.com/mnist/" + TRAIN_IMAGES,
                     "https://storage.googleapis.com/cvdf-datasets/mnist/" + TRAIN_IMAGES,
                     "network disabled"):
        assert expected in message
    assert isinstance(info.value, OSError)
    cache = tmp_path / "cache" / "data" / "mnist"
    assert not cache.exists() or list(cache.iterdir()) == []  # no temp files left


def test_offline_fashion_mentions_its_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_DATA", str(tmp_path / "empty"))
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_fashion_mnist()
    message = str(info.value)
    assert "fashion-mnist.s3-website.eu-central-1.amazonaws.com" in message
    assert str(tmp_path / "empty") in message
    assert "fashion-mnist" in message


class FakeServer:
    """Stands in for ``urllib.request.urlopen``: serves bytes by URL, logs requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, float | None]] = []

    def __call__(self, url, data=None, timeout=None, **kwargs):
        self.requests.append((url, timeout))
        if url not in self.files:
            raise urllib.error.URLError(f"404 for {url}")
        return io.BytesIO(self.files[url])


def _serve(tmp_path, monkeypatch, mirror_of) -> tuple[FakeServer, dict[str, bytes]]:
    """Synthetic MNIST files, declared official, served from ``mirror_of(name)``."""
    blobs = synthetic_files(tmp_path / "origin", marker=9)
    md5 = {name: hashlib.md5(blob).hexdigest() for name, blob in blobs.items()}
    monkeypatch.setitem(data._DATASETS["mnist"], "md5", md5)
    server = FakeServer({mirror_of(name) + name: blob for name, blob in blobs.items()})
    monkeypatch.setattr(urllib.request, "urlopen", server)
    return server, blobs


MIRROR_1 = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MIRROR_2 = "https://storage.googleapis.com/cvdf-datasets/mnist/"


def test_download_into_cache(tmp_path, monkeypatch):
    server, blobs = _serve(tmp_path, monkeypatch, lambda name: MIRROR_1)
    assert marker_of(data.load_mnist()) == 9
    cache = tmp_path / "cache" / "data" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(NAMES)
    for name in NAMES:
        assert (cache / name).read_bytes() == blobs[name]
    assert [url for url, _ in server.requests] == [MIRROR_1 + name for name in NAMES]
    assert all(timeout is not None and timeout <= 60 for _, timeout in server.requests)
    # Now cached: no more requests.
    assert marker_of(data.load_mnist()) == 9
    assert len(server.requests) == 4


def test_download_falls_back_to_second_mirror(tmp_path, monkeypatch):
    server, _ = _serve(tmp_path, monkeypatch,
                       lambda name: MIRROR_2 if name == TRAIN_IMAGES else MIRROR_1)
    server.files[MIRROR_1 + TRAIN_IMAGES] = b"corrupted download"  # bad MD5
    assert marker_of(data.load_mnist()) == 9
    urls = [url for url, _ in server.requests]
    assert urls[:2] == [MIRROR_1 + TRAIN_IMAGES, MIRROR_2 + TRAIN_IMAGES]
    assert sorted(os.listdir(tmp_path / "cache" / "data" / "mnist")) == sorted(NAMES)


def test_download_checksum_mismatch_is_rejected(tmp_path, monkeypatch):
    server, _ = _serve(tmp_path, monkeypatch, lambda name: MIRROR_1)
    server.files[MIRROR_1 + TEST_LABELS] = b"not the real file"
    with pytest.raises(data.DatasetNotFoundError, match="checksum mismatch"):
        data.load_mnist()
    cache = tmp_path / "cache" / "data" / "mnist"
    # The good files were kept, the bad one never reached its final name, no temp files.
    assert sorted(os.listdir(cache)) == sorted([TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES])


def test_download_only_missing_files(tmp_path, monkeypatch):
    server, blobs = _serve(tmp_path, monkeypatch, lambda name: MIRROR_1)
    cache = tmp_path / "cache" / "data" / "mnist"
    cache.mkdir(parents=True)
    for name in (TRAIN_IMAGES, TRAIN_LABELS):
        (cache / name).write_bytes(blobs[name])
    data.load_mnist()
    assert [url for url, _ in server.requests] == [MIRROR_1 + TEST_IMAGES,
                                                   MIRROR_1 + TEST_LABELS]


def test_corrupted_cache_file_names_it(tmp_path):
    cache = tmp_path / "cache" / "data" / "mnist"
    synthetic_files(cache)
    target = write_gz(cache / TEST_LABELS, idx_bytes(np.full(3, 11, np.uint8)))
    with pytest.raises(ValueError, match=re.escape(str(target))) as info:
        data.load_mnist()
    assert "delete the file" in str(info.value)


# ------------------------------------------------------------------- batches


def _indexed(n: int):
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n)
    return X, y


def test_batches_cover_every_sample_once_shuffled():
    X, y = _indexed(23)
    got = list(data.batches(X, y, 5, shuffle=True, seed=3))
    assert [len(yb) for _, yb in got] == [5, 5, 5, 5, 3]
    seen = np.concatenate([yb for _, yb in got])
    assert sorted(seen.tolist()) == list(range(23))
    assert seen.tolist() != list(range(23))  # actually shuffled
    for Xb, yb in got:  # rows stay paired with their targets
        np.testing.assert_array_equal(Xb, X[yb])


def test_batches_without_shuffle_keep_order():
    X, y = _indexed(10)
    got = list(data.batches(X, y, 4, shuffle=False))
    assert [yb.tolist() for _, yb in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    np.testing.assert_array_equal(got[2][0], X[8:])


def test_batches_deterministic_by_seed():
    X, y = _indexed(50)

    def order(seed):
        return np.concatenate([yb for _, yb in data.batches(X, y, 7, seed=seed)]).tolist()

    assert order(0) == order(0)
    assert order(1) == order(1)
    assert order(0) != order(1)


def test_batches_edge_sizes():
    X, y = _indexed(6)
    assert [len(yb) for _, yb in data.batches(X, y, 100)] == [6]
    assert [len(yb) for _, yb in data.batches(X, y, 1)] == [1] * 6
    assert [len(yb) for _, yb in data.batches(X, y, np.int64(3))] == [3, 3]
    assert list(data.batches(X[:0], y[:0], 4)) == []


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, None, True])
def test_batches_rejects_bad_batch_size(batch_size):
    X, y = _indexed(4)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(X, y, batch_size)  # raised at call time, before iterating


def test_batches_rejects_length_mismatch():
    X, y = _indexed(4)
    with pytest.raises(ValueError, match="4 != 3"):
        data.batches(X, y[:3], 2)


# ------------------------------------------------------------------- train_val_split


def test_train_val_split():
    X, y = _indexed(50)
    (X_tr, y_tr), (X_val, y_val) = data.train_val_split(X, y, val_fraction=0.2, seed=5)
    assert len(y_tr) == 40 and len(y_val) == 10
    assert sorted(np.concatenate([y_tr, y_val]).tolist()) == list(range(50))
    np.testing.assert_array_equal(X_tr, X[y_tr])
    np.testing.assert_array_equal(X_val, X[y_val])
    (_, y_tr2), (_, y_val2) = data.train_val_split(X, y, val_fraction=0.2, seed=5)
    np.testing.assert_array_equal(y_val, y_val2)
    np.testing.assert_array_equal(y_tr, y_tr2)
    (_, _), (_, y_val3) = data.train_val_split(X, y, val_fraction=0.2, seed=6)
    assert y_val3.tolist() != y_val.tolist()
    (_, y_default), (_, y_val_default) = data.train_val_split(X, y)
    assert len(y_default) == 45 and len(y_val_default) == 5


def test_train_val_split_validation():
    X, y = _indexed(10)
    with pytest.raises(ValueError):
        data.train_val_split(X, y[:9])
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            data.train_val_split(X, y, val_fraction=bad)
    (_, y_tr), (_, y_val) = data.train_val_split(X, y, val_fraction=0.0)
    assert len(y_tr) == 10 and len(y_val) == 0


def test_the_checkouts_shared_data_directory_is_searched(monkeypatch, tmp_path):
    # after $GRAPHC_DATA and before the cache: a directory holding the files, or their subdir
    root = tmp_path / "shared_data"
    (root / "mnist").mkdir(parents=True)
    for name in data._FILES.values():
        (root / "mnist" / name).write_bytes(b"")
    monkeypatch.setattr(data, "default_data_dirs", lambda: [str(root)])
    paths, from_cache = data._locate("mnist", None)
    assert not from_cache
    assert paths["train_images"].startswith(str(root / "mnist"))
