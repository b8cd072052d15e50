"""Mini-batches for training loops: :class:`DataLoader` and batch augmentations.

* :class:`DataLoader` iterates over arrays (or a map-style dataset) in
  mini-batches, in order or shuffled, with ``torch.utils.data.DataLoader``'s
  main arguments. A background thread prepares the next batches (indexing,
  copying, the ``transform``) while the caller trains on the current one.
* Augmentations are small callables on a batch of images (N, C, H, W), each
  with its own seeded ``numpy.random.Generator``, drawing per image:
  :class:`RandomCrop` (with zero padding), :class:`RandomHorizontalFlip`,
  and the deterministic :class:`Normalize`; :class:`Compose` chains them.

Reproducibility: a shuffled order is a function of ``(seed, epoch)``: the
same seed gives the same order for the same epoch and a different one for
each epoch (the epoch counts the loader's iterations, or is set with
:meth:`DataLoader.set_epoch`, e.g. when resuming). A loader also calls
``transform.set_epoch(epoch)`` when the transform has it, so that the random
augmentations reseed from ``(their seed, epoch)`` too.

Example
-------
>>> from fastconv import data, datasets
>>> x_train, y_train, _, _ = datasets.fashion_mnist()           # doctest: +SKIP
>>> augment = data.Compose([data.RandomCrop(28, padding=2, seed=0),
...                         data.RandomHorizontalFlip(seed=1)])
>>> loader = data.DataLoader((x_train, y_train), batch_size=128, shuffle=True,
...                          seed=0, transform=augment)          # doctest: +SKIP
>>> for xb, yb in loader:                                       # doctest: +SKIP
...     pass
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import numpy as np

__all__ = [
    "Compose",
    "DataLoader",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "index_batches",
]

# --------------------------------------------------------------------------
# Batches of indices
# --------------------------------------------------------------------------


def _positive_int(op: str, name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or int(value) != value or value < 1:
        raise ValueError(f"{op}: {name} must be a positive integer, got {value!r}")
    return int(value)


def index_batches(
    n: int, batch_size: int, order: np.ndarray | None, drop_last: bool
) -> Iterator[slice | np.ndarray]:
    """The samples of each batch: slices of ``range(n)``, or chunks of ``order``.

    The last batch may be smaller unless ``drop_last``.
    """
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        yield slice(start, end) if order is None else order[start:end]


def _seed_entropy(seed: Any) -> int:
    """An int from which ``(seed, epoch)`` generators are derived (random when None)."""
    return int(np.random.SeedSequence(seed).entropy)


# --------------------------------------------------------------------------
# DataLoader
# --------------------------------------------------------------------------


class DataLoader:
    """Iterate over a dataset in mini-batches, preparing the next ones in a background thread.

    Parameters
    ----------
    dataset : array, tuple of arrays, or map-style dataset
        One array, or arrays of the same length (e.g. ``(images, labels)``):
        each batch is a tuple of their rows (one array alone gives arrays).
        Anything else with ``__len__`` and ``__getitem__(int)`` returning a
        sample (an array or a tuple of them) is collated with ``np.stack``.
    batch_size : int
        Samples per batch (the last batch may be smaller unless ``drop_last``).
    shuffle : bool
        A new random order every epoch (see ``seed``); in order otherwise.
    drop_last : bool
        Leave out a last batch smaller than ``batch_size``.
    seed : int, optional
        The order of epoch ``e`` is a permutation drawn from ``(seed, e)``:
        the same for the same seed and epoch, different for each epoch.
        None: a random seed, drawn once per loader.
    generator : numpy.random.Generator, optional
        Instead of ``seed``: draw each epoch's permutation from this generator.
    transform : callable, optional
        Applied to the first array of each batch (the images), in the
        background thread; e.g. a :class:`Compose` of augmentations.
    prefetch : bool or int
        How many batches the background thread prepares ahead (``True``: 2);
        ``False`` or 0: no thread, each batch prepared when asked for.

    Notes
    -----
    An exception raised while preparing a batch (in the thread) is raised
    again in the caller, at the batch where it happened. The thread stops
    when the iteration ends, raises, or is abandoned (``break``, or the
    iterator closed or garbage-collected).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        prefetch: bool | int = True,
    ) -> None:
        op = "DataLoader"
        self.batch_size = _positive_int(op, "batch_size", batch_size)
        if isinstance(dataset, np.ndarray):
            self._arrays: tuple | None = (dataset,)
        elif isinstance(dataset, (tuple, list)) and all(hasattr(a, "shape") for a in dataset):
            self._arrays = tuple(np.asarray(a) for a in dataset)
            if not self._arrays:
                raise ValueError(f"{op}: got no arrays")
            lengths = [len(a) for a in self._arrays]
            if len(set(lengths)) > 1:
                raise ValueError(f"{op}: the arrays have different lengths {lengths}")
        elif hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
            self._arrays = None
        else:
            raise TypeError(
                f"{op}: dataset must be an array, a tuple of arrays or have __len__ and "
                f"__getitem__, got {type(dataset).__name__}"
            )
        if transform is not None and not callable(transform):
            raise TypeError(f"{op}: transform must be callable, got {type(transform).__name__}")
        if generator is not None and seed is not None:
            raise ValueError(f"{op}: pass seed or generator, not both")
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self.transform = transform
        self.prefetch = 2 if prefetch is True else int(prefetch)
        if self.prefetch < 0:
            raise ValueError(f"{op}: prefetch must be >= 0, got {prefetch!r}")
        self.seed = _seed_entropy(seed)
        self.epoch = 0

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _num_samples(self) -> int:
        return len(self._arrays[0]) if self._arrays is not None else len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its order and its augmentations)."""
        self.epoch = int(epoch)

    def _order(self, epoch: int) -> np.ndarray | None:
        if not self.shuffle:
            return None
        n = self._num_samples()
        if self.generator is not None:
            return self.generator.permutation(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _load(self, idx: slice | np.ndarray) -> Any:
        """One batch: the rows ``idx`` of each array (copies), the transform on the first."""
        if self._arrays is not None:
            parts = [np.array(a[idx], copy=True) for a in self._arrays]
        else:
            rows = range(*idx.indices(len(self.dataset))) if isinstance(idx, slice) else idx
            samples = [self.dataset[int(i)] for i in rows]
            if samples and isinstance(samples[0], tuple):
                parts = [np.stack(col) for col in zip(*samples)]
            else:
                parts = [np.stack(samples)]
        if self.transform is not None:
            parts[0] = self.transform(parts[0])
        return parts[0] if len(parts) == 1 else tuple(parts)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        self.epoch += 1
        if hasattr(self.transform, "set_epoch"):
            self.transform.set_epoch(epoch)  # type: ignore[union-attr]
        batches = index_batches(
            self._num_samples(), self.batch_size, self._order(epoch), self.drop_last
        )
        if self.prefetch == 0:
            return (self._load(idx) for idx in batches)
        return _prefetched(map(self._load, batches), self.prefetch)


def _prefetched(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Iterate over ``items``, computed by a background thread up to ``depth`` ahead.

    An exception in the thread is re-raised here; closing this generator
    (``break``, garbage collection) stops the thread and waits for it.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
        except BaseException as e:  # re-raised in the caller
            put(("error", e))
            return
        put(("end", None))

    # The thread starts with the first next(): a generator never started runs no finally.
    thread = threading.Thread(target=work, name="fastconv-DataLoader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------
# Augmentations on batches (N, C, H, W)
# --------------------------------------------------------------------------


def _images(op: str, x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a batch of images (N, C, H, W), got shape {x.shape}")
    return x


class _Random:
    """A transform with its own generator, reseeded from ``(seed, epoch)`` by :meth:`set_epoch`."""

    def __init__(self, seed: int | None) -> None:
        self._seed = _seed_entropy(seed)
        self.rng = np.random.default_rng(self._seed)

    def set_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng([self._seed, int(epoch)])


class RandomCrop(_Random):
    """Pad each image by ``padding`` (with ``fill``) and crop a random ``size`` window of it.

    As torchvision's ``RandomCrop(size, padding)`` with constant padding, on
    a batch: each image gets its own window.

    Parameters
    ----------
    size : int or (int, int)
        Output height and width.
    padding : int or (int, int), optional
        Zeros added on each side (top/bottom, left/right), before cropping.
    fill : float
        The padding value.
    seed : int, optional
        Seeds this transform's generator.
    """

    def __init__(self, size: Any, padding: Any = None, fill: float = 0.0, seed: int | None = None):
        super().__init__(seed)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        pad = 0 if padding is None else padding
        self.padding = (pad, pad) if isinstance(pad, int) else tuple(pad)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be a positive int or pair, got {size!r}")
        if len(self.padding) != 2 or min(self.padding) < 0:
            raise ValueError(f"RandomCrop: padding must be an int >= 0 or a pair, got {padding!r}")
        self.fill = fill

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _images("RandomCrop", x)
        (h, w), (ph, pw) = self.size, self.padding
        N, C, H, W = x.shape
        if h > H + 2 * ph or w > W + 2 * pw:
            raise ValueError(
                f"RandomCrop: crop size {self.size} is larger than the padded image "
                f"{(H + 2 * ph, W + 2 * pw)}"
            )
        padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=self.fill)
        top = self.rng.integers(0, H + 2 * ph - h + 1, N)
        left = self.rng.integers(0, W + 2 * pw - w + 1, N)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
        return np.ascontiguousarray(windows[np.arange(N), :, top, left])  # (N, C, h, w)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_Random):
    """Mirror each image left-right with probability ``p`` (drawn per image)."""

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _images("RandomHorizontalFlip", x)
        flip = self.rng.random(len(x)) < self.p
        out = np.array(x, copy=True)
        out[flip] = x[flip, ..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel (scalars apply to every channel)."""

    def __init__(self, mean: Any, std: Any) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError("Normalize: mean and std must be numbers or sequences of numbers")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must not be 0, got {std!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _images("Normalize", x)
        C = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, C):
                raise ValueError(f"Normalize: {name} has {len(v)} values for {C} channels")
        shape = (1, -1, 1, 1)
        m = self.mean.astype(x.dtype).reshape(shape)
        s = self.std.astype(x.dtype).reshape(shape)
        return (x - m) / s

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Compose:
    """Apply ``transforms`` in order; :meth:`set_epoch` reaches every random one."""

    def __init__(self, transforms: Sequence[Callable[[np.ndarray], np.ndarray]]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t(x)
        return x

    def set_epoch(self, epoch: int) -> None:
        for t in self.transforms:
            if hasattr(t, "set_epoch"):
                t.set_epoch(epoch)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"
