"""The delivery page's charts, drawn on the server as SVG by pygal.

No chart library is loaded by the browser: each chart is an inline SVG, readable without
JavaScript; pygal's tooltip script (shipped by the pygaljs package, served by the page itself,
never from a CDN) adds the values on hover. Rendering is a pure function of the numbers, so
the same numbers are drawn once (about 15 ms a chart) and then served from a small cache.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import pygal
from pygal.style import Style

from fleet.page import series

TOOLTIPS_URL: Final = "/delivery/_static/pygal-tooltips.min.js"
OUTCOME_LABELS: Final = {
    "delivered": "delivered",
    "retried": "retried",
    "skipped": "skipped",
    "dead_lettered": "dead-lettered",
}


def _style(*colors: str) -> Style:
    """The page's look (its fonts, a white plot on a transparent card) in the given colours."""
    return Style(
        background="transparent",
        plot_background="#ffffff",
        foreground="#333333",
        foreground_strong="#111111",
        foreground_subtle="#dddddd",
        colors=colors,
        font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
        label_font_size=11,
        major_label_font_size=11,
        legend_font_size=12,
        tooltip_font_size=12,
    )


# Green delivered, amber retried, grey skipped, red dead-lettered; then the latency lines.
_STYLE: Final = _style("#2e9e5b", "#e0a526", "#9aa0a6", "#d93f3f")
_PER_REQUEST_STYLE: Final = _style("#2e9e5b")
_LINE_STYLE: Final = _style("#3b6fd6", "#8a4fd6")


def labels(starts: Sequence[int]) -> list[str]:
    """Each bucket's start as HH:MM UTC."""
    return [datetime.fromtimestamp(m * 60, UTC).strftime("%H:%M") for m in starts]


def _config(
    range_: series.Range, starts: tuple[int, ...], height: int, width: int = 960
) -> pygal.Config:
    config = pygal.Config()
    config.js = [TOOLTIPS_URL]
    config.disable_xml_declaration = True
    config.width = width
    config.height = height
    config.include_x_axis = True
    config.x_labels = labels(starts)
    config.x_labels_major_every = (10 if range_.width_min == 1 else 3) * (960 // width)
    config.show_minor_x_labels = False
    config.legend_at_bottom = True
    config.legend_at_bottom_columns = 4
    config.margin = 8
    config.spacing = 8
    config.truncate_label = -1
    config.no_data_text = "nothing yet"
    config.print_zeroes = False
    return config


def _line_config(range_: series.Range, starts: tuple[int, ...]) -> pygal.Config:
    """Half-width lines; a bucket without requests is a gap, not a slope to the next one, and
    every value is a dot, so a lone one shows."""
    config = _config(range_, starts, 250, width=480)
    config.allow_interruptions = True
    config.dots_size = 2
    return config


@functools.lru_cache(maxsize=16)
def outcomes_chart(
    range_: series.Range, starts: tuple[int, ...], rows: tuple[tuple[int, ...], ...]
) -> str:
    """Stacked bars: delivered, retried, skipped, dead-lettered events per bucket."""
    chart = pygal.StackedBar(_config(range_, starts, 280), style=_STYLE)
    for name, values in zip(series.OUTCOMES, rows, strict=True):
        chart.add(OUTCOME_LABELS[name], [value or None for value in values])
    return str(chart.render(is_unicode=True))


@functools.lru_cache(maxsize=16)
def latency_chart(
    range_: series.Range,
    starts: tuple[int, ...],
    p50: tuple[float | None, ...],
    p95: tuple[float | None, ...],
) -> str:
    """Lines: Pushwoosh's latency p50 and p95 (ms) per bucket."""
    config = _line_config(range_, starts)
    config.legend_at_bottom_columns = 2
    chart = pygal.Line(config, style=_LINE_STYLE)
    chart.add("p50 (ms)", list(p50))
    chart.add("p95 (ms)", list(p95))
    return str(chart.render(is_unicode=True))


@functools.lru_cache(maxsize=16)
def per_request_chart(
    range_: series.Range, starts: tuple[int, ...], values: tuple[float | None, ...]
) -> str:
    """A line: events per Pushwoosh request per bucket (100 is the most a batch holds)."""
    config = _line_config(range_, starts)
    config.show_legend = False
    config.formatter = _one_decimal
    chart = pygal.Line(config, style=_PER_REQUEST_STYLE)
    chart.add("events per request", list(values))
    return str(chart.render(is_unicode=True))


def _one_decimal(value: float) -> str:
    return f"{value:.1f}"


def with_nonce(svg: str, nonce: str) -> str:
    """The SVG with the page's script nonce on its scripts (the page's Content-Security-Policy
    runs no other inline script)."""
    return svg.replace("<script ", f'<script nonce="{nonce}" ')
