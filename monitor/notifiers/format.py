"""How an alert reads: one line for stdout and chat, built from the `list_alerts` dict."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _num(value: Any, pct: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    return f"{100 * float(value):.1f}%" if pct else f"{float(value):.3g}"


def format_alert(alert: Mapping[str, Any]) -> str:
    """``[FIRING critical] rule segment: message (confidence) since ...; examples: command``."""
    state = str(alert.get("state", "")).upper()
    head = f"[{state} {alert.get('severity', '')}]".replace(" ]", "]")
    segment = alert.get("segment_key") or "all traffic"
    message = alert.get("message") or (
        f"{alert.get('metric')} {_num(alert.get('value'), False)} vs baseline "
        f"{_num(alert.get('baseline'), False)}"
    )
    parts = [f"{head} {alert.get('rule')} [{segment}]: {message}"]
    conf = alert.get("confidence")
    if isinstance(conf, int | float) and conf > 0 and alert.get("state") != "resolved":
        parts.append(f"confidence {conf:.3f}")
    when = alert.get("resolved_at") if alert.get("state") == "resolved" else alert.get("onset")
    if when:
        parts.append(("at " if alert.get("state") == "resolved" else "since ") + str(when))
    text = "; ".join(parts)
    if alert.get("command") and alert.get("state") == "firing":
        text += f"; examples: {alert['command']}"
    return text


