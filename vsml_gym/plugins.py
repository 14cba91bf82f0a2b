"""Users' own learners and env ids reach the command line by importing the module that
registers them (`vsml-gym benchmark --import my_learners ...`, or `imports:` in a config)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Sequence


def add_import_option(parser: argparse.ArgumentParser) -> None:
    """`--import MODULE` for commands that take learner names or env ids (imported by `vsml-gym` before the command runs)."""
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (a module name or a .py file) so that the learners and env ids it "
                             "registers can be named (repeatable)")


def import_plugins(modules: Sequence[str]) -> None:
    """Import each module (a dotted name, found on sys.path or in the current folder, or a
    path to a .py file) once, so that what it registers at import time is available."""
    for module in modules:
        if module.endswith(".py") or "/" in module:
            _import_file(Path(module))
            continue
        if module in sys.modules:
            continue
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.append(str(Path.cwd()))  # a console script does not look in the current folder
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module.split(".")[0] and error.name != module:
                raise  # the plug-in itself imports something missing: its own traceback says what
            raise ModuleNotFoundError(f"cannot import {module!r}: no such module on sys.path or in the current "
                                      f"folder {Path.cwd()} (a file: --import path/to/{module}.py)") from None


def _import_file(path: Path) -> None:
    name = f"vsml_gym_plugin_{path.stem}"
    if not path.is_file():
        raise FileNotFoundError(f"cannot import {str(path)!r}: no such file")
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
