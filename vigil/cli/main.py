"""The console script: arguments -> settings -> logging -> one command -> exit status."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monitor.config import load_settings
from monitor.errors import VigilError
from monitor.logs import setup_logging
from vigil.cli.commands import COMMANDS
from vigil.cli.parser import build_parser


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that flags set; they beat env and the YAML file."""
    out: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        out.setdefault("store", {})["data_dir"] = str(args.data_dir)
    if getattr(args, "bootstrap_servers", None):
        out.setdefault("kafka", {})["bootstrap_servers"] = args.bootstrap_servers
    if getattr(args, "log_level", None):
        out["log_level"] = args.log_level
    if getattr(args, "log_format", None):
        out["log_format"] = args.log_format
    if getattr(args, "heuristics_only", False):
        out.update({k: {"enabled": False} for k in ("judge", "toxicity", "embedding")})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one `vigil` command; 2 for a `VigilError` (printed as one line), 130 on Ctrl-C."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None), overrides(args))
        setup_logging(settings.log_level, settings.log_format)
        return COMMANDS[args.command](args, settings)
    except VigilError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
