"""The ClickHouse HTTP protocol, as far as the embedded store's endpoint speaks it:
which statements read and which write, where the SQL and the insert data are in a
request, body encodings, settings clauses, and errors in ClickHouse's own format.

Pure functions and constants; the server itself is `monitor.store.endpoint`.
"""

from __future__ import annotations

import re
import zlib
from email.message import Message
from io import BufferedIOBase
from typing import Any

import orjson

from monitor.errors import StoreError

#: URL parameters that steer the HTTP transport, never sent to chDB as settings.
TRANSPORT_PARAMS = {
    "query", "database", "default_format", "user", "password", "query_id", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "buffer_size",
    "wait_end_of_query", "quota_key", "role", "client_protocol_version", "readonly",
    "enable_http_compression", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
    "http_zlib_compression_level", "http_native_compression_disable_checksumming_on_decompress",
    "add_http_cors_header", "max_query_size",
}  # fmt: skip
RESULT_KEYWORDS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK"}
#: Statements that change something: refused on GET and with readonly, as on a server.
#: Anything else that is not a result statement is not valid SQL and fails in the parser.
WRITE_KEYWORDS = {
    "INSERT", "CREATE", "DROP", "ALTER", "TRUNCATE", "OPTIMIZE", "RENAME", "ATTACH", "DETACH",
    "DELETE", "UPDATE", "SYSTEM", "GRANT", "REVOKE", "KILL", "SET", "USE", "EXCHANGE", "UNDROP",
    "MOVE", "BACKUP", "RESTORE", "REPLACE", "UNDO", "BEGIN", "COMMIT", "ROLLBACK",
}  # fmt: skip
TEXT_FORMAT_PREFIXES = ("json", "tabseparated", "tsv", "csv", "values", "customseparated")
COMMENT = re.compile(r"(--[^\n]*\n|/\*.*?\*/|\s+)", re.S)
FIRST_WORD = re.compile(r"[(\s]*([A-Za-z]+)")
TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.I)
INSERT_HEAD = re.compile(
    rb"^(?P<head>\s*INSERT\s.*?\bFORMAT\s+(?P<fmt>[A-Za-z0-9_]+))[ \t]*\r?\n?", re.I | re.S
)
FORMAT_TAIL = re.compile(r"^(?P<pre>.*?)\s*\bFORMAT\s+(?P<fmt>[A-Za-z0-9_]+)\s*$", re.I | re.S)
CODE = re.compile(r"^Code: (\d+)\.")
#: Names of the errors chDB's one-line messages most often leave out.
ERROR_NAMES = {
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 36: "BAD_ARGUMENTS", 46: "UNKNOWN_FUNCTION",
    47: "UNKNOWN_IDENTIFIER", 53: "TYPE_MISMATCH", 57: "TABLE_ALREADY_EXISTS",
    60: "UNKNOWN_TABLE", 62: "SYNTAX_ERROR", 81: "UNKNOWN_DATABASE", 115: "UNKNOWN_SETTING",
    117: "INCORRECT_DATA", 164: "READONLY", 241: "MEMORY_LIMIT_EXCEEDED",
    456: "UNKNOWN_QUERY_PARAMETER",
}  # fmt: skip
SETTINGS_WORD = re.compile(r"\bSETTINGS\b", re.I)
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class ClickHouseError(Exception):
    """An error answered in ClickHouse's format: code, name, HTTP status."""

    def __init__(self, code: int, name: str, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code, self.name, self.status = code, name, status

    def body(self, version: str) -> str:
        name = f" ({self.name})" if self.name else ""
        text = str(self).rstrip(". ")
        return f"Code: {self.code}. DB::Exception: {text}.{name} (version {version})\n"


def from_store_error(exc: StoreError) -> ClickHouseError:
    text = str(exc)
    match = CODE.match(text)
    if match is None:
        return ClickHouseError(1002, "UNKNOWN_EXCEPTION", text)
    # chDB's text is already "Code: N. DB::Exception: message (NAME)"; keep its sentence.
    code = int(match.group(1))
    message = text.split("DB::Exception:", 1)[-1].strip()
    name_match = re.search(r"\(([A-Z_]+)\)\s*$", message)
    if name_match:
        message = message[: name_match.start()].rstrip()
    # chDB's first line often stops before the "(NAME)"; clients parse it, so restore it.
    name = name_match.group(1) if name_match else ERROR_NAMES.get(code, "")
    return ClickHouseError(code, name, message)


def split_statement(query: str, body: bytes) -> tuple[str, bytes]:
    """The SQL text and the insert data of ``query`` + newline + ``body``."""
    if query and body:
        if FORMAT_TAIL.match(query) and first_keyword(query) == "INSERT":
            return query, body  # the common case: statement in the URL, data in the body
        body = query.encode() + b"\n" + body
    elif query:
        return query, b""
    match = INSERT_HEAD.match(body)
    if match is not None:
        return match.group("head").decode("utf-8", "replace"), body[match.end() :]
    try:
        return body.decode(), b""
    except UnicodeDecodeError as exc:
        raise ClickHouseError(36, "BAD_ARGUMENTS", "query is not valid UTF-8") from exc


def first_keyword(sql: str) -> str:
    stripped = COMMENT.sub(" ", sql[:4096])
    match = FIRST_WORD.match(stripped)
    return match.group(1).upper() if match else ""


def settings_clause(settings: dict[str, str]) -> str:
    def literal(value: str) -> str:
        if NUMBER.match(value):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return ", ".join(f"{name} = {literal(value)}" for name, value in settings.items())


def as_text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def too_large(what: str, limit: int) -> ClickHouseError:
    return ClickHouseError(
        307, "TOO_MANY_BYTES", f"{what} is larger than {limit} bytes", status=413
    )


def decompress(data: bytes, encoding: str, limit: int = 1 << 62) -> bytes:
    """``data`` decoded per Content-Encoding, refused (413) past ``limit`` bytes: a small
    compressed body cannot expand into memory (each codec stops at ``limit + 1``)."""
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity" or not data:
        return data
    try:
        out = _decompress(data, encoding, limit + 1)
    except ClickHouseError:
        raise
    except ImportError as exc:
        raise ClickHouseError(
            48, "NOT_IMPLEMENTED", f"Content-Encoding {encoding} is not available"
        ) from exc
    except Exception as exc:  # each codec raises its own error type
        raise ClickHouseError(
            354, "CANNOT_DECOMPRESS", f"cannot decompress a {encoding} body: {type(exc).__name__}"
        ) from exc
    if len(out) > limit:
        raise too_large("the decompressed body", limit)
    return out


def _decompress(data: bytes, encoding: str, cap: int) -> bytes:
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(47 if encoding == "gzip" else 15)
        out = inflater.decompress(data, cap)
        if len(out) < cap and not inflater.eof:
            raise ValueError("truncated stream")
        return out
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.LZ4FrameDecompressor().decompress(data, max_length=cap))
    if encoding == "zstd":
        from backports import zstd

        return bytes(zstd.ZstdDecompressor().decompress(data, max_length=cap))
    if encoding == "br":
        import brotli

        return bytes(brotli.decompress(data))  # no output bound in brotli's API
    raise ClickHouseError(48, "NOT_IMPLEMENTED", f"unknown Content-Encoding {encoding}")


