"""`pushwoosh-fleet dlq list|show|replay|purge`: the dead-letter queue from the command line."""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from collections.abc import Callable

import redis
from tqdm import tqdm

from config.destinations import Destination
from config.redis_keys import RedisKeys
from worker.dlq import DeadLetter, DeadLetterFilter, DeadLetterQueue

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def read_age(text: str | None) -> float | None:
    """'90s', '30m', '2h', '1d' → seconds (None for none); ValueError for anything else."""
    if text is None or not text.strip():
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"cannot read the age {text!r}; use e.g. 90s, 30m, 2h, 1d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_age(text: str | None) -> float | None:
    """read_age for the command line: a bad age stops the command with the reason."""
    try:
        return read_age(text)
    except ValueError as ex:
        raise SystemExit(f"dlq: {ex}") from ex


def _now_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _select(args: argparse.Namespace, queue: DeadLetterQueue) -> list[DeadLetter]:
    if args.ids:
        found = {entry_id: queue.get(entry_id) for entry_id in args.ids}
        missing = [entry_id for entry_id, letter in found.items() if letter is None]
        if missing:
            print(f"dlq: no entry {', '.join(missing)}", file=sys.stderr)
        return [letter for letter in found.values() if letter is not None]
    flt = DeadLetterFilter(
        status=args.status,
        action=args.action,
        older_than_s=parse_age(args.older_than),
        newer_than_s=parse_age(args.newer_than),
        message_id=args.message_id,
    )
    letters = []
    for letter in queue.iter(flt, _now_ms()):
        letters.append(letter)
        if args.limit is not None and len(letters) >= args.limit:
            break
    return letters


def run_dlq(args: argparse.Namespace, client: redis.Redis, destination: Destination) -> int:
    settings = destination.settings
    keys = RedisKeys(settings.redis_key_prefix, destination.name)
    queue = DeadLetterQueue(client, keys, settings.shards)
    letters = _select(args, queue)
    return _COMMANDS[args.dlq_command](args, queue, letters)


def _list(args: argparse.Namespace, queue: DeadLetterQueue, letters: list[DeadLetter]) -> int:
    if args.json:
        for letter in letters:
            print(json.dumps({"id": letter.id, **json.loads(letter.to_json())}))
        return 0
    print(f"{len(letters)} dead-lettered entr{'y' if len(letters) == 1 else 'ies'}")
    for letter in letters:
        status = letter.status if letter.status is not None else letter.kind
        print(
            f"{letter.id:<18} {_when(letter.last_attempt_ms)}  {status!s:<8} "
            f"{letter.action or '-':<17} {len(letter.message_ids):>3} event(s)  "
            f"{letter.reason[:70]}"
        )
    return 0


def _show(args: argparse.Namespace, queue: DeadLetterQueue, letters: list[DeadLetter]) -> int:
    for letter in letters:
        print(json.dumps({"id": letter.id, **json.loads(letter.to_json())}, indent=2))
    return 0


def _replay(args: argparse.Namespace, queue: DeadLetterQueue, letters: list[DeadLetter]) -> int:
    if not letters:
        print("nothing to replay")
        return 0
    moved = 0
    for letter in tqdm(letters, desc="replaying", unit="entry", disable=not letters):
        moved += queue.replay(letter, _now_ms())
    skipped = len(letters) - moved
    print(
        f"replayed {moved} entr{'y' if moved == 1 else 'ies'}"
        + (f" ({skipped} were already replayed or purged)" if skipped else "")
        + "; workers send them now"
    )
    return 0


def _purge(args: argparse.Namespace, queue: DeadLetterQueue, letters: list[DeadLetter]) -> int:
    if not letters:
        print("nothing to purge")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("dlq purge: add --yes to purge without a prompt", file=sys.stderr)
            return 2
        answer = input(f"purge {len(letters)} entries for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    print(f"purged {queue.purge(letters)} entries")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, DeadLetterQueue, list[DeadLetter]], int]] = {
    "list": _list,
    "show": _show,
    "replay": _replay,
    "purge": _purge,
}
