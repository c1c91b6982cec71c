"""`vigil ...`: parse arguments, build settings, call one function. Nothing else lives here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from monitor.config import Settings, load_settings, masked_dump
from monitor.errors import VigilError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vigil", description="Monitor a fine-tuned LLM in production.")
    p.add_argument("--config", type=Path, help="YAML settings file (also $VIGIL_CONFIG)")
    p.add_argument("--data-dir", type=Path, help="embedded store directory (store.data_dir)")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (kafka.bootstrap_servers)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("up", help="embedded stack: dev broker + chDB + worker + HTTP endpoint")
    demo = sub.add_parser("demo", help="`up` plus generated traffic with incidents; prints alerts")
    demo.add_argument("--events", type=int, default=6000, help="events to generate")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    sub.add_parser("worker", help="the Faust worker against configured Kafka and ClickHouse")

    produce = sub.add_parser("produce", help="send a JSONL file of events to Kafka")
    produce.add_argument("file", type=Path)
    produce.add_argument("--topic", help="topic (default: kafka.events_topic)")
    produce.add_argument("--json", action="store_true", help="print the summary as JSON")

    replay = sub.add_parser("replay", help="run the whole pipeline in batch over a JSONL file")
    replay.add_argument("file", type=Path)
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.add_argument("--heuristics-only", action="store_true", help="disable model scorers")

    gen = sub.add_parser("generate", help="write generated traffic (with incidents) as JSONL")
    gen.add_argument("file", type=Path)
    gen.add_argument("--events", type=int, default=10_000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--malformed", type=float, default=0.0, help="share of broken lines")
    gen.add_argument("--incidents", action="store_true", help="inject the demo's incidents")

    config = sub.add_parser("config", help="settings")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print the effective settings, secrets masked")
    show.add_argument("--json", action="store_true")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.data_dir is not None:
        out.setdefault("store", {})["data_dir"] = str(args.data_dir)
    if args.bootstrap_servers:
        out.setdefault("kafka", {})["bootstrap_servers"] = args.bootstrap_servers
    if getattr(args, "heuristics_only", False):
        out.update({k: {"enabled": False} for k in ("judge", "toxicity", "embedding")})
    return out


def _print_summary(data: dict[str, Any], as_json: bool) -> None:
    from monitor.pipeline import render_summary

    print(orjson.dumps(data).decode() if as_json else render_summary(data))


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command = args.command
    if command == "config":
        data = masked_dump(settings)
        if args.json:
            print(orjson.dumps(data).decode())
        else:
            import yaml

            print(yaml.safe_dump(data, sort_keys=False), end="")
        return 0
    if command == "replay":
        from monitor.replay import run_replay

        _print_summary(run_replay(settings, args.file).as_dict(), args.json)
        return 0
    if command == "generate":
        from monitor.traffic import write_traffic

        n = write_traffic(args.file, args.events, args.seed, args.malformed, args.incidents)
        print(f"wrote {n} lines to {args.file}")
        return 0
    if command == "produce":
        from streams.produce import produce_file

        _print_summary(produce_file(settings, args.file, args.topic), args.json)
        return 0
    if command == "worker":
        from streams.worker import run_worker

        return run_worker(settings)
    if command == "up":
        from streams.stack import run_up

        return run_up(settings)
    if command == "demo":
        from streams.stack import run_demo

        return run_demo(settings, events=args.events, as_json=args.json)
    raise AssertionError(f"unhandled command {command}")  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config, _overrides(args))
        from monitor.logs import setup_logging

        setup_logging(settings.log_level)
        return _dispatch(args, settings)
    except VigilError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
