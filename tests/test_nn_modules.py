"""Module machinery of issue 13: forward hooks, ``apply``, ModuleList, ModuleDict, and
forward arguments named as PyTorch's (``layer(input=x)``)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from layer_checks import f32

from fastconv import Tensor, nn


def _torch():
    return pytest.importorskip("torch")


# --------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------


def test_forward_hooks_see_and_replace_args_and_output():
    lin = nn.Linear(3, 2)
    seen = []
    h1 = lin.register_forward_pre_hook(lambda m, args: seen.append(("pre", m, args[0].shape)))
    h2 = lin.register_forward_hook(lambda m, args, out: seen.append(("post", out.shape)))
    x = f32(4, 3)
    y = lin(x)
    assert seen == [("pre", lin, (4, 3)), ("post", (4, 2))]
    h1.remove()
    h2.remove()
    h2.remove()  # a second remove does nothing
    lin(x)
    assert len(seen) == 2
    # A pre-hook's result replaces the arguments (a non-tuple is wrapped), a hook's the output.
    with lin.register_forward_pre_hook(lambda m, args: args[0] * 0):
        np.testing.assert_allclose(lin(x).data, np.broadcast_to(lin.bias.data, (4, 2)))
    with lin.register_forward_hook(lambda m, args, out: out * 2):
        np.testing.assert_allclose(lin(x).data, 2 * y.data, rtol=1e-6)
    np.testing.assert_array_equal(lin(x).data, y.data)  # the context managers removed them


def test_hook_order_prepend_and_kwargs():
    relu = nn.ReLU()
    order = []
    relu.register_forward_hook(lambda m, a, o: order.append("a"))
    relu.register_forward_hook(lambda m, a, o: order.append("b"))
    relu.register_forward_hook(lambda m, a, o: order.append("first"), prepend=True)
    relu.register_forward_pre_hook(
        lambda m, args, kwargs: (args, {"input": kwargs["input"] * -1}), with_kwargs=True
    )
    relu.register_forward_hook(
        lambda m, args, kwargs, out: order.append(sorted(kwargs)), with_kwargs=True
    )
    y = relu(input=Tensor(np.array([-1.0, 2.0], np.float32)))
    np.testing.assert_array_equal(y.data, [1.0, 0.0])
    assert order == ["first", "a", "b", ["input"]]


def test_pre_hook_with_kwargs_must_return_a_pair():
    relu = nn.ReLU()
    relu.register_forward_pre_hook(lambda m, a, k: a, with_kwargs=True)
    with pytest.raises(RuntimeError, match="new_args, new_kwargs"):
        relu(f32(2))


def test_always_call_hook_runs_when_forward_raises():
    bn = nn.BatchNorm2d(3)
    calls = []
    bn.register_forward_hook(lambda m, a, o: calls.append(o), always_call=True)
    bn.register_forward_hook(lambda m, a, o: calls.append("never"))
    with pytest.raises(ValueError):
        bn(f32(2, 4, 3, 3))
    assert calls == [None]


def test_hooks_match_torch_semantics():
    torch = _torch()
    for lib, x in [(nn, f32(2, 3)), (torch.nn, torch.tensor(f32(2, 3)))]:
        lin = lib.Linear(3, 3)
        log = []
        handle = lin.register_forward_pre_hook(lambda m, a, log=log: log.append(type(a).__name__))
        lin.register_forward_hook(lambda m, a, o, log=log: log.append(len(a)))
        lin(x)
        handle.remove()
        lin(x)
        assert log == ["tuple", 1, 1]


def test_sequential_does_not_fuse_hooked_layers():
    """Conv2d -> ReLU -> MaxPool2d run fused unless a hook needs a layer's own output."""
    seq = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2))
    x = f32(1, 2, 8, 8)
    expected = seq(x).data
    for i in range(3):
        outs = []
        h = seq[i].register_forward_hook(lambda m, a, o, outs=outs: outs.append(o.shape))
        np.testing.assert_allclose(seq(x).data, expected, rtol=1e-6)
        assert outs == [(1, 3, 3, 3) if i == 2 else (1, 3, 6, 6)]
        h.remove()


