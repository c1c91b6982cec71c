"""`vigil alerts`: the alert list, or the failing events behind one alert."""

from __future__ import annotations

import orjson

from monitor.alerts.listing import alert_examples, get_alert, list_alerts
from monitor.config import Settings
from monitor.errors import ConfigError
from monitor.notifiers.format import format_alert
from monitor.store import open_store
from vigil.cli.args import since_arg


def run_alerts_command(
    settings: Settings, *, as_json: bool, since: str | None, examples: str | None
) -> int:
    """List alerts, or (``examples``: an alert id) the failing events behind one."""
    store = open_store(settings)
    try:
        if examples:
            alert = get_alert(store, examples)
            if alert is None:
                raise ConfigError(f"no alert {examples!r}")
            sql, rows = alert_examples(store, examples)
            if as_json:
                print(orjson.dumps({"alert": alert, "examples": rows}, default=str).decode())
            else:
                print(format_alert(alert))
                print(sql)
                for row in rows:
                    print("  " + "  ".join(str(v) for v in row.values()))
            return 0
        alerts = list_alerts(store, since_arg("--since", since))
        if as_json:
            print(orjson.dumps(alerts, default=str).decode())
        elif not alerts:
            print("no alerts")
        else:
            for alert in alerts:
                print(f"{alert['alert_id']}  {format_alert(alert)}")
        return 0
    finally:
        store.close()
