"""The event contract: parsing never crashes, rejections have reasons, unknown fields survive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import EventError
from monitor.events import (
    MAX_EVENT_BYTES,
    REJECT_REASONS,
    event_to_json,
    parse_event,
    parse_feedback,
)
from vigil.traffic import TrafficSpec, generate_events


def _valid() -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "ts": "2026-11-22T08:00:00.123Z",
        "model": "acme-llama3-8b-ft",
        "request": {"messages": [{"role": "user", "content": "Where is my order?"}]},
        "response": {"content": "It ships tomorrow.", "finish_reason": "stop", "latency_ms": 812},
    }


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_and_rejections_have_reasons(raw: bytes) -> None:
    try:
        event = parse_event(raw)
    except EventError as exc:
        assert exc.reason in REJECT_REASONS
        assert exc.detail
    else:  # astronomically unlikely, but then it must really be an event
        assert event.event_id


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    raw = orjson.dumps(value)
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert info.value.reason in REJECT_REASONS


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["event_id", "ts", "model", "request", "response"]),
    replacement=json_values,
)
def test_mutating_a_required_field_is_accepted_or_explained(field: str, replacement: Any) -> None:
    data = _valid()
    data[field] = replacement
    try:
        event = parse_event(orjson.dumps(data))
    except EventError as exc:
        assert exc.reason in {"missing_field", "invalid_field"}
        assert field in exc.detail
    else:
        assert getattr(event, field) is not None


@pytest.mark.parametrize("missing", ["event_id", "ts", "model", "request", "response"])
def test_each_required_field_is_named_when_missing(missing: str) -> None:
    data = _valid()
    del data[missing]
    with pytest.raises(EventError) as info:
        parse_event(orjson.dumps(data))
    assert info.value.reason == "missing_field"
    assert missing in info.value.detail


def test_empty_messages_and_missing_response_content_are_rejected() -> None:
    data = _valid()
    data["request"]["messages"] = []
    with pytest.raises(EventError, match=r"request\.messages"):
        parse_event(orjson.dumps(data))
    data = _valid()
    del data["response"]["content"]
    with pytest.raises(EventError, match=r"response\.content"):
        parse_event(orjson.dumps(data))


def test_naive_timestamp_is_rejected_and_offsets_are_kept_as_instants() -> None:
    data = _valid()
    data["ts"] = "2026-11-22T08:00:00"
    with pytest.raises(EventError) as info:
        parse_event(orjson.dumps(data))
    assert info.value.reason == "invalid_field"
    data["ts"] = "2026-11-22T10:00:00+02:00"
    event = parse_event(orjson.dumps(data))
    assert event.ts == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_unknown_fields_are_kept_in_metadata() -> None:
    data = _valid()
    data["metadata"] = {"region": "eu", "shard": 3}
    data["tenant"] = "acme"
    data["experiment"] = {"arm": "b", "n": 2}
    event = parse_event(orjson.dumps(data))
    assert event.metadata["region"] == "eu"
    assert event.metadata["shard"] == "3"
    assert event.metadata["tenant"] == "acme"
    assert orjson.loads(event.metadata["experiment"]) == {"arm": "b", "n": 2}


def test_reasons_for_typical_garbage() -> None:
    cases = {
        b"{not json": "invalid_json",
        b"[1, 2]": "not_an_object",
        b"\xff\xfe\x00garbage": "invalid_utf8",
        b"": "invalid_json",
    }
    for raw, reason in cases.items():
        with pytest.raises(EventError) as info:
            parse_event(raw)
        assert info.value.reason == reason, raw


def test_huge_numbers_and_deep_nesting_are_explained() -> None:
    for raw in (
        b'{"event_id": 123456789012345678901234567890, "ts": 1e400}',
        b"[" * 5000 + b"]" * 5000,
        b'{"event_id": "e", "ts": "2026-11-22T08:00:00Z", "model": "m", "request": '
        + b'{"messages": [{"content": "x"}]}, "response": {"content": "y", "latency_ms": -5}}',
    ):
        with pytest.raises(EventError) as info:
            parse_event(raw)
        assert info.value.reason in REJECT_REASONS


def test_oversized_message_is_rejected_before_parsing() -> None:
    with pytest.raises(EventError) as info:
        parse_event(b"{" + b" " * MAX_EVENT_BYTES + b"}")
    assert info.value.reason == "too_large"


def test_content_parts_are_flattened_for_the_prompt() -> None:
    data = _valid()
    data["request"]["messages"] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url"}]},
    ]
    assert parse_event(orjson.dumps(data)).prompt == "hello"


def test_generated_traffic_round_trips() -> None:
    for raw in generate_events(TrafficSpec(n=200, seed=3)):
        event = parse_event(orjson.dumps(raw))
        again = parse_event(event_to_json(event))
        assert again == event


def test_feedback_messages() -> None:
    fb = parse_feedback(b'{"event_id": "e-1", "ts": "2026-11-22T09:00:00Z", "rating": -1}')
    assert fb.rating == -1
    with pytest.raises(EventError) as info:
        parse_feedback(b'{"event_id": "e-1", "ts": "2026-11-22T09:00:00Z", "rating": 5}')
    assert info.value.reason == "invalid_field"


# -- the fast decoder agrees with the pydantic contract -------------------------------

_loose_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.sampled_from([0, -1, 1, 2**32 - 1, 2**32, 2**63, 1.0, 5.5, -0.0, 1e300])
    | st.floats(allow_nan=False)
    | st.sampled_from(["", "812", "1.5", "x", "2026-11-22T08:00:00Z", "true"])
)
_timestamps = st.sampled_from(
    [
        "2026-11-22T08:00:00Z",
        "2026-11-22T08:00:00.123456Z",
        "2026-11-22T08:00:00.1234567891Z",
        "2026-11-22 08:00:00Z",
        "2026-11-22t08:00:00z",
        "2026-11-22T08:00:00+05:30",
        "2026-11-22T08:00:00-00:00",
        "2026-11-22T08:00Z",
        "2026-11-22T08:00:00",
        "2026-11-22",
        "2026-02-30T08:00:00Z",
        "2026-11-22T24:00:00Z",
        "2026-11-22T08:00:60Z",
    ]
) | st.integers(0, 2**34) | st.text(max_size=30)


@st.composite
def _event_like(draw: st.DrawFn) -> dict[str, Any]:
    data = _valid()
    data["ts"] = draw(_timestamps)
    response = data["response"]
    for key in ("latency_ms", "prompt_tokens", "completion_tokens", "finish_reason"):
        if draw(st.booleans()):
            response[key] = draw(_loose_scalars)
    if draw(st.booleans()):
        data["feedback"] = {"rating": draw(_loose_scalars)}
    if draw(st.booleans()):
        data["metadata"] = draw(st.dictionaries(st.text(max_size=5), _loose_scalars, max_size=3))
    if draw(st.booleans()):
        data[draw(st.sampled_from(["tenant", "user", "x"]))] = draw(json_values)
    if draw(st.booleans()):
        data[draw(st.sampled_from(["event_id", "model", "app", "route"]))] = draw(
            _loose_scalars | st.text(max_size=300)
        )
    if draw(st.booleans()):
        data["request"]["messages"][0]["role"] = draw(_loose_scalars)
    return data


@settings(max_examples=600, deadline=None)
@given(_event_like())
def test_fast_decoder_accepts_only_what_the_contract_accepts_with_equal_values(
    data: dict[str, Any],
) -> None:
    from monitor.events.parse import _authoritative

    raw = orjson.dumps(data)
    try:
        authoritative = _authoritative(raw)
    except EventError:
        authoritative = None
    try:
        parsed = parse_event(raw)
    except EventError:
        parsed = None
    if parsed is None or authoritative is None:
        assert parsed is authoritative
        return
    # Digits past the microsecond: msgspec rounds, pydantic truncates (1 us apart at most).
    assert abs(parsed.ts - authoritative.ts) <= timedelta(microseconds=1)
    assert parsed == msgspec.structs.replace(authoritative, ts=parsed.ts)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["event_id", "ts", "rating", "comment"]),
    replacement=json_values | _loose_scalars | _timestamps,
)
def test_feedback_parsing_accepts_or_explains_any_field_value(field: str, replacement: Any) -> None:
    data: dict[str, Any] = {"event_id": "e-1", "ts": "2026-11-22T09:00:00Z", "rating": -1}
    data[field] = replacement
    try:
        feedback = parse_feedback(orjson.dumps(data))
    except EventError as exc:
        assert exc.reason in REJECT_REASONS
    else:
        assert feedback.rating in (-1, 0, 1) and feedback.ts.tzinfo is not None
