"""The Slack peer answers like Slack's Web API and signs as slack_sdk does."""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-A0PEER-1-test"


def post(url, body, headers=None, form=False):
    data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
    kind = "application/x-www-form-urlencoded" if form else "application/json"
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": kind, **(headers or {})}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


class SlackPeerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "slack_peer.py"), "--port", "0",
             "--bot-token", TOKEN, "--app-token", APP_TOKEN],
            stdout=subprocess.PIPE, text=True,
        )
        line = cls.proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        cls.url = line.split(" ", 1)[1]
        post(f"{cls.url}/_peer/users", {"U1": "alice@example.com"})

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=10)
        cls.proc.stdout.close()

    def users_info(self, user, token=TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return post(f"{self.url}/api/users.info", {"user": user}, headers, form=True)

    def test_users_info_answers_as_slack_does(self):
        self.assertEqual(self.users_info("U1")["user"]["profile"]["email"], "alice@example.com")
        self.assertEqual(self.users_info("U404"), {"ok": False, "error": "user_not_found"})
        self.assertEqual(self.users_info("U1", token=None)["error"], "not_authed")
        self.assertEqual(self.users_info("U1", token="xoxb-wrong")["error"], "invalid_auth")

    def test_socket_mode_greets_delivers_envelopes_and_records_acks(self):
        from websockets.sync.client import connect

        opened = post(f"{self.url}/api/apps.connections.open", {},
                      {"Authorization": f"Bearer {APP_TOKEN}"})
        self.assertTrue(opened["ok"])
        self.assertTrue(opened["url"].startswith("ws://127.0.0.1:"), opened)
        refused = post(f"{self.url}/api/apps.connections.open", {},
                       {"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(refused["error"], "not_allowed_token_type")
        with connect(opened["url"]) as ws:
            self.assertEqual(json.loads(ws.recv(timeout=5))["type"], "hello")
            import threading
            answer = {}
            pusher = threading.Thread(target=lambda: answer.update(post(
                f"{self.url}/_peer/socket/push", {"payload": {"type": "block_actions"}, "wait": 5})))
            pusher.start()
            envelope = json.loads(ws.recv(timeout=5))
            self.assertEqual(envelope["type"], "interactive")
            self.assertEqual(envelope["payload"], {"type": "block_actions"})
            ws.send(json.dumps({"envelope_id": envelope["envelope_id"]}))
            pusher.join(timeout=10)
            self.assertTrue(answer["acked"], answer)
            self.assertEqual(answer["envelope_id"], envelope["envelope_id"])
            post(f"{self.url}/_peer/socket/disconnect", {"how": "message"})
            self.assertEqual(json.loads(ws.recv(timeout=5))["type"], "disconnect")
        # A ticket is good for one connection.
        with self.assertRaises(Exception):
            with connect(opened["url"]) as ws:
                ws.recv(timeout=5)

    def test_signatures_are_slacks_v0_hmac(self):
        body = "payload=%7B%7D"
        signed = post(f"{self.url}/_peer/sign",
                      {"secret": "s3cret", "timestamp": "1700000000", "body": body})
        want = "v0=" + hmac.new(b"s3cret", f"v0:1700000000:{body}".encode(),
                                hashlib.sha256).hexdigest()
        self.assertEqual(signed["signature"], want)

    def test_views_open_needs_a_trigger_and_a_modal(self):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        opened = post(f"{self.url}/api/views.open",
                      {"trigger_id": "T.1", "view": {"type": "modal", "callback_id": "deny"}}, auth)
        self.assertTrue(opened["ok"])
        self.assertEqual(opened["view"]["callback_id"], "deny")
        self.assertEqual(post(f"{self.url}/api/views.open", {"view": {"type": "modal"}}, auth),
                         {"ok": False, "error": "invalid_trigger_id"})

    def test_response_urls_are_recorded(self):
        post(f"{self.url}/response/T1/abc", {"text": "refused", "response_type": "ephemeral"})
        with urllib.request.urlopen(f"{self.url}/_peer/calls", timeout=10) as response:
            calls = json.load(response)
        self.assertIn({"method": "response_url", "path": "/response/T1/abc",
                       "body": {"text": "refused", "response_type": "ephemeral"}}, calls)


    def test_messages_are_posted_updated_in_place_and_refused_on_demand(self):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        posted = post(f"{self.url}/api/chat.postMessage", {"channel": "#access", "text": "one"}, auth)
        self.assertTrue(posted["ok"])
        self.assertEqual(posted["channel"], "CACCESS")
        updated = post(f"{self.url}/api/chat.update",
                       {"channel": posted["channel"], "ts": posted["ts"], "text": "two"}, auth)
        self.assertEqual(updated["ts"], posted["ts"])
        self.assertEqual(post(f"{self.url}/api/chat.update", {"channel": "CACCESS", "ts": "1.2"}, auth),
                         {"ok": False, "error": "message_not_found"})
        self.assertEqual(post(f"{self.url}/api/chat.postMessage", {"channel": "nope"}, auth)["error"],
                         "channel_not_found")
        with urllib.request.urlopen(f"{self.url}/_peer/messages", timeout=10) as response:
            messages = json.load(response)
        mine = [m for m in messages if m["ts"] == posted["ts"]]
        self.assertEqual([v["text"] for v in mine[0]["versions"]], ["one", "two"])

        post(f"{self.url}/_peer/faults", {"rate_limited": 1, "retry_after": 7})
        with self.assertRaises(urllib.error.HTTPError) as limited:
            post(f"{self.url}/api/chat.postMessage", {"channel": "C1", "text": "x"}, auth)
        self.assertEqual(limited.exception.code, 429)
        self.assertEqual(limited.exception.headers["Retry-After"], "7")
        post(f"{self.url}/_peer/faults", {"outage": True})
        with self.assertRaises(urllib.error.HTTPError) as down:
            post(f"{self.url}/api/chat.postMessage", {"channel": "C1", "text": "x"}, auth)
        self.assertEqual(down.exception.code, 503)
        post(f"{self.url}/_peer/faults", {"outage": True, "outage_status": 500})
        with self.assertRaises(urllib.error.HTTPError) as down:
            post(f"{self.url}/api/chat.postMessage", {"channel": "C1", "text": "x"}, auth)
        self.assertEqual(down.exception.code, 500)
        post(f"{self.url}/_peer/faults", {"outage": False, "outage_status": 503})
        self.assertTrue(post(f"{self.url}/api/chat.postMessage", {"channel": "C1", "text": "x"}, auth)["ok"])


    def test_a_member_is_found_by_email_and_dmed(self):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        found = post(f"{self.url}/api/users.lookupByEmail", {"email": "alice@example.com"}, auth, form=True)
        self.assertEqual(found["user"]["id"], "U1")
        self.assertEqual(post(f"{self.url}/api/users.lookupByEmail", {"email": "x@y.z"}, auth, form=True)["error"],
                         "users_not_found")
        opened = post(f"{self.url}/api/conversations.open", {"users": "U1"}, auth)
        self.assertEqual(opened["channel"]["id"], "DU1")
        self.assertTrue(post(f"{self.url}/api/chat.postMessage", {"channel": "DU1", "text": "hi"}, auth)["ok"])
        self.assertEqual(post(f"{self.url}/api/conversations.open", {"users": "U404"}, auth)["error"],
                         "user_not_found")

if __name__ == "__main__":
    unittest.main()
