import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .stack import AppRepo, compose_down, make_app_repo
from .vps import Node, start_nodes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def app_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppRepo]:
    """One copy of the example per test module, under its own app name; its stack is removed afterwards."""
    app = f"it{uuid.uuid4().hex[:8]}"
    repo = make_app_repo(Path(tmp_path_factory.mktemp("repos")), app)
    try:
        yield repo
    finally:
        compose_down(app)


@pytest.fixture(scope="session")
def vps_nodes() -> list[Node]:
    """The three VPS nodes, started on first use and left running for the next run (`scripts/testenv down` stops them)."""
    return start_nodes()
