"""What the embedded store's HTTP endpoint lets a statement do, before chDB sees it.

The engine is the first line: readers run on their own chDB session set to
``readonly=2`` (writes, DDL, SYSTEM and changes to ``readonly`` itself fail in ClickHouse
whatever the SQL text hides). This module is the second, on a real tokenization of the
statement (strings, quoted identifiers, heredocs and every comment form ClickHouse
knows: ``--``, ``#``, ``/* */``), never a first-word regex:

- one statement per request;
- readers: SELECT / WITH / SHOW / DESCRIBE / EXISTS / EXPLAIN only (no SET: the
  session is shared by every reader);
- the writer (Vigil's own CLI, holding the key the daemon publishes in its lock file):
  also INSERT, ``CREATE ... IF NOT EXISTS``, ``ALTER TABLE ... MODIFY SETTING`` (what
  `Store.migrate` and the CLI's inserts send) and table maintenance (``OPTIMIZE TABLE``,
  ``TRUNCATE TABLE``), nothing else (never DROP): whoever holds the key can read the
  data directory anyway, so this keeps Vigil's own tools working, not a secret;
- table functions (and the ``file`` scalar function) only from an allow-list;
- resource limits the endpoint sets (``max_execution_time``...) cannot be overridden.
"""

from __future__ import annotations

import hmac
import logging
import re
from base64 import b64decode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message

from monitor.store.http_protocol import WRITE_KEYWORDS, ClickHouseError

log = logging.getLogger("vigil.store.http")

#: Table functions served by default: they generate data and touch nothing outside.
DEFAULT_TABLE_FUNCTIONS = (
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateSeries",
    "primes", "values", "format", "null", "view",
)  # fmt: skip
#: Always refused unless allowed, whatever chDB's own list says (scalar ``file`` reads
#: server files too).
ALWAYS_GUARDED = (
    "file", "url", "s3", "remote", "remoteSecure", "cluster", "mysql", "postgresql", "hdfs",
    "input", "executable", "python", "odbc", "jdbc",
)  # fmt: skip
#: Settings the endpoint pins for readers; a statement or URL may not change them.
PINNED_SETTINGS = frozenset(
    {"readonly", "max_execution_time", "max_memory_usage", "allow_ddl",
     "timeout_before_checking_execution_speed", "max_estimated_execution_time"}
)  # fmt: skip
READ_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
    |(?P<string>'(?:[^'\\]|\\.|'')*')
    |(?P<quoted>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
    |(?P<heredoc>\$(?P<tag>[A-Za-z0-9_]*)\$.*?\$(?P=tag)\$)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<number>[0-9][0-9A-Za-z_.]*)
    |(?P<punct>.)""",
    re.S | re.X,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, quoted, string, number, punct
    text: str

    @property
    def name(self) -> str:
        """An identifier's name (quotes removed), or ''."""
        if self.kind == "word":
            return self.text
        if self.kind == "quoted":
            return self.text[1:-1]
        return ""


def tokens(sql: str) -> list[Token]:
    """The significant tokens of ``sql`` (comments and whitespace dropped)."""
    out: list[Token] = []
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if match is None or match.end() == pos:  # pragma: no cover - punct matches any char
            raise ClickHouseError(62, "SYNTAX_ERROR", "cannot tokenize the query")
        kind = match.lastgroup or "punct"
        text = match.group(0)
        if kind == "tag":
            kind = "heredoc"
        if kind == "punct" and (text in "'`\"" or sql.startswith("/*", pos)):
            raise ClickHouseError(62, "SYNTAX_ERROR", "unterminated string, identifier or comment")
        if kind not in ("ws", "comment"):
            out.append(Token("string" if kind == "heredoc" else kind, text))
        pos = match.end()
    return out