def content_type(fmt: str) -> str:
    name = fmt.lower()
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if name.startswith(("pretty", "vertical", "markdown", "values")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


def read_body(rfile: BufferedIOBase, headers: Message[str, str], limit: int) -> bytes:
    """A request body (chunked or by Content-Length), decoded; 413 past ``limit`` bytes,
    before or after decompression."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        chunks, total = [], 0
        while True:
            size_line = rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            total += size
            if total > limit:
                raise too_large("the request body", limit)
            if size == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            chunks.append(rfile.read(size))
            rfile.readline(3)
        raw = b"".join(chunks)
    else:
        length = int(headers.get("Content-Length") or 0)
        if length > limit:
            raise too_large("the request body", limit)
        raw = bytes(rfile.read(length)) if length else b""
    if headers.get("Content-Type", "").startswith("multipart/"):
        raise ClickHouseError(
            48, "NOT_IMPLEMENTED", "multipart bodies (external tables) are not supported"
        )
    return decompress(raw, headers.get("Content-Encoding", ""), limit)


def summary(result: Any) -> str:
    """The X-ClickHouse-Summary header of a `RawResult`."""
    return orjson.dumps(
        {
            "read_rows": str(result.rows_read),
            "read_bytes": str(result.bytes_read),
            "written_rows": str(result.rows_written),
            "written_bytes": str(result.bytes_written),
            "total_rows_to_read": str(result.rows_read),
            "elapsed_ns": str(int(result.elapsed_s * 1e9)),
        }
    ).decode()
