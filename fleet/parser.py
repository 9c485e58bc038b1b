"""The `pushwoosh-fleet` command line: every command, option and exit code, in one parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fleet.locate import DEFAULT_DATA_DIR
from telemetry.exposition import version

Command = Callable[[argparse.Namespace], int]

EPILOG = """\
exit codes: 0 done (status: healthy); 1 done, and the answer is no (status: degraded; trace:
nothing known; ping: refused; replay: lines refused; probe: not alive); 2 could not do it
(a bad argument or setting, or Redis or ingest unreachable: one line on stderr says which).

Commands that talk to Redis use REDIS_URL, else the Redis that `pushwoosh-fleet run` recorded in
--data-dir (so a second terminal in the same directory sees that fleet), and say on stderr which.
"""


class _Parser(argparse.ArgumentParser):
    """argparse's own, with the epilog kept as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def _json(parser: argparse.ArgumentParser, what: str = "machine-readable output") -> None:
    parser.add_argument("--json", action="store_true", help=what)


def _destination(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--destination", help=what)


def _add_run(sub: Any, commands: dict[str, Command]) -> None:
    run = sub.add_parser("run", help="run ingest and a worker (and Redis, when REDIS_URL is unset)")
    run.add_argument("--port", type=int, default=None, help="ingest port (default: $PORT or 8000)")
    run.add_argument(
        "--concurrency", type=int, default=2, help="drain threads in the worker (default 2)"
    )
    run.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="embedded Redis data, local key, fleet.json"
    )
    run.set_defaults(func=commands["run"])


def _add_preview_and_config(sub: Any, commands: dict[str, Command]) -> None:
    prev = sub.add_parser("preview", help="print the Pushwoosh requests events would produce")
    prev.add_argument("file", nargs="?", help="JSON, JSON array or NDJSON file (default: stdin)")
    prev.add_argument("--show-secrets", action="store_true", help="do not mask the API key")
    prev.add_argument("--batching", choices=["on", "off"], default=None,
                      help="override every destination's batching default")  # fmt: skip
    _destination(prev, "which destination's settings and mappings")
    prev.set_defaults(func=commands["preview"])

    ping = sub.add_parser("ping", help="check the Pushwoosh credentials of every destination")
    _destination(ping, "only this destination")
    _json(ping)
    ping.set_defaults(func=commands["ping"])

    check = sub.add_parser("check-config", help="validate settings and mappings, print a summary")
    _json(check)
    check.set_defaults(func=commands["check-config"])


def _add_dlq(sub: Any, commands: dict[str, Command]) -> None:
    dlq = sub.add_parser("dlq", help="inspect, replay or purge dead-lettered calls")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, text in (
        ("list", "list entries"),
        ("show", "show entries in full"),
        ("replay", "send entries again"),
        ("purge", "delete entries"),
    ):
        p = dlq_sub.add_parser(name, help=text)
        p.add_argument("ids", nargs="*", help="entry ids (default: every entry the filters match)")
        p.add_argument("--status", type=int, help="HTTP status, e.g. 400")
        p.add_argument("--action", help="updateUserProfile, trackEvent, deleteUser")
        p.add_argument("--message-id", help="entries holding this messageId")
        p.add_argument("--older-than", help="age, e.g. 30m, 2h, 1d")
        p.add_argument("--newer-than", help="age, e.g. 30m, 2h, 1d")
        p.add_argument("--limit", type=int, default=None)
        _json(p, "machine-readable output (one JSON object per line)")
        _destination(p, "which destination's dead letters")
        if name == "purge":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    dlq.set_defaults(func=commands["dlq"])


def _add_watching(sub: Any, commands: dict[str, Command]) -> None:
    trace = sub.add_parser("trace", help="print what happened to one event (by messageId)")
    trace.add_argument("message_id")
    _json(trace, "the raw records")
    trace.set_defaults(func=commands["trace"])

    status = sub.add_parser(
        "status", help="queues, dead letters, workers, throughput, errors (exit 0/1/2)"
    )
    _json(status)
    status.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for workers")
    status.add_argument(
        "--stale-after", type=float, default=300.0,
        help="degraded when an event has been queued longer (seconds, default 300)",
    )  # fmt: skip
    _destination(status, "only this destination (default: all)")
    status.set_defaults(func=commands["status"])

    metrics = sub.add_parser(
        "metrics", help="serve the fleet-wide gauges for Prometheus (run one per fleet)"
    )
    metrics.add_argument("--port", type=int, default=None, help="default: FLEET_METRICS_PORT")
    metrics.add_argument("--address", default=None, help="default: METRICS_ADDRESS")
    _destination(metrics, "only this destination (default: all)")
    metrics.set_defaults(func=commands["metrics"])

    probe = sub.add_parser("probe", help="liveness check of this machine's worker (exit 0/1)")
    probe.add_argument("what", choices=["worker"])
    probe.add_argument(
        "--max-age", type=float, default=60.0,
        help="fail when the worker's pump has not run for this long (seconds, default 60)",
    )  # fmt: skip
    _json(probe)
    probe.set_defaults(func=commands["probe"])


def _add_sending(sub: Any, commands: dict[str, Command]) -> None:
    replay = sub.add_parser("replay", help="send an NDJSON file of Segment events through ingest")
    replay.add_argument(
        "file", help="NDJSON, one Segment event per line, gzipped or not; - reads stdin"
    )
    replay.add_argument("--rate", type=float, default=None, help="at most N events per second")
    replay.add_argument(
        "--url", default=None, help="ingest URL (default: the fleet `run` started here, else "
        "http://127.0.0.1:$PORT)",
    )  # fmt: skip
    replay.add_argument("--write-key", default=None, help="default: the first INGEST_WRITE_KEYS")
    replay.add_argument("--batch-size", type=int, default=100, help="events per request")
    _destination(replay, "whose write key to send with")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.set_defaults(func=commands["replay"])

    delete = sub.add_parser(
        "delete-user", help="delete users' Pushwoosh profiles (GDPR), after their queued events"
    )
    delete.add_argument("user_ids", nargs="*", help="Segment userIds to delete")
    delete.add_argument("--file", help="a file of userIds, one per line (- for stdin)")
    _destination(delete, "which destination (when there are several)")
    delete.set_defaults(func=commands["delete-user"])

    completion = sub.add_parser(
        "completion", help="print a shell completion script: bash, zsh or tcsh"
    )
    completion.add_argument("shell", choices=["bash", "zsh", "tcsh"])
    completion.set_defaults(func=commands["completion"])


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pushwoosh-fleet",
        description="Segment events in, Pushwoosh calls out. Settings come from the environment.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"pushwoosh-fleet {version()}")
    parser.add_argument(
        "--data-dir", default=DEFAULT_DATA_DIR,
        help=f"where `run` keeps its data and records its Redis (default {DEFAULT_DATA_DIR})",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub, commands)
    _add_preview_and_config(sub, commands)
    _add_dlq(sub, commands)
    _add_watching(sub, commands)
    _add_sending(sub, commands)
    return parser
