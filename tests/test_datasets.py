"""fastconv.datasets: IDX files (raw and gzipped), damaged files, the dataset
lookup (Debian's folder, a given root) and mini-batching."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fastconv import datasets
from fastconv.datasets import (
    IDX_FILES,
    batches,
    fashion_mnist,
    find_idx_files,
    load_images,
    load_labels,
    load_split,
    mnist,
    read_idx,
    write_idx,
)


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file built by hand (independent of write_idx): magic, BE dims, data."""
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_dataset(folder: Path, n_train: int, n_test: int, gz: bool, seed: int = 0) -> Path:
    """The four standard files of a small random MNIST-like dataset in folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, arr in arrays.items():
        write_idx(folder / (IDX_FILES[key] + suffix), arr)
    return folder


# ---------------------------------------------------------------------------
# read_idx / write_idx
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_hand_built_idx(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(arr)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 7  # writeable, not a view of a bytes object


@pytest.mark.parametrize(
    "dtype, code",
    [
        (np.uint8, 0x08),
        (np.int8, 0x09),
        (np.int16, 0x0B),
        (np.int32, 0x0C),
        (np.float32, 0x0D),
        (np.float64, 0x0E),
    ],
)
def test_read_big_endian_dtypes(tmp_path, dtype, code):
    arr = (np.arange(-6, 6).reshape(3, 4) * 3).astype(dtype)
    if dtype == np.uint8:
        arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(arr, code))
    out = read_idx(tmp_path / "a")
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
@pytest.mark.parametrize("shape", [(5,), (3, 28, 28), (2, 1, 3, 4)])
def test_write_read_roundtrip(tmp_path, name, shape):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path / name, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    np.testing.assert_array_equal(read_idx(path), arr)
    np.testing.assert_array_equal(read_idx(str(path)), arr)


def test_gzip_detected_by_content(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    path = write_idx(tmp_path / "no_suffix", arr, compress=True)
    np.testing.assert_array_equal(read_idx(path), arr)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


# ---------------------------------------------------------------------------
# Damaged files: each raises a ValueError naming the file and the problem
# ---------------------------------------------------------------------------

GOOD = idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 251)


def _corruptions():
    bad_magic = b"\x12\x34" + GOOD[2:]
    bad_code = GOOD[:2] + b"\x07" + GOOD[3:]
    zero_dims = GOOD[:3] + b"\x00"
    gz = gzip.compress(GOOD)
    flipped = bytearray(gz)
    flipped[len(flipped) // 2] ^= 0xFF
    bad_crc = bytearray(gz)
    bad_crc[-8] ^= 0xFF  # the CRC32 of the trailer
    return {
        "bad_magic": (bad_magic, "bad magic number"),
        "bad_dtype_code": (bad_code, "unknown IDX dtype code 0x07"),
        "zero_dims": (zero_dims, "0 dimensions"),
        "too_short_for_magic": (GOOD[:3], "shorter than the header"),
        "truncated_header": (GOOD[:10], "truncated IDX header"),
        "truncated_data": (GOOD[:-1], "truncated: shape \\(2, 28, 28\\)"),
        "trailing_bytes": (GOOD + b"\x00", "trailing bytes"),
        "empty": (b"", "shorter than the header"),
        "truncated_gzip": (gz[: len(gz) // 2], "truncated gzip"),
        "truncated_gzip_trailer": (gz[:-4], "truncated gzip"),
        "corrupt_gzip": (bytes(flipped), "gzip"),
        "bad_gzip_crc": (bytes(bad_crc), "corrupt gzip"),
        "gzipped_truncated_idx": (gzip.compress(GOOD[:-100]), "truncated: shape"),
    }


@pytest.mark.parametrize("case", list(_corruptions()))
def test_damaged_file_raises_value_error(tmp_path, case):
    data, message = _corruptions()[case]
    path = tmp_path / f"{case}.idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def _header(dims, code=0x08) -> bytes:
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


# (dims, data, what the message must say besides the file name): every size is
# exact (Python ints); NumPy's int64 gave -25769803773 and 0 for the first two.
HOSTILE_HEADERS = {
    "3_dims_near_2**32": (
        (2**32 - 1, 2**32 - 1, 3),
        b"",
        (
            rf"truncated: shape \(4294967295, 4294967295, 3\) of uint8 needs "
            rf"{(2**32 - 1) ** 2 * 3} data bytes, the file has 0"
        ),
    ),
    "4_dims_of_65536": (
        (65536,) * 4,
        b"",
        (
            rf"truncated: shape \(65536, 65536, 65536, 65536\) of uint8 needs {2**64} "
            "data bytes, the file has 0"
        ),
    ),
    "4_dims_of_65536_int32": (
        (65536,) * 4,
        b"\x00" * 8,
        rf"truncated: .* of int32 needs {2**66} data bytes, the file has 8",
    ),
    "255_dims_of_2": ((2,) * 255, b"", rf"255 dimensions.*{2**255} data bytes.*maximum of"),
    "255_dims_of_1": ((1,) * 255, b"\x07", r"255 dimensions.*1 data bytes.*maximum of"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", list(HOSTILE_HEADERS))
def test_hostile_header_names_file_and_exact_sizes(tmp_path, case, gz):
    dims, data, message = HOSTILE_HEADERS[case]
    code = 0x0C if case.endswith("int32") else 0x08
    raw = _header(dims, code) + data
    path = tmp_path / f"{case}.idx"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "-" not in str(info.value).replace(str(tmp_path), ""), "no negative (overflowed) size"


def test_hostile_header_allocates_nothing_absurd(tmp_path):
    """Reading is bounded by what the header says and what the file holds.

    A header claiming ~5e19 bytes must not make anything allocate them, and a
    gzipped file whose header says 10 bytes but which inflates to 32 MiB is
    refused after decompressing only what the header promised (plus a byte),
    not the whole stream.
    """
    import tracemalloc

    huge = tmp_path / "huge.idx"
    huge.write_bytes(_header((2**32 - 1, 2**32 - 1, 3)) + bytes(1000))
    bomb = tmp_path / "bomb.idx.gz"
    bomb.write_bytes(gzip.compress(_header((10,)) + bytes(32 << 20), compresslevel=1))
    for path, message in ((huge, "truncated"), (bomb, "has trailing bytes")):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=message) as info:
                read_idx(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert str(path) in str(info.value)
        assert peak < 4 << 20, f"{path.name}: peak {peak} bytes while reading"


def test_gz_name_without_gzip_content(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(GOOD)
    with pytest.raises(ValueError, match="not a gzip file"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


# ---------------------------------------------------------------------------
# Images and labels
# ---------------------------------------------------------------------------


def test_load_images_and_labels(tmp_path):
    imgs = np.array([[[0, 255], [51, 102]], [[1, 2], [3, 4]]], dtype=np.uint8)
    x = load_images(write_idx(tmp_path / "i.gz", imgs))
    assert x.shape == (2, 1, 2, 2) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x[0, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    assert 0.0 <= x.min() and x.max() <= 1.0
    y = load_labels(write_idx(tmp_path / "l", np.array([3, 9], np.uint8)))
    assert y.dtype == np.int64 and y.tolist() == [3, 9]


def test_load_checks_shapes_and_dtypes(tmp_path):
    labels = write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    images = write_idx(tmp_path / "i", np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="3 dimensions"):
        load_images(labels)
    with pytest.raises(ValueError, match="1 dimension"):
        load_labels(images)
    with pytest.raises(ValueError, match="unsigned bytes"):
        load_images(write_idx(tmp_path / "f", np.zeros((1, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="has 3 images but .* has 4 labels"):
        load_split(images, labels)
    bad = write_idx(tmp_path / "b", np.array([0, 1, 10], np.uint8))
    with pytest.raises(ValueError, match="label 10 is out of range"):
        load_split(images, bad)


# ---------------------------------------------------------------------------
# Finding the datasets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_fashion_mnist_from_root(tmp_path, gz):
    root = write_dataset(tmp_path / "fm", 20, 8, gz)
    x_train, y_train, x_test, y_test = fashion_mnist(root)
    assert x_train.shape == (20, 1, 28, 28) and x_test.shape == (8, 1, 28, 28)
    assert y_train.shape == (20,) and y_test.shape == (8,) and y_train.dtype == np.int64
    np.testing.assert_array_equal(y_train, read_idx(next(root.glob("train-labels*"))))
    x2 = mnist(str(root))[0]
    np.testing.assert_array_equal(x2, x_train)


def test_root_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    """The README's ``fashion_mnist(root="~/data/fashion-mnist")``."""
    write_dataset(tmp_path / "data" / "fm", 4, 2, gz=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fashion_mnist("~/data/fm")[0].shape == (4, 1, 28, 28)


def test_mixed_raw_and_gz_names(tmp_path):
    root = write_dataset(tmp_path, 6, 4, gz=True)
    raw = read_idx(root / "t10k-labels-idx1-ubyte.gz")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(root / "t10k-labels-idx1-ubyte", raw)
    found, missing = find_idx_files(root)
    assert not missing and found["test_labels"].name == "t10k-labels-idx1-ubyte"
    assert fashion_mnist(root)[3].tolist() == raw.tolist()


def test_debian_default_folder(tmp_path, monkeypatch):
    """Without root, fashion_mnist reads Debian's package folder (here a fake one)."""
    fake = write_dataset(tmp_path / "usr/share/datasets/fashion-mnist", 10, 5, gz=True)
    monkeypatch.delenv("FASTCONV_FASHION_MNIST", raising=False)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", fake)
    assert fashion_mnist()[0].shape == (10, 1, 28, 28)
    monkeypatch.setenv("FASTCONV_FASHION_MNIST", str(write_dataset(tmp_path / "env", 3, 2, False)))
    assert fashion_mnist()[0].shape == (3, 1, 28, 28)


def test_not_found_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTCONV_FASHION_MNIST", raising=False)
    monkeypatch.delenv("FASTCONV_MNIST", raising=False)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist()
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "absent: no such folder" in msg and "root" in msg
    # A folder with some of the files: the message lists the missing ones.
    partial = write_dataset(tmp_path / "partial", 4, 2, gz=False)
    (partial / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="missing t10k-images-idx3-ubyte"):
        fashion_mnist(partial)
    with pytest.raises(FileNotFoundError, match="MNIST not found.*--data-dir"):
        mnist()


def test_damaged_dataset_file_names_it(tmp_path):
    root = write_dataset(tmp_path, 6, 4, gz=True)
    p = root / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: truncated gzip"):
        fashion_mnist(root)


def test_real_fashion_mnist():
    """The real data, when Debian's dataset-fashion-mnist is installed."""
    _found, missing = find_idx_files(datasets.DEBIAN_FASHION_MNIST_DIR)
    if missing:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    x_train, y_train, x_test, y_test = fashion_mnist()
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 == x_train.min() and x_train.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    # Balanced: 6,000 and 1,000 images per class.
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


# ---------------------------------------------------------------------------
# Mini-batches
# ---------------------------------------------------------------------------


def _data(n=10):
    x = np.arange(n * 4, dtype=np.float64).reshape(n, 1, 2, 2)
    return x, np.arange(n, dtype=np.int64)


def test_batches_in_order():
    x, y = _data(10)
    out = list(batches(x, y, 4, shuffle=False))
    assert [len(b) for _, b in out] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b for _, b in out]), y)
    for xb, yb in out:
        assert xb.dtype == np.float32 and xb.flags.c_contiguous and yb.dtype == np.int64
        np.testing.assert_array_equal(xb, x[yb])
    assert [len(b) for _, b in batches(x, y, 4, shuffle=False, drop_last=True)] == [4, 4]
    assert [len(b) for _, b in batches(x, y, 5, drop_last=True, seed=0)] == [5, 5]
    assert [len(b) for _, b in batches(x, y, 64)] == [10]


