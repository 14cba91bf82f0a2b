"""`vsml-gym`: one command line for the whole toolkit.

Subcommands come from providers: the suite's own (`vsml_gym.commands`) and any package that
declares an entry point in the group ``vsml_gym.commands`` (the learners add `train`, the
benchmarks add `benchmark`, ...). A provider is a function `add(subparsers)` that adds
sub-parsers and sets `run=callable(args) -> int` on each.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import entry_points
from typing import Callable, NoReturn, Sequence

from vsml_gym import __version__
from vsml_gym.commands import data, envs
from vsml_gym.plugins import import_plugins

Provider = Callable[[argparse._SubParsersAction], None]


class OneLineErrorParser(argparse.ArgumentParser):
    """A usage mistake costs one line on stderr (exit code 2), with where to look, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _providers() -> list[Provider]:
    builtin: list[Provider] = [data.add_commands, envs.add_commands]
    return builtin + [ep.load() for ep in entry_points(group="vsml_gym.commands")]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="vsml-gym",
        description="Meta-learning learning algorithms on online supervised tasks (VSML and baselines).",
    )
    parser.add_argument("--version", action="version", version=f"vsml-gym {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in _providers():
        add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import_plugins(getattr(args, "imports", ()))
        return int(args.run(args) or 0)
    except BrokenPipeError:  # `vsml-gym zoo --json | head`: the reader has gone, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FileNotFoundError, ModuleNotFoundError, ValueError, TypeError) as error:
        print(f"vsml-gym {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system refused: a file where a folder must go, no permission, ...
        print(f"vsml-gym {args.command}: error: {_os_error_line(error)}", file=sys.stderr)
        return 2


def _os_error_line(error: OSError) -> str:
    if not error.filename:
        return str(error)
    if isinstance(error, FileExistsError):
        return f"{error.filename} is a file, where a folder is needed"
    if isinstance(error, NotADirectoryError):
        return f"{error.filename}: a part of this path is a file, not a folder"
    return f"{error.filename}: {error.strerror}"


if __name__ == "__main__":
    sys.exit(main())
