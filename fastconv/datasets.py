"""Datasets: IDX files (MNIST, Fashion-MNIST) and mini-batches.

* :func:`read_idx` reads an IDX file (the format of MNIST and Fashion-MNIST),
  gzipped or not, into a NumPy array; a damaged file raises a ``ValueError``
  that names the file and what is wrong with it.
* :func:`load_images` / :func:`load_labels` turn IDX files into what the
  models take: float32 NCHW images in [0, 1] and int64 class labels.
* :func:`fashion_mnist` finds Fashion-MNIST where Debian's
  ``dataset-fashion-mnist`` package installs it (or in a folder you name);
  :func:`mnist` reads MNIST from a folder you name. Nothing is downloaded.
* :func:`batches` cuts arrays into shuffled (seeded) mini-batches; for
  training loops, :class:`fastconv.data.DataLoader` does the same with a
  background thread, per-epoch orders and augmentations.

Example
-------
>>> from fastconv import datasets
>>> x_train, y_train, x_test, y_test = datasets.fashion_mnist()   # doctest: +SKIP
>>> for xb, yb in datasets.batches(x_train, y_train, 128, seed=0):  # doctest: +SKIP
...     pass

The IDX format: a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then
``ndim`` big-endian uint32 dimensions, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np

from .data import index_batches

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "IDX_FILES",
    "batches",
    "fashion_mnist",
    "find_idx_files",
    "load_images",
    "load_labels",
    "load_split",
    "mnist",
    "read_idx",
    "write_idx",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Where Debian's (and Ubuntu's) ``dataset-fashion-mnist`` package puts the files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: The standard names of the four files (each may also end in ``.gz``).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: Fashion-MNIST's class names, by label.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# IDX dtype codes -> big-endian NumPy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------


# NumPy's limit on the number of dimensions of an array: 32 before NumPy 2, 64 since.
_MAX_NDIM = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32

# Data is read at most this many bytes at a time, so that a header claiming an
# absurd size (up to 255 dimensions of 2**32 - 1) never makes a read allocate
# more than the file really holds.
_CHUNK = 1 << 24


def _read_upto(f: BinaryIO, n: int) -> bytearray:
    """Up to ``n`` bytes of ``f`` (fewer at the end of the stream), in bounded chunks."""
    buf = bytearray()
    while len(buf) < n:
        part = f.read(min(n - len(buf), _CHUNK))
        if not part:
            break
        buf += part
    return buf


def _shape_text(shape: tuple[int, ...]) -> str:
    """``repr(shape)``, shortened to its first and last dims when it has many."""
    if len(shape) <= 8:
        return repr(shape)
    head = ", ".join(map(str, shape[:4]))
    tail = ", ".join(map(str, shape[-2:]))
    return f"({head}, ..., {tail}) [{len(shape)} dimensions]"


def _parse_idx(path: Path, f: BinaryIO, data_size: int | None) -> np.ndarray:
    """The array of an IDX stream ``f``; ``data_size`` is the stream's length if known.

    All size arithmetic is on Python ints (no overflow), and the data is read
    only once the header's size has been checked against what the file holds.
    """
    magic = _read_upto(f, 4)
    if len(magic) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(magic)} bytes, shorter than the header")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file: bad magic number 0x{bytes(magic).hex()} "
            "(expected 0x0000 then the dtype code and the number of dimensions)"
        )
    code, ndim = magic[2], magic[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header gives 0 dimensions")
    header = 4 + 4 * ndim
    dims = _read_upto(f, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"the file has {4 + len(dims)}"
        )
    shape = struct.unpack(f">{ndim}I", dims)  # Python ints
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # exact: Python ints do not overflow
    if ndim > _MAX_NDIM:
        raise ValueError(
            f"{path}: IDX header has shape {_shape_text(shape)} ({expected} data bytes of "
            f"{dtype.name}): more dimensions than NumPy's maximum of {_MAX_NDIM}"
        )
    if data_size is not None:
        got = data_size - header
        if got != expected:  # decided from the file's size, before reading any data
            what = "truncated" if got < expected else "has trailing bytes"
            raise ValueError(
                f"{path}: {what}: shape {_shape_text(shape)} of {dtype.name} needs "
                f"{expected} data bytes, the file has {got}"
            )
    data = _read_upto(f, expected + 1)  # one byte more than needed reveals trailing bytes
    if len(data) != expected:
        if len(data) < expected:
            what, got_text = "truncated", f"the file has {len(data)}"
        else:  # gzip: how much more would need decompressing it all; do not
            what, got_text = "has trailing bytes", f"the file has more than {expected}"
        raise ValueError(
            f"{path}: {what}: shape {_shape_text(shape)} of {dtype.name} needs "
            f"{expected} data bytes, {got_text}"
        )
    arr = np.frombuffer(data, dtype=dtype).reshape(shape)  # writeable: data is a bytearray
    if not dtype.isnative:
        arr = arr.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return arr


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip compression is detected from the content (a ``.gz``
        name that is not gzip is an error).

    Returns
    -------
    numpy.ndarray
        The array, with the file's shape and its dtype in native byte order
        (``uint8`` for MNIST's files).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is damaged, naming it and the problem: a truncated or corrupt
        gzip stream, a bad magic number, an unknown dtype code, a header cut
        short, more dimensions than NumPy supports, or data shorter or longer
        than the dimensions say (with the sizes, computed exactly).

    Notes
    -----
    The header is checked against the size of the file before any data is
    read, and data is read in bounded chunks, so a hostile header (say three
    dimensions of 2**32 - 1) costs no more memory than the file's real
    content. A gzipped file is decompressed only up to the size its header
    gives, plus one byte.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            return _read_idx_file(path, raw)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None


def _read_idx_file(path: Path, raw: BinaryIO) -> np.ndarray:
    """:func:`read_idx` on the opened file: gzip detected from the first bytes."""
    start = raw.peek(4)[:4]  # type: ignore[attr-defined]
    if start[:2] != _GZIP_MAGIC:
        if path.suffix == ".gz":
            raise ValueError(
                f"{path}: named .gz but is not a gzip file (starts with {bytes(start)!r})"
            )
        st = os.fstat(raw.fileno())
        size = st.st_size if stat.S_ISREG(st.st_mode) else None  # not for a pipe
        return _parse_idx(path, raw, size)
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as f:
            return _parse_idx(path, f, None)  # type: ignore[arg-type]
    except EOFError as e:
        raise ValueError(f"{path}: truncated gzip file ({e})") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path}: corrupt gzip file ({e})") from None


def write_idx(path: PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (the inverse of :func:`read_idx`).

    Parameters
    ----------
    path : str or path-like
        Where to write.
    array : numpy.ndarray
        uint8, int8, int16, int32, float32 or float64, at least 1-D.
    compress : bool, optional
        Gzip the file; default: when ``path`` ends in ``.gz``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("=").str[1:]: c for c, dt in _IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in codes:
        raise TypeError(f"write_idx: IDX has no dtype code for {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: need 1 to 255 dimensions, got {array.ndim}")
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def load_images(path: PathLike) -> np.ndarray:
    """Images from an IDX file of unsigned bytes, shape (N, H, W).

    Returns
    -------
    numpy.ndarray
        float32, C-contiguous, shape (N, 1, H, W) (NCHW; (N, 1, 28, 28) for
        MNIST), values scaled to [0, 1] (pixel / 255).
    """
    arr = read_idx(path)
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: images must be unsigned bytes (IDX code 0x08), got {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(f"{path}: images must have 3 dimensions (N, H, W), got shape {arr.shape}")
    n, h, w = arr.shape
    x = arr.reshape(n, 1, h, w).astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    return x


def load_labels(path: PathLike) -> np.ndarray:
    """Class labels from an IDX file of unsigned bytes, shape (N,); returns int64 (N,)."""
    arr = read_idx(path)
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: labels must be unsigned bytes (IDX code 0x08), got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{path}: labels must have 1 dimension (N,), got shape {arr.shape}")
    return arr.astype(np.int64)


def load_split(
    images_path: PathLike, labels_path: PathLike, num_classes: int | None = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, checked against each other.

    Raises ``ValueError`` when the counts differ or (with ``num_classes``) a
    label is outside ``[0, num_classes)``.
    """
    x = load_images(images_path)
    y = load_labels(labels_path)
    if len(x) != len(y):
        raise ValueError(f"{images_path} has {len(x)} images but {labels_path} has {len(y)} labels")
    if num_classes is not None and len(y) and int(y.max()) >= num_classes:
        raise ValueError(
            f"{labels_path}: label {int(y.max())} is out of range for {num_classes} classes"
        )
    return x, y


