"""Airflow's own auth machinery for the plugin tests: the SimpleAuthManager, and JWTs it signs for three users."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest

#: A user without a role may read nothing in SimpleAuthManager: the "no access to that DAG" case.
USERS = {"admin": "admin", "viewer": "viewer", "outsider": None}
#: One secret per session: Airflow caches the token signer and validator it builds from the first one it reads.
JWT_SECRET = secrets.token_hex(32)


@dataclass
class Tokens:
    """One signed JWT per user name."""

    by_user: dict[str, str]

    def header(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.by_user[user]}"}

    def cookie(self, user: str) -> dict[str, str]:
        return {"_token": self.by_user[user]}


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> Tokens:
    """Configure the simple auth manager as the api-server would, and sign one token per user."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER",
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    )
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET)
    # The api-server's own factory: a fresh manager on 3.1, the process-wide one on 3.2+ (it reads the users
    # from the configuration on each login, so the settings above apply either way).
    manager = api_app.create_auth_manager()
    assert isinstance(manager, SimpleAuthManager)
    signed = {
        name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))  # type: ignore[arg-type]
        for name, role in USERS.items()
    }
    return Tokens(signed)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the session's metadata database once: the auth manager checks tokens against ``revoked_token``."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