class Guard:
    """Checks one statement for a reader or the writer (see the module docstring)."""

    def __init__(self, table_functions: Iterable[str], allowed: Iterable[str]) -> None:
        self.allowed = {name.lower() for name in allowed}
        self.guarded = {name.lower() for name in (*table_functions, *ALWAYS_GUARDED)}

    def check(self, sql: str, *, writer: bool) -> str:
        """The statement's first keyword, upper-cased; `ClickHouseError` if refused."""
        toks = tokens(sql)
        while toks and toks[-1].text == ";":
            toks.pop()
        if any(t.text == ";" for t in toks):
            raise ClickHouseError(62, "SYNTAX_ERROR", "Multi-statements are not allowed")
        words = [t.text.upper() for t in toks if t.kind == "word"]
        first = next((t.text.upper() for t in toks if t.text != "("), "")
        if first not in READ_KEYWORDS and first not in WRITE_KEYWORDS:
            raise ClickHouseError(
                62, "SYNTAX_ERROR", f"Syntax error: no statement begins with {first[:40]!r}"
            )
        if first not in READ_KEYWORDS and not (writer and _writer_may(first, words)):
            raise ClickHouseError(
                164,
                "READONLY",
                f"Cannot execute query in readonly mode: {first or 'empty'} statements are "
                "not served by this endpoint (it is read-only)",
            )
        if "INFILE" in words or "OUTFILE" in words:
            raise ClickHouseError(
                497, "ACCESS_DENIED", "Not enough privileges: INFILE/OUTFILE are not served"
            )
        for index, tok in enumerate(toks):
            name = tok.name
            if not name:
                continue
            after = toks[index + 1].text if index + 1 < len(toks) else ""
            lowered = name.lower()
            if after == "(" and lowered in self.guarded and lowered not in self.allowed:
                raise ClickHouseError(
                    497,
                    "ACCESS_DENIED",
                    f"Not enough privileges: table function {name} is not allowed by this "
                    "endpoint (store.http_allowed_table_functions)",
                )
            if after == "=" and lowered in PINNED_SETTINGS and not writer:
                raise pinned(name)
        return first


def pinned(name: str) -> ClickHouseError:
    return ClickHouseError(
        164, "READONLY", f"Cannot modify '{name}' setting: this endpoint pins it"
    )


def _writer_may(first: str, words: list[str]) -> bool:
    if first == "INSERT":
        return True
    if first in ("OPTIMIZE", "TRUNCATE"):
        return words[1:2] == ["TABLE"]
    head = words[:8]
    if first == "CREATE":
        return "IF" in head and "NOT" in head and "EXISTS" in head and "OR" not in head[:3]
    if first == "ALTER":
        return (
            head[1:2] == ["TABLE"]
            and "MODIFY" in words
            and "SETTING" in words
            and not any(
                w in words for w in ("DROP", "DELETE", "UPDATE", "DETACH", "ATTACH", "FREEZE")
            )
        )
    return False


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def credential(headers: Message[str, str], params: Mapping[str, str]) -> tuple[str, str]:
    """(user, secret) of a request: HTTP basic, ``Authorization: Bearer``,
    X-ClickHouse-User/-Key, or the ``user``/``password`` URL parameters."""
    user, secret = params.get("user", ""), params.get("password", "")
    header = headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            user, _, secret = b64decode(header[6:]).decode().partition(":")
        except ValueError:
            user, secret = "", ""
    elif header.startswith("Bearer "):
        secret = header[7:].strip()
    elif headers.get("X-ClickHouse-Key") or headers.get("X-ClickHouse-User"):
        user = headers.get("X-ClickHouse-User", "") or user
        secret = headers.get("X-ClickHouse-Key", "")
    return user, secret


def check_origin(origin: str | None, allowed: frozenset[str]) -> None:
    """Browser requests (an ``Origin`` header) only from allowed origins (403)."""
    if origin is not None and origin not in allowed:
        raise ClickHouseError(
            497,
            "ACCESS_DENIED",
            f"origin {origin[:100]} is not allowed (store.http_allowed_origins)",
            status=403,
        )


def authorize(
    user: str, secret: str, *, username: str, token: str, writer_key: str, client: str = ""
) -> bool:
    """True for the writer, False for a reader; `ClickHouseError` 516 (403) otherwise."""
    if writer_key and hmac.compare_digest(secret.encode(), writer_key.encode()):
        return True
    if not token:
        return False
    ok_user = not user or hmac.compare_digest(user.encode(), username.encode())
    if ok_user and hmac.compare_digest(secret.encode(), token.encode()):
        return False
    log.warning("http auth failed", extra={"client": client})
    raise ClickHouseError(
        516,
        "AUTHENTICATION_FAILED",
        f"{user or 'default'}: Authentication failed: password is incorrect, "
        "or there is no user with such name",
        status=403,
    )