def test_batches_shuffle_is_a_seeded_permutation():
    x, y = _data(50)
    a = list(batches(x, y, 8, seed=3))
    b = list(batches(x, y, 8, seed=3))
    c = list(batches(x, y, 8, seed=4))
    order_a = np.concatenate([yb for _, yb in a])
    assert sorted(order_a.tolist()) == list(range(50))  # every sample once
    assert order_a.tolist() != list(range(50))
    assert order_a.tolist() == np.concatenate([yb for _, yb in b]).tolist()
    assert order_a.tolist() != np.concatenate([yb for _, yb in c]).tolist()
    for xb, yb in a:  # images stay with their labels
        assert xb.flags.c_contiguous and xb.dtype == np.float32
        np.testing.assert_array_equal(xb, x[yb])


def test_batches_with_one_generator_per_run():
    """One Generator over several epochs: orders differ per epoch, runs repeat."""
    x, y = _data(20)

    def run():
        rng = np.random.default_rng(0)
        return [
            np.concatenate([yb for _, yb in batches(x, y, 6, seed=rng)]).tolist() for _ in range(3)
        ]

    first, second = run(), run()
    assert first == second
    assert first[0] != first[1] != first[2]


def test_batches_rejects_bad_arguments():
    x, y = _data(4)
    with pytest.raises(ValueError, match="x has 4 samples but y has 3"):
        next(batches(x, y[:3], 2))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            next(batches(x, y, bad))
    assert list(batches(x[:0], y[:0], 2)) == []