def test_feature_extraction_hook_on_a_model():
    """The usual use: grab an intermediate activation of a model."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    feats = {}
    model[1].register_forward_hook(lambda m, a, o: feats.setdefault("relu", o))
    model(f32(2, 1, 6, 6))
    assert feats["relu"].shape == (2, 4, 4, 4) and (feats["relu"].data >= 0).all()


# --------------------------------------------------------------------------
# apply
# --------------------------------------------------------------------------


def test_apply_visits_children_first_then_self():
    torch = _torch()

    def visit(lib):
        model = lib.Sequential(
            lib.Conv2d(1, 2, 3), lib.Sequential(lib.ReLU(), lib.Linear(2, 2)), lib.Tanh()
        )
        order = []
        assert model.apply(lambda m: order.append(type(m).__name__)) is model
        return order

    assert visit(nn) == visit(torch.nn)


def test_apply_initialises_weights():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
            nn.init.ones_(m.weight)

    model.apply(init)
    np.testing.assert_array_equal(model(np.ones((1, 3), np.float32)).data, [[12.0, 12.0]])


# --------------------------------------------------------------------------
# ModuleList and ModuleDict
# --------------------------------------------------------------------------


def _net(lib):
    """The same model in fastconv.nn or torch.nn: containers of layers."""

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.blocks = lib.ModuleList([lib.Linear(3, 3) for _ in range(3)])
            self.heads = lib.ModuleDict({"a": lib.Linear(3, 1), "b": lib.Linear(3, 2)})

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return self.heads["b"](x)

    return Net()


def test_containers_register_like_torch():
    torch = _torch()
    ours, theirs = _net(nn), _net(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(list(ours.parameters())) == 10
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = f32(4, 3)
    np.testing.assert_allclose(
        ours(x).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_module_list_is_a_list():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    ml = nn.ModuleList([a, b])
    ml.append(c)
    assert len(ml) == 3 and ml[0] is a and ml[-1] is c and list(ml) == [a, b, c]
    assert isinstance(ml[1:], nn.ModuleList) and list(ml[1:]) == [b, c]
    del ml[0]
    assert [k for k, _ in ml.named_children()] == ["0", "1"] and ml[0] is b
    ml.insert(0, a)
    assert list(ml) == [a, b, c]
    ml[1] = nn.ELU()
    assert isinstance(ml[1], nn.ELU)
    ml += [nn.GELU()]
    ml.extend(nn.ModuleList([nn.SiLU()]))
    assert len(ml) == 5 and len(ml + ml) == 10
    assert ml.pop(0) is a and len(ml) == 4
    with pytest.raises(IndexError):
        ml[10]
    with pytest.raises(TypeError, match="not a Module"):
        ml.append(3)
    with pytest.raises(TypeError, match="iterable"):
        ml.extend(5)
    with pytest.raises(NotImplementedError):
        ml(f32(2))


def test_module_dict_is_a_dict():
    d = nn.ModuleDict([("x", nn.ReLU()), ("y", nn.Tanh())])
    assert list(d) == d.keys() == ["x", "y"] and "x" in d and len(d) == 2
    d["z"] = nn.Linear(2, 2)
    d.update({"x": nn.Sigmoid()})
    assert isinstance(d["x"], nn.Sigmoid) and [k for k, _ in d.items()] == ["x", "y", "z"]
    assert [k for k, _ in d.named_parameters()] == ["z.weight", "z.bias"]
    assert isinstance(d.pop("y"), nn.Tanh) and "y" not in d
    del d["z"]
    assert list(d.parameters()) == []
    d.clear()
    assert len(d) == 0
    with pytest.raises(KeyError):
        d["missing"]
    with pytest.raises(TypeError, match="strings"):
        d[1] = nn.ReLU()
    with pytest.raises(ValueError, match="element #0"):
        d.update([nn.ReLU()])


# --------------------------------------------------------------------------
# Argument names: forward(input=...) as torch's, for every layer
# --------------------------------------------------------------------------

LAYERS = {
    "Conv2d": lambda: nn.Conv2d(2, 2, 3),
    "ConvTranspose2d": lambda: nn.ConvTranspose2d(2, 2, 3),
    "Linear": lambda: nn.Linear(6, 2),
    "MaxPool2d": lambda: nn.MaxPool2d(2),
    "AvgPool2d": lambda: nn.AvgPool2d(2),
    "AdaptiveAvgPool2d": lambda: nn.AdaptiveAvgPool2d(1),
    "AdaptiveMaxPool2d": lambda: nn.AdaptiveMaxPool2d(1),
    "BatchNorm2d": lambda: nn.BatchNorm2d(2),
    "GroupNorm": lambda: nn.GroupNorm(1, 2),
    "LayerNorm": lambda: nn.LayerNorm(6),
    "Flatten": nn.Flatten,
    "Identity": nn.Identity,
    "Dropout": nn.Dropout,
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "GELU": nn.GELU,
    "SiLU": nn.SiLU,
    "ELU": nn.ELU,
    "Tanh": nn.Tanh,
    "Sigmoid": nn.Sigmoid,
    "Softmax": lambda: nn.Softmax(dim=1),
    "LogSoftmax": lambda: nn.LogSoftmax(dim=1),
    "Sequential": lambda: nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_forward_takes_input_by_torchs_name(name):
    torch = _torch()
    layer = LAYERS[name]().eval()
    ours = list(inspect.signature(layer.forward).parameters)
    theirs = list(inspect.signature(getattr(torch.nn, name).forward).parameters)[1:]
    assert ours[: len(theirs)] == theirs
    x = f32(2, 2, 3, 6)
    np.testing.assert_array_equal(layer(input=x).data, layer(x).data)


def test_identity_takes_any_arguments():
    x = Tensor(f32(2, 3))
    assert nn.Identity(54, unused_argument1=0.1)(x) is x
