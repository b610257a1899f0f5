"""Tests for aws_peer.py: start it as a subprocess and drive it with boto3.

Run with the peer's venv:  python -m unittest discover -s tests/peers -v
"""

import concurrent.futures
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aws_peer.py")
ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
UNSEEDED_ACCOUNT = "999999999999"


def start_peer(*args: str) -> tuple[subprocess.Popen, str]:
    """Start the peer on a free port and return it with its base URL once it is READY."""
    proc = subprocess.Popen(
        [sys.executable, PEER, "--port", "0", *args],
        stdout=subprocess.PIPE,  # stderr is inherited, so the peer's complaints show up here
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=60)
    except queue.Empty:
        proc.kill()
        raise AssertionError("peer did not print READY within 60s")
    if not line.startswith("READY http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}")
    return proc, line.split()[1]


def stop_peer(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=10)
    proc.stdout.close()
    return code


class PeerTestCase(unittest.TestCase):
    """One peer for the whole class; each test gets default config and clean stats."""

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.url = start_peer()
        kwargs = dict(
            endpoint_url=cls.url,
            region_name="us-east-1",
            aws_access_key_id="AKIDTEST",
            aws_secret_access_key="secret",
            # One attempt, so that throttles and 500s reach the test instead of being retried.
            config=botocore.config.Config(retries={"total_max_attempts": 1}, max_pool_connections=50),
        )
        cls.sso = boto3.client("sso-admin", **kwargs)
        cls.ids = boto3.client("identitystore", **kwargs)
        cls.seeded = cls.control("POST", "/_peer/seed", SEED)
        cls.instance_arn = cls.seeded["instance_arn"]
        cls.ps_arn = cls.seeded["permission_sets"]["JitSsm"]

    @classmethod
    def tearDownClass(cls):
        stop_peer(cls.proc)

    def setUp(self):
        # Every fault and limit off; credentials keep IdC's lifetime.
        knobs = {k: 0 for k in self.control("GET", "/_peer/config") if k != "role_credential_seconds"}
        self.control("POST", "/_peer/config", {**knobs, "role_credential_seconds": 3600})
        self.control("POST", "/_peer/reset", {})

    @classmethod
    def control(cls, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(cls.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def assignment(self, user: str, account: str = ACCOUNT) -> dict:
        return dict(
            InstanceArn=self.instance_arn,
            TargetId=account,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=self.ps_arn,
            PrincipalType="USER",
            PrincipalId=self.seeded["users"][user],
        )

    def listed(self, user: str) -> list:
        return self.sso.list_account_assignments_for_principal(
            InstanceArn=self.instance_arn, PrincipalId=self.seeded["users"][user], PrincipalType="USER"
        )["AccountAssignments"]

    def creation_status(self, request_id: str) -> str:
        return self.sso.describe_account_assignment_creation_status(
            InstanceArn=self.instance_arn, AccountAssignmentCreationRequestId=request_id
        )["AccountAssignmentCreationStatus"]["Status"]

    def deletion_status(self, request_id: str) -> str:
        return self.sso.describe_account_assignment_deletion_status(
            InstanceArn=self.instance_arn, AccountAssignmentDeletionRequestId=request_id
        )["AccountAssignmentDeletionStatus"]["Status"]

    def assertAwsError(self, err: botocore.exceptions.ClientError, code: str, status: int):
        self.assertEqual(err.response["Error"]["Code"], code)
        self.assertEqual(err.response["ResponseMetadata"]["HTTPStatusCode"], status)


SEED = {
    "users": [
        {"user_name": name, "email": f"{name}@example.com", "display_name": name.title()}
        for name in ("alice", "bob", "carol", "dave", "erin", "frank", "grace")
    ],
    "groups": ["ops"],
    "permission_sets": [{"name": "JitSsm", "session_duration": "PT1H"}],
    "accounts": [ACCOUNT, OTHER_ACCOUNT],
}


class SeedTest(PeerTestCase):
    def test_seed_is_idempotent_and_visible_through_the_api(self):
        again = self.control("POST", "/_peer/seed", SEED)
        self.assertEqual(again, self.seeded)
        self.assertEqual(set(again["users"]), {u["user_name"] for u in SEED["users"]})
        self.assertEqual(set(again["groups"]), {"ops"})

        instances = self.sso.list_instances()["Instances"]
        self.assertEqual([i["InstanceArn"] for i in instances], [self.instance_arn])
        self.assertEqual(instances[0]["IdentityStoreId"], self.seeded["identity_store_id"])

        ps = self.sso.describe_permission_set(InstanceArn=self.instance_arn, PermissionSetArn=self.ps_arn)
        self.assertEqual(ps["PermissionSet"]["Name"], "JitSsm")
        self.assertEqual(ps["PermissionSet"]["SessionDuration"], "PT1H")

        user = self.ids.describe_user(
            IdentityStoreId=self.seeded["identity_store_id"], UserId=self.seeded["users"]["alice"]
        )
        self.assertEqual(user["UserName"], "alice")
        self.assertEqual(user["DisplayName"], "Alice")
        self.assertEqual(user["Emails"][0]["Value"], "alice@example.com")

    def test_any_signing_region_sees_the_same_data(self):
        other = boto3.client(
            "sso-admin",
            endpoint_url=self.url,
            region_name="eu-west-1",
            aws_access_key_id="AKIDOTHER",
            aws_secret_access_key="secret",
        )
        self.assertEqual(other.list_instances()["Instances"][0]["InstanceArn"], self.instance_arn)

    def test_bad_control_requests_are_rejected(self):
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            self.control("POST", "/_peer/config", {"tps_limt": 3})
        self.assertEqual(ctx.exception.code, 400)
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            self.control("POST", "/_peer/config", {"tps_limit": -1})
        self.assertEqual(ctx.exception.code, 400)
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            self.control("POST", "/_peer/seed", {"accounts": ["123"]})
        self.assertEqual(ctx.exception.code, 400)
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            self.control("GET", "/_peer/nope")
        self.assertEqual(ctx.exception.code, 404)
        self.assertEqual(self.control("GET", "/_peer/health"), {"ok": True})


class AssignmentTest(PeerTestCase):
    def test_create_and_delete_complete_after_the_delay(self):
        self.control("POST", "/_peer/config", {"assignment_delay_ms": 300})
        args = self.assignment("alice")

        created = self.sso.create_account_assignment(**args)["AccountAssignmentCreationStatus"]
        self.assertEqual(created["Status"], "IN_PROGRESS")
        self.assertEqual(created["PrincipalId"], args["PrincipalId"])
        self.assertEqual(self.creation_status(created["RequestId"]), "IN_PROGRESS")
        self.assertEqual(self.listed("alice"), [])
        time.sleep(0.4)
        self.assertEqual(self.creation_status(created["RequestId"]), "SUCCEEDED")
        expected = {
            "AccountId": ACCOUNT,
            "PermissionSetArn": self.ps_arn,
            "PrincipalType": "USER",
            "PrincipalId": args["PrincipalId"],
        }
        self.assertEqual(self.listed("alice"), [expected])
        by_account = self.sso.list_account_assignments(
            InstanceArn=self.instance_arn, AccountId=ACCOUNT, PermissionSetArn=self.ps_arn
        )["AccountAssignments"]
        self.assertIn(expected, by_account)

        deleted = self.sso.delete_account_assignment(**args)["AccountAssignmentDeletionStatus"]
        self.assertEqual(deleted["Status"], "IN_PROGRESS")
        self.assertNotEqual(deleted["RequestId"], created["RequestId"])
        self.assertEqual(self.deletion_status(deleted["RequestId"]), "IN_PROGRESS")
        self.assertEqual(self.listed("alice"), [expected])
        time.sleep(0.4)
        self.assertEqual(self.deletion_status(deleted["RequestId"]), "SUCCEEDED")
        self.assertEqual(self.listed("alice"), [])

        history = self.control("GET", "/_peer/history")
        self.assertEqual([h["op"] for h in history], ["create", "delete"])
        for entry in history:
            self.assertIsNotNone(entry["completed_at"])
            self.assertAlmostEqual(entry["completed_at"] - entry["requested_at"], 0.3, delta=0.01)
        self.assertEqual(history[1]["request_id"], deleted["RequestId"])

    def test_zero_delay_is_idempotent_with_unique_request_ids(self):
        args = self.assignment("bob")
        first = self.sso.create_account_assignment(**args)["AccountAssignmentCreationStatus"]
        second = self.sso.create_account_assignment(**args)["AccountAssignmentCreationStatus"]
        self.assertEqual((first["Status"], second["Status"]), ("IN_PROGRESS", "IN_PROGRESS"))
        self.assertNotEqual(first["RequestId"], second["RequestId"])
        self.assertEqual(self.creation_status(first["RequestId"]), "SUCCEEDED")
        self.assertEqual(len(self.listed("bob")), 1)
        self.assertIn(
            {
                "account_id": ACCOUNT,
                "permission_set_arn": self.ps_arn,
                "principal_type": "USER",
                "principal_id": args["PrincipalId"],
            },
            self.control("GET", "/_peer/assignments"),
        )

        deleted = self.sso.delete_account_assignment(**args)["AccountAssignmentDeletionStatus"]
        self.assertEqual(self.deletion_status(deleted["RequestId"]), "SUCCEEDED")
        self.assertEqual(self.listed("bob"), [])
        with self.assertRaises(self.sso.exceptions.ResourceNotFoundException) as ctx:
            self.sso.delete_account_assignment(**args)
        self.assertAwsError(ctx.exception, "ResourceNotFoundException", 400)
        with self.assertRaises(self.sso.exceptions.ResourceNotFoundException):
            self.creation_status(deleted["RequestId"])  # a deletion id is no creation id

    def test_a_second_operation_while_one_is_in_progress_conflicts(self):
        self.control("POST", "/_peer/config", {"assignment_delay_ms": 300})
        args = self.assignment("carol")
        self.sso.create_account_assignment(**args)
        for call in (self.sso.delete_account_assignment, self.sso.create_account_assignment):
            with self.assertRaises(self.sso.exceptions.ConflictException) as ctx:
                call(**args)
            self.assertAwsError(ctx.exception, "ConflictException", 400)
        time.sleep(0.4)
        self.sso.delete_account_assignment(**args)  # the create is done: accepted
        time.sleep(0.4)
        self.assertEqual(self.listed("carol"), [])
        self.assertEqual([h["status"] for h in self.control("GET", "/_peer/history")], ["SUCCEEDED"] * 2)

    def test_unknown_user_fails_asynchronously(self):
        args = {**self.assignment("dave"), "PrincipalId": "00000000-0000-0000-0000-000000000000"}
        created = self.sso.create_account_assignment(**args)
        status = self.sso.describe_account_assignment_creation_status(
            InstanceArn=self.instance_arn,
            AccountAssignmentCreationRequestId=created["AccountAssignmentCreationStatus"]["RequestId"],
        )["AccountAssignmentCreationStatus"]
        self.assertEqual(status["Status"], "FAILED")
        self.assertIn("does not exist", status["FailureReason"])

    def test_faults_deny_fail_and_hold_operations(self):
        frank = self.seeded["users"]["frank"]
        self.control("POST", "/_peer/faults", {"rules": [
            {"action": "UpdateUser", "principal_id": frank, "effect": "deny"},
            {"action": "CreateAccountAssignment", "principal_id": frank, "effect": "stuck"},
            {"action": "DeleteAccountAssignment", "effect": "fail"},
        ]})
        try:
            with self.assertRaises(self.ids.exceptions.AccessDeniedException):
                self.ids.update_user(
                    IdentityStoreId=self.seeded["identity_store_id"], UserId=frank,
                    Operations=[{"AttributePath": "nickName", "AttributeValue": "app"}],
                )
            created = self.sso.create_account_assignment(**self.assignment("frank"))
            request_id = created["AccountAssignmentCreationStatus"]["RequestId"]
            time.sleep(0.1)
            self.assertEqual(self.creation_status(request_id), "IN_PROGRESS")
            # Removing the rule lets the held operation finish.
            self.control("POST", "/_peer/faults", {"rules": [{"action": "DeleteAccountAssignment", "effect": "fail"}]})
            time.sleep(0.05)
            self.assertEqual(self.creation_status(request_id), "SUCCEEDED")
            deleted = self.sso.delete_account_assignment(**self.assignment("frank"))
            status = self.sso.describe_account_assignment_deletion_status(
                InstanceArn=self.instance_arn,
                AccountAssignmentDeletionRequestId=deleted["AccountAssignmentDeletionStatus"]["RequestId"],
            )["AccountAssignmentDeletionStatus"]
            self.assertEqual(status["Status"], "FAILED")
            self.assertTrue(self.listed("frank"), "a failed delete leaves the assignment")
        finally:
            self.control("POST", "/_peer/faults", {"rules": []})
        with self.assertRaises(urllib.error.HTTPError):
            self.control("POST", "/_peer/faults", {"rules": [{"action": "UpdateUser", "effect": "stuck"}]})

    def test_outage_answers_503_until_it_ends(self):
        self.control("POST", "/_peer/outage", {"seconds": 0.5})
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            self.sso.list_instances()
        self.assertAwsError(ctx.exception, "ServiceUnavailableException", 503)
        time.sleep(0.6)
        self.assertTrue(self.sso.list_instances()["Instances"])

    def test_unseeded_account_fails_asynchronously(self):
        created = self.sso.create_account_assignment(**self.assignment("dave", UNSEEDED_ACCOUNT))
        status = self.sso.describe_account_assignment_creation_status(
            InstanceArn=self.instance_arn,
            AccountAssignmentCreationRequestId=created["AccountAssignmentCreationStatus"]["RequestId"],
        )["AccountAssignmentCreationStatus"]
        self.assertEqual(status["Status"], "FAILED")
        self.assertIn(UNSEEDED_ACCOUNT, status["FailureReason"])
        self.assertEqual(self.listed("dave"), [])

    def test_unknown_permission_set_is_not_found(self):
        args = {**self.assignment("dave"), "PermissionSetArn": self.instance_arn + "/ps-0000000000000000"}
        with self.assertRaises(self.sso.exceptions.ResourceNotFoundException):
            self.sso.create_account_assignment(**args)

    def test_list_pagination(self):
        for account in (ACCOUNT, OTHER_ACCOUNT):
            self.sso.create_account_assignment(**self.assignment("erin", account))
        principal = dict(
            InstanceArn=self.instance_arn, PrincipalId=self.seeded["users"]["erin"], PrincipalType="USER"
        )
        page = self.sso.list_account_assignments_for_principal(**principal, MaxResults=1)
        self.assertEqual(len(page["AccountAssignments"]), 1)
        rest = self.sso.list_account_assignments_for_principal(**principal, NextToken=page["NextToken"])
        self.assertNotIn("NextToken", rest)
        accounts = [a["AccountId"] for a in page["AccountAssignments"] + rest["AccountAssignments"]]
        self.assertEqual(sorted(accounts), [ACCOUNT, OTHER_ACCOUNT])
        filtered = self.sso.list_account_assignments_for_principal(**principal, Filter={"AccountId": OTHER_ACCOUNT})
        self.assertEqual([a["AccountId"] for a in filtered["AccountAssignments"]], [OTHER_ACCOUNT])


class GetUserIdTest(PeerTestCase):
    def test_by_external_id_as_seeded_and_by_unique_attribute(self):
        store = self.seeded["identity_store_id"]
        seeded = self.control("POST", "/_peer/seed", {
            "users": [{"user_name": "scim-sam", "email": "sam@example.com",
                       "external_ids": [{"issuer": "https://scim.example", "id": "sub-sam"}]}],
        })
        sam = seeded["users"]["scim-sam"]
        found = self.ids.get_user_id(IdentityStoreId=store, AlternateIdentifier={
            "ExternalId": {"Issuer": "https://scim.example", "Id": "sub-sam"}})
        self.assertEqual(found["UserId"], sam)
        by_name = self.ids.get_user_id(IdentityStoreId=store, AlternateIdentifier={
            "UniqueAttribute": {"AttributePath": "userName", "AttributeValue": "scim-sam"}})
        self.assertEqual(by_name["UserId"], sam)
        for issuer, external in [("https://scim.example", "sub-other"), ("https://elsewhere", "sub-sam")]:
            with self.assertRaises(self.ids.exceptions.ResourceNotFoundException):
                self.ids.get_user_id(IdentityStoreId=store, AlternateIdentifier={
                    "ExternalId": {"Issuer": issuer, "Id": external}})


class UpdateUserTest(PeerTestCase):
    def describe(self) -> dict:
        return self.ids.describe_user(
            IdentityStoreId=self.seeded["identity_store_id"], UserId=self.seeded["users"]["frank"]
        )

    def update(self, *operations: dict, user_id: str | None = None) -> dict:
        return self.ids.update_user(
            IdentityStoreId=self.seeded["identity_store_id"],
            UserId=user_id or self.seeded["users"]["frank"],
            Operations=list(operations),
        )

    def test_set_and_clear_attributes(self):
        answer = self.update(
            {"AttributePath": "nickName", "AttributeValue": "deploy"},
            {"AttributePath": "title", "AttributeValue": "SRE"},
            {"AttributePath": "name.givenName", "AttributeValue": "Franklin"},
        )
        self.assertEqual(answer["UserId"], self.seeded["users"]["frank"])
        self.assertTrue(answer["UserArn"].endswith("/" + answer["UserId"]))
        user = self.describe()
        self.assertEqual((user["NickName"], user["Title"]), ("deploy", "SRE"))
        self.assertEqual(user["Name"]["GivenName"], "Franklin")
        self.assertEqual(user["DisplayName"], "Frank")

        later = self.update({"AttributePath": "nickName"}, {"AttributePath": "title", "AttributeValue": None})
        self.assertGreater(int(later["Revision"]), int(answer["Revision"]))
        user = self.describe()
        self.assertNotIn("NickName", user)
        self.assertNotIn("Title", user)

    def test_errors(self):
        with self.assertRaises(self.ids.exceptions.ResourceNotFoundException) as ctx:
            self.update({"AttributePath": "nickName", "AttributeValue": "x"}, user_id="00000000-0000-0000-0000-000000000000")
        self.assertAwsError(ctx.exception, "ResourceNotFoundException", 400)
        with self.assertRaises(self.ids.exceptions.ValidationException):
            self.update({"AttributePath": "emails.value", "AttributeValue": "x@example.com"})
        with self.assertRaises(self.ids.exceptions.ValidationException):
            self.update({"AttributePath": "displayName"})


class FaultTest(PeerTestCase):
    def call_many(self, count: int) -> list:
        """Run `count` ListInstances calls concurrently; return the error codes (None = ok)."""

        def one(_):
            try:
                self.sso.list_instances()
                return None
            except botocore.exceptions.ClientError as err:
                self.assertAwsError(err, "ThrottlingException", 400)
                return err.response["Error"]["Code"]

        with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(one, range(count)))

    def test_tps_limit_throttles_a_burst(self):
        self.control("POST", "/_peer/config", {"tps_limit": 5})
        start = time.monotonic()
        results = self.call_many(20)
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 1.0, "burst too slow for a one-second window")
        self.assertEqual(results.count(None), 5)
        self.assertEqual(results.count("ThrottlingException"), 15)
        stats = self.control("GET", "/_peer/stats")
        self.assertEqual(stats["throttled"], 15)
        self.assertEqual(stats["actions"]["sso-admin:ListInstances"], 20)
        self.assertEqual(stats["peak_sso_admin_calls_per_second"], 20)
        time.sleep(1.0)
        self.sso.list_instances()  # the window has slid on

    def test_max_outstanding_throttles_assignment_writes(self):
        self.control("POST", "/_peer/config", {"assignment_delay_ms": 1000, "max_outstanding": 2})
        self.sso.create_account_assignment(**self.assignment("grace", ACCOUNT))
        self.sso.create_account_assignment(**self.assignment("grace", OTHER_ACCOUNT))
        with self.assertRaises(self.sso.exceptions.ThrottlingException) as ctx:
            self.sso.create_account_assignment(**self.assignment("alice", OTHER_ACCOUNT))
        self.assertAwsError(ctx.exception, "ThrottlingException", 400)
        self.sso.list_instances()  # other calls are not limited
        stats = self.control("GET", "/_peer/stats")
        self.assertEqual((stats["peak_outstanding"], stats["outstanding"], stats["throttled"]), (2, 2, 1))
        time.sleep(1.1)
        self.assertEqual(self.control("GET", "/_peer/stats")["outstanding"], 0)
        self.assertEqual(len(self.listed("grace")), 2)

    def test_error_every(self):
        self.control("POST", "/_peer/config", {"error_every": 3})
        outcomes = []
        for _ in range(6):
            try:
                self.ids.list_users(IdentityStoreId=self.seeded["identity_store_id"])
                outcomes.append("ok")
            except botocore.exceptions.ClientError as err:
                self.assertAwsError(err, "InternalServerException", 500)
                outcomes.append("error")
        self.assertEqual(outcomes, ["ok", "ok", "error"] * 2)
        self.assertEqual(self.control("GET", "/_peer/stats")["errors"], 2)

    def test_throttle_every(self):
        self.control("POST", "/_peer/config", {"throttle_every": 2})
        self.sso.list_instances()
        with self.assertRaises(self.sso.exceptions.ThrottlingException):
            self.sso.list_instances()
        self.sso.list_instances()

    def test_reset_clears_history_and_stats_not_data(self):
        self.sso.create_account_assignment(**self.assignment("grace", ACCOUNT))
        self.control("POST", "/_peer/reset", {})
        self.assertEqual(self.control("GET", "/_peer/history"), [])
        self.assertEqual(self.control("GET", "/_peer/stats")["calls"], 0)
        self.assertTrue(self.listed("grace"))

    def test_burst_of_concurrent_connections(self):
        start = time.monotonic()
        results = self.call_many(200)
        self.assertEqual(results, [None] * 200)
        self.assertLess(time.monotonic() - start, 20)


class LifecycleTest(unittest.TestCase):
    def test_defaults_are_idc_own_limits(self):
        proc, url = start_peer()
        try:
            with urllib.request.urlopen(url + "/_peer/config", timeout=10) as response:
                config = json.load(response)
        finally:
            stop_peer(proc)
        self.assertEqual(
            (config["assignment_delay_ms"], config["tps_limit"], config["max_outstanding"]), (1000, 20, 10)
        )

    def test_flags_apply_and_sigterm_exits_cleanly(self):
        proc, url = start_peer("--assignment-delay-ms", "250", "--tps-limit", "7")
        with urllib.request.urlopen(url + "/_peer/config", timeout=10) as response:
            config = json.load(response)
        self.assertEqual(config["assignment_delay_ms"], 250)
        self.assertEqual(config["tps_limit"], 7)
        self.assertEqual(stop_peer(proc), 0)

    def test_refuses_non_loopback_host(self):
        result = subprocess.run(
            [sys.executable, PEER, "--port", "0", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(result.stdout, "")


if __name__ == "__main__":
    unittest.main()
