"""Alerting: rules as data, sequential tests per segment, alert states and their notices.

- `alert_timer(settings, store)`: the event-time timer registered in `monitor.assembly`
  (TIMERS["alerts"]); `vigil replay` and the live worker both run it.
- `AlertEvaluator`: what that timer runs, ``await evaluator(as_of)``.
- `list_alerts(store, since=None)` / `get_alert(store, alert_id)`: alert episodes in their
  latest state (what `vigil alerts` prints; `monitor.notifiers.format` formats them).
- `Rule`, `load_rules`, `parse_rules`: the rules.

The pieces: `rules` (built-in defaults in ``monitor/alerts/default_rules.yaml``), `stats`
and `model` (pure maths: CUSUM on LLRs, thresholds from a false-alarm budget, judge
reliability), `metrics` (what each metric asks the store; the SQL is in
`monitor.store.queries.alerts`), `windows` (the spans a rule looks at), `evaluation` (one
rule's test per segment), `drift_metric` (the drift rule), `state` (pending / firing /
resolved with hysteresis and cooldown), `transitions` (states resumed, stored, notified),
`evaluator` (the coordinator), `listing` (reading alerts back); notifiers live in
`monitor.notifiers`.
"""

from __future__ import annotations

from monitor.alerts.evaluator import AlertEvaluator, alert_timer
from monitor.alerts.listing import get_alert, list_alerts
from monitor.alerts.rules import Rule, load_rules, parse_rules

__all__ = [
    "AlertEvaluator",
    "Rule",
    "alert_timer",
    "get_alert",
    "list_alerts",
    "load_rules",
    "parse_rules",
]
