"""Mappings pasted from Segment, the `defaults` switch, and the `integrations` object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.destinations import load_destinations
from config.errors import ConfigError
from config.mapping_file import load_mappings_from_data, mappings_from_settings
from config.settings import load_settings
from worker.mapping import SKIPPED_BY_INTEGRATIONS, excluded_by_integrations, plan_calls

APP_CODE = "ABCDE-12345"
IDENTIFY = {
    "type": "identify",
    "userId": "u1",
    "traits": {"email": "a@b.c", "plan": "pro"},
    "context": {"device": {"id": "D1", "token": "t1"}, "location": {"city": "Berlin"}},
}
# As Segment's Public API lists a destination's subscriptions.
PUBLIC_API = {
    "id": "sub_2abc",
    "name": "Profiles",
    "actionId": "jm2Xv2Yh7c8RpHmRJw3vSx",
    "actionSlug": "updateUserProfile",
    "destinationId": "dest_1",
    "modelId": None,
    "enabled": True,
    "trigger": 'type = "identify"',
    "settings": {"external_id": {"@path": "$.userId"}, "email": {"@path": "$.traits.email"}},
}
# As Segment's UI export / older Config API writes one.
UI_EXPORT = {
    "name": "Profiles",
    "actionId": "updateUserProfile",
    "subscribe": 'type = "identify"',
    "mapping": {"external_id": {"@path": "$.userId"}, "email": {"@path": "$.traits.email"}},
    "enabled": True,
}


@pytest.mark.parametrize("pasted", [PUBLIC_API, UI_EXPORT])
def test_a_pasted_mapping_sends_only_the_fields_it_lists(pasted: dict[str, Any]) -> None:
    [mapping] = load_mappings_from_data([pasted], False, "pasted.json")
    calls, rejections = plan_calls(IDENTIFY, [mapping], APP_CODE)
    assert not rejections
    # No device_id, device_token, city or custom attributes: the mapping does not list them.
    assert [call.body for call in calls] == [{"attributes": {}, "user_id": "u1", "email": "a@b.c"}]


def test_the_fleet_form_starts_from_the_defaults_only_when_told() -> None:
    fields = {"email": {"@case": {"operator": "upper", "value": {"@path": "$.traits.email"}}}}
    base = {"name": "p", "action": "updateUserProfile", "trigger": 'type = "identify"'}
    [literal] = load_mappings_from_data([{**base, "fields": fields}], False, "m")
    [merged] = load_mappings_from_data([{**base, "fields": fields, "defaults": True}], False, "m")
    (literal_call,), _ = plan_calls(IDENTIFY, [literal], APP_CODE)
    (merged_call,), _ = plan_calls(IDENTIFY, [merged], APP_CODE)
    assert literal_call.body == {"attributes": {}, "email": "A@B.C"}
    assert merged_call.body["email"] == "A@B.C"
    assert merged_call.body["device_token"] == "t1"
    assert merged_call.body["attributes"] == {"plan": "pro"}


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({**UI_EXPORT, "defaults": True}, "a mapping pasted from Segment (mapping) is taken as it"),
        (
            {k: v for k, v in PUBLIC_API.items() if k != "actionSlug"},
            "that is Segment's internal id of the action",
        ),
        ({**UI_EXPORT, "actionId": "Track Event"}, 'Segment\'s id for "Track Event" is trackEvent'),
        (
            {"name": "t", "actionSlug": "trackEvent", "subscribe": 'type = "track"', "mapping": {}},
            "mapping.external_id: is required by Segment's Track Event action",
        ),
    ],
)
def test_pasted_mappings_that_cannot_work_are_explained(item: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_mappings_from_data([item], False, "pasted.json")
    assert any(problem in line for line in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("integrations", "excluded"),
    [
        (None, False),
        ({}, False),
        ({"All": False}, True),
        ({"All": True}, False),
        ({"Pushwoosh": False}, True),
        ({"Pushwoosh (Actions)": False}, True),
        ({"All": False, "Pushwoosh": True}, False),
        ({"All": False, "Pushwoosh": {"any": "options"}}, False),
        ({"All": True, "Pushwoosh": False}, True),
        ({"Braze": False}, False),
        ({"pushwoosh": False}, False),  # names are compared exactly, as Segment does
        ("not an object", False),
    ],
)
def test_integrations_switch_the_destination_off(integrations: Any, excluded: bool) -> None:
    event = {**IDENTIFY, "integrations": integrations}
    names = ("Pushwoosh", "Pushwoosh (Actions)")
    assert excluded_by_integrations(event, names) is excluded
    mappings = load_mappings_from_data([UI_EXPORT], False, "m")
    plan = plan_calls(event, mappings, APP_CODE)
    assert (plan.calls == [], plan.skipped == SKIPPED_BY_INTEGRATIONS) == (excluded, excluded)


def test_the_integration_names_are_a_setting() -> None:
    settings = load_settings({"PUSHWOOSH_INTEGRATION_NAMES": "My Pushwoosh, Other"})
    assert settings.pushwoosh_integration_names == ("My Pushwoosh", "Other")
    mappings = mappings_from_settings(settings)
    event = {"type": "track", "userId": "u", "event": "E", "timestamp": "2024-05-01T00:00:00Z"}
    assert plan_calls({**event, "integrations": {"Pushwoosh": False}}, mappings, APP_CODE).calls
    skipped = plan_calls({**event, "integrations": {"Other": False}}, mappings, APP_CODE)
    assert skipped.skipped == SKIPPED_BY_INTEGRATIONS


def test_a_delete_ignores_integrations() -> None:
    event = {"type": "delete", "userId": 5, "integrations": {"All": False}}
    (call,), _ = plan_calls(event, load_mappings_from_data([UI_EXPORT], False, "m"), APP_CODE)
    assert call.body == {"external_id": 5}


def test_each_destination_can_name_its_integrations_entry(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "destinations": [
                    {"name": "ios", "write_keys": ["k1"], "integration_names": ["Pushwoosh iOS"]},
                    {"name": "web", "write_keys": ["k2"]},
                ]
            }
        )
    )
    env = {"DESTINATIONS_FILE": str(path)}
    destinations = load_destinations(load_settings(env), env)
    event = {"type": "identify", "userId": "u", "integrations": {"Pushwoosh iOS": False}}
    ios, web = destinations["ios"], destinations["web"]
    assert plan_calls(event, ios.mappings, APP_CODE).skipped == SKIPPED_BY_INTEGRATIONS
    assert plan_calls(event, web.mappings, APP_CODE).calls  # the default names apply there
