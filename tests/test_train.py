"""``fastconv train`` and fastconv.train.fit on a tiny synthetic dataset written
as IDX files: it runs, prints per-epoch accuracy, learns, saves a model that
loads back, and is deterministic (same seed, same numbers, any thread count)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from child import CHILD_CWD, child_env

import fastconv
from fastconv import cli, datasets, models, nn, optim
from fastconv.datasets import IDX_FILES, write_idx
from fastconv.train import History, evaluate, fit

N_TRAIN, N_TEST = 512, 128


def synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images whose class (0..9) is the position of a bright 7x7
    block on a noisy background: easy to learn in an epoch or two."""
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = rng.integers(0, 80, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 5)
        top, left = 3 + 12 * r + rng.integers(-2, 3), 1 + 5 * q + rng.integers(0, 2)
        x[i, top : top + 7, left : left + 5] = 230
    return x, y


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-mnist")
    rng = np.random.default_rng(123)
    x_train, y_train = synthetic(N_TRAIN, rng)
    x_test, y_test = synthetic(N_TEST, rng)
    arrays = {
        "train_images": x_train,
        "train_labels": y_train,
        "test_images": x_test,
        "test_labels": y_test,
    }
    for key, arr in arrays.items():
        write_idx(folder / (IDX_FILES[key] + ".gz"), arr)
    return folder


@pytest.fixture(scope="module")
def data(data_dir):
    return datasets.mnist(data_dir)


def _train(data, seed=0, epochs=1, model="mlp", lr=1e-3, batch_size=64):
    nn.manual_seed(seed)
    m = {"mlp": models.mlp_mnist, "keras-cnn": models.keras_mnist_cnn}[model]()
    opt = optim.Adam(m.parameters(), lr=lr)
    return m, fit(m, opt, data, epochs, batch_size, seed, progress=False)


def _params(model):
    return [np.array(p.data, copy=True) for p in model.parameters()]


def test_train_command_runs_learns_and_saves(data_dir, tmp_path, capsys):
    saved = tmp_path / "model.npz"
    argv = ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--epochs", "2",
            "--batch-size", "32", "--save", str(saved), "--threads", "2"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "keras-cnn (93,322 parameters) on MNIST, 512 training / 128 test images" in out
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "test acc" in lines[1]
    assert "img/s" in lines[0] and "time" in lines[0]
    accs = [float(line.split("test acc")[1].split("%")[0]) for line in lines]
    assert accs[-1] > 60.0, out  # chance is 10%
    assert f"final {accs[-1]:.2f}%" in out and "best test accuracy" in out
    assert f"saved the model to {saved}" in out

    # The saved model loads back into a fresh (differently seeded) model.
    nn.manual_seed(99)
    loaded = models.keras_mnist_cnn()
    loaded.load(str(saved))
    _x_train, _y_train, x_test, y_test = datasets.mnist(data_dir)
    _, acc = evaluate(loaded, x_test, y_test)
    assert f"{100 * acc:.2f}" == f"{accs[-1]:.2f}"


def test_fit_is_deterministic(data):
    m1, h1 = _train(data, seed=0, epochs=2)
    m2, h2 = _train(data, seed=0, epochs=2)
    _, h3 = _train(data, seed=1, epochs=2)
    assert isinstance(h1, History) and len(h1.epochs) == 2
    for a, b in zip(h1.epochs, h2.epochs):
        assert (a.train_loss, a.test_loss, a.test_accuracy) == (
            b.train_loss, b.test_loss, b.test_accuracy)  # fmt: skip
    for p, q in zip(_params(m1), _params(m2)):
        np.testing.assert_array_equal(p, q)
    assert h3.epochs[-1].train_loss != h1.epochs[-1].train_loss
    assert h1.final_accuracy == h1.epochs[-1].test_accuracy
    assert h1.best_accuracy == max(h1.test_accuracies)
    assert h1.epochs[1].train_loss < h1.epochs[0].train_loss


