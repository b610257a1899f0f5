#!/usr/bin/env python3
"""Slack test peer for jitgate: the parts of Slack's Web API jitgate calls, on a loopback
port, recording every call for the tests to read. Usage:

    python tests/peers/slack_peer.py --port 0 [--host 127.0.0.1] --bot-token xoxb-... \
        [--app-token xapp-...]

Once listening it prints one line, ``READY http://127.0.0.1:<port>``, to stdout; the Web
API is under ``/api/`` (jitgate's ``[slack] api_base_url``). It stops on SIGTERM/SIGINT.

Served:

* ``POST /api/users.info`` (``user=U...``, form or JSON), with the bot token as
  ``Authorization: Bearer``: ``{"ok": true, "user": {"id", "profile": {"email"}}}`` for a
  seeded user, ``{"ok": false, "error": "user_not_found"}`` otherwise, and
  ``not_authed`` / ``invalid_auth`` for a missing or wrong token, as Slack answers
  (https://api.slack.com/methods/users.info).
* ``POST /api/views.open`` (JSON ``{"trigger_id", "view"}``): records the modal and
  answers ``{"ok": true, "view": {...}}``; ``invalid_trigger_id`` without a trigger id
  (https://api.slack.com/methods/views.open).
* ``POST /api/users.lookupByEmail`` (``email=...``): the seeded member with that email,
  else ``users_not_found`` (https://api.slack.com/methods/users.lookupByEmail).
* ``POST /api/conversations.open`` (JSON ``{"users": "U..."}``): the DM channel with a
  seeded member, ``{"ok": true, "channel": {"id": "D<member>"}}``, else ``user_not_found``
  (https://api.slack.com/methods/conversations.open).
* ``POST /api/chat.postMessage`` (JSON ``{"channel", "text", "blocks"}``): keeps the
  message and answers ``{"ok": true, "channel": "<id>", "ts": "<ts>"}``; a ``#name``
  channel is answered with its id (``C`` + the name, upper-cased), an unknown
  ``Cxxxx`` id is fine, anything else ``channel_not_found``
  (https://api.slack.com/methods/chat.postMessage).
* ``POST /api/chat.update`` (JSON ``{"channel", "ts", "text", "blocks"}``): replaces the
  message, keeping every earlier version; ``message_not_found`` for an unknown ts
  (https://api.slack.com/methods/chat.update).
* Faults for both chat methods, set with ``POST /_peer/faults`` ``{"rate_limited": N,
  "retry_after": S, "outage": true|false, "outage_status": 500}``: the next N calls
  answer HTTP 429 with ``Retry-After: S``, as Slack's rate limits do; while ``outage`` is
  on every call answers ``outage_status`` (503 unless set). ``{"users_info_delay": S}``
  makes ``users.info`` answer after S seconds (a slow Slack). Refused calls are not recorded.
* ``POST /response/<anything>``: stands for an interaction's ``response_url``
  (https://api.slack.com/interactivity/handling#message_responses); records the JSON
  posted and answers ``{"ok": true}``.
* ``POST /api/apps.connections.open`` with the app-level token: ``{"ok": true, "url":
  "ws://127.0.0.1:<port>/link/?ticket=<n>"}``, a one-time URL of the peer's Socket Mode
  WebSocket (PyPI ``websockets``); ``not_allowed_token_type`` for the bot token,
  ``invalid_auth`` for another (https://api.slack.com/methods/apps.connections.open).
  A connection is greeted with ``{"type": "hello", ...}`` as Slack does
  (https://api.slack.com/apis/socket-mode); the peer records every acknowledgement.
  Controlled with ``POST /_peer/socket/push`` (``{"payload", "type": "interactive", "to":
  "one"|"all", "wait": 3}``: sends one envelope to one connection, or the same envelope to
  every connection as Slack's retries would, and answers ``{"envelope_id", "acked",
  "acks", "ack", "seconds"}`` once acknowledged or after ``wait`` seconds),
  ``POST /_peer/socket/disconnect`` (``{"how": "message"}`` sends Slack's ``disconnect``
  message, ``{"how": "drop"}`` cuts the TCP connections without a close frame) and
  ``GET /_peer/socket`` (``{"connections", "opened"}``).
* A control API under ``/_peer/``: ``POST users`` (``{"U1": "alice@example.com"}``, adds
  users), ``GET calls`` (every call so far: ``{"method", "path", "body"}``, oldest
  first), ``GET messages`` (every posted message: ``{"channel", "ts", "versions":
  [{"text", "blocks"}...]}``, plus ``thread_ts`` and ``reply_broadcast`` for a reply, oldest
  first), ``POST sign`` (``{"secret", "timestamp", "body"}`` → ``{"signature"}``, made by
  ``slack_sdk.signature.SignatureVerifier``, an implementation independent of jitgate's,
  so tests sign interaction payloads as Slack would).
"""

