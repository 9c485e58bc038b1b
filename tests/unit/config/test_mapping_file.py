"""The mappings file: validation (all problems at once, with hints), presets, literals, describe."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.errors import ConfigError
from config.mapping_file import (
    MAX_MAPPINGS,
    PRESETS,
    load_mappings,
    load_mappings_from_data,
    mappings_from_settings,
    preset_mappings,
)
from config.mappings import (
    ACTION_DEFAULTS,
    ACTION_FIELDS,
    PROFILE_PRESET_TRIGGER,
    TRACK_EVENT,
    TRACK_PRESET_TRIGGER,
    UPDATE_USER_PROFILE,
)
from config.settings import load_settings
from fleet.describe import check_config, describe_mappings
from worker.mapping import resolve_payload

VIP = {
    "name": "VIP purchases",
    "action": TRACK_EVENT,
    "trigger": 'type = "track" and event = "Order Completed" and properties.total > 100',
    "enabled": True,
    "defaults": True,
    "fields": {"name": "VIP Order", "external_id": {"@path": "$.userId"}, "enable_batching": True},
}

SAMPLE_EVENTS: list[dict[str, Any]] = [
    {
        "type": "identify",
        "userId": "user-123",
        "traits": {"email": "jane@example.com", "name": "Jane", "plan": "premium"},
        "context": {
            "app": {"version": "2.3.1"},
            "device": {"id": "D1", "model": "iPhone12,1", "type": "ios", "token": "ff15"},
            "os": {"version": "17.4"},
            "locale": "en-US",
            "location": {"city": "Berlin", "country": "DE", "latitude": 52.52, "longitude": 0},
            "timezone": "Europe/Berlin",
            "userAgent": "ShopApp/2.3.1",
        },
    },
    {"type": "identify", "anonymousId": "a1", "traits": {}},
    {
        "type": "track",
        "event": "Order Completed",
        "userId": "user-123",
        "timestamp": "2024-05-01T12:05:00.000Z",
        "properties": {"total": 59.9},
        "context": {"device": {"id": "D1", "type": "ios"}},
    },
    {"type": "page", "name": "Pricing", "userId": "u", "timestamp": "2024-05-01T12:06:00Z"},
    {"type": "screen", "name": "Home", "event": None, "userId": "u", "properties": None},
    {"type": "group", "groupId": "g1", "userId": "u"},
    {"type": "alias", "previousId": "p", "userId": "u"},
    {},
]


def problems_of(data: object, batching: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_mappings_from_data(data, batching, "mappings.yaml")
    return caught.value.problems


def with_changes(**changes: Any) -> dict[str, Any]:
    mapping = copy.deepcopy(VIP)
    mapping.update(changes)
    return {"mappings": [mapping]}


def test_the_documented_example_loads() -> None:
    [mapping] = load_mappings_from_data({"mappings": [VIP]}, False, "mappings.yaml")
    assert (mapping.name, mapping.action, mapping.enabled, mapping.enable_batching) == (
        "VIP purchases",
        TRACK_EVENT,
        True,
        True,
    )
    event = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u9",
        "properties": {"total": 101},
    }
    assert mapping.trigger(event) is True
    assert mapping.trigger({**event, "properties": {"total": 99}}) is False
    assert mapping.fields["name"](event) == "VIP Order"
    assert mapping.fields["external_id"](event) == "u9"
    assert mapping.fields["timestamp"] is not None  # defaults are merged in
    assert "enable_batching" not in mapping.fields  # decides batching, is not sent
    assert mapping.field_sources["enable_batching"] is True


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"mapings": [], "mappings": []},
            'mappings.yaml: mapings: unknown key; did you mean "mappings"?',
        ),
        (
            with_changes(trigers="x"),
            'mappings.yaml: mappings[0] "VIP purchases": trigers: unknown key; '
            'did you mean "trigger"?',
        ),
        (
            with_changes(subscribe='type = "track"'),
            'mappings[0] "VIP purchases": trigger and subscribe: give only one of them',
        ),
        (
            with_changes(fields={"nmae": "x"}),
            'mappings.yaml: mappings[0] "VIP purchases": fields.nmae: unknown field for '
            'trackEvent; did you mean "name"?',
        ),
        (
            with_changes(fields={"email": {"@path": "$.traits.email"}}),
            "fields.email: unknown field for trackEvent (it belongs to updateUserProfile)",
        ),
        (
            with_changes(action="trackevent"),
            "mappings[0] \"VIP purchases\": action: unknown action 'trackevent'; "
            'did you mean "trackEvent"?',
        ),
        (
            with_changes(action="updateUserProfle", fields={}),
            "action: unknown action 'updateUserProfle'; did you mean \"updateUserProfile\"?",
        ),
        (
            with_changes(action=UPDATE_USER_PROFILE, fields={"enable_batching": True}),
            "fields.enable_batching: unknown field for updateUserProfile",
        ),
    ],
)
def test_unknown_keys_are_errors_with_a_hint(data: object, expected: str) -> None:
    problems = problems_of(data)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("x", "the top level must be a list of mappings or `mappings: [...]`"),
        ({}, "mappings: must be a list of mappings, got missing"),
        ({"mappings": {"a": 1}}, "mappings: must be a list of mappings, got a dict"),
        ({"mappings": ["x"]}, "mappings[0]: must be an object"),
        ({"mappings": [{}]}, "mappings[0]: name: is required"),
        (with_changes(name=""), "mappings[0]: name: must be 1 to 200 characters"),
        (with_changes(name=5), "mappings[0]: name: must be a string"),
        (with_changes(trigger=None), "trigger: must be a string"),
        (with_changes(enabled="yes"), "enabled: must be true or false, got 'yes'"),
        (with_changes(enabled=1), "enabled: must be true or false, got 1"),
        (with_changes(fields=[1]), "fields: must be an object of field: value"),
        (
            with_changes(fields={"enable_batching": "true"}),
            "fields.enable_batching: must be true or false, got 'true'",
        ),
        (with_changes(defaults="yes"), "defaults: must be true or false, got 'yes'"),
        (
            with_changes(mapping={"name": "x"}, fields=None),
            "fields and mapping: give only one of them",
        ),
    ],
)
def test_malformed_files_are_refused(data: object, expected: str) -> None:
    problems = problems_of(data)
    assert any(expected in problem for problem in problems), problems


def test_more_than_fifty_mappings_are_refused() -> None:
    many = [dict(VIP, name=f"m{i}") for i in range(MAX_MAPPINGS + 1)]
    assert problems_of({"mappings": many}) == [
        "mappings.yaml: mappings: at most 50 mappings, got 51"
    ]
    assert len(load_mappings_from_data({"mappings": many[:MAX_MAPPINGS]}, False, "m")) == 50


def test_duplicate_names_are_refused() -> None:
    data = {"mappings": [VIP, dict(VIP, name="other"), VIP]}
    assert problems_of(data) == [
        'mappings.yaml: mappings[2] "VIP purchases": name: already used by mappings[0]'
    ]


def test_a_bad_trigger_reports_its_position() -> None:
    [problem] = problems_of(with_changes(trigger='type = |"identify"'))
    assert problem == (
        'mappings.yaml: mappings[0] "VIP purchases": trigger: Segment cannot read this trigger '
        '(invalid character "|"), so it matches no event there at position 7: '
        'type = ||"identify"'
    )


def test_a_bad_directive_names_the_field() -> None:
    [problem] = problems_of(with_changes(fields={"timestamp": {"@pth": "$.timestamp"}}))
    assert problem.startswith('mappings.yaml: mappings[0] "VIP purchases": fields.timestamp')
    assert "@pth" in problem


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "mappngs": None,
        "mappings": [
            with_changes(trigger="type =", fields={"nmae": "x"})["mappings"][0],
            {"name": "second", "action": "track", "trigger": "true"},
            with_changes(name="third", fields={"name": {"@if": {}}})["mappings"][0],
            "fourth",
            dict(VIP, name="fifth", enabled="no"),
        ],
    }
    problems = problems_of(data)
    assert len(problems) == 8, problems
    wanted = [
        "mappngs: unknown key",
        'mappings[0] "VIP purchases": trigger: expected a value',
        'mappings[1] "second": trigger: Segment skips a bare true',
        'mappings[0] "VIP purchases": fields.nmae: unknown field',
        'mappings[1] "second": action: unknown action',
        'mappings[2] "third": fields.name',
        "mappings[3]: must be an object",
        'mappings[4] "fifth": enabled: must be true or false',
    ]
    for want in wanted:
        assert any(want in problem for problem in problems), (want, problems)


def test_a_null_field_is_not_mapped() -> None:
    [mapping] = load_mappings_from_data(
        with_changes(fields={"device_id": None, "properties": None}), False, "m"
    )
    assert set(mapping.fields) == {"external_id", "device_platform", "name", "timestamp"}
    assert "device_id" not in mapping.field_sources


@pytest.mark.parametrize(
    ("given", "setting", "expected"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"enable_batching": True}, False, True),
        ({"enable_batching": False}, True, False),
    ],
)
def test_batching_follows_the_setting_unless_the_mapping_says(
    given: dict[str, Any], setting: bool, expected: bool
) -> None:
    [mapping] = load_mappings_from_data(with_changes(fields=given), setting, "m")
    assert mapping.enable_batching is expected


@pytest.mark.parametrize("batching", [False, True])
def test_presets(batching: bool) -> None:
    track, profile = preset_mappings(batching)  # Segment's names and order
    assert (profile.name, profile.action, profile.trigger_source) == (
        "Create or Update User Profile",
        UPDATE_USER_PROFILE,
        PROFILE_PRESET_TRIGGER,
    )
    assert (track.name, track.action, track.trigger_source) == (
        "Track Events",
        TRACK_EVENT,
        TRACK_PRESET_TRIGGER,
    )
    assert track.enable_batching is batching
    assert profile.enable_batching is False
    assert set(profile.fields) == set(ACTION_FIELDS[UPDATE_USER_PROFILE])
    assert set(track.fields) == set(ACTION_FIELDS[TRACK_EVENT]) - {"enable_batching"}


def _presets_written_out(batching: bool) -> dict[str, Any]:
    """The presets as pasted from Segment: every default spelled out, ids beside them."""
    written = []
    for preset in PRESETS:
        mapping = copy.deepcopy(ACTION_DEFAULTS[str(preset["actionSlug"])])
        if "enable_batching" in mapping:
            mapping["enable_batching"] = batching
        written.append({**preset, "mapping": mapping, "id": "sub-1", "modelId": None})
    return {"mappings": written}


@pytest.mark.parametrize("batching", [False, True])
def test_presets_written_out_as_a_file_behave_exactly_like_no_file(
    tmp_path: Path, batching: bool
) -> None:
    path = tmp_path / "mappings.yaml"
    path.write_text(yaml.safe_dump(_presets_written_out(batching)), encoding="utf-8")
    from_file = load_mappings(str(path), enable_batching_default=not batching)
    from_presets = load_mappings(None, enable_batching_default=batching)
    assert len(from_file) == len(from_presets) == 2
    for file_mapping, preset in zip(from_file, from_presets, strict=True):
        assert (file_mapping.name, file_mapping.action, file_mapping.enabled) == (
            preset.name,
            preset.action,
            preset.enabled,
        )
        assert file_mapping.enable_batching is preset.enable_batching
        preset_sources = dict(preset.field_sources)
        if file_mapping.action == TRACK_EVENT:
            preset_sources["enable_batching"] = batching
        assert file_mapping.field_sources == preset_sources
        for event in SAMPLE_EVENTS:
            assert file_mapping.trigger(event) is preset.trigger(event)
            assert resolve_payload(event, file_mapping) == resolve_payload(event, preset)
    triggered = [[m.trigger(e) for m in from_presets] for e in SAMPLE_EVENTS]
    assert triggered[:5] == [[False, True]] * 2 + [[True, False]] * 3  # the samples do matter


LITERALS: dict[str, dict[str, Any]] = {
    UPDATE_USER_PROFILE: {
        "external_id": "user-1",
        "email": "a@example.com",
        "app_version": "1.0",
        "device_id": "D9",
        "device_model": "Pixel 8",
        "device_platform": "android",
        "device_token": "tok",
        "language": "de-DE",
        "country": "DE",
        "city": "Hamburg",
        "current_location": {"latitude": 53.55, "longitude": 9.99},
        "device_os_version": "14",
        "timezone": "Europe/Berlin",
        "user_agent": "Agent/1",
        "custom_attributes": {"plan": "pro", "seats": 3, "tags": ["a", None]},
    },
    TRACK_EVENT: {
        "external_id": "user-1",
        "device_id": "D9",
        "device_platform": "android",
        "name": "Signed Up",
        "timestamp": "2024-05-01T12:05:00.000Z",
        "properties": {"source": "ad", "n": 1.5, "nested": {"x": None}},
        "enable_batching": True,
    },
}


@pytest.mark.parametrize("action", [UPDATE_USER_PROFILE, TRACK_EVENT])
@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_literal_fields_resolve_to_exactly_those_literals(
    tmp_path: Path, action: str, suffix: str
) -> None:
    literals = LITERALS[action]
    assert set(literals) == set(ACTION_FIELDS[action])  # every field of the action
    data = {
        "mappings": [
            {"name": "literal", "action": action, "trigger": 'type != "x"', "fields": literals}
        ]
    }
    path = tmp_path / f"mappings.{suffix}"
    text = json.dumps(data) if suffix == "json" else yaml.safe_dump(data)
    path.write_text(text, encoding="utf-8")
    [mapping] = load_mappings(str(path), False)
    sent = {key: value for key, value in literals.items() if key != "enable_batching"}
    for event in SAMPLE_EVENTS:
        assert resolve_payload(event, mapping) == sent
    assert mapping.enable_batching is (action == TRACK_EVENT)


def test_yaml_dates_stay_strings(tmp_path: Path) -> None:
    path = tmp_path / "mappings.yml"
    path.write_text(
        "mappings:\n"
        "  - name: dated\n"
        "    action: trackEvent\n"
        '    trigger: type = "track"\n'
        "    defaults: true\n"
        "    fields:\n"
        "      timestamp: 2024-05-01T12:05:00Z\n",
        encoding="utf-8",
    )
    [mapping] = load_mappings(str(path), False)
    assert mapping.fields["timestamp"]({}) == "2024-05-01T12:05:00Z"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("m.yaml", "mappings:\n  - name: [unclosed\n", "m.yaml: line 3 column 1: not valid YAML"),
        ("m.json", '{"mappings": [}', "m.json: line 1 column 15: Expecting value"),
        ("m.txt", "mappings: []", "m.txt: a mappings file must end in .yaml, .yml or .json"),
        ("m.yaml", "", "m.yaml: the top level must be a list of mappings"),
    ],
)
def test_unreadable_files_name_the_file(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_mappings(str(path), False)
    [problem] = caught.value.problems
    assert problem.startswith(str(tmp_path / expected)), problem


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read the mappings file"):
        load_mappings(missing, False)


def test_mappings_from_settings_reads_the_file_and_the_batching_setting(tmp_path: Path) -> None:
    path = tmp_path / "mappings.json"
    path.write_text(json.dumps(with_changes(fields={})), encoding="utf-8")
    settings = load_settings(
        {"PUSHWOOSH_MAPPINGS_FILE": str(path), "PUSHWOOSH_ENABLE_BATCHING": "true"}
    )
    [mapping] = mappings_from_settings(settings)
    assert (mapping.name, mapping.enable_batching) == ("VIP purchases", True)
    presets = mappings_from_settings(load_settings({}))
    assert [m.name for m in presets] == [str(p["name"]) for p in PRESETS]


def test_describe_shows_every_mapping_field_and_the_delete_rule() -> None:
    settings = load_settings(
        {"PUSHWOOSH_ENABLE_BATCHING": "true", "PUSHWOOSH_BATCH_MAX_EVENTS": "40"}
    )
    mappings = [
        *preset_mappings(True),
        *load_mappings_from_data(
            with_changes(enabled=False, fields={"enable_batching": False}), True, "m"
        ),
    ]
    text = describe_mappings(mappings, settings)
    assert '1. "Track Events" [enabled]' in text
    assert '2. "Create or Update User Profile" [enabled]' in text
    assert "updateUserProfile -> POST /integration-segment/v1/track-user" in text
    assert "trackEvent -> POST /integration-segment/v1/post-events, batched, up to 40" in text
    assert '3. "VIP purchases" [DISABLED (never runs)]' in text
    assert "post-events, one event per request" in text
    assert f"trigger: {TRACK_PRESET_TRIGGER}" in text
    assert 'custom_attributes  {"@path":"$.traits"}' in text
    assert "enable_batching  false" in text
    assert 'name             {"@if":{"exists":{"@path":"$.event"}' in text
    assert "delete-user" in text
    assert 'skipped: events whose integrations say "Pushwoosh": false or' in text
    assert "DRY RUN" in text


def test_check_config_passes_with_the_presets() -> None:
    code, text = check_config(
        {"PUSHWOOSH_API_KEY": "k-secret", "PUSHWOOSH_APPLICATION_CODE": "ABCDE-12345"}
    )
    assert code == 0
    assert "application ABCDE-12345" in text
    assert "k-secret" not in text
    assert "mappings: 2, from the presets" in text


def test_check_config_lists_settings_and_mapping_problems_together(tmp_path: Path) -> None:
    path = tmp_path / "mappings.json"
    path.write_text(json.dumps(with_changes(trigger="type =")), encoding="utf-8")
    code, text = check_config({"PUSHWOOSH_MAPPINGS_FILE": str(path), "PORT": "0"})
    assert code == 2
    assert text.startswith("configuration problems:\n - ")
    assert "PORT='0'" in text
    assert 'mappings[0] "VIP purchases": trigger: expected a value' in text