def test_fit_same_result_for_any_thread_count(data):
    """fastconv's kernels are bitwise identical for any thread count, so is training."""
    small = (data[0][:192], data[1][:192], data[2], data[3])
    results = []
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        m, h = _train(small, seed=5, model="keras-cnn")
        results.append((h.epochs[0].train_loss, h.epochs[0].test_loss, _params(m)))
    assert results[0][:2] == results[1][:2]
    for p, q in zip(results[0][2], results[1][2]):
        np.testing.assert_array_equal(p, q)


def test_fit_history_and_callback(data):
    seen = []
    nn.manual_seed(0)
    m = models.mlp_mnist()
    h = fit(m, optim.SGD(m.parameters(), lr=0.05, momentum=0.9), data, 2, 100, 0,
            progress=False, on_epoch=seen.append)  # fmt: skip
    assert seen == h.epochs and [e.epoch for e in seen] == [1, 2]
    for e in h.epochs:
        assert 0.0 <= e.test_accuracy <= 1.0 and 0.0 <= e.train_accuracy <= 1.0
        assert e.time > 0 and e.images_per_s > 0 and np.isfinite(e.train_loss)
    d = h.to_dict()
    assert [e["epoch"] for e in d["epochs"]] == [1, 2]
    assert m.training  # fit leaves the model in train mode (evaluate restores it)


def test_limit_and_progress_bar(data_dir, capsys):
    argv = ["train", "--data-dir", str(data_dir), "--model", "mlp", "--epochs", "1",
            "--limit", "100", "--optimizer", "rmsprop", "--seed", "3"]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "mlp (407,050 parameters) on Fashion-MNIST, 100 training / 128 test" in captured.out
    assert "RMSprop lr 0.001, batch 128, 1 epochs, seed 3" in captured.out
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return
    assert "epoch 1/1" in captured.err  # the bar


