"""``fastconv bench --json PATH``: one run as one JSON document, and reading it back.

Top-level keys (:data:`KEYS`, schema :data:`SCHEMA`):

``schema``
    ``"fastconv-bench/2"``.
``machine``
    The header of the run (:func:`fastconv.bench_report.environment`): CPU
    model and count, ISA (active, detected, compiled), threads and OpenMP
    runtime, BLAS and its thread limit, allocator, load average, the versions
    of fastconv, Python, NumPy (and torch), the kernel variants of the build,
    and ``fp32_peak_gflops``, the FMA peak measured by ``_core.fma_peak_gflops``.
``settings``
    How it was measured (:class:`fastconv.bench_cases.Settings`; an infinite
    limit is ``null``).
``strategies``
    Every strategy asked for: ``name``, ``description``, ``available`` and,
    when not, ``reason``.
``results``
    One record per strategy, layer and op with the keys :data:`RESULT_KEYS`
    (:class:`fastconv.bench_report.Result`): every sample in ms, the median,
    the rate, the peak extra bytes, the speed-ups over the reference and
    torch, the load while the row ran.
``summary``
    Per suite, the summary lines the table printed.
``wall_time_s``, ``load``
    The duration of the run and ``{"other_cpus", "steal_cpus"}`` over it
    (``null`` without ``/proc/stat``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

from fastconv.bench_cases import Settings
from fastconv.bench_report import Result
from fastconv.bench_strategies import Strategy

__all__ = ["KEYS", "RESULT_KEYS", "SCHEMA", "document", "read", "results", "write"]

SCHEMA = "fastconv-bench/2"
KEYS = ("schema", "machine", "settings", "strategies", "results", "summary", "wall_time_s", "load")
RESULT_KEYS = tuple(f.name for f in dataclasses.fields(Result))


def document(
    machine: dict[str, Any],
    settings: Settings,
    strategies: Sequence[Strategy],
    skipped: dict[str, str],
    results: Sequence[Result],
    summary: dict[str, list[str]],
    wall_time_s: float,
    load: tuple[float, float] | None,
) -> dict[str, Any]:
    """The JSON document of one run (see the module docstring)."""
    described = [
        {"name": s.name, "description": s.description, "available": True} for s in strategies
    ]
    described += [
        {"name": n, "description": "", "available": False, "reason": r} for n, r in skipped.items()
    ]
    setting_values = {
        k: None if isinstance(v, float) and math.isinf(v) else v
        for k, v in dataclasses.asdict(settings).items()
    }
    return {
        "schema": SCHEMA,
        "machine": machine,
        "settings": setting_values,
        "strategies": described,
        "results": [r.to_dict() for r in results],
        "summary": summary,
        "wall_time_s": wall_time_s,
        "load": None if load is None else {"other_cpus": load[0], "steal_cpus": load[1]},
    }


def write(path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` (strict JSON: no NaN or infinity)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")


def read(path: str) -> dict[str, Any]:
    """Read a document written by :func:`write`; ``ValueError`` when it lacks a key or
    has another schema."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} document")
    missing = [k for k in KEYS if k not in doc]
    missing += [
        f"results[{i}].{k}" for i, r in enumerate(doc["results"]) for k in RESULT_KEYS if k not in r
    ]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing[:5])}")
    return doc


def results(doc: dict[str, Any]) -> list[Result]:
    """The :class:`Result` records of a document."""
    return [Result(**{k: r[k] for k in RESULT_KEYS}) for r in doc["results"]]
