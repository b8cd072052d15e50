"""fastconv.data: the DataLoader (batches, seeded per-epoch shuffling, the
background thread and its errors) and the batch augmentations."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from fastconv import data


def _xy(n=10):
    x = np.arange(n * 2 * 3 * 3, dtype=np.float32).reshape(n, 2, 3, 3)
    return x, np.arange(n)


def _labels(loader):
    return np.concatenate([yb for _, yb in loader]).tolist()


def _loader_threads():
    return [t for t in threading.enumerate() if t.name == "fastconv-DataLoader"]


@pytest.mark.parametrize("prefetch", [True, 1, 0])
def test_in_order_batches_and_len(prefetch):
    x, y = _xy(10)
    loader = data.DataLoader((x, y), batch_size=4, prefetch=prefetch)
    assert len(loader) == 3
    out = list(loader)
    assert [len(b) for _, b in out] == [4, 4, 2]
    np.testing.assert_array_equal(out[1][0], x[4:8])
    np.testing.assert_array_equal(out[2][1], y[8:])
    dropped = data.DataLoader((x, y), batch_size=4, drop_last=True, prefetch=prefetch)
    assert len(dropped) == 2 and [len(b) for _, b in dropped] == [4, 4]
    single = list(data.DataLoader(x, batch_size=3, prefetch=prefetch))
    assert isinstance(single[0], np.ndarray) and single[0].shape == (3, 2, 3, 3)


def test_batches_are_copies():
    x, y = _xy(4)
    xb, _ = next(iter(data.DataLoader((x, y), batch_size=4)))
    xb[:] = -1
    assert x.min() >= 0


def test_shuffle_same_seed_same_epoch_same_order_and_new_order_each_epoch():
    x, y = _xy(40)
    a = data.DataLoader((x, y), batch_size=6, shuffle=True, seed=3)
    b = data.DataLoader((x, y), batch_size=6, shuffle=True, seed=3)
    a1, a2 = _labels(a), _labels(a)
    assert a1 == _labels(b) and a2 == _labels(b)  # same seed, same epochs
    assert a1 != a2 and sorted(a1) == sorted(a2) == list(range(40))  # permutations
    assert _labels(data.DataLoader((x, y), batch_size=6, shuffle=True, seed=4)) != a1
    c = data.DataLoader((x, y), batch_size=6, shuffle=True, seed=3)
    c.set_epoch(1)  # resuming at epoch 1
    assert _labels(c) == a2
    rng = np.random.default_rng(0)
    g = data.DataLoader((x, y), batch_size=6, shuffle=True, generator=rng)
    assert _labels(g) == y[np.random.default_rng(0).permutation(40)].tolist()


def test_map_style_dataset_is_collated():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((1, 2, 2), i, np.float32), i * i

    batches = list(data.DataLoader(Squares(), batch_size=2))
    assert [b[1].tolist() for b in batches] == [[0, 1], [4, 9], [16]]
    assert batches[1][0].shape == (2, 1, 2, 2) and batches[1][0][1, 0, 0, 0] == 3


def test_transform_runs_on_the_images_only():
    x, y = _xy(6)
    out = list(data.DataLoader((x, y), batch_size=3, transform=lambda b: b * 0 + 7))
    assert all(np.all(xb == 7) for xb, _ in out)
    assert _labels(data.DataLoader((x, y), batch_size=3, transform=lambda b: b)) == list(range(6))


def test_exception_in_the_thread_is_raised_in_the_caller():
    x, y = _xy(10)
    calls = []

    def boom(b):
        calls.append(len(b))
        if len(calls) == 2:
            raise RuntimeError("bad batch")
        return b

    it = iter(data.DataLoader((x, y), batch_size=4, transform=boom))
    next(it)  # the first batch arrives
    with pytest.raises(RuntimeError, match="bad batch"):
        next(it)
    time.sleep(0.05)
    assert not _loader_threads()


def test_thread_stops_when_iteration_is_abandoned():
    x, y = _xy(200)
    prepared = []
    loader = data.DataLoader(
        (x, y), batch_size=2, transform=lambda b: prepared.append(1) or b, prefetch=2
    )
    for _ in loader:
        break
    gc.collect()
    assert not _loader_threads()
    n = len(prepared)
    assert n <= 5  # bounded queue: only a few batches ahead, never the whole epoch
    time.sleep(0.1)
    assert len(prepared) == n  # and nothing more after it stopped
    it = iter(loader)
    next(it)
    it.close()
    assert not _loader_threads()


ERRORS = [
    (lambda: data.DataLoader(_xy()[0], batch_size=0), ValueError, "batch_size must be a positive"),
    (lambda: data.DataLoader((np.zeros(3), np.zeros(4))), ValueError, r"different lengths \[3, 4\]"),
    (lambda: data.DataLoader(5), TypeError, "dataset must be"),
    (lambda: data.DataLoader(_xy()[0], seed=1, generator=np.random.default_rng()), ValueError,
     "seed or generator"),
    (lambda: data.DataLoader(_xy()[0], transform=3), TypeError, "transform must be callable"),
    (lambda: data.RandomCrop(5, padding=-1), ValueError, "padding"),
    (lambda: data.RandomCrop(8)(np.zeros((1, 1, 3, 3))), ValueError, "larger than the padded"),
    (lambda: data.RandomHorizontalFlip(1.5), ValueError, r"p must be in \[0, 1\]"),
    (lambda: data.RandomHorizontalFlip()(np.zeros((3, 3))), ValueError, r"\(N, C, H, W\)"),
    (lambda: data.Normalize([0.5, 0.5], [1.0, 0.0]), ValueError, "std must not be 0"),
    (lambda: data.Normalize([0.5, 0.5], 1.0)(np.zeros((1, 3, 2, 2))), ValueError,
     "mean has 2 values for 3 channels"),
]  # fmt: skip


@pytest.mark.parametrize("call,exc,match", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------
# Augmentations
# --------------------------------------------------------------------------


def test_random_crop_windows_of_the_padded_images():
    x = np.random.default_rng(0).random((64, 2, 5, 6)).astype(np.float32)
    crop = data.RandomCrop((5, 6), padding=2, seed=0)
    out = crop(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for n in range(len(x)):  # each output is one window of its own padded image
        hits = [
            (i, j)
            for i in range(5)
            for j in range(5)
            if np.array_equal(padded[n, :, i : i + 5, j : j + 6], out[n])
        ]
        assert hits, n
        offsets.add(hits[0])
    assert len(offsets) > 10  # per-image offsets, not one for the batch
    np.testing.assert_array_equal(data.RandomCrop(3)(x[:, :, :3, :3]), x[:, :, :3, :3])


def test_flip_and_normalize():
    x = np.random.default_rng(0).random((200, 1, 2, 3)).astype(np.float32)
    out = data.RandomHorizontalFlip(p=0.5, seed=1)(x)
    flipped = np.array([np.array_equal(o, xi[..., ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped | kept) and 60 < flipped.sum() < 140
    np.testing.assert_array_equal(data.RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(data.RandomHorizontalFlip(p=0.0)(x), x)
    y = data.Normalize([0.5, 1.0], [0.5, 2.0])(np.ones((1, 2, 1, 1), np.float32))
    np.testing.assert_allclose(y.ravel(), [1.0, 0.0])
    assert y.dtype == np.float32


def test_augmentations_are_seeded_and_reseed_per_epoch():
    x = np.random.default_rng(0).random((16, 1, 6, 6)).astype(np.float32)

    def make(seed):
        return data.Compose(
            [data.RandomCrop(6, padding=2, seed=seed), data.RandomHorizontalFlip(seed=seed + 1)]
        )

    a, b = make(0), make(0)
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(make(0)(x), make(5)(x))
    a.set_epoch(3)
    b.set_epoch(3)
    first = a(x)
    np.testing.assert_array_equal(first, b(x))
    a.set_epoch(4)
    assert not np.array_equal(a(x), first)
    # Through a loader: the same seed gives the same augmented batches, epoch by epoch.
    y = np.arange(16)
    runs = [
        [xb for xb, _ in data.DataLoader((x, y), 4, shuffle=True, seed=0, transform=make(0))]
        for _ in range(2)
    ]
    for p, q in zip(*runs):
        np.testing.assert_array_equal(p, q)
