"""`vigil dashboards build` and `vigil dashboards push`: thin, the work is in `dashboards`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.config import Settings
from monitor.errors import ConfigError


def add_parsers(commands: Any) -> None:
    """The subcommands, on ``commands`` (the parser's ``_Commands``: common options added)."""
    build = commands.add_parser("build", help="write dashboards/generated/*.json")
    build.add_argument("--out", type=Path, help="directory (default: dashboards/generated)")
    push = commands.add_parser("push", help="create or update them in a Grafana")
    push.add_argument("--url", required=True, help="Grafana base URL (https://grafana:3000)")
    push.add_argument(
        "--token", help="service-account token (default: $GRAFANA_TOKEN; not echoed anywhere)"
    )
    push.add_argument("--folder", default="vigil", help="folder uid (created when missing)")
    push.add_argument(
        "--datasource-url",
        help="also create the ClickHouse datasource, pointing here (http://clickhouse:8123)",
    )
    push.add_argument("--datasource-user", default="default")
    push.add_argument(
        "--datasource-password-env",
        default="CLICKHOUSE_PASSWORD",
        help="environment variable holding the datasource password",
    )

def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.dashboards_command == "build":
        from dashboards.build import GENERATED, write_all

        for path in write_all(args.out or GENERATED, settings.store.database):
            print(f"wrote {path}")
        return 0
    from dashboards.push import ClickHouseSource, push

    token = args.token or os.environ.get("GRAFANA_TOKEN", "")
    if not token:
        raise ConfigError("vigil dashboards push needs --token or $GRAFANA_TOKEN")
    source = None
    if args.datasource_url:
        parts = urlsplit(args.datasource_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("--datasource-url must be http(s)://host[:port]")
        source = ClickHouseSource(
            host=parts.hostname,
            port=parts.port or (8443 if parts.scheme == "https" else 8123),
            secure=parts.scheme == "https",
            username=args.datasource_user,
            password=os.environ.get(args.datasource_password_env, ""),
        )
    report = push(
        args.url, token, database=settings.store.database, folder_uid=args.folder, source=source
    )
    for line in report.lines():
        print(line)
    return 0
