"""One small workspace for the web tests: a simulated company of 150 accounts over 24 months, run twice (three
months apart, so the runs page has a diff) with the plays run on each run in order (so actions exist), built once
per test session and copied to each xdist worker."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from upcurve.settings_file import UpcurveConfig
from upcurve.simulate import simulate_company
from upcurve.usecases import plays_run, run_in_workspace
from upcurve.workspace import Store
from upcurve.workspace import access as acc

PASSWORD = "correct horse battery"
CONFIG = UpcurveConfig.model_validate({"scoring": {"min_training_months": 2, "calibration_months": 2,
                                                   "min_positives": 5}})


def _build(folder: Path) -> None:
    data = folder / "data"
    simulate_company(data, accounts=150, months=24, seed=11)
    store = Store.open(folder / "workspace")
    # the data end on 2024-12-31: a run three months before (it trains the model), then the latest (scored by it)
    run_in_workspace(store, data, as_of=dt.date(2024, 9, 30), config=CONFIG)
    run_in_workspace(store, data, config=CONFIG)
    for run in store.runs():  # the plays on each run, in order, as a team running them weekly would: actions exist
        plays_run(store, run_id=run.run_id, config=CONFIG)
    acc.set_user(store, "ann", PASSWORD)


@pytest.fixture(scope="session")
def built_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace, built once for all xdist workers (under a lock in their shared temporary folder)."""
    # under xdist each worker's temporary folder sits in the session's; without it, the session's own folder (its
    # parent holds every earlier session, whose workspace was built by other code)
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    target = shared / "web-workspace"
    with open(shared / "web-workspace.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "done").exists():
            shutil.rmtree(target, ignore_errors=True)
            _build(target)
            (target / "done").touch()
    return target / "workspace"


@pytest.fixture(scope="session")
def store(built_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """This worker's own copy of the workspace (writes such as sessions stay in it)."""
    mine = tmp_path_factory.mktemp("ws") / "workspace"
    shutil.copytree(built_workspace, mine)
    (mine / "workspace.lock").unlink(missing_ok=True)
    return Store.open(mine, create=False)


@pytest.fixture(scope="session")
def tokens(store: Store) -> dict[str, str]:
    return {"read": acc.create_token(store, "reader", ["read"])[0],
            "write": acc.create_token(store, "writer", ["write"])[0],
            "both": acc.create_token(store, "both", ["read", "write"])[0]}


@pytest.fixture(scope="session")
def app(store: Store) -> FastAPI:
    from upcurve.web.app import create_app

    return create_app(store)


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


# -- the pages as a person logged in sees them -----------------------------------------------------------------

def login(client: Any, username: str = "ann", password: str = PASSWORD) -> Any:
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf, "next": "/"},
                       follow_redirects=False)


@pytest.fixture
def session(app: Any) -> Any:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        response = login(c)
        assert response.status_code == 303 and response.headers["location"] == "/"
        yield c


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


def figure(page: str, key: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="fig-{key}">(.*?)</script>', page, re.S)
    assert found, f"no figure {key}"
    result: dict[str, Any] = json.loads(found[1])
    return result