# --------------------------------------------------------------------------
# Named datasets
# --------------------------------------------------------------------------


def find_idx_files(folder: PathLike) -> tuple[dict[str, Path], list[str]]:
    """Look for the four standard IDX files in ``folder`` (``name`` or ``name.gz``).

    Returns ``(found, missing)``: the paths found, by key of :data:`IDX_FILES`,
    and the standard names of those not found.
    """
    folder = Path(folder)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, name in IDX_FILES.items():
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _load_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    found, _ = find_idx_files(folder)
    x_train, y_train = load_split(found["train_images"], found["train_labels"])
    x_test, y_test = load_split(found["test_images"], found["test_labels"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{folder}: train images are {x_train.shape[2:]} but test images are {x_test.shape[2:]}"
        )
    return x_train, y_train, x_test, y_test


def _names() -> str:
    return ", ".join(f"{n}(.gz)" for n in IDX_FILES.values())


def _load_named(
    dataset: str, root: PathLike | None, defaults: Sequence[Path], how_to_get: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folders = [Path(root).expanduser()] if root is not None else list(defaults)
    reports = []
    for folder in folders:
        _found, missing = find_idx_files(folder)
        if not missing:
            return _load_folder(folder)
        if not folder.is_dir():
            reports.append(f"{folder}: no such folder")
        else:
            reports.append(f"{folder}: missing {', '.join(missing)}")
    looked = "; ".join(reports) if reports else "no folder to look in"
    raise FileNotFoundError(
        f"{dataset} not found ({looked}). It needs the four IDX files {_names()} "
        f"in one folder. {how_to_get}"
    )


def fashion_mnist(
    root: PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST: 60,000 training and 10,000 test images of 10 kinds of clothing.

    Parameters
    ----------
    root : str or path-like, optional
        A folder holding the four standard IDX files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte``, each optionally gzipped). By default:
        ``$FASTCONV_FASHION_MNIST`` if set, else where Debian's package
        ``dataset-fashion-mnist`` installs them (:data:`DEBIAN_FASHION_MNIST_DIR`).

    Returns
    -------
    x_train, y_train, x_test, y_test
        Images float32 (N, 1, 28, 28) in [0, 1]; labels int64 (N,) in 0..9
        (names in :data:`FASHION_MNIST_CLASSES`).

    Raises
    ------
    FileNotFoundError
        The files are not there; the message says how to get them.
    ValueError
        A file is damaged, or the images and labels do not match.
    """
    env = os.environ.get("FASTCONV_FASHION_MNIST")
    defaults = [Path(env)] if env else [DEBIAN_FASHION_MNIST_DIR]
    return _load_named(
        "Fashion-MNIST",
        root,
        defaults,
        "On Debian or Ubuntu: `apt-get install dataset-fashion-mnist` (installs them in "
        f"{DEBIAN_FASHION_MNIST_DIR}). Elsewhere: download the four files from the "
        "Fashion-MNIST repository (github.com/zalandoresearch/fashion-mnist, folder "
        "data/fashion) into a folder and pass it as root (`--data-dir` on the command line).",
    )


def mnist(root: PathLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST (handwritten digits) from a folder you have it in.

    Parameters
    ----------
    root : str or path-like, optional
        The folder holding the four standard IDX files (same names as
        :func:`fashion_mnist`, optionally gzipped). Default:
        ``$FASTCONV_MNIST`` if set. Nothing is downloaded.

    Returns
    -------
    x_train, y_train, x_test, y_test
        As :func:`fashion_mnist`.
    """
    env = os.environ.get("FASTCONV_MNIST")
    defaults = [Path(env)] if env else []
    return _load_named(
        "MNIST",
        root,
        defaults,
        "Download the four MNIST IDX files into a folder and pass it as root "
        "(`--data-dir` on the command line), or set FASTCONV_MNIST to that folder.",
    )


# --------------------------------------------------------------------------
# Mini-batches
# --------------------------------------------------------------------------


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate over ``(x_batch, y_batch)`` mini-batches.

    Parameters
    ----------
    x, y : numpy.ndarray
        Samples and labels, the same length (first axis).
    batch_size : int
        Samples per batch (>= 1); the last batch may be smaller unless
        ``drop_last``.
    shuffle : bool
        Visit the samples in a random order (a permutation drawn from a NumPy
        ``Generator``) instead of in order.
    seed : int, numpy.random.Generator or None
        The seed of the permutation: the same int gives the same order. Pass
        one ``Generator`` to successive calls (e.g. one per epoch) for a
        different, still reproducible, order each time. ``None``: unseeded.
    drop_last : bool
        Leave out a last batch smaller than ``batch_size``.

    Yields
    ------
    x_batch : numpy.ndarray
        C-contiguous float32 (``x`` is converted, not scaled; with
        ``shuffle=False`` a batch may be a view of ``x``).
    y_batch : numpy.ndarray
        The matching labels (C-contiguous, ``y``'s dtype).
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"batches: x has {len(x)} samples but y has {len(y)}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batches: batch_size must be a positive integer, got {batch_size!r}")
    order = np.random.default_rng(seed).permutation(len(x)) if shuffle else None
    for idx in index_batches(len(x), int(batch_size), order, drop_last):
        yield np.ascontiguousarray(x[idx], dtype=np.float32), np.ascontiguousarray(y[idx])
