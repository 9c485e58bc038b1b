"""`pushwoosh-fleet`: run the fleet, preview mappings, check credentials and config, the DLQ."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from config.errors import ConfigError
from config.settings import Settings, load_settings


def _settings() -> Settings:
    return load_settings(os.environ)


def _destination(args: argparse.Namespace) -> Any:
    """The destination a command is about: --destination, or the only/first one."""
    from config.destinations import load_destinations

    destinations = load_destinations(_settings(), os.environ)
    name = getattr(args, "destination", None)
    if name is None:
        return next(iter(destinations.values()))
    if name not in destinations:
        raise ConfigError(
            [f"--destination: no destination {name!r}; there are {sorted(destinations)}"]
        )
    return destinations[name]


def _configure_logging() -> None:
    from fleet.logging_setup import configure_logging

    try:
        configure_logging(_settings())
    except ConfigError:  # the command reports the bad settings itself
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def cmd_preview(args: argparse.Namespace) -> int:
    from config.mapping_file import mappings_from_settings
    from fleet.preview import PreviewInputError, preview, read_events

    destination = _destination(args)
    settings = destination.settings
    mappings = list(destination.mappings)
    if args.batching is not None:
        import dataclasses

        settings = dataclasses.replace(settings, pushwoosh_enable_batching=args.batching == "on")
        mappings = mappings_from_settings(settings)
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
    result = preview(events, mappings, settings, show_secrets=args.show_secrets)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_ping(_: argparse.Namespace) -> int:
    import requests

    from worker.wire import USER_AGENT, build_http_request, ping_body

    settings = _settings()
    if not settings.has_credentials:
        print("ping: no credentials: set PUSHWOOSH_API_KEY and PUSHWOOSH_APPLICATION_CODE")
        return 2
    http = build_http_request(
        "ping",
        ping_body(),
        base_url=settings.pushwoosh_base_url,
        api_key=settings.pushwoosh_api_key,
        app_code=settings.pushwoosh_application_code,
        user_agent=USER_AGENT,
        reveal_secrets=True,
    )
    try:
        response = requests.post(
            http.url, json=http.json, headers=http.headers, timeout=settings.pushwoosh_timeout_s
        )
    except requests.RequestException as ex:
        print(f"ping: cannot reach {settings.pushwoosh_base_url}: {type(ex).__name__}")
        return 1
    if 200 <= response.status_code < 300:
        print(
            f"credentials OK: Pushwoosh accepted the API key for application "
            f"{settings.pushwoosh_application_code} (HTTP {response.status_code})"
        )
        return 0
    print(
        f"credentials REJECTED: HTTP {response.status_code} {response.text[:300].strip()}"
        " — check PUSHWOOSH_API_KEY and PUSHWOOSH_APPLICATION_CODE"
    )
    return 1


def cmd_check_config(_: argparse.Namespace) -> int:
    from config.describe import check_config

    code, text = check_config(os.environ)
    print(text)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from fleet.run import run_fleet

    return run_fleet(args.port, args.concurrency, args.data_dir)


def cmd_dlq(args: argparse.Namespace) -> int:
    from fleet.dlq_cli import run_dlq

    destination = _destination(args)
    return run_dlq(args, destination.settings, destination.name)


def _redis(settings: Settings) -> Any:
    return settings.redis_client(decode_responses=True, socket_connect_timeout=5)


def cmd_trace(args: argparse.Namespace) -> int:
    from fleet.trace import describe, lookup

    settings = _settings()
    if settings.trace_window_s <= 0:
        print("trace: event history is off (TRACE_WINDOW_S=0)", file=sys.stderr)
        return 2
    records = lookup(_redis(settings), settings, args.message_id)
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
    from fleet.status import celery_workers, format_status, read_status
    from worker.celery_app import queue_name

    destination = _destination(args)
    settings = destination.settings
    queue = queue_name(settings.redis_key_prefix)
    status = read_status(
        _redis(settings),
        settings,
        list_workers=lambda: celery_workers(queue, args.timeout),
        destination=destination.name,
    )
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        print(format_status(status))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fleet.replay import ReplayError, replay_file

    settings = _settings()
    url = args.url or f"http://127.0.0.1:{settings.port}"
    write_key = args.write_key or (
        settings.ingest_write_keys[0].reveal() if settings.ingest_write_keys else ""
    )
    if not write_key:
        print("replay: no write key: pass --write-key or set INGEST_WRITE_KEYS", file=sys.stderr)
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
    from fleet.deletion import DeletionError, delete_users, read_user_ids

    destination = _destination(args)
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
    import time

    from config.redis_keys import RedisKeys
    from fleet.metrics import serve

    settings = _settings()
    stop = serve(
        _redis(settings),
        RedisKeys(settings.redis_key_prefix),
        settings.shards,
        args.port,
        args.address,
    )
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
                      help="override PUSHWOOSH_ENABLE_BATCHING for the presets")  # fmt: skip
    prev.add_argument("--destination", help="which destination's settings and mappings")
    prev.set_defaults(func=cmd_preview)

    ping = sub.add_parser("ping", help="check the Pushwoosh credentials")
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
    status.add_argument("--destination", help="which destination (default: the first)")
    status.set_defaults(func=cmd_status)

    replay = sub.add_parser("replay", help="send an NDJSON file of Segment events through ingest")
    replay.add_argument("file", help="NDJSON: one Segment event per line (an export, an archive)")
    replay.add_argument("--rate", type=float, default=None, help="at most N events per second")
    replay.add_argument("--url", default=None, help="ingest URL (default http://127.0.0.1:$PORT)")
    replay.add_argument("--write-key", default=None, help="default: the first INGEST_WRITE_KEYS")
    replay.add_argument("--batch-size", type=int, default=100, help="events per request")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.set_defaults(func=cmd_replay)

    delete = sub.add_parser(
        "delete-user", help="delete users' Pushwoosh profiles (GDPR), after their queued events"
    )
    delete.add_argument("user_ids", nargs="*", help="Segment userIds to delete")
    delete.add_argument("--file", help="a file of userIds, one per line (- for stdin)")
    delete.add_argument("--destination", help="which destination (default: the first)")
    delete.set_defaults(func=cmd_delete_user)

    metrics = sub.add_parser("metrics", help="serve the fleet-wide Prometheus metrics")
    metrics.add_argument("--port", type=int, default=9100)
    metrics.add_argument("--address", default="127.0.0.1")
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
