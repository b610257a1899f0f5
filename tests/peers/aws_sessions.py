"""The AWS peer's sign-in and Session Manager half: what moto does not serve.

``aws_peer.py`` routes to this module the calls a developer's shell access goes through:

* IAM Identity Center OIDC (sso-oidc, REST JSON, unsigned): ``POST /client/register``,
  ``POST /device_authorization``, ``GET /authorize`` and ``POST /token`` with the
  authorization-code (PKCE S256, loopback redirect on any port as RFC 8252 allows),
  device-code and refresh-token grants
  (https://docs.aws.amazon.com/singlesignon/latest/OIDCAPIReference/). The person at the
  browser is named by the header ``x-peer-user`` on ``GET /authorize`` (standing in for
  the portal's sign-in form), or approves a device code through the test hook
  ``POST /_peer/sso/approve`` ({"user_code", "user_name"}). Access tokens last an hour;
  a refresh token works once (it is replaced by the next one).
* The IdC portal (sso, REST JSON, bearer token in ``x-amz-sso_bearer_token``):
  ``GET /federation/credentials``, ``GET /assignment/accounts``, ``GET /assignment/roles``
  (https://docs.aws.amazon.com/singlesignon/latest/PortalAPIReference/). Role credentials
  are given only while the user holds an assignment of that permission set (by name) on
  that account, as IdC does; they last ``role_credential_seconds`` (peer config, default
  an hour, as a PT1H permission set).
* Session Manager (AWS JSON 1.1, ``AmazonSSM.*``): ``StartSession``, ``DescribeSessions``,
  ``TerminateSession`` and ``ResumeSession``. The caller's account and region come from
  the SigV4 credential scope: keys from ``GetRoleCredentials`` belong to the account they
  were given for, keys from moto's ``sts:AssumeRole`` to the role's account (moto's own
  mapping). ``StartSession`` is refused with keys that were not given by the portal
  (AccessDeniedException) and once the assignment behind them is gone. Each session
  records its owner as AWS writes it (``arn:aws:sts::<account>:assumed-role/
  AWSReservedSSO_<permission set>_<suffix>/<user name>``) and the OS user AWS would run
  it as: the ``runAsDefaultUser`` of the session document (documents are seeded with
  ``{"documents": {"JitGate-RunAs-deploy": "deploy"}}``), else the user's run-as
  attribute (``run_as_attribute``, default nickName), else ``ssm-user``.

Errors follow each protocol: sso-oidc and portal errors carry ``x-amzn-ErrorType``
(``AuthorizationPendingException``, ``UnauthorizedException``, ``ForbiddenException``...)
and an ``error`` / ``message`` body; Session Manager errors use the AWS JSON 1.1 shape.
"""

import base64
import dataclasses
import hashlib
import re
import secrets
import string
import threading
import time
import urllib.parse
from typing import Any

from moto.ec2.models import ec2_backends
from moto.iam.models import get_account_id_from

ACCESS_TOKEN_SECONDS = 3600
DEVICE_CODE_SECONDS = 600
SCOPE = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")
# Where aws_peer.PeerRequestHandler puts the portal's x-amz-sso_bearer_token header.
SSO_BEARER_ENVIRON_KEY = "jitgate.peer.sso_bearer_token"


