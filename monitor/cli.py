"""`vigil ...`: parse arguments, build settings, call one function. Nothing else lives here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from monitor.config import Settings, load_settings, masked_dump
from monitor.errors import VigilError


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (`vigil replay --data-dir d f`
    and `vigil --data-dir d replay f` are the same); unset ones stay off the namespace."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", type=Path, help="YAML settings file (also $VIGIL_CONFIG)")
    common.add_argument("--data-dir", type=Path, help="embedded store directory (store.data_dir)")
    common.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (kafka.bootstrap_servers)"
    )
    return common


class _Commands:
    """``add_parser`` that gives every (sub)command the common options."""

    def __init__(self, action: Any, common: argparse.ArgumentParser) -> None:
        self._action, self._common = action, common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._action.add_parser(
            name, parents=[self._common], **kwargs
        )
        return parser


def _parser() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(
        prog="vigil", description="Monitor a fine-tuned LLM in production.", parents=[common]
    )
    sub = _Commands(p.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)

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

    judge = sub.add_parser("judge", help="the LLM judge")
    judge_sub = _Commands(judge.add_subparsers(dest="judge_command", required=True), common)
    serve = judge_sub.add_parser("serve", help="serve a GGUF file as a local OpenAI-style judge")
    serve.add_argument("--model", type=Path, help="GGUF file (default: the bundled SmolLM2-135M)")
    serve.add_argument("--alias", help="model name clients use (default: the file name)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--threads", type=int, help="CPU threads (default: judge.local_threads)")
    serve.add_argument("--n-ctx", type=int, help="context window (default: judge.local_n_ctx)")
    serve.add_argument("--chat-format", help="force a llama.cpp chat format (default: the GGUF's)")

    drift = sub.add_parser("drift", help="list drift reports (newest first)")
    drift.add_argument("--json", action="store_true", help="print the reports as JSON")
    drift.add_argument(
        "--since", help="ISO time, or a duration (30m, 2h, 1d) before the newest report"
    )
    drift.add_argument("--model-version", help="only this version ('' = all traffic pooled)")
    drift.add_argument("--limit", type=int, default=100, help="most reports to list")

    baseline = sub.add_parser("baseline", help="the pinned drift reference")
    baseline_sub = _Commands(
        baseline.add_subparsers(dest="baseline_command", required=True), common
    )
    pin = baseline_sub.add_parser("pin", help="pin a span of prompt embeddings as the reference")
    pin.add_argument("--from", dest="start", help="ISO time (default: --to - reference_minutes)")
    pin.add_argument("--to", dest="end", help="ISO time, exclusive (default: the latest embedding)")
    unpin = baseline_sub.add_parser("unpin", help="drop a pin (back to the rolling reference)")
    show_pins = baseline_sub.add_parser("show", help="list pinned baselines")
    for p_ in (pin, unpin):
        p_.add_argument("--model-version", default="", help="a baseline for this version only")
    for p_ in (pin, unpin, show_pins):
        p_.add_argument("--json", action="store_true")

    alerts = sub.add_parser("alerts", help="list alerts (firing and resolved, newest first)")
    alerts.add_argument("--json", action="store_true", help="print the alerts as JSON")
    alerts.add_argument("--since", help="RFC 3339 time, or a duration back from now (30m, 6h, 2d)")
    alerts.add_argument(
        "--examples", metavar="ALERT_ID", help="list the failing events behind one alert"
    )

    config = sub.add_parser("config", help="settings")
    config_sub = _Commands(config.add_subparsers(dest="config_command", required=True), common)
    show = config_sub.add_parser("show", help="print the effective settings, secrets masked")
    show.add_argument("--json", action="store_true")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        out.setdefault("store", {})["data_dir"] = str(args.data_dir)
    if getattr(args, "bootstrap_servers", None):
        out.setdefault("kafka", {})["bootstrap_servers"] = args.bootstrap_servers
    if getattr(args, "heuristics_only", False):
        out.update({k: {"enabled": False} for k in ("judge", "toxicity", "embedding")})
    return out


def _print_summary(data: dict[str, Any], as_json: bool) -> None:
    from monitor.pipeline import render_summary

    print(orjson.dumps(data).decode() if as_json else render_summary(data))


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command = args.command
    if command == "judge":
        from monitor.llama_server import serve

        j = settings.judge
        return serve(
            args.model,
            alias=args.alias,
            host=args.host,
            port=args.port,
            n_threads=args.threads or j.local_threads,
            n_ctx=args.n_ctx or j.local_n_ctx,
            chat_format=args.chat_format,
        )
    if command == "drift":
        from monitor.drift_reports import run_drift_command

        return run_drift_command(settings, args.json, args.since, args.model_version, args.limit)
    if command == "baseline":
        from monitor.drift_reports import run_baseline_command

        return run_baseline_command(
            settings,
            args.baseline_command,
            getattr(args, "start", None),
            getattr(args, "end", None),
            getattr(args, "model_version", ""),
            args.json,
        )
    if command == "alerts":
        from monitor.alerts import run_alerts_command

        return run_alerts_command(
            settings, as_json=args.json, since=args.since, examples=args.examples
        )
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
        from streams.produce import produce_file, render_produce

        sent = produce_file(settings, args.file, args.topic)
        print(orjson.dumps(sent).decode() if args.json else render_produce(sent))
        return 1 if sent["failed"] else 0
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
        settings = load_settings(getattr(args, "config", None), _overrides(args))
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
