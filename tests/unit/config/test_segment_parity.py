"""The fleet against Segment's own code, on the parity corpus (tests/data/segment-parity).

Every expected output in the corpus was produced by running Segment's action-destinations code
(mapping-kit, destination-subscriptions, the Pushwoosh action) on the same inputs; regenerate
with `python scripts/segment-parity/regenerate.py CHECKOUT`. Each case must come out the same
here, except where the fleet refuses at start-up on purpose (marked in the case) or sends a
timestamp as RFC 3339 (README, "Moving from Segment's cloud destination").
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from config.directives import MappingError, compile_field, validate_mapping
from config.errors import ConfigError
from config.fql import TriggerSyntaxError, compile_trigger
from config.jsdate import dayjs_ms, is_date_like, iso_string
from config.jsvalues import ABSENT, js_number, js_to_number, json_ready
from config.mapping_file import PRESETS, load_mappings_from_data
from config.mappings import ACTION_DEFAULTS, ACTION_SCHEMAS, ACTION_TITLES
from worker.mapping import MappingRejected, map_delete, plan_calls

DATA = Path(__file__).resolve().parents[2] / "data" / "segment-parity"
APP_CODE = "ABCDE-12345"


def load(kind: str) -> tuple[list[Any], list[dict[str, Any]]]:
    document = json.loads((DATA / f"{kind}.json").read_text())
    return document["events"], document["cases"]


def canonical(value: Any) -> str:
    """JSON as JavaScript sees it: 52.0 is 52, half a surrogate pair is U+FFFD."""

    def fix(item: Any) -> Any:
        if isinstance(item, float) and math.isfinite(item) and item.is_integer():
            return int(item)
        if isinstance(item, str):
            return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in item)
        if isinstance(item, list):
            return [fix(member) for member in item]
        if isinstance(item, dict):
            return {key: fix(member) for key, member in item.items()}
        return item

    return json.dumps(fix(value), sort_keys=True, ensure_ascii=False)


MAPPING_EVENTS, MAPPING_CASES = load("mappings")


def _id(case: dict[str, Any]) -> str:
    return json.dumps(case.get("mapping") or case.get("trigger") or case.get("value"))[:80]


@pytest.mark.parametrize("case", MAPPING_CASES, ids=_id)
def test_mapping_values_come_out_as_in_segment(case: dict[str, Any]) -> None:
    expected = case["expected"]
    problems = validate_mapping(case["mapping"])
    if "invalid" in expected:
        assert problems, f"Segment rejects this mapping ({expected['invalid']}), the fleet not"
        return
    if problems:
        assert case.get("fleet") == "refuses", problems
        return
    try:
        getters = {key: compile_field(raw, key) for key, raw in case["mapping"].items()}
    except Exception as ex:
        if case.get("fleet") == "unsupported":
            return  # Liquid the fleet does not render: refused, named in docs/mappings.md
        assert case.get("fleet") == "refuses", f"refused without being marked: {ex}"
        assert any("error" in result for result in expected), "refused, yet Segment never fails"
        return
    assert case.get("fleet") not in ("refuses", "unsupported"), "marked as refused, yet compiles"
    for event, result in zip(MAPPING_EVENTS, expected, strict=True):
        try:
            values = {key: get(event) for key, get in getters.items()}
        except MappingError:
            assert "error" in result, f"fails on {canonical(event)[:100]}"
            continue
        assert "value" in result, f"Segment fails ({result.get('error')}), the fleet gives {values}"
        got = json_ready({key: value for key, value in values.items() if value is not ABSENT})
        assert canonical(got) == canonical(result["value"]), canonical(event)[:120]


TRIGGER_EVENTS, TRIGGER_CASES = load("triggers")


@pytest.mark.parametrize("case", TRIGGER_CASES, ids=lambda c: c["expected"]["trigger"][:80])
def test_triggers_match_as_in_segment_or_are_refused(case: dict[str, Any]) -> None:
    expected = case["expected"]
    trigger = expected["trigger"]
    accept = case["accept"]
    if accept == "if-segment-reads-it":
        # Written by Segment's trigger builder: accepted exactly when Segment reads it back as
        # the conditions it was written from.
        accept = expected["reads_as_written"]
    try:
        predicate = compile_trigger(trigger)
    except TriggerSyntaxError as ex:
        assert not accept, f"refused a trigger Segment reads as written: {ex}"
        assert str(ex)
        return
    assert accept, "accepted a trigger Segment reads otherwise than written"
    for event, match in zip(TRIGGER_EVENTS, expected["matches"], strict=True):
        assert predicate(event) is match, canonical(event)[:120]


def test_the_trigger_builder_corpus_is_mostly_read_as_written() -> None:
    # The corpus must exercise acceptance, not only refusals.
    built = [c for c in TRIGGER_CASES if c["accept"] == "if-segment-reads-it"]
    assert sum(c["expected"]["reads_as_written"] for c in built) >= len(built) * 0.6


_, TIMESTAMP_CASES = load("timestamps")


@pytest.mark.parametrize("case", TIMESTAMP_CASES, ids=_id)
def test_timestamps_are_accepted_and_read_as_segment_reads_them(case: dict[str, Any]) -> None:
    value, expected = case["value"], case["expected"]
    if not isinstance(value, str):
        return  # non-strings go through the action cases (coercion first)
    assert is_date_like(value) is expected["valid"]
    if expected["iso"] is not None:
        moment = dayjs_ms(value)
        assert not math.isnan(moment)
        assert iso_string(moment) == expected["iso"]
    else:
        assert math.isnan(dayjs_ms(value))


_, ACTION_CASES = load("actions")


def _mapping_for(case: dict[str, Any]) -> Any:
    item = {
        "name": "pasted",
        "actionSlug": case["action"],
        "subscribe": case["trigger"],
        "mapping": case["mapping"],
    }
    return load_mappings_from_data([item], False, "corpus")


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _epoch(number: float) -> str:
    """Epoch seconds below 1e11, milliseconds from there (docs/mappings.md)."""
    millis = number if abs(number) >= 1e11 else number * 1000
    return iso_string(float(int(millis)))


def fleet_timestamp(sent: Any, reading: str | None) -> str:
    """What the fleet sends where Segment sent `sent`, read by dayjs as `reading`."""
    if isinstance(sent, str):
        if RFC3339.fullmatch(sent) and reading is not None and sent[:10] == reading[:10]:
            return sent  # RFC 3339 of a real date: unchanged
        if js_number(js_to_number(sent)) == sent:
            return _epoch(js_to_number(sent))  # Segment's validator reads epoch seconds here
        assert reading is not None
        return reading
    return _epoch(sent)


def _outside_rfc3339_years(expected: dict[str, Any]) -> bool:
    for reading in expected.get("timestamp_readings", [[None]])[0]:
        if isinstance(reading, str) and not re.match(r"\d{4}-", reading):
            return True
    return False


@pytest.mark.parametrize("case", ACTION_CASES, ids=lambda c: json.dumps(c["mapping"])[:80])
def test_actions_send_what_segment_sends(case: dict[str, Any]) -> None:
    expected = case["expected"]
    try:
        mappings = _mapping_for(case)
    except ConfigError as ex:
        pytest.fail(f"a pasted Segment mapping was refused: {ex.problems}")
    calls, rejections = plan_calls(case["event"], mappings, APP_CODE)
    if "skipped" in expected:
        assert not calls and not rejections
        return
    if "error" in expected:
        assert not calls, f"Segment rejects ({expected['error']}), the fleet sends {calls}"
        assert len(rejections) == 1
        return
    if _outside_rfc3339_years(expected):
        # Deliberate: a time outside the years 1 to 9999 cannot be written in RFC 3339, which
        # is what Pushwoosh reads; the fleet refuses that event (docs/mappings.md).
        assert not calls and "years 1 to 9999" in rejections[0].reason
        return
    assert not rejections, f"the fleet rejects: {rejections}"
    (request,) = expected["requests"]
    (call,) = calls
    assert request["path"].endswith(call.path)
    body = request["body"]
    if call.path == "post-events":
        (element,) = body["events"]
        (reading,) = expected["timestamp_readings"][0]
        # Deliberate: the fleet sends RFC 3339, the instant Segment reads (docs/mappings.md).
        assert call.body["timestamp"] == fleet_timestamp(element["timestamp"], reading)
        element = {**element, "timestamp": call.body["timestamp"]}
        assert canonical(call.body) == canonical(element)
    else:
        assert canonical(call.body) == canonical(body)


_, DELETE_CASES = load("deletes")


@pytest.mark.parametrize("case", DELETE_CASES, ids=lambda c: json.dumps(c["event"]))
def test_deletes_send_the_user_id_as_segment_does(case: dict[str, Any]) -> None:
    (request,) = case["expected"]["requests"]
    sent = request["body"].get("external_id")
    if sent is None or sent == "":
        # Deliberate: no user, no delete (Segment posts {} or "" and Pushwoosh refuses it).
        with pytest.raises(MappingRejected):
            map_delete(case["event"])
        return
    assert canonical(map_delete(case["event"]).body) == canonical(request["body"])


def test_presets_and_actions_are_segments() -> None:
    _, (case,) = load("presets")
    expected = case["expected"]
    by_action = {p["actionSlug"]: p for p in PRESETS}
    for preset in expected["presets"]:
        mine = by_action[preset["partnerAction"]]
        assert mine["name"] == preset["name"]
        assert mine["subscribe"] == preset["subscribe"]
        segment_mapping = {k: v for k, v in preset["mapping"].items() if k != "enable_batching"}
        assert mine["mapping"] == segment_mapping
    for slug, action in expected["actions"].items():
        assert ACTION_TITLES[slug] == action["title"]
        schema = ACTION_SCHEMAS[slug]
        assert set(schema) == set(action["fields"])
        for key, field in action["fields"].items():
            assert ACTION_DEFAULTS[slug][key] == field["default"]
            assert schema[key].required is bool(field.get("required"))
            # An object with declared members loses "null": Segment's schema replaces its type.
            nullable = bool(field.get("allowNull")) and not field.get("properties")
            assert ("null" in schema[key].types) is nullable
