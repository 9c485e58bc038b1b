"""Stream order as text: what `holds` and retry records compare. Pure."""

from __future__ import annotations


def entry_order(entry_id: str) -> str:
    """A stream entry id ("1714565100000-3") as text that sorts in stream order."""
    ms, _, seq = entry_id.partition("-")
    return f"{int(ms):015d}-{int(seq or 0):010d}"
