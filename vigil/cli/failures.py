"""`vigil failures`: the production failures the capture rules caught."""

from __future__ import annotations

import argparse

from monitor.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the failures as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise NotImplementedError("vigil failures is being built")
