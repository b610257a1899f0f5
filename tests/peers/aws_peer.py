#!/usr/bin/env python3
"""AWS test peer for jitgate: moto's server, extended to behave like IAM Identity Center.

Runs moto (https://docs.getmoto.org) in-process behind a WSGI middleware and serves it
on a loopback port, so integration tests, the benchmark and the demo talk real HTTP to
something that answers like AWS. Usage:

    python tests/peers/aws_peer.py --port 0 [--host 127.0.0.1] [--assignment-delay-ms 1000]
        [--tps-limit 20] [--max-outstanding 10] [--throttle-every 0] [--error-every 0] [--verbose]

Its defaults are IdC's own behaviour (operations take a second, 20 sso-admin calls a
second, 10 operations in progress); a knob at 0 is off.

Once listening it prints one line, ``READY http://127.0.0.1:<port>``, to stdout. It stops
cleanly on SIGTERM/SIGINT. Clients may sign for any region with any keys: every
sso-admin/identitystore request is served from moto's us-east-1 data of account
123456789012 (moto does not check signatures).

What the middleware adds on top of moto (AWS JSON 1.1 protocol, action in ``X-Amz-Target``):

* Account assignments are asynchronous like the real service
  (https://docs.aws.amazon.com/singlesignon/latest/APIReference/API_CreateAccountAssignment.html).
  ``CreateAccountAssignment``/``DeleteAccountAssignment`` always answer ``IN_PROGRESS`` with a
  fresh request id; the change takes effect ``assignment_delay_ms`` later, and the
  ``DescribeAccountAssignment{Creation,Deletion}Status`` calls report ``IN_PROGRESS`` until then
  and ``SUCCEEDED`` (or ``FAILED``) after. With a delay of 0 the change is applied before the
  response is sent, so the first describe already says ``SUCCEEDED``. Operations on the same
  assignment take effect in the order they were requested. Creating an existing assignment
  succeeds; deleting one that does not exist (once pending operations are accounted for)
  raises ``ResourceNotFoundException`` as moto does. If accounts were seeded, a create that
  targets any other account is accepted and then ends ``FAILED`` with a ``FailureReason``.
  These calls and the two ``ListAccountAssignments*`` calls are served from the peer's own
  store; moto's assignment store is not used.
* ``identitystore:UpdateUser`` (moto lacks it) edits moto's stored user; ``GetUserId`` also
  finds users by ``ExternalId`` (moto lacks it), as seeded with ``external_ids``.
* Fault and limit knobs, all off at 0 (``--flag`` at start, ``POST /_peer/config`` at runtime):
  ``tps_limit`` (sso-admin calls accepted in any sliding one-second window),
  ``max_outstanding`` (account-assignment operations in progress at once; real IdC allows 10,
  https://docs.aws.amazon.com/singlesignon/latest/userguide/limits.html), ``throttle_every``
  and ``error_every`` (every Nth sso-admin/identitystore call, counted from when either knob
  was last set or from the last ``/_peer/reset``, fails with ThrottlingException or
  InternalServerException; throttling wins when both hit the same call).
* Faults on demand (``POST /_peer/faults`` with ``{"rules": [...]}``, replacing the rules):
  each rule ``{"action": "UpdateUser" | "CreateAccountAssignment" | "DeleteAccountAssignment",
  "principal_id"?: id, "effect": "deny" | "fail" | "stuck"}``: ``deny`` answers
  AccessDeniedException (a missing IAM permission), ``fail`` makes the operation end FAILED,
  ``stuck`` keeps it IN_PROGRESS until the rule is removed. ``POST /_peer/outage`` with
  ``{"seconds": N}`` makes every sso-admin/identitystore call answer 503
  ServiceUnavailableException for N seconds (AWS down).
* IdC sign-in (sso-oidc), the IdC portal's role credentials and Session Manager sessions,
  served by ``aws_sessions.py`` (see there). ``DescribeSessions`` and ``TerminateSession``
  take the fault effect ``deny``.
* A control API under ``/_peer/`` (plain JSON, never reaches moto): ``GET health``,
  ``GET|POST config``, ``POST seed``, ``GET assignments``, ``GET history``, ``GET stats``,
  ``POST reset``, ``POST faults``, ``POST outage``, ``POST sso/approve``, ``GET sessions``.
  See the ``control_*`` methods.

Errors use the AWS JSON 1.1 shape ``{"__type": "<Code>", "message": "..."}`` with status 400
(500 for InternalServerException), which both botocore and the Rust SDK read as the error code
(https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html#operation-error-serialization).
"""

import argparse
import collections
import dataclasses
import heapq
import http
import ipaddress
import itertools
import json
import logging
import re
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable

from moto.core.exceptions import JsonRESTError
from moto.ec2.models import ec2_backends
from moto.identitystore.exceptions import ResourceNotFoundException as IdentityNotFound
from moto.identitystore.models import identitystore_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.ssoadmin.models import ssoadmin_backends
from werkzeug.serving import ThreadedWSGIServer

from aws_sessions import SSO_BEARER_ENVIRON_KEY, Redirect, ServiceError, SessionWorld, parse_query

ACCOUNT_ID = "123456789012"  # moto's default account, used for any access key
REGION = "us-east-1"
SSO_ADMIN = "SWBExternalService."
IDENTITY_STORE = "AWSIdentityStore."
# SigV4 signing names moto routes by (botocore's service models: metadata.signingName).
SIGNING_NAMES = {SSO_ADMIN: "sso", IDENTITY_STORE: "identitystore"}
SERVICE_LABELS = {SSO_ADMIN: "sso-admin", IDENTITY_STORE: "identitystore"}
AWS_JSON = "application/x-amz-json-1.1"
PAGE_SIZE = 100  # the API's maximum MaxResults, used when the caller gives none

