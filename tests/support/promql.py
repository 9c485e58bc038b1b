"""The metric names a PromQL expression reads, and every name the fleet exposes: so dashboards,
alert rules and docs can be checked against the code."""

from __future__ import annotations

import re

from telemetry.fleet_gauges import GAUGES
from telemetry.metrics import NAMESPACE, SPECS

KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
     "unless", "offset", "inf", "nan"}
)  # fmt: skip
# The standard process metrics every listener serves (summed over the process tree), and
# Prometheus' own per-target series.
PROCESS = (
    "process_cpu_seconds_total", "process_resident_memory_bytes",
    "process_virtual_memory_bytes", "process_start_time_seconds", "process_open_fds",
    "process_max_fds",
)  # fmt: skip


def exposed_names() -> set[str]:
    """Every series name a fleet process or the exporter serves (histograms by their parts)."""
    names = {f"{NAMESPACE}_build_info", *PROCESS}
    for spec in SPECS.values():
        if spec.kind == "counter":
            names.add(f"{spec.full_name}_total")
        else:
            names.update(f"{spec.full_name}_{part}" for part in ("bucket", "sum", "count"))
    names.update(f"{NAMESPACE}_{gauge.name}" for gauge in GAUGES.values())
    return names


def documented_names() -> set[str]:
    """The names as README documents them: counters with _total, histograms bare."""
    names = {f"{NAMESPACE}_build_info", *PROCESS}
    for spec in SPECS.values():
        names.add(f"{spec.full_name}_total" if spec.kind == "counter" else spec.full_name)
    names.update(f"{NAMESPACE}_{gauge.name}" for gauge in GAUGES.values())
    return names


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects (not functions, keywords, labels or numbers)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    # label lists after by / without / on / ignoring / group_left / group_right
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if word.lower() in KEYWORDS or rest.startswith("("):
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names
