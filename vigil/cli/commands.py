"""The command table: one small function per `vigil` command.

Each takes the parsed arguments and the settings, calls into the library, prints, and
returns the exit status. Heavy imports happen inside the command that needs them, so
`vigil config show` does not load torch or chDB.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import orjson

from monitor.config import Settings, masked_dump

Command = Callable[[argparse.Namespace, Settings], int]


def _print_summary(data: dict[str, Any], as_json: bool) -> None:
    from monitor.pipeline import render_summary

    print(orjson.dumps(data).decode() if as_json else render_summary(data))


def judge(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.scorers.judge.llama_server import serve

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


def drift(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.cli.drift import run_drift_command

    return run_drift_command(settings, args.json, args.since, args.model_version, args.limit)


def baseline(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.cli.drift import run_baseline_command

    return run_baseline_command(
        settings,
        args.baseline_command,
        getattr(args, "start", None),
        getattr(args, "end", None),
        getattr(args, "model_version", ""),
        args.json,
    )


def alerts(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.cli.alerts import run_alerts_command

    return run_alerts_command(settings, as_json=args.json, since=args.since, examples=args.examples)


def config(args: argparse.Namespace, settings: Settings) -> int:
    data = masked_dump(settings)
    if args.json:
        print(orjson.dumps(data).decode())
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def replay(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.replay import run_replay
    from vigil.cli.progress import ReplayBar

    with ReplayBar(enabled=not args.json) as bar:
        summary = run_replay(settings, args.file, args.format, on_progress=bar)
    _print_summary(summary.as_dict(), args.json)
    j = settings.judge
    if not args.json and j.enabled and not j.base_url and j.autostart_local:
        print(
            f"note: the judge is the bundled SmolLM2 (no judge.base_url), so at most "
            f"judge.local_budget_per_hour={j.local_budget_per_hour:g} events an hour of event "
            "time are judged; set judge.base_url to a real judge to judge more"
        )
    return 0


def generate(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.traffic import write_traffic

    n = write_traffic(args.file, args.events, args.seed, args.malformed, args.incidents)
    print(f"wrote {n} lines to {args.file}")
    return 0


def produce(args: argparse.Namespace, settings: Settings) -> int:
    from streams.produce import count_lines, produce_file, render_produce
    from vigil.cli.progress import ProduceBar

    bar = ProduceBar(count_lines(args.file), enabled=not args.json) if args.file.is_file() else None
    if bar is None:
        sent = produce_file(settings, args.file, args.topic)  # says why it cannot read it
    else:
        with bar:
            sent = produce_file(settings, args.file, args.topic, on_progress=bar)
    print(orjson.dumps(sent).decode() if args.json else render_produce(sent))
    return 1 if sent["failed"] else 0


def worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker import run_worker

    return run_worker(settings)


def up(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.stack import run_up

    return run_up(settings)


def demo(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.stack import run_demo

    return run_demo(settings, events=args.events, as_json=args.json)


def failures(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.cli.failures import run

    return run(args, settings)


def evalset(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.cli.evalset import dispatch

    return dispatch(args, settings)


def dashboards(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.cli.dashboards import run

    return run(args, settings)


def store(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.cli.store import run

    return run(args, settings)


def report(args: argparse.Namespace, settings: Settings) -> int:
    from vigil.cli.report import run

    return run(args, settings)


#: `vigil NAME` runs ``COMMANDS[NAME]``; the parser (`vigil.cli.parser`) defines the same names.
COMMANDS: dict[str, Command] = {
    "up": up,
    "demo": demo,
    "worker": worker,
    "produce": produce,
    "replay": replay,
    "generate": generate,
    "judge": judge,
    "drift": drift,
    "baseline": baseline,
    "alerts": alerts,
    "config": config,
    "failures": failures,
    "evalset": evalset,
    "dashboards": dashboards,
    "report": report,
    "store": store,
}