# UpdateUser attribute paths (matched case-insensitively) -> moto's User / Name fields.
# https://docs.aws.amazon.com/singlesignon/latest/IdentityStoreAPIReference/API_UpdateUser.html
USER_ATTRIBUTES = {
    "nickname": "NickName",
    "displayname": "DisplayName",
    "title": "Title",
    "usertype": "UserType",
    "preferredlanguage": "PreferredLanguage",
    "locale": "Locale",
    "timezone": "Timezone",
    "profileurl": "ProfileUrl",
}
NAME_ATTRIBUTES = {
    "name.formatted": "Formatted",
    "name.familyname": "FamilyName",
    "name.givenname": "GivenName",
    "name.middlename": "MiddleName",
    "name.honorificprefix": "HonorificPrefix",
    "name.honorificsuffix": "HonorificSuffix",
}
# moto refuses to create a user without these, so they cannot be cleared either.
REQUIRED_ATTRIBUTES = {"displayname", "name.familyname", "name.givenname"}

CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
ACCOUNT_ID_PATTERN = re.compile(r"\d{12}")

log = logging.getLogger("aws_peer")


class AwsError(Exception):
    """An error answered in the AWS JSON protocol's shape."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def throttling(message: str = "Rate exceeded") -> AwsError:
    return AwsError(400, "ThrottlingException", message)


def validation(message: str) -> AwsError:
    return AwsError(400, "ValidationException", message)


class BadRequest(Exception):
    """A request body the peer cannot make sense of."""


FAULT_ACTIONS = {
    "UpdateUser",
    "CreateAccountAssignment",
    "DeleteAccountAssignment",
    "DescribeSessions",
    "TerminateSession",
}
# Actions that take only the effect "deny" (they have no asynchronous operation to fail).
DENY_ONLY_ACTIONS = {"UpdateUser", "DescribeSessions", "TerminateSession"}
FAULT_EFFECTS = {"deny", "fail", "stuck"}


@dataclasses.dataclass(frozen=True)
class Fault:
    """A fault rule: calls of `action` (for `principal_id`, or anyone) get `effect`."""

    action: str
    effect: str
    principal_id: str | None = None

    @staticmethod
    def parse(spec: Any) -> "Fault":
        if not isinstance(spec, dict):
            raise BadRequest("each fault rule must be an object")
        unknown = set(spec) - {"action", "effect", "principal_id"}
        if unknown:
            raise BadRequest(f"unknown fault rule keys {sorted(unknown)}")
        action, effect = spec.get("action"), spec.get("effect")
        if action not in FAULT_ACTIONS:
            raise BadRequest(f"action must be one of {sorted(FAULT_ACTIONS)}")
        if effect not in FAULT_EFFECTS:
            raise BadRequest(f"effect must be one of {sorted(FAULT_EFFECTS)}")
        if action in DENY_ONLY_ACTIONS and effect != "deny":
            raise BadRequest(f"{action} takes only the effect deny")
        principal = spec.get("principal_id")
        if principal is not None and not isinstance(principal, str):
            raise BadRequest("principal_id must be a string")
        return Fault(action, effect, principal)

    def matches(self, action: str, principal_id: str) -> bool:
        return self.action == action and self.principal_id in (None, principal_id)


def access_denied(action: str) -> AwsError:
    return AwsError(
        400,
        "AccessDeniedException",
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/jitgate-broker/jitgate is not authorized "
        f"to perform: {action} because no identity-based policy allows the {action} action",
    )


@dataclasses.dataclass
class Config:
    # IdC's own behaviour: operations take about a second, the admin APIs allow 20 calls a
    # second and about 10 assignment operations in progress (its quotas page).
    assignment_delay_ms: int = 1000
    tps_limit: int = 20
    max_outstanding: int = 10
    throttle_every: int = 0
    error_every: int = 0
    # How long the portal's role credentials last (IdC: the permission set's session
    # duration; jitgate recommends PT1H).
    role_credential_seconds: int = 3600

    def updated(self, changes: dict[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise BadRequest(f"unknown config key {name!r}; known: {sorted(known)}")
            if type(value) is not int or value < 0:
                raise BadRequest(f"{name} must be a non-negative integer")
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class AssignmentKey:
    instance_arn: str
    account_id: str
    permission_set_arn: str
    principal_type: str
    principal_id: str

    def to_api(self) -> dict[str, str]:
        return {
            "AccountId": self.account_id,
            "PermissionSetArn": self.permission_set_arn,
            "PrincipalType": self.principal_type,
            "PrincipalId": self.principal_id,
        }


@dataclasses.dataclass
class Operation:
    """One CreateAccountAssignment / DeleteAccountAssignment request."""

    kind: str  # "create" | "delete"
    key: AssignmentKey
    request_id: str
    requested_at: float  # unix seconds
    due_at: float  # when the change takes effect
    failure_reason: str | None = None
    completed_at: float | None = None

    @property
    def status(self) -> str:
        if self.completed_at is None:
            return "IN_PROGRESS"
        return "FAILED" if self.failure_reason else "SUCCEEDED"

    def to_api(self) -> dict[str, Any]:
        """The AccountAssignmentOperationStatus shape."""
        status = {
            "Status": self.status,
            "RequestId": self.request_id,
            "TargetId": self.key.account_id,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": self.key.permission_set_arn,
            "PrincipalType": self.key.principal_type,
            "PrincipalId": self.key.principal_id,
            "CreatedDate": self.requested_at,
        }
        if self.status == "FAILED":
            status["FailureReason"] = self.failure_reason
        return status

    def to_history(self) -> dict[str, Any]:
        return {
            "op": self.kind,
            "status": self.status,
            "account_id": self.key.account_id,
            "permission_set_arn": self.key.permission_set_arn,
            "principal_type": self.key.principal_type,
            "principal_id": self.key.principal_id,
            "request_id": self.request_id,
            "requested_at": self.requested_at,
            "completed_at": self.completed_at,
        }


def sso_backend():
    return ssoadmin_backends[ACCOUNT_ID][REGION]


def identity_backend():
    return identitystore_backends[ACCOUNT_ID][REGION]


def pin_signature(environ: dict[str, Any], signing_name: str) -> None:
    """Make moto serve the request from REGION's data whatever region (if any) it was signed for.

    moto takes service and region from the SigV4 credential scope and never verifies the
    signature, so a canonical header that keeps the caller's access key is enough.
    """
    match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    access_key = match.group(1) if match else "AKIAPEERUNSIGNED"
    environ["HTTP_AUTHORIZATION"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/20200101/{REGION}/{signing_name}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )


def read_json(environ: dict[str, Any]) -> dict[str, Any]:
    raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    try:
        body = json.loads(raw or b"{}")
    except ValueError as err:
        raise BadRequest(f"body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def respond(start_response, status: int, payload: Any, content_type: str) -> list[bytes]:
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    start_response(f"{status} {http.HTTPStatus(status).phrase}", headers)
    return [body]


def require(params: dict[str, Any], *names: str) -> list[Any]:
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise validation(f"Missing required parameter(s): {', '.join(missing)}")
    return [params[name] for name in names]


def page(params: dict[str, Any], field: str, items: list[Any]) -> dict[str, Any]:
    """Offset pagination; NextToken is the index of the next item."""
    token = params.get("NextToken") or "0"
    max_results = params.get("MaxResults") or PAGE_SIZE
    if not isinstance(token, str) or not token.isdigit():
        raise validation("Invalid NextToken")
    if type(max_results) is not int or not 1 <= max_results <= PAGE_SIZE:
        raise validation(f"MaxResults must be between 1 and {PAGE_SIZE}")
    start = int(token)
    end = start + max_results
    result: dict[str, Any] = {field: items[start:end]}
    if end < len(items):
        result["NextToken"] = str(end)
    return result


class Peer:
    """The WSGI middleware in front of moto, and all state the peer adds to it."""

    def __init__(self, moto_app: Callable, config: Config):
        self.moto_app = moto_app
        self.config = config
        self.lock = threading.Lock()  # guards everything below
        self.seq = itertools.count()
        self.realized: dict[AssignmentKey, None] = {}  # assignments in effect (ordered set)
        self.projected: set[AssignmentKey] = set()  # ... once every pending operation is done
        self.pending: list[tuple[float, int, Operation]] = []  # heap by due time
        self.last_due: dict[AssignmentKey, float] = {}  # latest due time scheduled per key
        self.operations: dict[str, Operation] = {}  # by request id; survives /_peer/reset
        self.accounts: set[str] = set()  # seeded accounts; empty = any account is valid
        self.revisions: dict[str, int] = collections.defaultdict(lambda: 1)  # per user id
        # (identity store id, issuer, id) -> user id: the external ids SCIM provisioning
        # gives users (moto stores none and cannot look users up by them).
        self.external_ids: dict[tuple[str, str, str], str] = {}
        self.sso_accepted: collections.deque[float] = collections.deque()  # tps_limit window
        self.faults: list[Fault] = []
        self.stuck: list[Operation] = []  # operations held IN_PROGRESS by a "stuck" fault
        self.down_until = 0.0  # monotonic time until which every call answers 503
        self.base_url = "http://127.0.0.1"  # set once listening
        self.world = SessionWorld(self)  # sso-oidc, the portal, Session Manager
        self.reset_stats()

    def reset_stats(self) -> None:
        self.history: list[Operation] = []
        self.actions: collections.Counter[str] = collections.Counter()
        self.fault_clock = 0  # calls since the fault knobs were set or stats reset
        self.throttled = 0
        self.errors = 0
        self.peak_outstanding = 0
        self.sso_calls: collections.deque[float] = collections.deque()  # last second's calls
        self.peak_sso_calls = 0

    # --- WSGI entry -------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response) -> list[bytes]:
        if environ.get("PATH_INFO", "").startswith("/_peer/"):
            return self.control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        rest = self.world.rest_route(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        ssm = self.world.ssm_route(target)
        if rest is not None or ssm is not None:
            return self.serve_world(environ, start_response, rest, ssm)
        prefix = next((p for p in SIGNING_NAMES if target.startswith(p)), None)
        if prefix is None:  # some other AWS service: plain moto
            return self.moto_app(environ, start_response)
        pin_signature(environ, SIGNING_NAMES[prefix])
        handler = AWS_HANDLERS.get(target)
        try:
            self.admit(prefix, target)
            if handler is not None:
                result = handler(self, read_json(environ))
        except BadRequest as err:
            return respond(start_response, 400, {"__type": "SerializationException", "message": str(err)}, AWS_JSON)
        except AwsError as err:
            return respond(start_response, err.status, {"__type": err.code, "message": err.message}, AWS_JSON)
        except JsonRESTError as err:  # raised by moto's backends, already in the JSON shape
            return respond(start_response, err.code, err.description, AWS_JSON)
        if handler is None:
            return self.moto_app(environ, start_response)
        return respond(start_response, 200, result, AWS_JSON)

    def serve_world(self, environ: dict[str, Any], start_response, rest: str | None, ssm: str | None) -> list[bytes]:
        """A call of sso-oidc or the portal (REST JSON) or of Session Manager (JSON 1.1)."""
        name = rest or ssm or ""
        action = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[2] if ssm else name
        with self.lock:
            self.actions[("ssm:" if ssm else "sso:") + action] += 1
            denied = ssm is not None and self.fault(action, "") is not None
        try:
            if denied:
                raise ServiceError(400, "AccessDeniedException", f"not authorized to perform: ssm:{action}")
            if rest is not None:
                body = read_json(environ) if environ["REQUEST_METHOD"] == "POST" else {}
                result = getattr(self.world, rest)(body, parse_query(environ))
            else:
                result = getattr(self.world, name)(read_json(environ), environ)
        except BadRequest as err:
            return respond(start_response, 400, {"__type": "SerializationException", "message": str(err)}, AWS_JSON)
        except ServiceError as err:
            body = json.dumps(err.body()).encode()
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("x-amzn-ErrorType", err.code),
            ]
            start_response(f"{err.status} {http.HTTPStatus(err.status).phrase}", headers)
            return [body]
        if isinstance(result, Redirect):
            start_response("302 Found", [("Location", result.location), ("Content-Length", "0")])
            return [b""]
        return respond(start_response, 200, result, AWS_JSON if ssm else "application/json")

    def user_by_name(self, user_name: str) -> dict[str, Any]:
        """The identity-store user called `user_name` (ValueError if there is none)."""
        backend = identity_backend()
        store_id = sso_backend().instances[0].identity_store_id
        unique = {"AttributePath": "userName", "AttributeValue": user_name}
        try:
            user_id = backend.get_user_id(store_id, {"UniqueAttribute": unique})[0]
        except IdentityNotFound:
            raise ValueError(f"no identity-store user named {user_name!r}") from None
        return {"UserId": user_id, "UserName": user_name}

    def user_attribute(self, user_id: str, path: str) -> str | None:
        """A user's attribute at `path` (a USER_ATTRIBUTES key), as IdC would pass it on."""
        field = USER_ATTRIBUTES.get(path.lower())
        store_id = sso_backend().instances[0].identity_store_id
        with self.lock:
            user = identity_backend().describe_user(store_id, user_id)
        return getattr(user, field) if field else None

    def assignments_of_user(self, user_id: str) -> set[tuple[str, str]]:
        """(account, permission set name) of every assignment the user holds now."""
        names = {p.permission_set_arn: p.name for p in sso_backend().permission_sets}
        keys = self.realized_where(lambda k: k.principal_type == "USER" and k.principal_id == user_id)
        return {(k.account_id, names.get(k.permission_set_arn, "")) for k in keys}

    def admit(self, prefix: str, target: str) -> None:
        """Count the call and apply the fault and rate knobs to it."""
        now = time.monotonic()
        with self.lock:
            config = self.config
            self.actions[f"{SERVICE_LABELS[prefix]}:{target[len(prefix):]}"] += 1
            if now < self.down_until:
                self.errors += 1
                raise AwsError(503, "ServiceUnavailableException", "Service is unavailable (injected outage)")
            self.fault_clock += 1
            is_sso = prefix == SSO_ADMIN
            if is_sso:
                slide(self.sso_calls, now)
                self.sso_calls.append(now)
                self.peak_sso_calls = max(self.peak_sso_calls, len(self.sso_calls))
            if config.throttle_every and self.fault_clock % config.throttle_every == 0:
                self.throttled += 1
                raise throttling()
            if config.error_every and self.fault_clock % config.error_every == 0:
                self.errors += 1
                raise AwsError(500, "InternalServerException", "Injected internal server error")
            if is_sso and config.tps_limit:
                slide(self.sso_accepted, now)
                if len(self.sso_accepted) >= config.tps_limit:
                    self.throttled += 1
                    raise throttling()
                self.sso_accepted.append(now)

    # --- account assignments ----------------------------------------------------------

    def assignment_key(self, params: dict[str, Any]) -> AssignmentKey:
        instance_arn, target_id, target_type, permission_set_arn, principal_type, principal_id = require(
            params, "InstanceArn", "TargetId", "TargetType", "PermissionSetArn", "PrincipalType", "PrincipalId"
        )
        if target_type != "AWS_ACCOUNT":
            raise validation("TargetType must be AWS_ACCOUNT")
        if not ACCOUNT_ID_PATTERN.fullmatch(str(target_id)):
            raise validation("TargetId must be a 12-digit AWS account id")
        if principal_type not in ("USER", "GROUP"):
            raise validation("PrincipalType must be USER or GROUP")
        sso_backend()._find_permission_set(instance_arn, permission_set_arn)  # ResourceNotFound
        return AssignmentKey(instance_arn, target_id, permission_set_arn, principal_type, principal_id)

    def advance(self, now: float) -> None:
        """Apply every pending operation due by `now` (caller holds the lock).

        Operations take effect lazily, when the peer is next asked about them; completed_at
        is the due time, i.e. the first moment any observer could see the change.
        """
        while self.pending and self.pending[0][0] <= now:
            due, _, op = heapq.heappop(self.pending)
            op.completed_at = due
            if op.failure_reason is None:
                if op.kind == "create":
                    self.realized[op.key] = None
                else:
                    self.realized.pop(op.key, None)

    def fault(self, action: str, principal_id: str) -> Fault | None:
        """The first fault rule for this call (caller holds the lock)."""
        return next((f for f in self.faults if f.matches(action, principal_id)), None)

    def schedule(self, kind: str, key: AssignmentKey, failure_reason: str | None = None) -> dict[str, Any]:
        """Queue a create/delete and return its AccountAssignmentOperationStatus."""
        action = "CreateAccountAssignment" if kind == "create" else "DeleteAccountAssignment"
        with self.lock:
            now = time.time()
            self.advance(now)
            fault = self.fault(action, key.principal_id)
            if fault is not None and fault.effect == "deny":
                raise access_denied(f"sso:{action}")
            if any(op.key == key and op.completed_at is None for op in self.in_progress()):
                raise AwsError(
                    400,
                    "ConflictException",
                    "An account assignment operation is already in progress for this assignment; "
                    "retry after it completes",
                )
            if kind == "delete" and key not in self.projected:
                raise AwsError(400, "ResourceNotFoundException", "Could not find account assignment")
            if fault is not None and fault.effect == "fail" and failure_reason is None:
                failure_reason = f"Injected failure of {action}"
            if self.config.max_outstanding and len(self.in_progress()) >= self.config.max_outstanding:
                self.throttled += 1
                raise throttling(
                    f"Too many account assignment operations in progress (limit {self.config.max_outstanding})"
                )
            # Never let an operation overtake an earlier one on the same assignment.
            due = max(now + self.config.assignment_delay_ms / 1000, self.last_due.get(key, 0.0))
            op = Operation(kind, key, str(uuid.uuid4()), now, due, failure_reason)
            self.last_due[key] = due
            if failure_reason is None:
                if kind == "create":
                    self.projected.add(key)
                else:
                    self.projected.discard(key)
            if fault is not None and fault.effect == "stuck":
                self.stuck.append(op)
            else:
                heapq.heappush(self.pending, (due, next(self.seq), op))
            self.operations[op.request_id] = op
            self.history.append(op)
            self.advance(now)
            self.peak_outstanding = max(self.peak_outstanding, len(self.in_progress()))
            # The real API always answers IN_PROGRESS, even if the change is already done.
            return {**op.to_api(), "Status": "IN_PROGRESS"}

    def in_progress(self) -> list[Operation]:
        """Operations not yet in effect (caller holds the lock)."""
        return [op for _, _, op in self.pending] + self.stuck

    def create_account_assignment(self, params: dict[str, Any]) -> dict[str, Any]:
        key = self.assignment_key(params)
        failure = None
        if self.accounts and key.account_id not in self.accounts:
            failure = f"Account {key.account_id} is not a member of the organization"
        elif key.principal_type == "USER" and not self.user_exists(key.principal_id):
            failure = f"Principal {key.principal_id} does not exist in the identity store"
        return {"AccountAssignmentCreationStatus": self.schedule("create", key, failure)}

    def delete_account_assignment(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"AccountAssignmentDeletionStatus": self.schedule("delete", self.assignment_key(params))}

    def operation_status(self, kind: str, request_id: Any) -> dict[str, Any]:
        with self.lock:
            self.advance(time.time())
            op = self.operations.get(request_id)
            if op is None or op.kind != kind:
                raise AwsError(400, "ResourceNotFoundException", f"Could not find request {request_id}")
            return op.to_api()

    def describe_creation_status(self, params: dict[str, Any]) -> dict[str, Any]:
        (request_id,) = require(params, "AccountAssignmentCreationRequestId")
        return {"AccountAssignmentCreationStatus": self.operation_status("create", request_id)}

    def describe_deletion_status(self, params: dict[str, Any]) -> dict[str, Any]:
        (request_id,) = require(params, "AccountAssignmentDeletionRequestId")
        return {"AccountAssignmentDeletionStatus": self.operation_status("delete", request_id)}

    def realized_where(self, predicate: Callable[[AssignmentKey], bool]) -> list[AssignmentKey]:
        with self.lock:
            self.advance(time.time())
            return [key for key in self.realized if predicate(key)]

    def list_account_assignments(self, params: dict[str, Any]) -> dict[str, Any]:
        instance_arn, account_id, permission_set_arn = require(
            params, "InstanceArn", "AccountId", "PermissionSetArn"
        )
        keys = self.realized_where(
            lambda k: (k.instance_arn, k.account_id, k.permission_set_arn)
            == (instance_arn, account_id, permission_set_arn)
        )
        return page(params, "AccountAssignments", [key.to_api() for key in keys])

    def list_account_assignments_for_principal(self, params: dict[str, Any]) -> dict[str, Any]:
        instance_arn, principal_id, principal_type = require(
            params, "InstanceArn", "PrincipalId", "PrincipalType"
        )
        account_id = (params.get("Filter") or {}).get("AccountId")
        keys = self.realized_where(
            lambda k: (k.instance_arn, k.principal_id, k.principal_type)
            == (instance_arn, principal_id, principal_type)
            and account_id in (None, k.account_id)
        )
        return page(params, "AccountAssignments", [key.to_api() for key in keys])

    # --- identity store ---------------------------------------------------------------

    def user_exists(self, user_id: str) -> bool:
        backend = identity_backend()
        return any(user_id in store.users for store in backend.identity_stores.values())

    def get_user_id(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetUserId by a unique attribute (moto) or by external id (moto lacks it)."""
        store_id, identifier = require(params, "IdentityStoreId", "AlternateIdentifier")
        if not isinstance(identifier, dict):
            raise validation("AlternateIdentifier must be an object")
        external = identifier.get("ExternalId")
        if external is None:
            return {
                "UserId": identity_backend().get_user_id(store_id, identifier)[0],
                "IdentityStoreId": store_id,
            }
        if not isinstance(external, dict) or not external.get("Issuer") or not external.get("Id"):
            raise validation("ExternalId needs Issuer and Id")
        with self.lock:
            user_id = self.external_ids.get((store_id, external["Issuer"], external["Id"]))
        if user_id is None or not self.user_exists(user_id):
            raise AwsError(400, "ResourceNotFoundException", "USER not found.")
        return {"UserId": user_id, "IdentityStoreId": store_id}

    def update_user(self, params: dict[str, Any]) -> dict[str, Any]:
        store_id, user_id, operations = require(params, "IdentityStoreId", "UserId", "Operations")
        with self.lock:
            fault = self.fault("UpdateUser", user_id)
        if fault is not None:
            raise access_denied("identitystore:UpdateUser")
        if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
            raise validation("Operations must be a list of AttributeOperation objects")
        backend = identity_backend()
        with self.lock:  # read-modify-write of moto's immutable User record
            user = backend.describe_user(store_id, user_id)  # ResourceNotFoundException
            for operation in operations:
                path = str(operation.get("AttributePath", "")).lower()
                value = operation.get("AttributeValue")
                if value is not None and not isinstance(value, str):
                    raise validation(f"AttributeValue for {path} must be a string")
                if value is None and path in REQUIRED_ATTRIBUTES:
                    raise validation(f"{path}: The attribute {path} is required")
                if path in USER_ATTRIBUTES:
                    user = user._replace(**{USER_ATTRIBUTES[path]: value})
                elif path in NAME_ATTRIBUTES:
                    user = user._replace(Name=user.Name._replace(**{NAME_ATTRIBUTES[path]: value}))
                else:
                    raise validation(f"Unsupported AttributePath {operation.get('AttributePath')!r}")
            backend.identity_stores[store_id].users[user_id] = user
            self.revisions[user_id] += 1
            revision = self.revisions[user_id]
        return {
            "IdentityStoreId": store_id,
            "UserId": user_id,
            "UserArn": f"arn:aws:identitystore:::user/{user_id}",
            "Revision": str(revision),
        }

    # --- control API ------------------------------------------------------------------

    def control(self, environ: dict[str, Any], start_response) -> list[bytes]:
        route = CONTROL_ROUTES.get((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        if route is None:
            return respond(start_response, 404, {"error": "no such control route"}, "application/json")
        try:
            body = read_json(environ) if environ["REQUEST_METHOD"] == "POST" else {}
            result = route(self, body)
        except BadRequest as err:
            return respond(start_response, 400, {"error": str(err)}, "application/json")
        except JsonRESTError as err:  # moto refused part of a seed
            return respond(start_response, 400, {"error": f"{err.error_type}: {err.message}"}, "application/json")
        return respond(start_response, 200, result, "application/json")

    def control_health(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def control_get_config(self, _: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return dataclasses.asdict(self.config)

    def control_set_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.config = self.config.updated(changes)
            if changes.keys() & {"throttle_every", "error_every"}:
                self.fault_clock = 0
            return dataclasses.asdict(self.config)

    def control_seed(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create users, groups and permission sets in moto's instance; existing names are reused.

        users: [{"user_name", "email"?, "display_name"?, "given_name"?, "family_name"?,
        "external_ids"? [{"issuer", "id"}]}]
        (display name defaults to the user name, given name to its first word, family name
        to the rest or "User"); groups: [name]; permission_sets: [{"name",
        "session_duration"? (default PT1H), "description"?}]; accounts: ["<12 digits>"];
        instances: [{"name", "account"? (default the first seeded account, else moto's
        123456789012), "instance_type"? (default t3.micro), "tags"? {key: value}, "ping"?
        (its SSM ping status, default Online)}]: running EC2 instances with that
        Name tag, in moto's EC2 data of that account in us-east-1 (answered as
        {"name": {"instance_id", "account", "private_ip"}}); documents: {"<session document
        name>": "<runAsDefaultUser>"} (see aws_sessions.py). Only moto's default account is
        reachable through the EC2 API with plain keys; the others are there to be named.
        """
        try:
            instance = sso_backend().instances[0]
            store_id = instance.identity_store_id
            users = {u["user_name"]: seed_user(store_id, u) for u in spec.get("users", [])}
            with self.lock:
                for u in spec.get("users", []):
                    for ext in u.get("external_ids", []):
                        key = (store_id, str(ext["issuer"]), str(ext["id"]))
                        self.external_ids[key] = users[u["user_name"]]
            groups = {name: seed_group(store_id, name) for name in spec.get("groups", [])}
            permission_sets = {
                p["name"]: seed_permission_set(instance.instance_arn, p)
                for p in spec.get("permission_sets", [])
            }
            accounts = [str(a) for a in spec.get("accounts", [])]
            wanted = [
                (str(i["name"]), str(i.get("account") or (accounts[0] if accounts else ACCOUNT_ID)),
                 str(i.get("instance_type") or "t3.micro"), dict(i.get("tags") or {}), i.get("ping"))
                for i in spec.get("instances", [])
            ]
        except (KeyError, TypeError, AttributeError) as err:
            raise BadRequest(f"malformed seed: {err!r}") from None
        bad = [a for a in accounts + [w[1] for w in wanted] if not ACCOUNT_ID_PATTERN.fullmatch(a)]
        if bad:
            raise BadRequest(f"account ids must be 12 digits: {bad}")
        instances = {name: seed_instance(name, account, kind, tags) for name, account, kind, tags, _ in wanted}
        self.world.seed_pings({instances[w[0]]["instance_id"]: str(w[4]) for w in wanted if w[4]})
        try:
            self.world.seed_documents(spec.get("documents") or {})
        except ValueError as err:
            raise BadRequest(str(err)) from None
        with self.lock:
            self.accounts.update(accounts)
            seeded_accounts = sorted(self.accounts)
        return {
            "instance_arn": instance.instance_arn,
            "identity_store_id": store_id,
            "users": users,
            "groups": groups,
            "permission_sets": permission_sets,
            "accounts": seeded_accounts,
            "instances": instances,
        }

    def control_assignments(self, _: dict[str, Any]) -> list[dict[str, str]]:
        return [
            {
                "account_id": k.account_id,
                "permission_set_arn": k.permission_set_arn,
                "principal_type": k.principal_type,
                "principal_id": k.principal_id,
            }
            for k in self.realized_where(lambda _: True)
        ]

    def control_history(self, _: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            self.advance(time.time())
            return [op.to_history() for op in self.history]

    def control_stats(self, _: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.advance(time.time())
            return {
                "actions": dict(self.actions),
                "calls": sum(self.actions.values()),
                "throttled": self.throttled,
                "errors": self.errors,
                "outstanding": len(self.in_progress()),
                "peak_outstanding": self.peak_outstanding,
                "peak_sso_admin_calls_per_second": self.peak_sso_calls,
            }

    def control_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the fault rules; operations held by a removed "stuck" rule go on at once."""
        rules = body.get("rules")
        if not isinstance(rules, list):
            raise BadRequest('body must be {"rules": [...]}')
        faults = [Fault.parse(r) for r in rules]
        with self.lock:
            self.faults = faults
            now = time.time()
            held = []
            for op in self.stuck:
                fault = self.fault(
                    "CreateAccountAssignment" if op.kind == "create" else "DeleteAccountAssignment",
                    op.key.principal_id,
                )
                if fault is not None and fault.effect == "stuck":
                    held.append(op)
                else:
                    op.due_at = max(op.due_at, now)
                    heapq.heappush(self.pending, (op.due_at, next(self.seq), op))
            self.stuck = held
            return {"rules": [dataclasses.asdict(f) for f in faults]}

    def control_outage(self, body: dict[str, Any]) -> dict[str, Any]:
        """Every sso-admin/identitystore call answers 503 for the next `seconds`."""
        seconds = body.get("seconds")
        if type(seconds) not in (int, float) or seconds < 0:
            raise BadRequest("seconds must be a non-negative number")
        with self.lock:
            self.down_until = time.monotonic() + seconds
        return {"ok": True}

    def control_sso_approve(self, body: dict[str, Any]) -> dict[str, Any]:
        """The person at the browser signs in as `user_name` and allows device code `user_code`."""
        try:
            return self.world.approve_device(body)
        except ValueError as err:
            raise BadRequest(str(err)) from None

    def control_sessions(self, _: dict[str, Any]) -> list[dict[str, Any]]:
        """Every Session Manager session, live or ended, with the OS user AWS runs it as."""
        return self.world.control_sessions()

    def control_reset(self, _: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.reset_stats()
        return {"ok": True}


def slide(window: collections.deque, now: float) -> None:
    """Drop timestamps older than one second from a sliding window."""
    while window and window[0] <= now - 1.0:
        window.popleft()


def seed_user(store_id: str, spec: dict[str, Any]) -> str:
    backend = identity_backend()
    user_name = spec["user_name"]
    try:
        unique = {"AttributePath": "userName", "AttributeValue": user_name}
        return backend.get_user_id(store_id, {"UniqueAttribute": unique})[0]
    except IdentityNotFound:
        pass
    display_name = spec.get("display_name") or user_name
    first, _, rest = display_name.partition(" ")
    name = {
        "GivenName": spec.get("given_name") or first,
        "FamilyName": spec.get("family_name") or rest or "User",
    }
    emails = [{"Value": spec["email"], "Type": "work", "Primary": True}] if spec.get("email") else []
    user_id, _ = backend.create_user(
        identity_store_id=store_id,
        user_name=user_name,
        name=name,
        display_name=display_name,
        nick_name=None,
        profile_url=None,
        emails=emails,
        addresses=[],
        phone_numbers=[],
        user_type=None,
        title=None,
        preferred_language=None,
        locale=None,
        timezone=None,
    )
    return user_id


def seed_group(store_id: str, display_name: str) -> str:
    backend = identity_backend()
    try:
        unique = {"AttributePath": "displayName", "AttributeValue": display_name}
        return backend.get_group_id(store_id, {"UniqueAttribute": unique})[0]
    except IdentityNotFound:
        return backend.create_group(store_id, display_name, None)[0]


def seed_instance(name: str, account: str, instance_type: str, tags: dict[str, str]) -> dict[str, str]:
    """A running EC2 instance tagged Name=`name` (and `tags`) in `account` (reused if one exists)."""
    backend = ec2_backends[account][REGION]
    for reservation in backend.all_reservations():
        for instance in reservation.instances:
            existing = {t["key"]: t["value"] for t in instance.get_tags()}
            if existing.get("Name") == name and instance._state.name != "terminated":
                return {"instance_id": instance.id, "account": account, "private_ip": instance.private_ip}
    reservation = backend.run_instances(
        "ami-12c6146b",  # moto does not check AMI ids unless MOTO_ENABLE_AMI_VALIDATION is set
        1,
        None,
        [],
        instance_type=instance_type,
        is_instance_type_default=False,
        tags={"instance": {**{str(k): str(v) for k, v in tags.items()}, "Name": name}},
    )
    instance = reservation.instances[0]
    return {"instance_id": instance.id, "account": account, "private_ip": instance.private_ip}


def seed_permission_set(instance_arn: str, spec: dict[str, Any]) -> str:
    backend = sso_backend()
    for existing in backend.permission_sets:
        if existing.instance_arn == instance_arn and existing.name == spec["name"]:
            return existing.permission_set_arn
    # Always set SessionDuration: left unset, moto reports it as the number 3600 where the
    # API has an ISO-8601 string, which SDKs fail to parse.
    created = backend.create_permission_set(
        name=spec["name"],
        description=spec.get("description"),
        instance_arn=instance_arn,
        session_duration=spec.get("session_duration") or "PT1H",
        relay_state=None,
        tags=[],
    )
    return created["PermissionSetArn"]


AWS_HANDLERS: dict[str, Callable[[Peer, dict[str, Any]], dict[str, Any]]] = {
    SSO_ADMIN + "CreateAccountAssignment": Peer.create_account_assignment,
    SSO_ADMIN + "DeleteAccountAssignment": Peer.delete_account_assignment,
    SSO_ADMIN + "DescribeAccountAssignmentCreationStatus": Peer.describe_creation_status,
    SSO_ADMIN + "DescribeAccountAssignmentDeletionStatus": Peer.describe_deletion_status,
    SSO_ADMIN + "ListAccountAssignments": Peer.list_account_assignments,
    SSO_ADMIN + "ListAccountAssignmentsForPrincipal": Peer.list_account_assignments_for_principal,
    IDENTITY_STORE + "UpdateUser": Peer.update_user,
    IDENTITY_STORE + "GetUserId": Peer.get_user_id,
}

CONTROL_ROUTES: dict[tuple[str, str], Callable[[Peer, dict[str, Any]], Any]] = {
    ("GET", "/_peer/health"): Peer.control_health,
    ("GET", "/_peer/config"): Peer.control_get_config,
    ("POST", "/_peer/config"): Peer.control_set_config,
    ("POST", "/_peer/seed"): Peer.control_seed,
    ("GET", "/_peer/assignments"): Peer.control_assignments,
    ("GET", "/_peer/history"): Peer.control_history,
    ("GET", "/_peer/stats"): Peer.control_stats,
    ("POST", "/_peer/reset"): Peer.control_reset,
    ("POST", "/_peer/faults"): Peer.control_faults,
    ("POST", "/_peer/outage"): Peer.control_outage,
    ("POST", "/_peer/sso/approve"): Peer.control_sso_approve,
    ("GET", "/_peer/sessions"): Peer.control_sessions,
}


class PeerRequestHandler(MotoRequestHandler):
    """Moto's handler, also passing on the portal's ``x-amz-sso_bearer_token`` header.

    Werkzeug drops headers with an underscore in their name (WSGI cannot tell them from
    dashed ones); the portal API names its bearer token that way, so it is handed over
    under a key of its own, which no dashed header can spoof.
    """

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        token = self.headers.get("x-amz-sso_bearer_token")
        if token is not None:
            environ[SSO_BEARER_ENVIRON_KEY] = token
        return environ


class PeerServer(ThreadedWSGIServer):
    # One thread per connection (werkzeug closes every connection after its response).
    # A bigger listen backlog than werkzeug's 128 lets bursts of a few hundred concurrent
    # connections queue in the kernel instead of having their SYNs dropped and retried.
    request_queue_size = 1024


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    for field in dataclasses.fields(Config):
        parser.add_argument("--" + field.name.replace("_", "-"), type=int, default=field.default)
    args = parser.parse_args(argv)
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        parser.error(f"--host must be a loopback address, not {args.host!r}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Quiet unless --verbose: werkzeug logs one INFO line per request.
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="aws_peer: %(message)s")
    logging.getLogger("werkzeug").setLevel(level)
    try:
        config = Config().updated({f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})
    except BadRequest as err:
        print(f"aws_peer: {err}", file=sys.stderr)
        return 2
    peer = Peer(DomainDispatcherApplication(create_backend_app), config)
    server = PeerServer(args.host, args.port, peer, handler=PeerRequestHandler)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    serving.start()
    host = f"[{args.host}]" if ":" in args.host else args.host
    peer.base_url = f"http://{host}:{server.port}"
    print(f"READY http://{host}:{server.port}", flush=True)
    log.info("config %s", dataclasses.asdict(config))
    stop.wait()
    log.info("stopping")
    server.shutdown()  # serve_forever returns and closes the listening socket
    serving.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