import argparse
import json
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from slack_sdk.signature import SignatureVerifier
from websockets.sync.server import serve as serve_websocket


class Peer:
    def __init__(self, bot_token, app_token=None):
        self.bot_token = bot_token
        self.app_token = app_token
        self.ws_url = None  # ws://host:port, once the Socket Mode server listens
        self.tickets = set()
        self.next_ticket = 1
        self.sockets = []  # live Socket Mode connections, oldest first
        self.opened = 0
        self.next_socket = 0
        self.acks = {}  # envelope_id -> [{"ack", "at"}]
        self.users = {}
        self.calls = []
        self.messages = []  # {"channel", "ts", "versions": [{"text", "blocks"}]}
        self.rate_limited = 0
        self.retry_after = 1
        self.outage = False
        self.outage_status = 503
        self.users_info_delay = 0.0
        self.next_ts = 1
        self.lock = threading.Lock()
        self.acked = threading.Condition(self.lock)

    def open_connection(self):
        with self.lock:
            ticket = str(self.next_ticket)
            self.next_ticket += 1
            self.tickets.add(ticket)
        return {"ok": True, "url": f"{self.ws_url}/link/?ticket={ticket}"}

    def serve_socket(self, connection):
        """One Socket Mode connection: a redeemed ticket, hello, then acknowledgements."""
        query = urllib.parse.urlparse(connection.request.path).query
        ticket = urllib.parse.parse_qs(query).get("ticket", [""])[0]
        with self.lock:
            if ticket not in self.tickets:
                connection.close(code=1008, reason="invalid ticket")
                return
            self.tickets.discard(ticket)
            self.sockets.append(connection)
            self.opened += 1
            count = len(self.sockets)
        try:
            connection.send(json.dumps({
                "type": "hello",
                "num_connections": count,
                "debug_info": {"host": "slack-peer", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0PEER"},
            }))
            for message in connection:
                try:
                    ack = json.loads(message)
                except ValueError:
                    continue
                envelope = ack.get("envelope_id") if isinstance(ack, dict) else None
                if envelope:
                    with self.acked:
                        self.acks.setdefault(envelope, []).append({"ack": ack, "at": time.monotonic()})
                        self.acked.notify_all()
        except Exception:  # a dropped connection ends here as any other
            pass
        finally:
            with self.lock:
                if connection in self.sockets:
                    self.sockets.remove(connection)

    def push(self, body):
        kind = body.get("type", "interactive")
        wait = float(body.get("wait", 3))
        with self.lock:
            live = list(self.sockets)
            if not live:
                return {"ok": False, "error": "no_connection"}
            if body.get("to") == "all":
                targets = live
            else:
                targets = [live[self.next_socket % len(live)]]
                self.next_socket += 1
        envelope_id = str(uuid.uuid4())
        sent = time.monotonic()
        for attempt, connection in enumerate(targets):
            envelope = {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": body.get("payload"),
                "accepts_response_payload": kind == "interactive",
                "retry_attempt": attempt,
                "retry_reason": "timeout" if attempt else "",
            }
            try:
                connection.send(json.dumps(envelope))
            except Exception:
                pass
        with self.acked:
            self.acked.wait_for(lambda: len(self.acks.get(envelope_id, [])) >= len(targets), timeout=wait)
            acks = list(self.acks.get(envelope_id, []))
        first = acks[0] if acks else None
        return {
            "ok": True,
            "envelope_id": envelope_id,
            "acked": first is not None,
            "acks": len(acks),
            "ack": first["ack"] if first else None,
            "seconds": (first["at"] - sent) if first else None,
        }

    def disconnect(self, how):
        with self.lock:
            live = list(self.sockets)
        for connection in live:
            try:
                if how == "drop":
                    connection.socket.shutdown(socket.SHUT_RDWR)
                else:
                    connection.send(json.dumps({
                        "type": "disconnect", "reason": "refresh_requested",
                        "debug_info": {"host": "slack-peer"},
                    }))
            except OSError:
                pass
        return {"ok": True, "connections": len(live)}

    def refusal(self):
        """(status, headers) when a chat call is to be refused now, else None."""
        with self.lock:
            if self.outage:
                return self.outage_status, {}
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return 429, {"Retry-After": str(self.retry_after)}
        return None

    def post_message(self, body):
        channel = str(body.get("channel") or "")
        if channel.startswith("#") and len(channel) > 1:
            channel = "C" + channel[1:].upper().replace("-", "")
        elif not channel.startswith(("C", "D")):
            return {"ok": False, "error": "channel_not_found"}
        with self.lock:
            ts = f"1700000000.{self.next_ts:06d}"
            self.next_ts += 1
            message = {"channel": channel, "ts": ts, "versions": [{"text": body.get("text"), "blocks": body.get("blocks")}]}
            if body.get("thread_ts"):
                message["thread_ts"] = body["thread_ts"]
                message["reply_broadcast"] = bool(body.get("reply_broadcast"))
            self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": ts}

    def update_message(self, body):
        with self.lock:
            for message in self.messages:
                if message["channel"] == body.get("channel") and message["ts"] == body.get("ts"):
                    message["versions"].append({"text": body.get("text"), "blocks": body.get("blocks")})
                    return {"ok": True, "channel": message["channel"], "ts": message["ts"]}
        return {"ok": False, "error": "message_not_found"}

    def record(self, method, path, body):
        with self.lock:
            self.calls.append({"method": method, "path": path, "body": body})


def parse_body(headers, raw):
    kind = headers.get("Content-Type", "")
    if "application/json" in kind:
        return json.loads(raw or b"{}")
    return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}


