"""The `modelhub` command (also installed as the `kubectl-modelhub` plugin).

Each group of subcommands lives in its own module with a `register(subparsers)` function that adds its
parsers and sets `func` (a callable taking the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands; a missing one is skipped so partial installs still work.
_COMMAND_MODULES = ("modelhub.cli.run", "modelhub.cli.signing", "modelhub.cli.loadcmd", "modelhub.cli.kubectl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelhub", description="Govern ML models in Kubernetes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
