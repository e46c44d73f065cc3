"""The ``sparsebench`` command line. Each subcommand lives in ``sparsebench/commands/<name>.py``
and exposes ``register(subparsers)``; this file only collects them."""

from __future__ import annotations

import argparse
import importlib
import os
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
        code = int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"sparsebench: error: {exc}", file=sys.stderr)
        return 2
    if argv is None and getattr(args, "exit_at_once", False):
        exit_at_once(code)
    return code


def exit_at_once(code: int) -> None:
    """End the process without the interpreter's teardown. A command that opts in (``sparsebench run``:
    one Snakemake job, a fresh process that has written its result.json atomically and closed every file)
    has nothing left to do, and freeing thousands of modules (torch, transformers, timm) and the model costs
    each job about 1 s of CPU. Only for the command line (``main()`` without ``argv``): a caller in Python
    gets the code back. atexit handlers do not run (coverage of such a process is not recorded)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
