"""`configcenter export` and `configcenter import` on the local store, SQLite and MariaDB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.__main__ import main
from tests.test_config import run_cli


class Cli:
    """The command run in this process (a subprocess per call costs seconds on a busy machine)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        self.capsys.readouterr()
        code = main(list(args))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run `configcenter ARGS` in process; (exit code, stdout, stderr)."""
    return Cli(capsys, monkeypatch)


def document(app: str, **envs: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "configcenter.export",
        "version": 1,
        "app": app,
        "description": "from a file",
        "envs": {
            env: {
                "items": [
                    {"key": k, "value": v, "comment": "", "secret": False} for k, v in items.items()
                ]
            }
            for env, items in envs.items()
        },
    }


def exported(cli: Cli, env: dict[str, str], app: str = "shop") -> dict[str, Any]:
    code, out, err = cli("export", app, env=env)
    assert code == 0, err
    found: dict[str, Any] = json.loads(out)
    return found


def drafts(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {env: {i["key"]: i["value"] for i in body["items"]} for env, body in doc["envs"].items()}


def test_export_and_import_round_trip_through_files(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    env = {"CONFIGCENTER_STORE_URL": store_url}
    source = tmp_path / "shop.json"
    # The document names another app: the command line's APP wins (a copy under a new name).
    source.write_text(json.dumps(document("elsewhere", prod={"a": "1"}, dev={"b": "x=y"})))
    code, out, err = cli("import", "shop", str(source), env=env)
    assert code == 0, err
    assert json.loads(out)["envs"]["prod"]["added"] == ["a"]
    first = exported(cli, env)
    assert (first["app"], first["description"]) == ("shop", "from a file")
    assert drafts(first) == {"prod": {"a": "1"}, "dev": {"b": "x=y"}}

    # An existing app: the document merges into it.
    source.write_text(json.dumps(document("shop", prod={"a": "2", "c": "3"})))
    code, out, err = cli("import", "shop", str(source), env=env)
    assert code == 0, err
    assert drafts(exported(cli, env))["prod"] == {"a": "2", "c": "3"}

    # A file into one env's draft, its format by its name.
    props = tmp_path / "prod.properties"
    props.write_text("a = three\\\n  lines\nd:4\n")
    code, out, err = cli("import", "shop", "prod", str(props), "--dry-run", env=env)
    assert code == 0, err
    assert json.loads(out)["changed"] == ["a"]
    assert drafts(exported(cli, env))["prod"] == {"a": "2", "c": "3"}
    code, out, err = cli("import", "shop", "prod", str(props), "--mode", "replace", env=env)
    assert code == 0, err
    assert json.loads(out)["removed"] == ["c"]
    dotenv_file = tmp_path / ".env"
    dotenv_file.write_text("E='five'\n")
    assert cli("import", "shop", "dev", str(dotenv_file), env=env)[0] == 0
    assert drafts(exported(cli, env)) == {
        "prod": {"a": "threelines", "d": "4"},
        "dev": {"b": "x=y", "E": "five"},
    }


def test_a_bad_file_is_one_line_and_changes_nothing(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    env = {"CONFIGCENTER_STORE_URL": store_url}
    source = tmp_path / "shop.json"
    source.write_text(json.dumps(document("shop", prod={"a": "1"})))
    assert cli("import", "shop", str(source), env=env)[0] == 0
    before = exported(cli, env)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 'fine'\nport: 8080\n")
    code, _, err = cli("import", "shop", "prod", str(bad), env=env)
    assert code == 1
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert "invalid_import" in err
    assert "line 2" in err
    code, _, err = cli("import", "shop", "prod", str(tmp_path / "file.txt"), env=env)
    assert (code, "invalid_format" in err) == (1, True)
    code, _, err = cli("import", "shop", "prod", str(tmp_path / "absent.json"), env=env)
    assert (code, "cannot read" in err) == (1, True)
    broken = tmp_path / "broken.json"
    broken.write_text('{"kind": "configcenter.export", "version": 1, "envs": {"prod": 5}}')
    code, _, err = cli("import", "shop", str(broken), env=env)
    assert (code, "invalid_request" in err) == (1, True)
    after = exported(cli, env)
    assert {**after, "exported_at": ""} == {**before, "exported_at": ""}
    assert cli("export", "nope", env=env)[0] == 1


def test_the_installed_command_exports(tmp_path: Path) -> None:
    env = {"CONFIGCENTER_STORE_URL": f"sqlite:///{tmp_path}/cli.db"}
    source = tmp_path / "shop.json"
    source.write_text(json.dumps(document("shop", prod={"a": "ü"})))
    assert run_cli("import", "shop", str(source), env=env).returncode == 0
    result = run_cli("export", "shop", env=env)
    assert result.returncode == 0, result.stderr
    assert drafts(json.loads(result.stdout)) == {"prod": {"a": "ü"}}