def make_handler(peer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, value, headers=None):
            data = json.dumps(value).encode()
            self.send_response(status)
            for name, header in (headers or {}).items():
                self.send_header(name, header)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/_peer/calls":
                with peer.lock:
                    return self.answer(200, list(peer.calls))
            if self.path == "/_peer/messages":
                with peer.lock:
                    return self.answer(200, json.loads(json.dumps(peer.messages)))
            if self.path == "/_peer/health":
                return self.answer(200, {"ok": True})
            if self.path == "/_peer/socket":
                with peer.lock:
                    return self.answer(200, {"connections": len(peer.sockets), "opened": peer.opened})
            self.answer(404, {"ok": False, "error": "unknown_method"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = parse_body(self.headers, raw)
            except (ValueError, UnicodeDecodeError):
                return self.answer(400, {"ok": False, "error": "invalid_form_data"})
            path = self.path.split("?", 1)[0]
            if path == "/_peer/users":
                with peer.lock:
                    peer.users.update(body)
                return self.answer(200, {"ok": True})
            if path == "/_peer/sign":
                verifier = SignatureVerifier(body["secret"])
                signature = verifier.generate_signature(
                    timestamp=str(body["timestamp"]), body=body["body"]
                )
                return self.answer(200, {"signature": signature})
            if path == "/_peer/faults":
                with peer.lock:
                    peer.rate_limited = int(body.get("rate_limited", peer.rate_limited))
                    peer.retry_after = int(body.get("retry_after", peer.retry_after))
                    peer.outage = bool(body.get("outage", peer.outage))
                    peer.outage_status = int(body.get("outage_status", peer.outage_status))
                    peer.users_info_delay = float(body.get("users_info_delay", peer.users_info_delay))
                return self.answer(200, {"ok": True})
            if path == "/_peer/socket/push":
                return self.answer(200, peer.push(body))
            if path == "/_peer/socket/disconnect":
                return self.answer(200, peer.disconnect(body.get("how", "message")))
            if path == "/api/apps.connections.open":
                peer.record("apps.connections.open", path, {})
                auth = self.headers.get("Authorization", "")
                if not auth:
                    return self.answer(200, {"ok": False, "error": "not_authed"})
                if auth == f"Bearer {peer.bot_token}":
                    return self.answer(200, {"ok": False, "error": "not_allowed_token_type"})
                if peer.app_token is None or auth != f"Bearer {peer.app_token}":
                    return self.answer(200, {"ok": False, "error": "invalid_auth"})
                with peer.lock:
                    down = peer.outage
                if down:
                    return self.answer(503, {"ok": False, "error": "service_unavailable"})
                return self.answer(200, peer.open_connection())
            if path in ("/api/chat.postMessage", "/api/chat.update"):
                if self.headers.get("Authorization", "") != f"Bearer {peer.bot_token}":
                    return self.answer(200, {"ok": False, "error": "invalid_auth"})
                refused = peer.refusal()
                if refused is not None:
                    status, headers = refused
                    return self.answer(status, {"ok": False, "error": "ratelimited"}, headers)
                method = path.removeprefix("/api/")
                peer.record(method, path, body)
                if method == "chat.postMessage":
                    return self.answer(200, peer.post_message(body))
                return self.answer(200, peer.update_message(body))
            if path.startswith("/response/"):
                peer.record("response_url", path, body)
                return self.answer(200, {"ok": True})
            if path == "/api/users.info":
                peer.record("users.info", path, body)
                with peer.lock:
                    delay = peer.users_info_delay
                time.sleep(delay)
                auth = self.headers.get("Authorization", "")
                if not auth:
                    return self.answer(200, {"ok": False, "error": "not_authed"})
                if auth != f"Bearer {peer.bot_token}":
                    return self.answer(200, {"ok": False, "error": "invalid_auth"})
                user = body.get("user", "")
                with peer.lock:
                    email = peer.users.get(user)
                if email is None:
                    return self.answer(200, {"ok": False, "error": "user_not_found"})
                return self.answer(
                    200, {"ok": True, "user": {"id": user, "profile": {"email": email}}}
                )
            if path in ("/api/users.lookupByEmail", "/api/conversations.open"):
                method = path.removeprefix("/api/")
                peer.record(method, path, body)
                if self.headers.get("Authorization", "") != f"Bearer {peer.bot_token}":
                    return self.answer(200, {"ok": False, "error": "invalid_auth"})
                with peer.lock:
                    users = dict(peer.users)
                if method == "users.lookupByEmail":
                    member = next((u for u, e in users.items() if e == body.get("email")), None)
                    if member is None:
                        return self.answer(200, {"ok": False, "error": "users_not_found"})
                    return self.answer(200, {"ok": True, "user": {"id": member, "profile": {"email": users[member]}}})
                member = str(body.get("users", ""))
                if member not in users:
                    return self.answer(200, {"ok": False, "error": "user_not_found"})
                return self.answer(200, {"ok": True, "channel": {"id": "D" + member}})
            if path == "/api/views.open":
                peer.record("views.open", path, body)
                if self.headers.get("Authorization", "") != f"Bearer {peer.bot_token}":
                    return self.answer(200, {"ok": False, "error": "invalid_auth"})
                if not body.get("trigger_id"):
                    return self.answer(200, {"ok": False, "error": "invalid_trigger_id"})
                view = body.get("view") or {}
                if view.get("type") != "modal":
                    return self.answer(200, {"ok": False, "error": "invalid_arguments"})
                return self.answer(200, {"ok": True, "view": {"id": "V1", **view}})
            self.answer(404, {"ok": False, "error": "unknown_method"})

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--bot-token", required=True)
    parser.add_argument("--app-token")
    args = parser.parse_args()
    peer = Peer(args.bot_token, args.app_token)
    sockets = serve_websocket(peer.serve_socket, args.host, 0)
    peer.ws_url = f"ws://{args.host}:{sockets.socket.getsockname()[1]}"
    threading.Thread(target=sockets.serve_forever, daemon=True).start()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(peer))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"READY http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
