"""The delivery page in a real browser (Debian's headless Chromium, driven by Playwright) against
one real fleet: gunicorn ingest, a Celery worker, the fleet listener (`pushwoosh-fleet metrics`)
and the Pushwoosh stand-in, shared by every check below, as is the browser.

Given 300 events delivered, two of them refused by the stand-in with 400 (and so dead-lettered),
the page must show the stand-in's numbers, the error with a sample whose key is masked, the
history of an event and the request an event would make; replaying from the page must deliver
each dead letter once; and nobody without an admin key may see or act. Screenshots are kept in
test-artifacts/delivery-page/.
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.support import browser as chromium
from tests.support.harness import ADMIN_KEY, API_KEY, FleetProcesses, fleet_env
from tests.support.pushwoosh_stub import PushwooshStub, RecordedRequest, Reply
from tests.support.traffic import delivered_ids, post_batches, tracks, wait_all_accounted

pytestmark = pytest.mark.integration

POISONED = ("m-000037", "m-000211")  # the stand-in refuses these with 400, until told otherwise
SHOTS = "delivery-page"


class Fleet:
    def __init__(self, stub: PushwooshStub, url: str, accepting: threading.Event) -> None:
        self.stub = stub
        self.url = url
        self.page = f"{url}/delivery/default"
        self.accepting = accepting


def _refusing(accepting: threading.Event) -> Callable[[RecordedRequest], Reply | None]:
    """400 for a batch holding a poisoned event, echoing the credentials it was sent with (so
    the page must mask Pushwoosh's reply too), until `accepting` is set."""

    def handle(request: RecordedRequest) -> Reply | None:
        if accepting.is_set() or not request.path.endswith("post-events"):
            return None
        ids = {f"m-{e['attributes']['i']:06d}" for e in request.json.get("events", [])}
        if ids & set(POISONED):
            auth = request.headers.get("Authorization", "")
            return Reply(400, {"status_code": 400, "status_message": "Invalid event",
                               "received_authorization": auth})  # fmt: skip
        return None

    return handle


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stub = PushwooshStub().start()
    accepting = threading.Event()
    stub.set_handler(_refusing(accepting))
    env = fleet_env(redis_url, prefix, stub.url, PUSHWOOSH_ENABLE_BATCHING="true",
                    PUSHWOOSH_BATCH_FLUSH_DELAY_S="0.2")  # fmt: skip
    processes = FleetProcesses(env, tmp_path_factory.mktemp("delivery-page"))
    try:
        ingest = processes.start_ingest()
        processes.start_worker(concurrency=2)
        listener = processes.start_fleet_listener()
        # Given 300 events, two of which the stand-in refuses
        events = tracks(300)
        accepted = post_batches(ingest, events)
        assert len(accepted) == 300
        _, dead = wait_all_accounted(stub, client, prefix, accepted, timeout_s=60)
        assert sorted(dead) == sorted(POISONED)
        yield Fleet(stub, listener, accepting)
    finally:
        processes.stop_all()
        stub.stop()
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium.chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def page(browser: Any, fleet: Fleet) -> Iterator[Any]:
    context = browser.new_context(
        http_credentials={"username": "admin", "password": ADMIN_KEY},
        viewport={"width": 1280, "height": 900},
    )
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    context.close()


def _shot(page: Any, name: str, full_page: bool = True) -> Path:
    path = chromium.artifact(f"{SHOTS}/{name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


def _eventually(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    """check()'s first truthy answer; the counters and error samples land within a second or
    two of a delivery (a commit, the flusher's tick)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            assert answer, f"not seen within {timeout_s} s: {what}"
            return answer
        time.sleep(0.3)


def _page_statuses(page: Any) -> list[int]:
    """The statuses of the answers a page gets, but for its public CSS (it styles a refusal)."""
    statuses: list[int] = []

    def note(response: Any) -> None:
        if "/_static/" not in response.url:
            statuses.append(response.status)

    page.on("response", note)
    return statuses


def test_without_an_admin_key_the_page_and_its_actions_are_refused(browser, fleet) -> None:
    # A browser without credentials, or with a wrong key, is asked for them and shown nothing
    # (headless Chromium, which cannot ask anyone, gives up on the challenge).
    for credentials in (None, {"username": "admin", "password": "not-the-key"}):
        context = browser.new_context(http_credentials=credentials)
        stranger = context.new_page()
        statuses = _page_statuses(stranger)
        try:
            shown = stranger.goto(fleet.page)
        except Exception as ex:  # no credentials: Chromium gives up on the challenge
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(ex)
        else:  # wrong ones: tried once, then the refusal is shown
            assert shown is not None and shown.status == 401
            assert "delivered" not in stranger.content()
            _shot(stranger, "refused", full_page=False)
        assert statuses and set(statuses) == {401}
        context.close()
    # Nor can a script (or another site's page) act without the key, or with it but no token.
    replay = f"{fleet.page}/dead-letters/replay"
    body = {"ids": ["0/1-0"]}
    refused = requests.get(fleet.page, timeout=5)
    assert refused.status_code == 401 and "delivered" not in refused.text
    assert requests.post(replay, json=body, timeout=5).status_code == 401
    wrong = requests.post(replay, json=body, auth=("admin", "not-the-key"), timeout=5)
    assert wrong.status_code == 401
    no_token = requests.post(replay, json=body, auth=("admin", ADMIN_KEY), timeout=5)
    assert no_token.status_code == 403
    purge = requests.post(f"{fleet.page}/dead-letters/purge", json=body,
                          auth=("admin", ADMIN_KEY), timeout=5)  # fmt: skip
    assert purge.status_code == 403
    # Prometheus still scrapes /metrics without one.
    assert requests.get(f"{fleet.url}/metrics", timeout=5).status_code == 200


def _count(page: Any, element: str) -> int:
    return int(page.get_attribute(element, "data-count"))


def test_the_page_counts_what_the_stand_in_received(page, fleet) -> None:
    delivered = len(set(delivered_ids(fleet.stub)))
    assert delivered == 298

    def shown() -> tuple[int, int] | None:
        page.goto(fleet.page)
        counts = _count(page, "#total-delivered"), _count(page, "#total-dead-lettered")
        return counts if counts == (delivered, len(POISONED)) else None

    _eventually(shown, what=f"{delivered} delivered and {len(POISONED)} dead-lettered")
    assert page.inner_text("#dead-letters-queued") == str(len(POISONED))
    assert page.inner_text("#sending-state") == "sending"
    assert "live" not in page.inner_text("#workers")  # named, not "no live worker"
    assert page.locator("section.chart svg").count() == 3  # drawn, not left empty
    _shot(page, "overview")


def test_the_error_shows_a_sample_with_the_key_masked(page, fleet) -> None:
    row = 'tr.group[data-kind="dead_lettered|http_400|400"]'

    def listed() -> bool:
        page.goto(fleet.page)
        return page.locator(row).count() == 1

    _eventually(listed, what="the dead-lettered 400s in the errors")
    assert page.locator(f"{row} td.num").first.inner_text() == str(len(POISONED))  # calls
    assert page.locator('tr.group[data-kind="split|http_400|400"]').count() == 1
    sample = page.locator(f"{row} + tr.sample")
    sample.locator("summary").click()
    request, reply = (
        sample.locator("pre.request").inner_text(),
        sample.locator("pre.reply").inner_text(),
    )
    assert "POST " in request and request.splitlines()[0].endswith("/post-events")
    assert "Authorization: Token ****" in request
    assert any(marker in request for marker in ('"i": 37', '"i": 211'))
    assert reply.startswith("400") and "Invalid event" in reply and "Token ****" in reply
    assert API_KEY not in page.content()
    _shot(page, "errors")


def test_trace_finds_an_event(page, fleet) -> None:
    page.goto(f"{fleet.page}/trace")
    page.fill("#message-id", "m-000005")
    page.click("form.filters button")
    history = page.inner_text("#history")
    assert "received via v1/batch" in history
    assert re.search(r"sent in request \w+ to post-events .*HTTP 200 .*-> delivered", history)
    _shot(page, "trace")


def test_test_mapping_shows_the_request_and_the_mapping(page, fleet) -> None:
    event = {"type": "identify", "userId": "user-42", "traits": {"email": "a@example.com"},
             "timestamp": "2024-05-01T12:05:00Z"}  # fmt: skip
    page.goto(f"{fleet.page}/test-mapping")
    page.fill("#events", json.dumps(event))
    page.click("form.test button")
    result = page.inner_text("#test-result")
    assert "mapping Create or Update User Profile" in result
    request = page.inner_text("#test-result pre.request")
    assert request.splitlines()[0].startswith("POST ") and request.splitlines()[0].endswith(
        "/track-user"
    )
    assert '"user_id": "user-42"' in request and "Authorization: Token ****" in request
    assert API_KEY not in page.content()
    _shot(page, "test-mapping")


def test_replay_from_the_page_delivers_each_dead_letter_once(page, fleet) -> None:
    # Given the stand-in now takes the events it refused
    fleet.accepting.set()
    page.goto(f"{fleet.page}/dead-letters")
    ids = [box.get_attribute("value") for box in page.locator("input.pick").all()]
    assert len(ids) == len(POISONED)
    assert API_KEY not in page.content()  # Pushwoosh's reply echoed it: shown masked
    page.click(f'a[href$="/dead-letters/{ids[0]}"]')
    assert "Authorization: Token ****" in page.inner_text("pre.request")
    assert "Invalid event" in page.inner_text("pre.reply") and API_KEY not in page.content()
    _shot(page, "dead-letter")
    page.goto(f"{fleet.page}/dead-letters")
    # When every dead letter shown is selected and replayed
    page.check("#select-all")
    page.click('button[data-action="replay"]')
    page.wait_for_selector('#action-status[data-state="done"]', timeout=10_000)
    assert page.inner_text("#action-status").startswith(f"replayed {len(POISONED)} of 2")
    assert page.get_attribute("#progress", "value") == page.get_attribute("#progress", "max")
    _shot(page, "replayed")

    # Then the stand-in receives each of them, accepted, and the queue is empty
    def delivered() -> collections.Counter[str]:
        counts = collections.Counter(delivered_ids(fleet.stub))
        return counts if all(counts[m] for m in POISONED) else collections.Counter()

    counts = _eventually(delivered, what="the replayed events at the stand-in")
    page.goto(f"{fleet.page}/dead-letters")
    assert page.locator("#no-dead-letters").count() == 1
    # And once only: a replay that finds nothing sends nothing again
    replay = requests.post(
        f"{fleet.page}/dead-letters/replay", json={"ids": ids},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=5,
    )  # fmt: skip
    assert replay.json()["done"] == 0
    time.sleep(1.5)  # a second delivery would come within a flush delay and a drain step
    counts = collections.Counter(delivered_ids(fleet.stub))
    assert [counts[m] for m in POISONED] == [1, 1]
