"""`vigil evalset ...`: one module per subcommand, listed here.

Each module defines ``HELP`` (subcommand -> one line), ``add_arguments(name, parser)``
and ``run(name, args, settings) -> int`` (the exit status); one module may serve several
subcommands (``browse``: list, show, diff). Modules keep their heavy imports
inside ``run``, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType
from typing import Any

from monitor.config import Settings

#: subcommand -> module; the order is the order of `vigil evalset --help`.
SUBCOMMANDS = {
    "export": "vigil.cli.evalset.export",
    "list": "vigil.cli.evalset.browse",
    "show": "vigil.cli.evalset.browse",
    "diff": "vigil.cli.evalset.browse",
    "check": "vigil.cli.evalset.check",
    "review": "vigil.cli.evalset.review",
    "agreement": "vigil.cli.evalset.agreement",
    "run": "vigil.cli.evalset.run",
    "runs": "vigil.cli.evalset.run",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(SUBCOMMANDS[name])


def add_parsers(commands: Any) -> None:
    """Add ``vigil evalset SUB`` for every subcommand. ``commands`` is the CLI's
    sub-parser factory (it adds the options every command takes)."""
    for name in SUBCOMMANDS:
        module = _module(name)
        parser: argparse.ArgumentParser = commands.add_parser(name, help=module.HELP[name])
        module.add_arguments(name, parser)


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    status: int = _module(args.evalset_command).run(args.evalset_command, args, settings)
    return status
