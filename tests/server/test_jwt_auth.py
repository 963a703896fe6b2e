"""CouchDB 3's JWT authentication on the embedded server (`--jwt-secret`): HS256 bearer
tokens, `sub` as the user name, the roles claim, `exp` and `nbf` enforced."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests

from tests._servers.iam import ROLES_CLAIM, sign_hs256, token_for
from tests.conftest import ADMIN, JWT_SECRET


def _session(url: str, token: str) -> requests.Response:
    return requests.get(url + "/_session", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _assert_refused(response: requests.Response, reason: str) -> None:
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "reason": reason}


def test_valid_token_authenticates_its_subject_with_its_roles(jwt_server):
    """A token signed with the server's secret makes `sub` the user and the roles claim
    its roles (`GET /_session` shows them, authenticated by "jwt")."""
    r = _session(jwt_server.url, token_for("alice", ["staff", "ops"], JWT_SECRET))
    assert r.status_code == 200
    body = r.json()
    assert body["userCtx"] == {"name": "alice", "roles": ["staff", "ops"]}
    assert body["info"]["authenticated"] == "jwt"
    assert "jwt" in body["info"]["authentication_handlers"]


def test_roles_may_come_in_a_plain_roles_claim(jwt_server):
    """A token without `_couchdb.roles` may carry its roles in `_roles`."""
    now = time.time()
    token = sign_hs256({"sub": "bob", "_roles": ["staff"], "exp": now + 60}, JWT_SECRET)
    r = _session(jwt_server.url, token)
    assert r.status_code == 200 and r.json()["userCtx"] == {"name": "bob", "roles": ["staff"]}


def test_expired_token_is_refused(jwt_server):
    """A token whose `exp` has passed is 401 `exp not in future`."""
    _assert_refused(_session(jwt_server.url, token_for("alice", [], JWT_SECRET, lifetime=-1)), "exp not in future")


def test_token_without_exp_is_refused(jwt_server):
    """A token without `exp` would never expire: 401."""
    token = sign_hs256({"sub": "alice"}, JWT_SECRET)
    _assert_refused(_session(jwt_server.url, token), "Missing exp claim")


def test_token_not_yet_valid_is_refused(jwt_server):
    """A token whose `nbf` is in the future is 401 `nbf not in past`."""
    token = token_for("alice", [], JWT_SECRET, nbf=time.time() + 300)
    _assert_refused(_session(jwt_server.url, token), "nbf not in past")


def test_token_signed_with_another_secret_is_refused(jwt_server):
    """A token whose HMAC does not verify with the server's secret is 401 `Bad HMAC`."""
    _assert_refused(_session(jwt_server.url, token_for("alice", ["_admin"], "some-other-secret")), "Bad HMAC")


def test_token_with_a_tampered_payload_is_refused(jwt_server):
    """Changing the claims of a signed token (here: adding `_admin`) breaks its HMAC."""
    head, _, mac = token_for("alice", [], JWT_SECRET).split(".")
    claims = {"sub": "alice", ROLES_CLAIM: ["_admin"], "exp": time.time() + 60}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    _assert_refused(_session(jwt_server.url, f"{head}.{body}.{mac}"), "Bad HMAC")


def test_alg_none_is_refused(jwt_server):
    """An unsigned token (`alg: none`, empty signature) is 401, whatever it claims."""
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    claims = {"sub": "mallory", ROLES_CLAIM: ["_admin"], "exp": time.time() + 60}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    _assert_refused(_session(jwt_server.url, f"{head}.{body}."), "Invalid alg header parameter")


@pytest.mark.parametrize("alg", ["HS512", "RS256", "HS256 "])
def test_other_algorithms_are_refused(jwt_server, alg):
    """Only HS256 is accepted: a token naming another algorithm is 401."""
    token = sign_hs256({"sub": "alice", "exp": time.time() + 60}, JWT_SECRET, header={"alg": alg})
    _assert_refused(_session(jwt_server.url, token), "Invalid alg header parameter")


def test_token_without_sub_is_refused(jwt_server):
    """A valid token naming no user is 401 `Token missing sub claim.`"""
    _assert_refused(_session(jwt_server.url, sign_hs256({"exp": time.time() + 60}, JWT_SECRET)),
                    "Token missing sub claim.")


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!!.???.***"])
def test_malformed_token_is_refused(jwt_server, token):
    """Something that is not three base64url parts of JSON is 401 `Malformed token`."""
    _assert_refused(_session(jwt_server.url, token), "Malformed token")


def test_admin_role_makes_a_server_admin(jwt_server):
    """A JWT user with the `_admin` role may create and delete databases."""
    headers = {"Authorization": f"Bearer {token_for('root', ['_admin'], JWT_SECRET)}"}
    assert requests.put(jwt_server.url + "/jwt-admin-made", headers=headers, timeout=10).status_code == 201
    assert requests.delete(jwt_server.url + "/jwt-admin-made", headers=headers, timeout=10).status_code == 200


def test_user_without_admin_role_is_not_a_server_admin(jwt_server):
    """A JWT user without `_admin` may not create databases: 403 forbidden."""
    headers = {"Authorization": f"Bearer {token_for('alice', ['staff'], JWT_SECRET)}"}
    r = requests.put(jwt_server.url + "/jwt-not-made", headers=headers, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_basic_admin_login_still_works_beside_jwt(jwt_server):
    """The `--admin` login keeps working on a server with a JWT secret."""
    assert requests.get(jwt_server.url + "/_all_dbs", auth=ADMIN, timeout=10).status_code == 200
