"""`pushwoosh-fleet`: run the fleet, preview mappings, check credentials and config, the DLQ.

Every command that acts for a destination takes `--destination`; without it, commands that read
(status, metrics) cover every destination of the destinations file, and commands that act
(preview, ping, dlq, replay, delete-user) use the only destination or ask which one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import redis
import requests

from config.destinations import Destination, all_secrets, load_destinations
from config.errors import ConfigError
from config.redis_keys import RedisKeys, celery_queue
from config.settings import Settings, load_settings
from fleet.deletion import DeletionError, delete_users, read_user_ids
from fleet.describe import check_config
from fleet.dlq_cli import run_dlq
from fleet.preview import PreviewInputError, preview, read_events
from fleet.replay import ReplayError, replay_file
from fleet.run import run_fleet
from fleet.status import celery_workers, format_status, read_status
from store.client import redis_for
from telemetry.logs import configure_logging
from telemetry.metrics import Target, serve
from telemetry.trace import describe, lookup
from worker.wire import PING_PATH, Endpoint, ping_body


def _settings() -> Settings:
    return load_settings(os.environ)


def _destinations(
    settings: Settings, *, enable_batching: bool | None = None
) -> dict[str, Destination]:
    return load_destinations(settings, os.environ, enable_batching=enable_batching)


def _chosen(args: argparse.Namespace, destinations: dict[str, Destination]) -> list[Destination]:
    """--destination NAME, or every destination."""
    name = getattr(args, "destination", None)
    if name is None:
        return list(destinations.values())
    if name not in destinations:
        raise ConfigError(
            [f"--destination: no destination {name!r}; there are {sorted(destinations)}"]
        )
    return [destinations[name]]


def _one(args: argparse.Namespace, destinations: dict[str, Destination]) -> Destination:
    """The destination a command acts for: --destination, or the only one there is."""
    chosen = _chosen(args, destinations)
    if len(chosen) > 1:
        raise ConfigError(
            [f"--destination: this fleet has several destinations ({', '.join(destinations)}); "
             "say which one"]
        )  # fmt: skip
    return chosen[0]


def _configure_logging() -> None:
    try:
        settings = _settings()
        configure_logging(settings, all_secrets(settings, _destinations(settings)))
    except ConfigError:  # the command reports the bad settings itself
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _redis(settings: Settings) -> redis.Redis:
    return redis_for(settings, decode_responses=True, socket_connect_timeout=5)


def cmd_preview(args: argparse.Namespace) -> int:
    batching = None if args.batching is None else args.batching == "on"
    destination = _one(args, _destinations(_settings(), enable_batching=batching))
    if args.file in (None, "-"):
        text = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as handle:
            text = handle.read()
    try:
        events = read_events(text)
    except PreviewInputError as ex:
        print(f"preview: {ex}", file=sys.stderr)
        return 2
    result = preview(
        events, destination.mappings, destination.settings, show_secrets=args.show_secrets
    )
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    worst = 0
    for destination in _chosen(args, _destinations(_settings())):
        worst = max(worst, _ping(destination))
    return worst


def _ping(destination: Destination) -> int:
    settings, name = destination.settings, destination.name
    if not settings.has_credentials:
        print(f"{name}: no credentials: set its API key and application code")
        return 2
    http = Endpoint.of(settings).request(PING_PATH, ping_body(), reveal_secrets=True)
    try:
        response = requests.post(
            http.url, json=http.json, headers=http.headers, timeout=settings.pushwoosh_timeout_s
        )
    except requests.RequestException as ex:
        print(f"{name}: cannot reach {settings.pushwoosh_base_url}: {type(ex).__name__}")
        return 1
    if 200 <= response.status_code < 300:
        print(
            f"{name}: credentials OK: Pushwoosh accepted the API key for application "
            f"{settings.pushwoosh_application_code} (HTTP {response.status_code})"
        )
        return 0
    print(
        f"{name}: credentials REJECTED: HTTP {response.status_code} "
        f"{response.text[:300].strip()} — check the API key and application code"
    )
    return 1


def cmd_check_config(_: argparse.Namespace) -> int:
    code, text = check_config(os.environ)
    print(text)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    return run_fleet(args.port, args.concurrency, args.data_dir)


def cmd_dlq(args: argparse.Namespace) -> int:
    settings = _settings()
    destination = _one(args, _destinations(settings))
    return run_dlq(args, _redis(settings), destination)


def cmd_trace(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.trace_window_s <= 0:
        print("trace: event history is off (TRACE_WINDOW_S=0)", file=sys.stderr)
        return 2
    records = lookup(_redis(settings), settings, args.message_id, time.time())
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
    elif records:
        print(f"messageId {args.message_id}")
        for record in records:
            print("  " + describe(record))
    if not records:
        hours = settings.trace_window_s / 3600
        print(
            f"trace: nothing known about {args.message_id!r} in the last {hours:g} h "
            "(never received, older than TRACE_WINDOW_S, or over the hour's TRACE_MAX_EVENTS)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings()
    chosen = _chosen(args, _destinations(settings))
    client = _redis(settings)
    workers = celery_workers(celery_queue(settings.redis_key_prefix), args.timeout)
    statuses = [
        read_status(
            client, d.settings, destination=d.name, list_workers=lambda: workers, now_s=time.time()
        )
        for d in chosen
    ]
    if args.json:
        print(json.dumps([status.as_dict() for status in statuses], indent=2))
    else:
        print("\n\n".join(format_status(status) for status in statuses))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings()
    destination = _one(args, _destinations(settings))
    url = args.url or f"http://127.0.0.1:{settings.port}"
    keys = destination.write_keys
    write_key = args.write_key or (keys[0].reveal() if keys else "")
    if not write_key:
        print(
            f"replay: no write key for destination {destination.name!r}: pass --write-key or "
            "set INGEST_WRITE_KEYS (write_keys in a destinations file)",
            file=sys.stderr,
        )
        return 2
    try:
        summary = replay_file(
            Path(args.file),
            url,
            write_key,
            batch_size=args.batch_size,
            rate_per_s=args.rate,
            progress=False if args.no_progress else None,
        )
    except (OSError, ReplayError) as ex:
        print(f"replay: {ex}", file=sys.stderr)
        return 1
    print(summary.format())
    return 0 if summary.ok else 1


def cmd_delete_user(args: argparse.Namespace) -> int:
    destination = _one(args, _destinations(_settings()))
    try:
        user_ids = read_user_ids(args.user_ids, args.file)
    except OSError as ex:
        print(f"delete-user: cannot read {args.file}: {ex.strerror}", file=sys.stderr)
        return 2
    if not user_ids:
        print("delete-user: no user ids given (arguments or --file)", file=sys.stderr)
        return 2
    try:
        queued = delete_users(_redis(destination.settings), destination, user_ids)
    except DeletionError as ex:
        print(f"delete-user: {ex}", file=sys.stderr)
        return 1
    print(
        f"queued {queued} deletion(s) for destination {destination.name!r}: each is sent to "
        "Pushwoosh after that user's events already queued"
    )
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    settings = _settings()
    targets = [
        Target(RedisKeys(settings.redis_key_prefix, d.name), d.settings.shards)
        for d in _chosen(args, _destinations(settings))
    ]
    stop = serve(_redis(settings), targets, args.port, args.address)
    print(f"serving the fleet-wide metrics on http://{args.address}:{args.port}/metrics")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushwoosh-fleet",
        description="Segment events in, Pushwoosh calls out. Settings come from the environment.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run ingest and a worker (and Redis, when REDIS_URL is unset)")
    run.add_argument("--port", type=int, default=None, help="ingest port (default: $PORT or 8000)")
    run.add_argument(
        "--concurrency", type=int, default=2, help="drain threads in the worker (default 2)"
    )
    run.add_argument(
        "--data-dir", default=".pushwoosh-fleet", help="embedded Redis data, local key"
    )
    run.set_defaults(func=cmd_run)

    prev = sub.add_parser("preview", help="print the Pushwoosh requests events would produce")
    prev.add_argument("file", nargs="?", help="JSON, JSON array or NDJSON file (default: stdin)")
    prev.add_argument("--show-secrets", action="store_true", help="do not mask the API key")
    prev.add_argument("--batching", choices=["on", "off"], default=None,
                      help="override every destination's batching default")  # fmt: skip
    prev.add_argument("--destination", help="which destination's settings and mappings")
    prev.set_defaults(func=cmd_preview)

    ping = sub.add_parser("ping", help="check the Pushwoosh credentials of every destination")
    ping.add_argument("--destination", help="only this destination")
    ping.set_defaults(func=cmd_ping)

    check = sub.add_parser("check-config", help="validate settings and mappings, print a summary")
    check.set_defaults(func=cmd_check_config)

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
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--destination", help="which destination's dead letters")
        if name == "purge":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    dlq.set_defaults(func=cmd_dlq)

    trace = sub.add_parser("trace", help="print what happened to one event (by messageId)")
    trace.add_argument("message_id")
    trace.add_argument("--json", action="store_true", help="the raw records")
    trace.set_defaults(func=cmd_trace)

    status = sub.add_parser("status", help="queues, dead letters, workers, throughput, errors")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for workers")
    status.add_argument("--destination", help="only this destination (default: all)")
    status.set_defaults(func=cmd_status)

    replay = sub.add_parser("replay", help="send an NDJSON file of Segment events through ingest")
    replay.add_argument("file", help="NDJSON: one Segment event per line (an export, an archive)")
    replay.add_argument("--rate", type=float, default=None, help="at most N events per second")
    replay.add_argument("--url", default=None, help="ingest URL (default http://127.0.0.1:$PORT)")
    replay.add_argument("--write-key", default=None, help="default: the first INGEST_WRITE_KEYS")
    replay.add_argument("--batch-size", type=int, default=100, help="events per request")
    replay.add_argument("--destination", help="whose write key to send with")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.set_defaults(func=cmd_replay)

    delete = sub.add_parser(
        "delete-user", help="delete users' Pushwoosh profiles (GDPR), after their queued events"
    )
    delete.add_argument("user_ids", nargs="*", help="Segment userIds to delete")
    delete.add_argument("--file", help="a file of userIds, one per line (- for stdin)")
    delete.add_argument("--destination", help="which destination (when there are several)")
    delete.set_defaults(func=cmd_delete_user)

    metrics = sub.add_parser("metrics", help="serve the fleet-wide Prometheus metrics")
    metrics.add_argument("--port", type=int, default=9100)
    metrics.add_argument("--address", default="127.0.0.1")
    metrics.add_argument("--destination", help="only this destination (default: all)")
    metrics.set_defaults(func=cmd_metrics)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        result: Any = args.func(args)
    except ConfigError as ex:
        print(f"pushwoosh-fleet: {ex}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
