"""Tests for aws_sessions.py through the running AWS peer, driven with boto3 (botocore's
own sso-oidc, portal and SSM clients, an implementation independent of jitgate's)."""

import unittest

import boto3
import botocore.config
import botocore.exceptions

from test_aws_peer import ACCOUNT, OTHER_ACCOUNT, PeerTestCase

START_URL = "https://peer.awsapps.com/start"


class SessionsTest(PeerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.control("POST", "/_peer/seed", {"documents": {"JitGate-RunAs-deploy": "deploy"}})
        cls.oidc = cls.unsigned("sso-oidc")
        cls.portal = cls.unsigned("sso")

    @classmethod
    def unsigned(cls, service: str):
        return boto3.client(
            service,
            endpoint_url=cls.url,
            region_name="us-east-1",
            config=botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1}),
        )

    def signed(self, service: str, creds: dict, region: str = "us-east-1"):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=creds["accessKeyId"],
            aws_secret_access_key=creds["secretAccessKey"],
            aws_session_token=creds["sessionToken"],
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )

    def grant(self, user: str, account: str = ACCOUNT):
        self.sso.create_account_assignment(**self.assignment(user, account))

    def ungrant(self, user: str, account: str = ACCOUNT):
        self.sso.delete_account_assignment(**self.assignment(user, account))

    def sign_in(self, user: str) -> str:
        """The device-code login the AWS CLI does, with the hook approving the code."""
        client = self.oidc.register_client(clientName="test", clientType="public")
        auth = self.oidc.start_device_authorization(
            clientId=client["clientId"], clientSecret=client["clientSecret"], startUrl=START_URL
        )
        args = dict(
            clientId=client["clientId"],
            clientSecret=client["clientSecret"],
            grantType="urn:ietf:params:oauth:grant-type:device_code",
            deviceCode=auth["deviceCode"],
        )
        with self.assertRaises(self.oidc.exceptions.AuthorizationPendingException):
            self.oidc.create_token(**args)
        self.control("POST", "/_peer/sso/approve", {"user_code": auth["userCode"], "user_name": user})
        token = self.oidc.create_token(**args)
        with self.assertRaises(self.oidc.exceptions.InvalidGrantException, msg="a device code works once"):
            self.oidc.create_token(**args)
        return token["accessToken"]

    def test_authorization_code_with_pkce_as_the_aws_cli_does(self):
        """botocore's own sso-oidc client registers for the code grant; the browser (urllib,
        signed in as carol) is sent back to the loopback with a code that only the PKCE
        verifier redeems, once."""
        import base64
        import hashlib
        import secrets
        import urllib.error
        import urllib.parse
        import urllib.request

        redirect = "http://127.0.0.1/oauth/callback"
        client = self.oidc.register_client(
            clientName="test", clientType="public", grantTypes=["authorization_code", "refresh_token"],
            redirectUris=[redirect], issuerUrl=START_URL, scopes=["sso:account:access"],
        )
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        at_port = "http://127.0.0.1:43123/oauth/callback"
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": client["clientId"], "redirect_uri": at_port,
            "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256",
            "scopes": "sso:account:access",
        })

        class NoFollow(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoFollow)
        visit = urllib.request.Request(f"{self.url}/authorize?{query}", headers={"x-peer-user": "carol"})
        with self.assertRaises(urllib.error.HTTPError) as sent:
            opener.open(visit)
        self.assertEqual(sent.exception.code, 302)
        location = urllib.parse.urlsplit(sent.exception.headers["Location"])
        self.assertEqual(f"{location.scheme}://{location.netloc}{location.path}", at_port)
        back = dict(urllib.parse.parse_qsl(location.query))
        self.assertEqual(back["state"], "s1")
        args = dict(
            clientId=client["clientId"], clientSecret=client["clientSecret"], grantType="authorization_code",
            code=back["code"], redirectUri=at_port,
        )
        with self.assertRaises(self.oidc.exceptions.InvalidGrantException, msg="a wrong verifier"):
            self.oidc.create_token(codeVerifier="x" * 43, **args)
        token = self.oidc.create_token(codeVerifier=verifier, **args)
        self.assertTrue(token["refreshToken"])
        self.grant("carol")
        try:
            self.assertTrue(self.role_credentials(token["accessToken"])["accessKeyId"].startswith("ASIA"))
        finally:
            self.ungrant("carol")
        with self.assertRaises(self.oidc.exceptions.InvalidGrantException, msg="a code works once"):
            self.oidc.create_token(codeVerifier=verifier, **args)

    def role_credentials(self, token: str, account: str = ACCOUNT) -> dict:
        return self.portal.get_role_credentials(roleName="JitSsm", accountId=account, accessToken=token)[
            "roleCredentials"
        ]

    def member_role(self, account: str = ACCOUNT) -> dict:
        """Keys of the role jitgate assumes in a member account (moto's sts)."""
        sts = boto3.client(
            "sts", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="AKIDTEST",
            aws_secret_access_key="secret",
        )
        c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/JitGateMember", RoleSessionName="jitgate")[
            "Credentials"
        ]
        return {
            "accessKeyId": c["AccessKeyId"],
            "secretAccessKey": c["SecretAccessKey"],
            "sessionToken": c["SessionToken"],
        }

    def test_credentials_only_while_the_assignment_exists(self):
        token = self.sign_in("carol")
        self.assertForbidden(token)
        self.grant("carol")
        self.assertTrue(self.role_credentials(token)["accessKeyId"].startswith("ASIA"))
        accounts = self.portal.list_accounts(accessToken=token)["accountList"]
        self.assertEqual([a["accountId"] for a in accounts], [ACCOUNT])
        roles = self.portal.list_account_roles(accessToken=token, accountId=ACCOUNT)["roleList"]
        self.assertEqual([r["roleName"] for r in roles], ["JitSsm"])
        self.ungrant("carol")
        self.assertForbidden(token)
        with self.assertRaises(self.portal.exceptions.UnauthorizedException):
            self.role_credentials("not-a-token")

    def assertForbidden(self, token: str):
        """GetRoleCredentials refused as IdC refuses it: 403 ForbiddenException "No access"
        (not in botocore's model, so a plain ClientError)."""
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            self.role_credentials(token)
        self.assertEqual(caught.exception.response["Error"]["Code"], "ForbiddenException")
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)

    def test_refresh_token_works_once(self):
        client = self.oidc.register_client(clientName="test", clientType="public")
        auth = self.oidc.start_device_authorization(
            clientId=client["clientId"], clientSecret=client["clientSecret"], startUrl=START_URL
        )
        self.control("POST", "/_peer/sso/approve", {"user_code": auth["userCode"], "user_name": "dave"})
        first = self.oidc.create_token(
            clientId=client["clientId"], clientSecret=client["clientSecret"],
            grantType="urn:ietf:params:oauth:grant-type:device_code", deviceCode=auth["deviceCode"],
        )
        refresh = dict(
            clientId=client["clientId"], clientSecret=client["clientSecret"], grantType="refresh_token",
            refreshToken=first["refreshToken"],
        )
        second = self.oidc.create_token(**refresh)
        self.assertNotEqual(second["accessToken"], first["accessToken"])
        with self.assertRaises(self.oidc.exceptions.InvalidGrantException):
            self.oidc.create_token(**refresh)

    def test_resume_needs_unexpired_keys_of_the_sessions_owner(self):
        """What breaks long sessions on static keys: once the portal's keys expire, the
        plugin cannot resume with them; fresh keys of the same person can."""
        import time

        instance = self.control("POST", "/_peer/seed", {"instances": [{"name": "web-9", "account": ACCOUNT}]})[
            "instances"
        ]["web-9"]["instance_id"]
        self.control("POST", "/_peer/config", {"role_credential_seconds": 1})
        self.grant("dave")
        try:
            token = self.sign_in("dave")
            ssm = self.signed("ssm", self.role_credentials(token))
            session = ssm.start_session(Target=instance)["SessionId"]
            time.sleep(1.5)
            with self.assertRaises(botocore.exceptions.ClientError) as expired:
                ssm.resume_session(SessionId=session)
            self.assertEqual(expired.exception.response["Error"]["Code"], "ExpiredTokenException")
            self.control("POST", "/_peer/config", {"role_credential_seconds": 3600})
            fresh = self.signed("ssm", self.role_credentials(token))
            self.assertEqual(fresh.resume_session(SessionId=session)["SessionId"], session)
            self.grant("erin")
            other = self.signed("ssm", self.role_credentials(self.sign_in("erin")))
            self.ungrant("erin")
            with self.assertRaises(botocore.exceptions.ClientError) as foreign:
                other.resume_session(SessionId=session)
            self.assertEqual(foreign.exception.response["Error"]["Code"], "AccessDeniedException")
        finally:
            self.ungrant("dave")

    def test_sessions_run_as_the_enforced_user_and_end_when_terminated(self):
        instance = self.control("POST", "/_peer/seed", {"instances": [{"name": "web-1", "account": ACCOUNT}]})[
            "instances"
        ]["web-1"]["instance_id"]
        self.ids.update_user(
            IdentityStoreId=self.seeded["identity_store_id"], UserId=self.seeded["users"]["erin"],
            Operations=[{"AttributePath": "nickName", "AttributeValue": "app"}],
        )
        self.grant("erin")
        ssm = self.signed("ssm", self.role_credentials(self.sign_in("erin")))
        tagged = ssm.start_session(Target=instance, Reason="req-1")
        documented = ssm.start_session(Target=instance, DocumentName="JitGate-RunAs-deploy")
        self.assertTrue(tagged["StreamUrl"].startswith("wss://"))
        with self.assertRaises(ssm.exceptions.TargetNotConnected):
            ssm.start_session(Target="i-0123456789abcdef0")
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            ssm.start_session(Target=instance, DocumentName="JitGate-RunAs-nobody")
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidDocument")

        seen = {s["session_id"]: s for s in self.control("GET", "/_peer/sessions")}
        self.assertEqual(seen[tagged["SessionId"]]["run_as"], "app")
        self.assertEqual(seen[documented["SessionId"]]["run_as"], "deploy")

        # jitgate's view: the member-account role lists and ends them, in their account only.
        member = self.signed("ssm", self.member_role())
        active = member.describe_sessions(State="Active")["Sessions"]
        mine = [s for s in active if s["SessionId"] in (tagged["SessionId"], documented["SessionId"])]
        self.assertEqual(len(mine), 2)
        owner = mine[0]["Owner"]
        self.assertRegex(owner, rf"^arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_JitSsm_[0-9a-f]{{16}}/erin$")
        by_owner = member.describe_sessions(State="Active", Filters=[{"key": "Owner", "value": owner}])
        self.assertEqual({s["Reason"] for s in by_owner["Sessions"] if "Reason" in s}, {"req-1"})
        other = self.signed("ssm", self.member_role(OTHER_ACCOUNT))
        self.assertEqual(other.describe_sessions(State="Active")["Sessions"], [])
        self.assertEqual(self.signed("ssm", self.member_role(), "eu-west-1").describe_sessions(State="Active")["Sessions"], [])

        member.terminate_session(SessionId=tagged["SessionId"])
        member.terminate_session(SessionId=tagged["SessionId"])  # idempotent, as in AWS
        history = member.describe_sessions(State="History")["Sessions"]
        self.assertIn(tagged["SessionId"], [s["SessionId"] for s in history])
        self.ungrant("erin")
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            ssm.start_session(Target=instance)
        self.assertEqual(caught.exception.response["Error"]["Code"], "AccessDeniedException")

    def test_inventory_through_the_member_role(self):
        seeded = self.control("POST", "/_peer/seed", {"instances": [
            {"name": "inv-web", "account": OTHER_ACCOUNT, "tags": {"env": "prod"}},
            {"name": "inv-db", "account": OTHER_ACCOUNT, "tags": {"env": "staging"}, "ping": "ConnectionLost"},
        ]})["instances"]
        creds = self.member_role(OTHER_ACCOUNT)
        tagging = self.signed("resourcegroupstaggingapi", creds)
        found = tagging.get_resources(
            ResourceTypeFilters=["ec2:instance"], TagFilters=[{"Key": "env", "Values": ["prod"]}]
        )["ResourceTagMappingList"]
        self.assertEqual(
            [m["ResourceARN"].rsplit("/", 1)[1] for m in found], [seeded["inv-web"]["instance_id"]]
        )
        nodes = self.signed("ssm", creds).describe_instance_information()["InstanceInformationList"]
        pings = {n["InstanceId"]: n["PingStatus"] for n in nodes}
        self.assertEqual(pings[seeded["inv-web"]["instance_id"]], "Online")
        self.assertEqual(pings[seeded["inv-db"]["instance_id"]], "ConnectionLost")
        elsewhere = self.signed("ssm", self.member_role()).describe_instance_information()
        self.assertNotIn(seeded["inv-web"]["instance_id"], [n["InstanceId"] for n in elsewhere["InstanceInformationList"]])

    def test_session_calls_take_deny_faults(self):
        self.control("POST", "/_peer/faults", {"rules": [{"action": "TerminateSession", "effect": "deny"}]})
        try:
            member = self.signed("ssm", self.member_role())
            with self.assertRaises(botocore.exceptions.ClientError) as caught:
                member.terminate_session(SessionId="x-1")
            self.assertEqual(caught.exception.response["Error"]["Code"], "AccessDeniedException")
            member.describe_sessions(State="Active")
        finally:
            self.control("POST", "/_peer/faults", {"rules": []})


if __name__ == "__main__":
    unittest.main()
