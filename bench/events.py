"""Benchmark events and request bodies, rendered from templates so load generation stays cheap.

Every event carries `properties.bench_seq` (a unique sequence number, so the stand-in can say
which events arrived and when) and `properties.sent` (the send time, spliced in by the load
generator just before the request leaves: the placeholder has the width of a real timestamp,
so Content-Length never changes). A Segment track event of about 700 bytes, like a real one.
"""

from __future__ import annotations

import base64

WRITE_KEY = "bench-key"
SENT_PLACEHOLDER = b'"sent":1000000000.000000'
USERS = 5000
SENT_AT = "2024-05-01T12:05:00.000Z"

# %-style so one bytes % tuple renders an event (much cheaper than json.dumps of a dict).
_EVENT = (
    b'{"type":"track","event":"Order Completed","userId":"user-%(user)d",'
    b'"anonymousId":"anon-%(user)d","messageId":"%(tag)s-%(seq)d",'
    b'"timestamp":"2024-05-01T12:05:00.000Z","properties":{"bench_seq":%(seq)d,'
    + SENT_PLACEHOLDER
    + b',"order_id":"o-%(seq)d","revenue":42.5,"currency":"EUR","coupon":null,'
    b'"products":[{"sku":"sku-1","name":"Socks","price":7.5,"quantity":2},'
    b'{"sku":"sku-9","name":"Hat","price":27.5,"quantity":1}]},'
    b'"context":{"library":{"name":"analytics-python","version":"2.3.2"},'
    b'"app":{"name":"Shop","version":"5.1.0","build":"5100"},'
    b'"device":{"id":"dev-%(user)d","type":"ios","model":"iPhone15,2","manufacturer":"Apple"},'
    b'"os":{"name":"iOS","version":"17.4"},"locale":"de-DE","timezone":"Europe/Berlin",'
    b'"ip":"203.0.113.7","userAgent":"Shop/5.1.0 (iPhone; iOS 17.4; Scale/3.00)"}}'
)


def render_event(tag: str, seq: int) -> bytes:
    return _EVENT % {b"tag": tag.encode(), b"seq": seq, b"user": seq % USERS}


def batch_body(tag: str, first_seq: int, count: int) -> bytes:
    """A `/v1/batch` body (what Segment's libraries send): `count` events from first_seq on."""
    events = b",".join(render_event(tag, seq) for seq in range(first_seq, first_seq + count))
    return b'{"batch":[' + events + b'],"sentAt":"' + SENT_AT.encode() + b'"}'


def webhook_body(tag: str, seq: int) -> bytes:
    """A single-event `/webhook` body (Segment's Webhooks destination, batching off)."""
    return render_event(tag, seq)


def auth_header(route: str) -> bytes:
    if route == "webhook":
        return b"Authorization: Bearer " + WRITE_KEY.encode()
    token = base64.b64encode(f"{WRITE_KEY}:".encode())
    return b"Authorization: Basic " + token


def http_request(path: str, route: str, body: bytes) -> bytes:
    """A whole keep-alive HTTP/1.1 POST, head and body, ready to write to a socket."""
    head = (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n" + auth_header(route) + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


def stored_event_json(tag: str, seq: int, received_at: str) -> bytes:
    """The event as ingest stores it after normalising a `/v1/batch` message (`sentAt` of the
    batch kept, `receivedAt` added): for filling a backlog without HTTP. `bench.backlog` checks
    it against what `ingest.events.parse_v1` makes of the same message."""
    tail = b',"sentAt":"%s","receivedAt":"%s"}' % (SENT_AT.encode(), received_at.encode())
    return render_event(tag, seq)[:-1] + tail