def test_bad_inputs(tmp_path, data_dir, capsys):
    assert cli.main(["train", "--data-dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err
    (tmp_path / "bad").mkdir()
    for name in IDX_FILES.values():
        (tmp_path / "bad" / name).write_bytes((data_dir / f"{name}.gz").read_bytes()[:50])
    assert cli.main(["train", "--data-dir", str(tmp_path / "bad")]) == 1
    assert "truncated gzip" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--epochs", "0"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "resnet"])


@pytest.mark.parametrize("module", [["fastconv.train"], ["fastconv", "train"]])
def test_python_dash_m(data_dir, module):
    """``python -m fastconv.train`` and ``python -m fastconv train`` are the same command."""
    r = subprocess.run(
        [sys.executable, "-m", *module, "--data-dir", str(data_dir), "--model", "mlp",
         "--epochs", "1", "--limit", "64", "--no-progress"],
        cwd=CHILD_CWD, env=child_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1" in r.stdout and "final" in r.stdout


# --------------------------------------------------------------------------
# --checkpoint / --resume / --eval-only / --metrics / --scheduler / --augment
# --------------------------------------------------------------------------


def _assert_same_state(a, b, where):
    """Nested state dicts equal, every array bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_state(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{where}/{i}")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def _run(data_dir, *extra):
    argv = ["train", "--data-dir", str(data_dir), "--model", "mlp", "--limit", "96",
            "--batch-size", "32", "--no-progress", "--optimizer", "adam", "--lr", "0.01",
            *map(str, extra)]  # fmt: skip
    return cli.main(argv)


def _metrics(path):
    import json

    return json.loads(path.read_text())["epochs"]


def test_resume_continues_exactly_where_the_checkpoint_stopped(data_dir, tmp_path, capsys):
    """Two epochs in one run == one epoch, then --resume for the second: same weights
    bit for bit (model, Adam's state, the scheduler, the batch order and the
    augmentations of epoch 2 all restored), and the metrics file continues."""
    common = ["--scheduler", "step:1:0.5", "--augment", "--seed", "4"]
    full, half, resumed = tmp_path / "full.npz", tmp_path / "half.npz", tmp_path / "resumed.npz"
    m_full, m_resumed = tmp_path / "full.json", tmp_path / "resumed.json"
    assert _run(data_dir, "--epochs", 2, "--checkpoint", full, "--metrics", m_full, *common) == 0
    assert _run(data_dir, "--epochs", 1, "--checkpoint", half, "--metrics", m_resumed, *common) == 0
    capsys.readouterr()
    assert _run(data_dir, "--epochs", 2, "--resume", half, "--checkpoint", resumed,
                "--metrics", m_resumed, *common) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"resumed from {half} after epoch 1" in out and "epoch 2/2" in out
    assert "epoch 1/2" not in out
    a, b = optim.load(full), optim.load(resumed)
    assert a["epoch"] == b["epoch"] == 2
    assert a["optimizer"]["state"], "Adam's moments are in the checkpoint"
    for part in ("model", "optimizer", "scheduler"):
        _assert_same_state(a[part], b[part], part)
    rows_full, rows_resumed = _metrics(m_full), _metrics(m_resumed)
    assert [r["epoch"] for r in rows_resumed] == [1, 2]
    for a, b in zip(rows_full, rows_resumed):
        for key in ("train_loss", "test_loss", "test_accuracy", "train_accuracy", "lr"):
            assert a[key] == b[key], key
        assert a["images_per_s"] > 0
    assert [r["lr"] for r in rows_full] == [0.01, 0.005]  # step:1:0.5

    # Already at --epochs: nothing to train.
    assert _run(data_dir, "--epochs", 2, "--resume", full, *common) == 0
    assert "nothing to train" in capsys.readouterr().out


def test_eval_only_and_resume_from_a_saved_model(data_dir, tmp_path, capsys):
    saved, metrics = tmp_path / "m.npz", tmp_path / "m.json"
    assert _run(data_dir, "--epochs", 1, "--save", saved, "--metrics", metrics) == 0
    final = _metrics(metrics)[-1]["test_accuracy"]
    capsys.readouterr()
    # A --save file (weights only) is accepted by --resume.
    assert _run(data_dir, "--eval-only", "--resume", saved, "--metrics", tmp_path / "e.json") == 0
    out = capsys.readouterr().out
    assert f"test acc {100 * final:6.2f}%" in out and "epoch 1/" not in out
    import json

    assert json.loads((tmp_path / "e.json").read_text())["test_accuracy"] == final


def test_train_flag_errors(data_dir, tmp_path, capsys):
    assert _run(data_dir, "--eval-only") == 2
    assert "--eval-only needs --resume" in capsys.readouterr().err
    assert _run(data_dir, "--resume", tmp_path / "missing.npz") == 1
    assert "missing.npz" in capsys.readouterr().err
    ckpt = tmp_path / "c.npz"
    assert _run(data_dir, "--epochs", 1, "--checkpoint", ckpt) == 0
    capsys.readouterr()
    assert _run(data_dir, "--resume", ckpt, "--optimizer", "sgd") == 1
    assert "trained with Adam, not SGD" in capsys.readouterr().err
    assert _run(data_dir, "--scheduler", "sawtooth:3") == 1
    assert "--scheduler sawtooth:3: expected one of step:STEP_SIZE" in capsys.readouterr().err
    assert _run(data_dir, "--scheduler", "step:x") == 1
    assert "--scheduler step:x" in capsys.readouterr().err


class _Counting:
    def __init__(self):
        self.calls = []

    def step(self, *args):
        self.calls.append(args)


def test_fit_steps_the_scheduler_per_epoch_batch_or_metric(data):
    small = (data[0][:100], data[1][:100], data[2], data[3])
    for when, expected in (("epoch", 2), ("batch", 2 * 4), ("metric", 2)):
        nn.manual_seed(0)
        m = models.mlp_mnist()
        s = _Counting()
        h = fit(m, optim.SGD(m.parameters(), lr=0.01), small, 2, 32, 0, progress=False,
                scheduler=s, scheduler_step=when)  # fmt: skip
        assert len(s.calls) == expected, when
        if when == "metric":
            assert [c[0] for c in s.calls] == [e.test_loss for e in h.epochs]
        else:
            assert all(c == () for c in s.calls)
