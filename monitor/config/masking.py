"""Credentials out of URLs before they are shown or logged, and URL checks for settings.

``mask_url`` hides the ``user:password@`` part of a URL (``https://***@host/...``);
``mask_urls`` does it for every URL inside a longer text (a log message, an error). Both
are used by `vigil config show` and wherever a URL or endpoint is logged, so a credential
put in a URL (``clickhouse://app:s3cret@db:8123``) never reaches a terminal or a log.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from monitor.logs import USERINFO_MASK, mask_urls

__all__ = ["check_webhook_url", "is_loopback_url", "mask_url", "mask_urls"]

# host:port lists without a scheme (Kafka bootstrap servers) may still carry user:pass@.
_BARE_USERINFO = re.compile(r"(?P<lead>^|,)\s*[^/@\s:,]+:[^/@\s,]*@")


def mask_url(url: str) -> str:
    """``url`` (or a comma-separated ``host:port`` list) with any ``user[:password]@``
    replaced by ``***@``; other text unchanged."""
    if "@" not in url:
        return url
    return _BARE_USERINFO.sub(lambda m: f"{m.group('lead')}{USERINFO_MASK}@", mask_urls(url))


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str, field: str) -> str:
    """``url`` when it is an http(s) URL with a host: https, or http to a loopback host.

    Raises ValueError naming ``field`` otherwise (a notifier would post alert text to it).
    The message never shows the URL: webhook URLs carry their token in the path."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    scheme = parts.scheme.lower() if parts else ""
    if scheme not in {"http", "https"} or not host:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ValueError(f"{field} must be an http(s) URL with a host (got {shown})")
    if scheme == "http" and not is_loopback_url(url):
        raise ValueError(f"{field} must use https (plain http only to a loopback host)")
    return url
