"""`pushwoosh-fleet`: run the fleet, preview mappings, check credentials and config, the DLQ.

Every command that acts for a destination takes `--destination`; without it, commands that read
(status, metrics) cover every destination of the destinations file, and commands that act
(preview, ping, dlq, replay, delete-user) use the only destination or ask which one.

Commands that talk to Redis find it the way fleet/locate.py says and name it on stderr; a Redis
they cannot reach is one line on stderr and exit code 2, never a traceback. The options and exit
codes are in fleet/parser.py.
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
import shtab

from config.destinations import Destination, all_secrets, load_destinations
from config.errors import ConfigError
from config.redis_keys import celery_queue
from config.settings import Settings, load_settings
from fleet import locate
from fleet.deletion import DeletionError, delete_users, read_user_ids
from fleet.describe import check_config
from fleet.dlq_cli import run_dlq
from fleet.exporter import page_url, serve_fleet
from fleet.parser import Command, build_parser
from fleet.preview import PreviewInputError, preview, read_events
from fleet.replay import ReplayError, replay_file
from fleet.run import run_fleet
from fleet.status import assess, celery_workers, format_status, read_status
from store.client import redis_for
from telemetry.logs import configure_logging
from telemetry.trace import describe, lookup
from worker.heartbeat import problems as heartbeat_problems
from worker.heartbeat import read_heartbeat
from worker.wire import PING_PATH, Endpoint, ping_body

UNREACHABLE = 2


class Unreachable(Exception):
    """Raised when Redis or ingest does not answer: one line for stderr, exit code 2."""


# Which Redis this invocation talks to, and why (set once by main).
_choice = locate.RedisChoice("REDIS_URL")


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
    """A client for the chosen Redis, after saying on stderr which one it is."""
    print(f"pushwoosh-fleet: {_choice.describe(settings.effective_redis_url)}", file=sys.stderr)
    return redis_for(settings, decode_responses=True, socket_connect_timeout=3, socket_timeout=10)


def _reachable(settings: Settings) -> redis.Redis:
    client = _redis(settings)
    client.ping()
    return client


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


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
    results = [_ping(d) for d in _chosen(args, _destinations(_settings()))]
    if args.json:
        _print_json([{"destination": name, "ok": code == 0, "message": text}
                     for name, code, text in results])  # fmt: skip
    else:
        for name, _, text in results:
            print(f"{name}: {text}")
    return max(code for _, code, _ in results)


def _ping(destination: Destination) -> tuple[str, int, str]:
    settings, name = destination.settings, destination.name
    if not settings.has_credentials:
        return name, 2, "no credentials: set its API key and application code"
    http = Endpoint.of(settings).request(PING_PATH, ping_body(), reveal_secrets=True)
    try:
        response = requests.post(
            http.url, json=http.json, headers=http.headers, timeout=settings.pushwoosh_timeout_s
        )
    except requests.RequestException as ex:
        return name, 1, f"cannot reach {settings.pushwoosh_base_url}: {type(ex).__name__}"
    if 200 <= response.status_code < 300:
        return (
            name,
            0,
            (
                "credentials OK: Pushwoosh accepted the API key for application "
                f"{settings.pushwoosh_application_code} (HTTP {response.status_code})"
            ),
        )
    return (
        name,
        1,
        (
            f"credentials REJECTED: HTTP {response.status_code} "
            f"{response.text[:300].strip()} — check the API key and application code"
        ),
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    code, text = check_config(os.environ)
    if args.json:
        problems = [line[3:] for line in text.splitlines()[1:]] if code else []
        _print_json({"valid": code == 0, "problems": problems, "summary": "" if code else text})
    else:
        print(text)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    return run_fleet(args.port, args.concurrency, args.data_dir)


def cmd_dlq(args: argparse.Namespace) -> int:
    settings = _settings()
    destination = _one(args, _destinations(settings))
    return run_dlq(args, _reachable(settings), destination)


def cmd_trace(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.trace_window_s <= 0:
        print("trace: event history is off (TRACE_WINDOW_S=0)", file=sys.stderr)
        return 2
    records = lookup(_reachable(settings), settings, args.message_id, time.time())
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
    try:
        client = _reachable(settings)
    except redis.RedisError as ex:
        if args.json:
            url = locate.masked(settings.effective_redis_url)
            _print_json({"state": "unreachable", "problems": [_redis_problem(settings, ex)],
                         "redis": url, "destinations": []})  # fmt: skip
        raise
    workers = celery_workers(celery_queue(settings.redis_key_prefix), args.timeout)
    statuses = [
        read_status(
            client, d.settings, destination=d.name, list_workers=lambda: workers, now_s=time.time()
        )
        for d in chosen
    ]
    problems = assess(statuses, args.stale_after)
    state = "degraded" if problems else "healthy"
    if args.json:
        _print_json({"state": state, "problems": problems,
                     "redis": locate.masked(settings.effective_redis_url),
                     "destinations": [status.as_dict() for status in statuses]})  # fmt: skip
    else:
        print("\n\n".join(format_status(status) for status in statuses))
        print(f"\n{state.upper()}" + "".join(f"\n  - {p}" for p in problems))
    return 1 if problems else 0


def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings()
    destination = _one(args, _destinations(settings))
    fleet = _choice.fleet
    url = (
        args.url
        or (fleet.ingest_url if fleet and not os.environ.get("PORT") else None)
        or f"http://127.0.0.1:{settings.port}"
    )
    keys = destination.write_keys
    write_key = args.write_key or (keys[0].reveal() if keys else _local_write_key(fleet))
    if not write_key:
        print(
            f"replay: no write key for destination {destination.name!r}: pass --write-key or "
            "set INGEST_WRITE_KEYS (write_keys in a destinations file)",
            file=sys.stderr,
        )
        return 2
    try:
        summary = replay_file(
            args.file if args.file == "-" else Path(args.file),
            url,
            write_key,
            batch_size=args.batch_size,
            rate_per_s=args.rate,
            progress=False if args.no_progress else None,
        )
    except ReplayError as ex:
        if str(ex).startswith("cannot reach"):
            raise Unreachable(f"replay: {ex}") from ex
        print(f"replay: {ex}", file=sys.stderr)
        return 1
    except OSError as ex:
        print(f"replay: cannot read {args.file}: {ex.strerror or ex}", file=sys.stderr)
        return 2
    print(summary.format())
    return 0 if summary.ok else 1


def _local_write_key(fleet: locate.RunningFleet | None) -> str:
    """The write key `run` made for itself, when it is the fleet this directory runs."""
    if fleet is None or not fleet.write_key_file:
        return ""
    try:
        return Path(fleet.write_key_file).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


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
        queued = delete_users(_reachable(destination.settings), destination, user_ids)
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
    _chosen(args, _destinations(settings))  # an unknown --destination stops here
    address = args.address or settings.metrics_address
    port = settings.fleet_metrics_port if args.port is None else args.port
    client = _reachable(settings)
    listener = serve_fleet(settings, os.environ, client, address, port, args.destination)
    if listener is None:
        print(f"metrics: cannot listen on {address}:{port}", file=sys.stderr)
        return 2
    print(f"serving the fleet-wide gauges on {listener.url}", flush=True)
    print(f"delivery page on {page_url(listener)} (an admin key opens it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        listener.stop()
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    settings = _settings()
    state = read_heartbeat(settings.heartbeat_path)
    found = heartbeat_problems(state, time.time(), args.max_age)
    if args.json:
        _print_json({"alive": not found, "problems": found, "heartbeat": state,
                     "file": settings.heartbeat_path})  # fmt: skip
    elif found:
        print(f"worker NOT draining ({settings.heartbeat_path}):", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
    else:
        assert state is not None
        print(f"worker {state.get('node')} alive: pump ran {time.time() - state['beat']:.1f} s ago")
    return 1 if found else 0


def cmd_completion(args: argparse.Namespace) -> int:
    print(shtab.complete(build_parser(COMMANDS), shell=args.shell))
    return 0


COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "preview": cmd_preview,
    "ping": cmd_ping,
    "check-config": cmd_check_config,
    "dlq": cmd_dlq,
    "trace": cmd_trace,
    "status": cmd_status,
    "replay": cmd_replay,
    "delete-user": cmd_delete_user,
    "metrics": cmd_metrics,
    "probe": cmd_probe,
    "completion": cmd_completion,
}


def _redis_problem(settings: Settings, ex: redis.RedisError) -> str:
    return f"cannot reach {_choice.describe(settings.effective_redis_url)}: {ex}"


def _find_the_fleet(args: argparse.Namespace) -> None:
    """Use the Redis `run` recorded in the data directory when REDIS_URL is unset."""
    global _choice
    _choice = locate.choose_redis(os.environ, Path(args.data_dir))
    if _choice.url is not None and args.command != "run":
        os.environ["REDIS_URL"] = _choice.url
        broker = _choice.fleet.broker_url if _choice.fleet is not None else None
        if broker and not (
            os.environ.get("CELERY_BROKER_URL") or os.environ.get("CELERY_BROKER_URL_FILE")
        ):
            os.environ["CELERY_BROKER_URL"] = broker  # `status` asks that fleet's workers


def main(argv: list[str] | None = None) -> int:
    args = build_parser(COMMANDS).parse_args(argv)
    _find_the_fleet(args)
    _configure_logging()
    try:
        result: Any = args.func(args)
    except ConfigError as ex:
        print(f"pushwoosh-fleet: {ex}", file=sys.stderr)
        return 2
    except redis.RedisError as ex:
        settings = load_settings(os.environ)
        print(f"pushwoosh-fleet {args.command}: {_redis_problem(settings, ex)}", file=sys.stderr)
        return UNREACHABLE
    except Unreachable as ex:
        print(f"pushwoosh-fleet {ex}", file=sys.stderr)
        return UNREACHABLE
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
