"""`vigil store ddl [--cluster NAME]`: thin, the DDL is built in `monitor.store.cluster_ddl`."""

from __future__ import annotations

import argparse
from typing import Any

from monitor.config import Settings


def add_parsers(commands: Any) -> None:
    """The subcommands, on ``commands`` (the parser's ``_Commands``: common options added)."""
    ddl = commands.add_parser(
        "ddl", help="print the schema's DDL (single node, or replicated + distributed)"
    )
    ddl.add_argument(
        "--cluster",
        metavar="NAME",
        help="a cluster from the servers' remote_servers: replicated local tables ON CLUSTER "
        "NAME and Distributed tables under Vigil's table names (deploy/SCALING.md)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store.cluster_ddl import ddl_statements, script

    s = settings.store
    statements = ddl_statements(
        s.database, s.ttl_days, settings.privacy.raw_text_days, cluster=args.cluster
    )
    print(script(statements), end="")
    return 0
