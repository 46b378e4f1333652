"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in tests/api/test_schemathesis.py: credentials
and one adjustment of generated long polls.

The run's requests bear an admin API token that this provider creates with an admin session.
The session itself is never sent by the run: the run calls `POST /api/v1/logout`, which would
end it. The run also calls `DELETE /api/v1/tokens/{id}` with made-up ids and so may revoke its
own token: the next answer is a 401, on which schemathesis asks again (`retry_on`) and gets a
new token. A token costs a hash; a sign-in costs an argon2 check (up to 1.5 s on two busy
cores), so the provider signs in once.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import requests
import schemathesis

_URL = os.environ.get("CONFIGCENTER_TEST_URL", "")


@functools.cache
def _admin_session() -> str:
    response = requests.post(
        f"{_URL}/api/v1/login",
        json={"username": "admin", "password": os.environ["CONFIGCENTER_TEST_PASSWORD"]},
        timeout=30,
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


@schemathesis.auth(retry_on=[401])
class AdminToken:
    """A new admin API token, made with the admin session."""

    def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> str:
        """Create a token and return its secret."""
        response = requests.post(
            f"{_URL}/api/v1/tokens",
            json={"name": f"schemathesis-{os.urandom(4).hex()}", "scopes": ["admin"]},
            headers={"Authorization": f"Bearer {_admin_session()}"},
            timeout=30,
        )
        response.raise_for_status()
        secret: str = response.json()["token"]
        return secret

    def set(self, case: schemathesis.Case[Any], data: str, ctx: schemathesis.AuthContext) -> None:
        """Send it as the bearer token."""
        case.headers["Authorization"] = f"Bearer {data}"


def _positive(case: schemathesis.Case[Any]) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


_FILES = {
    "json": b'{"imported": "v"}',
    "properties": b"imported=v\n",
    "yaml": b'imported: "v"\n',
    "dotenv": b"IMPORTED=v\n",
}


def _fit_export_document(document: dict[str, Any]) -> None:
    """A secret item without its value imports only over an item that has one: a rule the
    schema does not say."""
    envs = document.get("envs")
    if not isinstance(envs, dict):
        return
    for env in envs.values():
        items = env.get("items") if isinstance(env, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                if item.get("value") is None:
                    item["secret"] = False
                    item["value"] = ""


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: Any) -> None:
    """Fit generated requests to the rules the schema cannot say, and keep long polls short.

    OpenAPI cannot make one value depend on another, so a valid-looking request may still
    break a documented rule: `wait` needs `after` (else 400), and `PATCH …/items` may not
    both set and delete one key (else 400). Valid cases are adjusted to keep those rules;
    invalid ones are sent as generated. A long poll on an env whose version is not past
    `after` holds the request for `wait` seconds (30 without it), so a long poll gets wait=0
    (unless its wait is invalid): the run stays bounded (tests/api/test_config.py covers
    waiting).
    """
    operation = case.operation.definition.raw.get("operationId")
    if operation == "get_config" and case.query and {"after", "wait"} & set(case.query):
        wait = str(case.query.get("wait", 0))
        if wait.isascii() and wait.isdigit() and int(wait) <= 60:
            case.query["wait"] = 0
        case.query.setdefault("after", 0)
    elif operation == "import_env" and _positive(case) and case.query:
        # The body is a file whose validity depends on `format`, which OpenAPI cannot say:
        # a valid case sends a valid file of its format (tests/api/test_transfer.py covers
        # bad files).
        kwargs["data"] = _FILES.get(str(case.query.get("format")), b"")
    elif operation == "import_app" and _positive(case) and isinstance(case.body, dict):
        _fit_export_document(case.body)
    elif operation == "patch_items" and _positive(case) and isinstance(case.body, dict):
        to_set, to_delete = case.body.get("set"), case.body.get("delete")
        if isinstance(to_set, dict) and isinstance(to_delete, list):
            case.body["delete"] = [key for key in to_delete if key not in to_set]
