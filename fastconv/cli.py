"""The ``fastconv`` command line: ``fastconv <subcommand> [options]``.

Subcommands live in their own modules. Each module provides

* ``add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser``
  to declare its options, and
* ``run(args: argparse.Namespace) -> int`` to do the work (the exit status),

and is listed once in :data:`SUBCOMMANDS`. Adding a subcommand is one line
there, e.g. ``Subcommand("train", "fastconv.train", "train a model on MNIST")``.
The module is imported only when its subcommand runs or when help is shown.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NamedTuple

__all__ = ["SUBCOMMANDS", "Subcommand", "build_parser", "main"]


class Subcommand(NamedTuple):
    """A subcommand: its name, the module implementing it and a one-line help."""

    name: str
    module: str
    help: str


#: Every subcommand of ``fastconv``, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        "bench",
        "fastconv.bench",
        "time fastconv's kernels against the NumPy reference (and PyTorch) on named layers",
    ),
    Subcommand("train", "fastconv.train", "train a model on (Fashion-)MNIST and test it"),
)


def _load(sub: Subcommand) -> ModuleType:
    return importlib.import_module(sub.module)


def build_parser(subcommands: Sequence[Subcommand] = SUBCOMMANDS) -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of ``subcommands``.

    Sub-parsers are filled lazily: only the chosen subcommand's module is
    imported (see :func:`main`), so a broken or slow-to-import subcommand
    does not affect the others.
    """
    parser = argparse.ArgumentParser(
        prog="fastconv",
        description="SIMD-optimised, OpenMP-threaded CPU convolution and pooling for NumPy.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for sub in subcommands:
        subparsers.add_parser(sub.name, help=sub.help, description=sub.help, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastconv`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass: find the subcommand without parsing its options.
    args, _ = parser.parse_known_args(argv)
    if args.version:
        import fastconv

        print(f"fastconv {fastconv.__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    sub = next(s for s in SUBCOMMANDS if s.name == args.command)
    module = _load(sub)
    # Second pass: a parser for this subcommand alone, with its real options.
    sub_parser = argparse.ArgumentParser(prog=f"fastconv {sub.name}", description=sub.help)
    module.add_arguments(sub_parser)
    sub_args = sub_parser.parse_args(argv[argv.index(sub.name) + 1 :])
    return int(module.run(sub_args) or 0)


if __name__ == "__main__":
    sys.exit(main())
