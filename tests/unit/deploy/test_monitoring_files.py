"""The Grafana dashboard and the alert rules hold together with the code: valid shape, and every
query reads metrics the fleet really exposes; every metric is documented in the README."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.promql import documented_names, exposed_names, metric_names

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = json.loads((MONITORING / "grafana-dashboard.json").read_text())
RULES = yaml.safe_load((MONITORING / "alerts.yaml").read_text())

# What Grafana needs of a dashboard JSON to import it, and what this one promises besides
# (Prometheus queries on the chosen data source, on a 24-column grid).
DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {"type": "object", "required": ["name", "type"]},
                }
            },
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"enum": ["row", "stat", "timeseries", "table", "gauge"]},
                    "title": {"type": "string", "minLength": 1},
                    "gridPos": {
                        "type": "object",
                        "required": ["x", "y", "w", "h"],
                        "properties": {
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                            "y": {"type": "integer", "minimum": 0},
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "h": {"type": "integer", "minimum": 1},
                        },
                    },
                    "datasource": {
                        "type": "object",
                        "required": ["type", "uid"],
                        "properties": {"type": {"const": "prometheus"}},
                    },
                    "targets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr"],
                            "properties": {"expr": {"type": "string", "minLength": 1}},
                        },
                    },
                },
                "if": {"properties": {"type": {"const": "row"}}},
                "else": {"required": ["datasource", "targets", "description"]},
            },
        },
    },
}


def _panels() -> list[dict[str, Any]]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def _rules() -> list[dict[str, Any]]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


def test_the_dashboard_has_grafanas_shape() -> None:
    jsonschema.validate(DASHBOARD, DASHBOARD_SCHEMA)


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_variable_a_panel_uses_is_defined() -> None:
    defined = {v["name"] for v in DASHBOARD["templating"]["list"]} | {"__rate_interval"}
    text = json.dumps(DASHBOARD["panels"])
    used = set(re.findall(r"\$\{?(\w+)\}?", text))
    assert used <= defined, used - defined


@pytest.mark.parametrize(
    "panel", _panels(), ids=lambda p: p["title"] if isinstance(p, dict) else str(p)
)
def test_every_dashboard_query_reads_metrics_that_exist(panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        names = metric_names(target["expr"])
        assert names, target["expr"]
        assert names <= exposed_names(), (target["expr"], names - exposed_names())


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"] if isinstance(r, dict) else "")
def test_every_alert_reads_metrics_that_exist_and_says_what_to_do(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])
    assert names and names <= exposed_names(), names - exposed_names()
    assert rule["labels"]["severity"] in ("critical", "warning")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_alerts_the_operators_asked_for_are_there() -> None:
    alerts = {rule["alert"] for rule in _rules()}
    for wanted in ("BacklogGrowing", "OldestEventTooOld", "DeadLettersRising", "AuthFailed",
                   "NoLiveWorker"):  # fmt: skip
        assert any(wanted in name for name in alerts), wanted


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_metric_and_alert_is_documented_in_the_readme() -> None:
    monitoring = _readme_section("Monitoring")
    missing = [name for name in sorted(documented_names()) if f"`{name}`" not in monitoring]
    assert missing == []
    assert [r["alert"] for r in _rules() if f"`{r['alert']}`" not in monitoring] == []


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'sum by (destination, le) (rate(pushwoosh_fleet_delivery_lag_seconds_bucket{a="b(c)"}'
        "[$__rate_interval])) / on (instance) group_left (role) pushwoosh_fleet_build_info "
        "> 0.5 and absent(up) or vector(1)"
    )
    assert metric_names(expr) == {
        "pushwoosh_fleet_delivery_lag_seconds_bucket",
        "pushwoosh_fleet_build_info",
        "up",
    }