class ServiceError(Exception):
    """An error answered in the called protocol's shape."""

    def __init__(self, status: int, code: str, message: str, oauth_error: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.oauth_error = oauth_error

    def body(self) -> dict[str, Any]:
        if self.oauth_error is not None:
            return {"error": self.oauth_error, "error_description": self.message}
        return {"__type": self.code, "message": self.message}


def invalid_request(message: str) -> ServiceError:
    return ServiceError(400, "InvalidRequestException", message, "invalid_request")


def random_text(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclasses.dataclass
class Client:
    client_id: str
    client_secret: str
    grant_types: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()


@dataclasses.dataclass
class CodeGrant:
    """An authorization code given at ``/authorize``, waiting for ``CreateToken``."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    user_name: str
    expires_at: float
    used: bool = False


@dataclasses.dataclass(frozen=True)
class Redirect:
    """An answer that sends the browser on (``/authorize``)."""

    location: str


@dataclasses.dataclass
class DeviceGrant:
    client_id: str
    device_code: str
    user_code: str
    expires_at: float
    user_name: str | None = None  # set once approved
    used: bool = False


@dataclasses.dataclass
class Token:
    user_name: str
    client_id: str
    expires_at: float


@dataclasses.dataclass(frozen=True)
class RoleKeys:
    """Credentials the portal gave: whose, for which account and permission set."""

    account_id: str
    permission_set: str
    user_id: str
    user_name: str
    expires_at: float


@dataclasses.dataclass
class Session:
    session_id: str
    account_id: str
    region: str
    target: str
    owner: str
    reason: str | None
    document_name: str
    run_as: str
    started_at: float
    user_id: str
    permission_set: str
    ended_at: float | None = None
    terminated_by: str | None = None

    def to_api(self) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "SessionId": self.session_id,
            "Target": self.target,
            "Status": "Connected" if self.ended_at is None else "Terminated",
            "StartDate": self.started_at,
            "DocumentName": self.document_name,
            "Owner": self.owner,
            "MaxSessionDuration": "",
            "OutputUrl": {},
        }
        if self.reason:
            shape["Reason"] = self.reason
        if self.ended_at is not None:
            shape["EndDate"] = self.ended_at
        return shape

    def to_control(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "account_id": self.account_id,
            "region": self.region,
            "target": self.target,
            "owner": self.owner,
            "reason": self.reason,
            "document_name": self.document_name,
            "run_as": self.run_as,
            "user_id": self.user_id,
            "permission_set": self.permission_set,
            "active": self.ended_at is None,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "terminated_by": self.terminated_by,
        }


class SessionWorld:
    """sso-oidc, the portal and Session Manager, over the peer's assignments.

    `peer` is the aws_peer.Peer: this reads its realized assignments and its users (under
    its lock) and never changes them.
    """

    def __init__(self, peer: Any):
        self.peer = peer
        self.lock = threading.Lock()  # guards everything below
        self.clients: dict[str, Client] = {}
        self.devices: dict[str, DeviceGrant] = {}  # by device code
        self.codes: dict[str, CodeGrant] = {}  # by authorization code
        self.tokens: dict[str, Token] = {}  # access tokens
        self.refresh_tokens: dict[str, Token] = {}
        self.role_keys: dict[str, RoleKeys] = {}  # by access key id
        self.sessions: dict[str, Session] = {}  # by session id, in start order
        self.documents: dict[str, str] = {}  # session document name -> runAsDefaultUser
        self.pings: dict[str, str] = {}  # instance id -> SSM ping status (default Online)
        self.run_as_attribute = "nickName"

    # --- routing ----------------------------------------------------------------------

    REST_ROUTES = {
        ("POST", "/client/register"): "register_client",
        ("POST", "/device_authorization"): "start_device_authorization",
        ("GET", "/authorize"): "authorize",
        ("POST", "/token"): "create_token",
        ("GET", "/federation/credentials"): "get_role_credentials",
        ("GET", "/assignment/accounts"): "list_accounts",
        ("GET", "/assignment/roles"): "list_account_roles",
    }
    SSM_TARGETS = {
        "AmazonSSM.StartSession": "start_session",
        "AmazonSSM.DescribeSessions": "describe_sessions",
        "AmazonSSM.TerminateSession": "terminate_session",
        "AmazonSSM.ResumeSession": "resume_session",
        "AmazonSSM.DescribeInstanceInformation": "describe_instance_information",
    }

    def rest_route(self, method: str, path: str) -> str | None:
        return self.REST_ROUTES.get((method, path))

    def ssm_route(self, target: str) -> str | None:
        return self.SSM_TARGETS.get(target)

    # --- sso-oidc ---------------------------------------------------------------------

    def register_client(self, body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
        if not body.get("clientName") or body.get("clientType") != "public":
            raise invalid_request("clientName is required and clientType must be public")
        grant_types = tuple(str(g) for g in body.get("grantTypes") or ())
        redirect_uris = tuple(str(u) for u in body.get("redirectUris") or ())
        if "authorization_code" in grant_types and (not redirect_uris or not body.get("issuerUrl")):
            raise invalid_request("the authorization_code grant needs redirectUris and issuerUrl")
        client = Client("peer-client-" + random_text(22), random_text(48), grant_types, redirect_uris)
        now = int(time.time())
        with self.lock:
            self.clients[client.client_id] = client
        return {
            "clientId": client.client_id,
            "clientSecret": client.client_secret,
            "clientIdIssuedAt": now,
            "clientSecretExpiresAt": now + 90 * 24 * 3600,
        }

    def client(self, body: dict[str, Any]) -> Client:
        """The registered client the body names (caller holds the lock)."""
        client = self.clients.get(str(body.get("clientId")))
        if client is None or not secrets.compare_digest(client.client_secret, str(body.get("clientSecret"))):
            raise ServiceError(401, "InvalidClientException", "unknown client or wrong secret", "invalid_client")
        return client

    def start_device_authorization(self, body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
        if not body.get("startUrl"):
            raise invalid_request("startUrl is required")
        with self.lock:
            client = self.client(body)
            user_code = random_text(4, string.ascii_uppercase) + "-" + random_text(4, string.ascii_uppercase)
            grant = DeviceGrant(client.client_id, random_text(40), user_code, time.time() + DEVICE_CODE_SECONDS)
            self.devices[grant.device_code] = grant
        uri = self.peer_url("/device")
        return {
            "deviceCode": grant.device_code,
            "userCode": grant.user_code,
            "verificationUri": uri,
            "verificationUriComplete": f"{uri}?user_code={grant.user_code}",
            "expiresIn": DEVICE_CODE_SECONDS,
            "interval": 1,
        }

    def authorize(self, _: dict[str, Any], query: dict[str, Any]) -> "Redirect":
        """The browser's visit: sends it back to the client's loopback with a code."""
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            raise invalid_request("response_type must be code and code_challenge_method S256")
        redirect_uri, state = str(query.get("redirect_uri", "")), query.get("state")
        challenge = query.get("code_challenge")
        if not state or not challenge:
            raise invalid_request("state and code_challenge are required")
        user_name = query["_headers"].get("HTTP_X_PEER_USER")
        if not user_name:
            raise ServiceError(401, "AccessDeniedException", "nobody is signed in at the browser (x-peer-user)")
        self.peer.user_by_name(user_name)  # raises if there is no such user
        with self.lock:
            client = self.clients.get(str(query.get("client_id")))
            if client is None or "authorization_code" not in client.grant_types:
                raise ServiceError(400, "InvalidClientException", "unknown client, or not one for this grant", "invalid_client")
            if not any(loopback_match(registered, redirect_uri) for registered in client.redirect_uris):
                raise invalid_request(f"redirect_uri {redirect_uri!r} is not registered")
            code = random_text(48)
            self.codes[code] = CodeGrant(client.client_id, redirect_uri, challenge, user_name, time.time() + 600)
        sep = "&" if "?" in redirect_uri else "?"
        return Redirect(f"{redirect_uri}{sep}{urllib.parse.urlencode({'code': code, 'state': state})}")

    def code_user(self, client: Client, body: dict[str, Any]) -> str:
        """The user an authorization code was given to (caller holds the lock)."""
        grant = self.codes.get(str(body.get("code")))
        if grant is None or grant.client_id != client.client_id or grant.used or time.time() > grant.expires_at:
            raise ServiceError(400, "InvalidGrantException", "unknown, used or expired code", "invalid_grant")
        if body.get("redirectUri") != grant.redirect_uri:
            raise ServiceError(400, "InvalidGrantException", "redirectUri differs from the authorization's", "invalid_grant")
        verifier = str(body.get("codeVerifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        if not secrets.compare_digest(base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), grant.code_challenge):
            raise ServiceError(400, "InvalidGrantException", "the code verifier does not match the challenge", "invalid_grant")
        grant.used = True
        return grant.user_name

    def create_token(self, body: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
        grant_type = body.get("grantType")
        with self.lock:
            client = self.client(body)
            if grant_type == "authorization_code":
                user_name = self.code_user(client, body)
            elif grant_type == "urn:ietf:params:oauth:grant-type:device_code":
                user_name = self.device_user(client, str(body.get("deviceCode")))
            elif grant_type == "refresh_token":
                old = self.refresh_tokens.pop(str(body.get("refreshToken")), None)
                if old is None or old.client_id != client.client_id:
                    raise ServiceError(400, "InvalidGrantException", "refresh token is invalid or used", "invalid_grant")
                user_name = old.user_name
            else:
                raise ServiceError(
                    400, "UnsupportedGrantTypeException", f"grant type {grant_type!r}", "unsupported_grant_type"
                )
            token = Token(user_name, client.client_id, time.time() + ACCESS_TOKEN_SECONDS)
            access, refresh = "aoa" + random_text(60), "aor" + random_text(60)
            self.tokens[access] = token
            self.refresh_tokens[refresh] = token
        return {
            "accessToken": access,
            "tokenType": "Bearer",
            "expiresIn": ACCESS_TOKEN_SECONDS,
            "refreshToken": refresh,
        }

    def device_user(self, client: Client, device_code: str) -> str:
        """The user who approved `device_code` (caller holds the lock)."""
        grant = self.devices.get(device_code)
        if grant is None or grant.client_id != client.client_id or grant.used:
            raise ServiceError(400, "InvalidGrantException", "unknown or used device code", "invalid_grant")
        if time.time() > grant.expires_at:
            raise ServiceError(400, "ExpiredTokenException", "the device code expired", "expired_token")
        if grant.user_name is None:
            raise ServiceError(
                400, "AuthorizationPendingException", "the user has not approved yet", "authorization_pending"
            )
        grant.used = True
        return grant.user_name

    def approve_device(self, body: dict[str, Any]) -> dict[str, Any]:
        """Test hook: the person at the browser signs in as `user_name` and allows the code."""
        user_code, user_name = body.get("user_code"), body.get("user_name")
        if not isinstance(user_code, str) or not isinstance(user_name, str):
            raise ValueError("user_code and user_name are required strings")
        self.peer.user_by_name(user_name)  # raises if there is no such user
        with self.lock:
            grant = next((g for g in self.devices.values() if g.user_code == user_code and not g.used), None)
            if grant is None:
                raise ValueError(f"no pending device authorization with user code {user_code!r}")
            grant.user_name = user_name
        return {"ok": True}

    # --- portal -----------------------------------------------------------------------

    def bearer(self, headers: dict[str, Any]) -> Token:
        token = self.tokens.get(str(headers.get(SSO_BEARER_ENVIRON_KEY)))
        if token is None or time.time() > token.expires_at:
            raise ServiceError(401, "UnauthorizedException", "Session token not found or invalid")
        return token

    def holdings(self, user_name: str) -> list[tuple[str, str, str]]:
        """(account, permission set name, user id) of every assignment the user holds now."""
        user_id = self.peer.user_by_name(user_name)["UserId"]
        return [(account, name, user_id) for account, name in self.peer.assignments_of_user(user_id)]

    def get_role_credentials(self, _: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        account, role = query.get("account_id"), query.get("role_name")
        if not account or not role:
            raise invalid_request("account_id and role_name are required")
        with self.lock:
            token = self.bearer(query["_headers"])
        held = [h for h in self.holdings(token.user_name) if h[0] == account and h[1] == role]
        if not held:
            raise ServiceError(403, "ForbiddenException", "No access")
        access_key = "ASIA" + random_text(16, string.ascii_uppercase + string.digits)
        expires = time.time() + self.peer.config.role_credential_seconds
        with self.lock:
            self.role_keys[access_key] = RoleKeys(account, role, held[0][2], token.user_name, expires)
        return {
            "roleCredentials": {
                "accessKeyId": access_key,
                "secretAccessKey": random_text(40),
                "sessionToken": random_text(200),
                "expiration": int(expires * 1000),
            }
        }

    def list_accounts(self, _: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            token = self.bearer(query["_headers"])
        accounts = sorted({a for a, _, _ in self.holdings(token.user_name)})
        return {"accountList": [{"accountId": a, "accountName": a, "emailAddress": ""} for a in accounts]}

    def list_account_roles(self, _: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        account = query.get("account_id")
        with self.lock:
            token = self.bearer(query["_headers"])
        roles = sorted({r for a, r, _ in self.holdings(token.user_name) if a == account})
        return {"roleList": [{"roleName": r, "accountId": account} for r in roles]}

    # --- Session Manager --------------------------------------------------------------

    @staticmethod
    def caller(environ: dict[str, Any]) -> tuple[str, str]:
        """(access key id, region) from the SigV4 credential scope."""
        match = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match is None:
            raise ServiceError(400, "MissingAuthenticationTokenException", "Missing Authentication Token")
        return match.group(1), match.group(2)

    def account_of(self, access_key: str) -> str:
        with self.lock:
            keys = self.role_keys.get(access_key)
        return keys.account_id if keys else get_account_id_from(access_key)

    def start_session(self, body: dict[str, Any], environ: dict[str, Any]) -> dict[str, Any]:
        access_key, region = self.caller(environ)
        with self.lock:
            keys = self.role_keys.get(access_key)
        if keys is None or time.time() > keys.expires_at:
            raise ServiceError(400, "AccessDeniedException", "not authorized to perform: ssm:StartSession")
        if (keys.account_id, keys.permission_set) not in self.peer.assignments_of_user(keys.user_id):
            raise ServiceError(
                400, "AccessDeniedException", "not authorized to perform: ssm:StartSession (no assignment)"
            )
        target = body.get("Target")
        reason = body.get("Reason")
        if not isinstance(target, str) or not target:
            raise ServiceError(400, "ValidationException", "Target is required")
        if reason is not None and (not isinstance(reason, str) or not 1 <= len(reason) <= 256 or "\n" in reason):
            raise ServiceError(400, "ValidationException", "Reason must be 1-256 characters without newlines")
        if not self.instance_exists(keys.account_id, region, target):
            raise ServiceError(400, "TargetNotConnected", f"{target} is not connected.")
        document = body.get("DocumentName") or "SSM-SessionManagerRunShell"
        with self.lock:
            run_as = self.documents.get(document)
        if document != "SSM-SessionManagerRunShell" and run_as is None:
            raise ServiceError(400, "InvalidDocument", f"Document {document} does not exist")
        if run_as is None:
            run_as = self.peer.user_attribute(keys.user_id, self.run_as_attribute) or "ssm-user"
        suffix = hashlib.sha256(f"{keys.account_id}/{keys.permission_set}".encode()).hexdigest()[:16]
        owner = f"arn:aws:sts::{keys.account_id}:assumed-role/AWSReservedSSO_{keys.permission_set}_{suffix}/{keys.user_name}"
        session = Session(
            session_id=f"{keys.user_name.split('@')[0]}-{random_text(17, string.hexdigits.lower()[:16])}",
            account_id=keys.account_id,
            region=region,
            target=target,
            owner=owner,
            reason=reason,
            document_name=document,
            run_as=run_as,
            started_at=time.time(),
            user_id=keys.user_id,
            permission_set=keys.permission_set,
        )
        with self.lock:
            self.sessions[session.session_id] = session
        return {
            "SessionId": session.session_id,
            "TokenValue": random_text(64),
            "StreamUrl": f"wss://ssmmessages.{region}.amazonaws.com/v1/data-channel/{session.session_id}?role=publish_subscribe",
        }

    @staticmethod
    def instance_exists(account: str, region: str, instance_id: str) -> bool:
        backend = ec2_backends[account][region]
        return any(
            i.id == instance_id and i._state.name == "running"
            for reservation in backend.all_reservations()
            for i in reservation.instances
        )

    def describe_sessions(self, body: dict[str, Any], environ: dict[str, Any]) -> dict[str, Any]:
        access_key, region = self.caller(environ)
        account = self.account_of(access_key)
        state = body.get("State")
        if state not in ("Active", "History"):
            raise ServiceError(400, "ValidationException", "State must be Active or History")
        filters = body.get("Filters") or []
        known = {"InvokedAfter", "InvokedBefore", "Target", "Owner", "Status", "SessionId", "AccessType"}
        for f in filters:
            if not isinstance(f, dict) or f.get("key") not in known or not isinstance(f.get("value"), str):
                raise ServiceError(400, "InvalidFilterKey", f"invalid filter {f!r}")
        fields = {"Target": "target", "Owner": "owner", "SessionId": "session_id"}
        with self.lock:
            found = [
                s
                for s in self.sessions.values()
                if s.account_id == account
                and s.region == region
                and (s.ended_at is None) == (state == "Active")
                and all(getattr(s, fields[f["key"]]) == f["value"] for f in filters if f["key"] in fields)
            ]
        start = int(body.get("NextToken") or 0)
        size = int(body.get("MaxResults") or 20)
        if not 1 <= size <= 200:
            raise ServiceError(400, "ValidationException", "MaxResults must be between 1 and 200")
        result: dict[str, Any] = {"Sessions": [s.to_api() for s in found[start : start + size]]}
        if start + size < len(found):
            result["NextToken"] = str(start + size)
        return result

    def terminate_session(self, body: dict[str, Any], environ: dict[str, Any]) -> dict[str, Any]:
        access_key, region = self.caller(environ)
        account = self.account_of(access_key)
        session_id = body.get("SessionId")
        with self.lock:
            session = self.sessions.get(str(session_id))
            # AWS answers success for a session already ended, or not found, alike.
            if session is not None and session.account_id == account and session.region == region:
                if session.ended_at is None:
                    session.ended_at = time.time()
                    session.terminated_by = access_key
        return {"SessionId": session_id}

    def describe_instance_information(self, body: dict[str, Any], environ: dict[str, Any]) -> dict[str, Any]:
        """The caller's account's running instances in its region, as registered managed
        nodes (every one has the agent; its ping status is Online unless seeded otherwise)."""
        access_key, region = self.caller(environ)
        account = self.account_of(access_key)
        wanted: set[str] | None = None
        for f in body.get("Filters") or []:
            if not isinstance(f, dict) or f.get("Key") != "InstanceIds" or not isinstance(f.get("Values"), list):
                raise ServiceError(400, "InvalidInstanceInformationFilterValue", f"unsupported filter {f!r}")
            wanted = set(f["Values"])
        backend = ec2_backends[account][region]
        with self.lock:
            nodes = [
                {
                    "InstanceId": i.id,
                    "PingStatus": self.pings.get(i.id, "Online"),
                    "LastPingDateTime": time.time(),
                    "AgentVersion": "3.3.1142.0",
                    "PlatformType": "Linux",
                    "PlatformName": "Amazon Linux",
                    "ResourceType": "EC2Instance",
                    "IPAddress": i.private_ip,
                    "ComputerName": f"{i.id}.ec2.internal",
                }
                for reservation in backend.all_reservations()
                for i in reservation.instances
                if i._state.name == "running" and (wanted is None or i.id in wanted)
            ]
        start = int(body.get("NextToken") or 0)
        size = int(body.get("MaxResults") or 50)
        if not 5 <= size <= 50:
            raise ServiceError(400, "ValidationException", "MaxResults must be between 5 and 50")
        result: dict[str, Any] = {"InstanceInformationList": nodes[start : start + size]}
        if start + size < len(nodes):
            result["NextToken"] = str(start + size)
        return result

    def resume_session(self, body: dict[str, Any], environ: dict[str, Any]) -> dict[str, Any]:
        """The plugin reconnecting: with unexpired portal keys of the session's owner, as
        AWS checks them (expired keys are what breaks long sessions on static keys)."""
        access_key, _ = self.caller(environ)
        with self.lock:
            keys = self.role_keys.get(access_key)
            if keys is None or time.time() > keys.expires_at:
                raise ServiceError(400, "ExpiredTokenException", "The security token included in the request is expired")
            session = self.sessions.get(str(body.get("SessionId")))
            if session is None or session.ended_at is not None:
                raise ServiceError(400, "DoesNotExistException", "session does not exist or has ended")
            if session.user_id != keys.user_id:
                raise ServiceError(400, "AccessDeniedException", "not authorized to perform: ssm:ResumeSession")
        return {"SessionId": session.session_id, "TokenValue": random_text(64), "StreamUrl": ""}

    # --- control ----------------------------------------------------------------------

    def control_sessions(self) -> list[dict[str, Any]]:
        with self.lock:
            return [s.to_control() for s in self.sessions.values()]

    def seed_pings(self, pings: dict[str, str]) -> None:
        with self.lock:
            self.pings.update(pings)

    def seed_documents(self, documents: dict[str, Any]) -> None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in documents.items()):
            raise ValueError("documents must map document names to OS user names")
        with self.lock:
            self.documents.update(documents)

    def peer_url(self, path: str) -> str:
        return getattr(self.peer, "base_url", "http://127.0.0.1") + path


def loopback_match(registered: str, asked: str) -> bool:
    """Whether `asked` is the registered redirect URI, on any port if it is a loopback one."""
    if registered == asked:
        return True
    a, b = urllib.parse.urlsplit(registered), urllib.parse.urlsplit(asked)
    loopback = ("127.0.0.1", "localhost", "[::1]")
    return (
        a.scheme == b.scheme == "http"
        and a.hostname in loopback
        and a.hostname == b.hostname
        and a.path == b.path
    )


def parse_query(environ: dict[str, Any]) -> dict[str, Any]:
    """The query string's parameters (last value wins), plus the raw headers as `_headers`."""
    query: dict[str, Any] = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    query["_headers"] = environ
    return query
