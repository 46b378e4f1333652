"""Export and import over HTTP, on both stores: all or none, checked before anything is written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import Api, AppFactory
from tests.domain.test_parsing import DOTENV_SAFE, HOSTILE

APP = "/api/v1/apps/shop"
PROD = f"{APP}/envs/prod"


async def shop(api: Api) -> None:
    answer = await api.call(
        "POST", "/api/v1/apps", {"name": "shop", "description": "web shop", "envs": ["prod"]}
    )
    assert answer.status == 201, answer.text


async def draft(api: Api, env: str = "prod", app: str = "shop") -> dict[str, str]:
    answer = await api.call("GET", f"/api/v1/apps/{app}/envs/{env}/items")
    assert answer.status == 200, answer.text
    return {item["key"]: item["value"] for item in answer.body["items"]}


async def import_file(api: Api, query: str, data: bytes, env: str = "prod") -> Any:
    return await api.call("POST", f"{APP}/envs/{env}/import?{query}", data=data)


# POST …/envs/{env}/import


async def test_merge_sets_the_files_keys_and_keeps_the_rest(api: Api) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"kept": "1", "changed": "old", "same": "s"})
    answer = await import_file(
        api, "format=properties", b"changed=new\nsame=s\nadded=a b\n# comment\n"
    )
    assert answer.status == 200, answer.text
    assert (answer.body["added"], answer.body["changed"], answer.body["removed"]) == (
        ["added"],
        ["changed"],
        [],
    )
    assert await draft(api) == {"kept": "1", "changed": "new", "same": "s", "added": "a b"}
    audit = await api.call("GET", "/api/v1/audit?app=shop&limit=1")
    assert audit.body["entries"][0]["action"] == "draft.import"


async def test_replace_makes_the_draft_exactly_the_file(api: Api) -> None:
    await shop(api)
    put = await api.call("PUT", f"{PROD}/items/changed", {"value": "old", "comment": "why"})
    assert put.status == 201
    await api.set_items("shop", "prod", {"gone": "1"})
    answer = await import_file(api, "format=yaml&mode=replace", b"changed: new\nadded: 'x'\n")
    assert answer.status == 200, answer.text
    assert (answer.body["added"], answer.body["changed"], answer.body["removed"]) == (
        ["added"],
        ["changed"],
        ["gone"],
    )
    items = (await api.call("GET", f"{PROD}/items")).body["items"]
    assert {i["key"]: (i["value"], i["comment"]) for i in items} == {
        "changed": ("new", "why"),
        "added": ("x", ""),
    }
    assert answer.body["draft_revision"] == max(i["revision"] for i in items)


async def test_a_dry_run_answers_the_same_and_writes_nothing(api: Api) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"a": "1", "b": "2"})
    before = await api.snapshot()
    data = b'{"a": "1", "b": "two", "c": "3"}'
    dry = await import_file(api, "format=json&mode=replace&dry_run=true", data)
    assert dry.status == 200, dry.text
    assert await api.snapshot() == before
    real = await import_file(api, "format=json&mode=replace", data)
    assert {k: real.body[k] for k in ("added", "changed", "removed")} == {
        k: dry.body[k] for k in ("added", "changed", "removed")
    }
    assert (dry.body["added"], dry.body["changed"], dry.body["removed"]) == (["c"], ["b"], [])
    assert real.body["draft_revision"] == dry.body["draft_revision"] + 1


async def test_an_import_that_changes_nothing_writes_nothing(api: Api) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"a": "1"})
    before = await api.snapshot()
    answer = await import_file(api, "format=dotenv", b"a=1\n")
    assert answer.status == 200
    assert (answer.body["added"], answer.body["changed"], answer.body["removed"]) == ([], [], [])
    assert await api.snapshot() == before


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # parsing, not storage
@pytest.mark.parametrize("fmt", ["json", "properties", "yaml", "dotenv"])
async def test_an_exported_config_imported_into_an_empty_draft_gives_the_same_items(
    api: Api, fmt: str
) -> None:
    await shop(api)
    assert (await api.call("POST", f"{APP}/envs", {"name": "copy"})).status == 201
    items = DOTENV_SAFE if fmt == "dotenv" else {**HOSTILE, "a.b:c/d-e_f": "v"}
    await api.set_items("shop", "prod", items)
    assert (await api.publish("shop", "prod")).status == 201
    response = await api.client.get(
        f"{PROD}/config?format={fmt}", headers={"Authorization": f"Bearer {api.token}"}
    )
    assert response.status == 200
    data = await response.read()
    answer = await import_file(api, f"format={fmt}", data, env="copy")
    assert answer.status == 200, answer.text
    assert await draft(api, "copy") == items
    assert sorted(answer.body["added"]) == sorted(items)


@pytest.mark.parametrize(
    ("query", "data", "code", "names"),
    [
        ("format=properties", b"a=1\nb=2\nbad$=3\n", "invalid_import", "line 3"),
        ("format=yaml", b"a: '1'\nport: 8080\n", "invalid_import", "line 2"),
        ("format=dotenv", b"A=1\nB='open\n", "invalid_import", "line 2"),
        ("format=json", b'{"a": "1", "b": null}', "invalid_import", "'b'"),
        ("format=json", b"\xff\xfe", "invalid_import", "line 1"),
        ("format=yaml", b"a: '\xff'", "invalid_import", "UTF-8"),
        ("format=toml", b"a = 1", "invalid_request", "format"),
        ("format=json&mode=upsert", b"{}", "invalid_request", "mode"),
        ("format=json&dry_run=yes", b"{}", "invalid_request", "dry_run"),
    ],
)
async def test_a_bad_file_is_400_and_changes_nothing(
    api: Api, query: str, data: bytes, code: str, names: str
) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"a": "0"})
    before = await api.snapshot()
    answer = await import_file(api, query, data)
    assert (answer.status, answer.body["error"]["code"]) == (400, code), answer.text
    assert names in answer.body["error"]["message"]
    assert await api.snapshot() == before


async def test_an_import_breaking_a_limit_on_its_nth_item_changes_nothing(
    api_factory: AppFactory, store_url: str
) -> None:
    api = await api_factory(store_url, max_items_per_env=5, max_value_bytes=100)
    await shop(api)
    await api.set_items("shop", "prod", {"a": "0", "b": "0"})
    before = await api.snapshot()
    # The fourth new key is one too many: nothing of the first three is written either.
    lines = b"".join(f"k{i}=v{i}\n".encode() for i in range(4))
    answer = await import_file(api, "format=properties", lines)
    assert (answer.status, answer.body["error"]["code"]) == (413, "too_many_items")
    # The same on a dry run, and for a value over the limit on the last line.
    dry = await import_file(api, "format=properties&dry_run=true", lines)
    assert (dry.status, dry.body["error"]["code"]) == (413, "too_many_items")
    big = b"k0=1\nk1=1\nk2=" + b"x" * 101 + b"\n"
    answer = await import_file(api, "format=properties", big)
    assert (answer.status, answer.body["error"]["code"]) == (400, "invalid_import")
    assert "line 3" in answer.body["error"]["message"]
    assert await api.snapshot() == before
    # replace may swap the draft for as many items as the limit allows.
    fits = b"".join(f"k{i}=v{i}\n".encode() for i in range(5))
    assert (await import_file(api, "format=properties&mode=replace", fits)).status == 200


async def test_an_import_past_the_draft_size_is_413_and_changes_nothing(
    api_factory: AppFactory, store_url: str
) -> None:
    api = await api_factory(store_url, max_release_bytes=200)
    await shop(api)
    before = await api.snapshot()
    data = b"".join(f"k{i}={'v' * 30}\n".encode() for i in range(6))
    answer = await import_file(api, "format=properties", data)
    assert (answer.status, answer.body["error"]["code"]) == (413, "draft_too_large")
    assert await api.snapshot() == before


async def test_importing_needs_an_editor_and_an_existing_env(api: Api) -> None:
    await shop(api)
    _, reader = await api.token_for("read:shop")
    before = await api.snapshot()
    refused = await api.call("POST", f"{PROD}/import?format=json", data=b'{"a":"1"}', token=reader)
    assert (refused.status, refused.body["error"]["code"]) == (403, "forbidden")
    missing = await import_file(api, "format=json", b'{"a": "1"}', env="nope")
    assert missing.status == 404
    assert await api.snapshot() == before
    _, publisher = await api.token_for("write:shop", name="w")
    allowed = await api.call(
        "POST", f"{PROD}/import?format=json", data=b'{"a":"1"}', token=publisher
    )
    assert allowed.status == 200


# GET /apps/{app}/export and POST /apps/import


async def exported(api: Api, app: str = "shop", query: str = "") -> dict[str, Any]:
    answer = await api.call("GET", f"/api/v1/apps/{app}/export{query}")
    assert answer.status == 200, answer.text
    body: dict[str, Any] = answer.body
    return body


async def test_the_export_document_holds_every_envs_draft(api: Api) -> None:
    await shop(api)
    assert (await api.call("POST", f"{APP}/envs", {"name": "dev"})).status == 201
    put = await api.call("PUT", f"{PROD}/items/db.url", {"value": "mysql://db", "comment": "main"})
    assert put.status == 201
    await api.set_items("shop", "dev", {"b": "2", "a": "1"})
    document = await exported(api)
    assert document["kind"] == "configcenter.export"
    assert document["version"] == 1
    assert document["exported_at"].endswith("Z")
    assert (document["app"], document["description"]) == ("shop", "web shop")
    assert document["envs"] == {
        "prod": {
            "items": [{"key": "db.url", "value": "mysql://db", "comment": "main", "secret": False}]
        },
        "dev": {
            "items": [
                {"key": "a", "value": "1", "comment": "", "secret": False},
                {"key": "b", "value": "2", "comment": "", "secret": False},
            ]
        },
    }
    assert (await exported(api, query="?secrets=include"))["envs"] == document["envs"]


async def test_exporting_needs_the_owner_and_secrets_need_an_admin(api: Api) -> None:
    await shop(api)
    _, publisher = await api.token_for("write:shop")
    refused = await api.call("GET", f"{APP}/export", token=publisher)
    assert (refused.status, refused.body["error"]["code"]) == (403, "forbidden")
    bad = await api.call("GET", f"{APP}/export?secrets=all")
    assert (bad.status, bad.body["error"]["code"]) == (400, "invalid_request")
    assert (await api.call("GET", "/api/v1/apps/nope/export")).status == 404


async def test_an_exported_app_imports_as_a_new_app_with_the_same_drafts(api: Api) -> None:
    await shop(api)
    assert (await api.call("POST", f"{APP}/envs", {"name": "dev"})).status == 201
    put = await api.call("PUT", f"{PROD}/items/db.url", {"value": "mysql://db", "comment": "main"})
    assert put.status == 201
    await api.set_items("shop", "dev", HOSTILE)
    document = await exported(api)
    document["app"] = "shop2"
    answer = await api.call("POST", "/api/v1/apps/import?mode=create", document)
    assert answer.status == 201, answer.text
    assert answer.body["app"] == "shop2"
    assert answer.body["envs"]["prod"] == {"added": ["db.url"], "changed": [], "removed": []}
    assert sorted(answer.body["envs"]["dev"]["added"]) == sorted(HOSTILE)
    copy = await exported(api, "shop2")
    assert (copy["description"], copy["envs"]) == ("web shop", document["envs"])
    again = await api.call("POST", "/api/v1/apps/import?mode=create", document)
    assert (again.status, again.body["error"]["code"]) == (409, "exists")
    audit = await api.call("GET", "/api/v1/audit?app=shop2&limit=1")
    assert audit.body["entries"][0]["action"] == "app.import"


async def test_merge_sets_the_listed_items_and_creates_missing_envs(api: Api) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"kept": "1", "changed": "old", "same": "s"})
    document = {
        "kind": "configcenter.export",
        "version": 1,
        "app": "shop",
        "description": "ignored by merge",
        "envs": {
            "prod": {
                "items": [
                    {"key": "changed", "value": "new"},
                    {"key": "same", "value": "s"},
                    {"key": "added", "value": "a", "comment": "why"},
                ]
            },
            "dev": {"items": [{"key": "x", "value": "1"}]},
        },
    }
    answer = await api.call("POST", "/api/v1/apps/import?mode=merge", document)
    assert answer.status == 200, answer.text
    assert answer.body == {
        "app": "shop",
        "envs": {
            "prod": {"added": ["added"], "changed": ["changed"], "removed": []},
            "dev": {"added": ["x"], "changed": [], "removed": []},
        },
    }
    assert await draft(api) == {"kept": "1", "changed": "new", "same": "s", "added": "a"}
    assert await draft(api, "dev") == {"x": "1"}
    app = (await api.call("GET", APP)).body
    assert (app["description"], app["envs"]) == ("web shop", ["prod", "dev"])
    missing = await api.call("POST", "/api/v1/apps/import?mode=merge", {**document, "app": "nope"})
    assert missing.status == 404


def document_with(*items: dict[str, Any], envs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "configcenter.export",
        "version": 1,
        "app": "shop",
        "envs": envs if envs is not None else {"prod": {"items": list(items)}},
    }


@pytest.mark.parametrize(
    ("document", "code", "names"),
    [
        (document_with({"key": "bad key", "value": "1"}), "invalid_import", "items[0]"),
        (
            document_with({"key": "a", "value": "1"}, {"key": "b", "value": 2}),
            "invalid_request",
            "value",
        ),
        (
            document_with({"key": "a", "value": "1"}, {"key": "a", "value": "2"}),
            "invalid_import",
            "twice",
        ),
        (document_with({"key": "a", "value": None}), "invalid_import", "items[0]"),
        (
            document_with({"key": "a", "value": None, "secret": True}),
            "invalid_import",
            "secrets=include",
        ),
        (
            document_with({"key": "a", "value": "1", "comment": "c" * 1001}),
            "invalid_import",
            "comment",
        ),
        (document_with(envs={"Bad Env": {"items": []}}), "invalid_import", "envs."),
        ({**document_with(), "version": 2}, "invalid_import", "version 1"),
        ({**document_with(), "kind": "other"}, "invalid_import", "configcenter.export"),
        ({**document_with(), "app": "Bad Name"}, "invalid_import", "app name"),
        ({**document_with(), "extra": 1}, "invalid_request", "extra"),
        (
            document_with(envs={f"e{i}": {"items": []} for i in range(65)}),
            "limit_exceeded",
            "64",
        ),
    ],
)
async def test_a_bad_document_changes_nothing(
    api: Api, document: dict[str, Any], code: str, names: str
) -> None:
    await shop(api)
    before = await api.snapshot()
    for mode in ("create", "merge"):
        body = (
            {**document, "app": "other"}
            if mode == "create" and document["app"] == "shop"
            else document
        )
        answer = await api.call("POST", f"/api/v1/apps/import?mode={mode}", body)
        assert answer.body["error"]["code"] == code, answer.text
        assert names in answer.body["error"]["message"]
        assert await api.snapshot() == before


async def test_an_app_import_breaking_a_limit_in_its_last_env_changes_nothing(
    api_factory: AppFactory, store_url: str
) -> None:
    api = await api_factory(store_url, max_items_per_env=3)
    await shop(api)
    await api.set_items("shop", "prod", {"a": "1", "b": "2"})
    before = await api.snapshot()
    fine = {"items": [{"key": "x", "value": "1"}]}
    too_many = {"items": [{"key": f"k{i}", "value": "v"} for i in range(4)]}
    one_more = {"items": [{"key": "c", "value": "3"}, {"key": "d", "value": "4"}]}
    for mode, envs in (
        ("create", {"dev": fine, "prod": too_many}),
        ("merge", {"dev": fine, "staging": fine, "prod": one_more}),
        ("merge", {"dev": fine, "qa": too_many}),
    ):
        document = {**document_with(envs=envs), "app": "new" if mode == "create" else "shop"}
        answer = await api.call("POST", f"/api/v1/apps/import?mode={mode}", document)
        assert (answer.status, answer.body["error"]["code"]) == (413, "too_many_items"), answer.text
        assert await api.snapshot() == before


async def test_importing_an_app_needs_an_admin(api: Api) -> None:
    await shop(api)
    _, publisher = await api.token_for("write:shop")
    before = await api.snapshot()
    document = document_with({"key": "a", "value": "1"})
    for mode in ("create", "merge"):
        answer = await api.call(
            "POST", f"/api/v1/apps/import?mode={mode}", document, token=publisher
        )
        assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")
    bad_mode = await api.call("POST", "/api/v1/apps/import?mode=upsert", document)
    assert (bad_mode.status, bad_mode.body["error"]["code"]) == (400, "invalid_request")
    assert await api.snapshot() == before
