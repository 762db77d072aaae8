"""The provider metadata Airflow discovers through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

import importlib
import json
import pathlib
from importlib.metadata import entry_points

import airflow
import jsonschema
import pytest
from packaging.version import Version

from airflow_provider_together import __version__
from airflow_provider_together.get_provider_info import get_provider_info
from airflow_provider_together.hooks import TogetherHook

INFO = get_provider_info()


def class_paths(info: dict) -> list[str]:
    paths = [c["hook-class-name"] for c in info["connection-types"]] + list(info.get("extra-links", []))
    for key in ("hooks", "operators", "sensors", "triggers"):
        paths += [m for entry in info.get(key, []) for m in entry["python-modules"]]
    return paths


def test_entry_point_returns_the_provider_info() -> None:
    (ep,) = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_together")
    ]
    assert ep.load()() == INFO
    assert INFO["package-name"] == "airflow-provider-together"
    assert INFO["versions"] == [__version__]


def test_valid_against_airflows_runtime_schema() -> None:
    schema = json.loads((pathlib.Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(INFO, schema)


@pytest.mark.parametrize("path", class_paths(INFO))
def test_every_class_path_is_importable(path: str) -> None:
    try:
        importlib.import_module(path)
    except ModuleNotFoundError:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)


def test_connection_type_matches_the_hook_and_is_declarative() -> None:
    (conn,) = INFO["connection-types"]
    assert conn["connection-type"] == TogetherHook.conn_type == "together"
    assert conn["hook-name"] == TogetherHook.hook_name == "Together AI"
    assert conn["hook-class-name"] == f"{TogetherHook.__module__}.{TogetherHook.__qualname__}"
    assert TogetherHook.conn_name_attr == "together_conn_id"
    assert TogetherHook.default_conn_name == "together_default"
    # Declarative form fields: the hook must not define the deprecated methods (warns since Airflow 3.2).
    assert "get_ui_field_behaviour" not in vars(TogetherHook)
    assert "get_connection_form_widgets" not in vars(TogetherHook)
    fields = conn["conn-fields"]
    assert fields["request_timeout"]["schema"] == {"type": ["integer", "null"], "default": 60, "minimum": 1}
    assert fields["max_retries"]["schema"] == {"type": ["integer", "null"], "default": 2, "minimum": 0}
    behaviour = conn["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "port", "login"}
    assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://api.together.ai/v1"


def test_providers_manager_sees_the_provider_hook_and_form() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "airflow-provider-together" in pm.providers
    if Version(airflow.__version__).release >= (3, 2):
        # Declarative form fields are read from the provider info since 3.2 (3.1 shows the standard fields).
        assert {"request_timeout", "max_retries"} <= {
            k.rsplit("__", 1)[-1] for k in pm.connection_form_widgets
        }
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hooks = ProvidersManagerTaskRuntime().hooks
    else:
        hooks = pm.hooks
    hook = hooks["together"]
    assert hook is not None
    assert hook.hook_class_name.endswith("TogetherHook")
    assert hook.connection_testable


def test_airflow_cli_lists_the_provider_and_adds_a_together_connection(tmp_path: pathlib.Path) -> None:
    """The real ``airflow`` command, in a fresh AIRFLOW_HOME: what a user types after ``pip install``."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    airflow_cli = [sys.executable, "-m", "airflow"]

    def run(*args: str) -> str:
        done = subprocess.run(
            [*airflow_cli, *args], env=env, capture_output=True, text=True, timeout=240, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    listed = json.loads(run("providers", "list", "--output", "json"))
    assert {"package_name": "airflow-provider-together", "version": __version__} in [
        {"package_name": p["package_name"], "version": p["version"]} for p in listed
    ]
    run("db", "migrate")
    run(
        "connections",
        "add",
        "together_cli",
        "--conn-type",
        "together",
        "--conn-host",
        "https://api.together.ai/v1",
        "--conn-password",
        "tk-cli-secret-0123456789",
        "--conn-extra",
        '{"request_timeout": 30}',
    )
    (conn,) = json.loads(run("connections", "get", "together_cli", "--output", "json"))
    assert conn["conn_type"] == "together"
    assert conn["host"] == "https://api.together.ai/v1"
