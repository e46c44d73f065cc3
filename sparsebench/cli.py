"""The ``sparsebench`` command line. Each subcommand lives in ``sparsebench/commands/<name>.py``
and exposes ``register(subparsers)``; this file only collects them."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from sparsebench.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    import sparsebench.commands as pkg

    parser = argparse.ArgumentParser(prog="sparsebench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        importlib.import_module(f"sparsebench.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"sparsebench: error: {exc}", file=sys.stderr)
        return 2
