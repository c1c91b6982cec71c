"""The argument parser of `vigil`: every command, its options and their help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (`vigil replay --data-dir d f`
    and `vigil --data-dir d replay f` are the same); unset ones stay off the namespace."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--config", type=Path, help="YAML settings file (also $VIGIL_CONFIG)")
    common.add_argument("--data-dir", type=Path, help="embedded store directory (store.data_dir)")
    common.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (kafka.bootstrap_servers)"
    )
    common.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logs on stderr at this level and above (log_level; default WARNING)",
    )
    common.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        help="text on a terminal, JSON otherwise (auto), or as asked (log_format)",
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


def build_parser() -> argparse.ArgumentParser:
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
    replay.add_argument(
        "--format",
        choices=("vigil", "otlp_proto", "otlp_json", "openai"),
        default="vigil",
        help="records in the file: vigil (JSONL events), otlp_json (one OTLP/JSON export "
        "per line), otlp_proto (length-prefixed OTLP protobuf exports), openai (JSONL of "
        "chat-completions request/response logs)",
    )

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

    failures = sub.add_parser("failures", help="captured production failures (newest first)")
    from vigil.cli import failures as failures_command

    failures_command.add_arguments(failures)

    evalset = sub.add_parser("evalset", help="versioned eval sets made from captured failures")
    from vigil.cli import evalset as evalset_commands

    evalset_commands.add_parsers(
        _Commands(evalset.add_subparsers(dest="evalset_command", required=True), common)
    )

    report = sub.add_parser("report", help="write a self-contained HTML report of the store")
    from vigil.cli import report as report_command

    report_command.add_arguments(report)

    dashboards = sub.add_parser("dashboards", help="Grafana dashboards as code: build or push")
    from vigil.cli import dashboards as dashboards_command

    dashboards_command.add_parsers(
        _Commands(dashboards.add_subparsers(dest="dashboards_command", required=True), common)
    )

    store = sub.add_parser("store", help="the ClickHouse schema: print its DDL")
    from vigil.cli import store as store_command

    store_command.add_parsers(
        _Commands(store.add_subparsers(dest="store_command", required=True), common)
    )

    config = sub.add_parser("config", help="settings")
    config_sub = _Commands(config.add_subparsers(dest="config_command", required=True), common)
    show = config_sub.add_parser("show", help="print the effective settings, secrets masked")
    show.add_argument("--json", action="store_true")
    return p


