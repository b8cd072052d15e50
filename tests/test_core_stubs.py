"""fastconv/_core.pyi covers fastconv._core: a binding without a stub (or a stub
whose parameter names differ from the binding's) fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from fastconv import _core

STUB = Path(__file__).resolve().parent.parent / "fastconv" / "_core.pyi"
# Stubs of functions another change adds to src/module.cpp; until it lands the
# module may lack them.
PENDING = {"kernel_variants", "op_kernels"}


def _stub_functions() -> dict[str, list[str]]:
    tree = ast.parse(STUB.read_text())
    return {
        node.name: [a.arg for a in node.args.args]
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def _bound_functions() -> list[str]:
    return [n for n in dir(_core) if not n.startswith("__") and callable(getattr(_core, n))]


def test_every_binding_has_a_stub():
    missing = sorted(set(_bound_functions()) - set(_stub_functions()))
    assert not missing, f"fastconv/_core.pyi lacks stubs for {missing}"


def test_every_stub_is_bound():
    extra = sorted(set(_stub_functions()) - set(_bound_functions()) - PENDING)
    assert not extra, f"fastconv/_core.pyi has stubs for names _core does not export: {extra}"


@pytest.mark.parametrize("name", sorted(set(_bound_functions()) & set(_stub_functions())))
def test_stub_parameters_match_the_binding(name):
    # pybind11 puts the signature on the first line of the docstring.
    first = (getattr(_core, name).__doc__ or "").strip().splitlines()[0]
    params = re.match(rf"{name}\((.*)\) ->", first)
    assert params, first
    bound = [p.split(":")[0].strip() for p in params.group(1).split(", ") if p]
    assert _stub_functions()[name] == bound, name
