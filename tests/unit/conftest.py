"""Fixtures of the in-process tests: a fresh back-end per test, on SQLite in a temporary home."""
import pytest

from backend.cloud import Cloud


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    """A Cloud on its own state directory, untouched by the developer's environment."""
    monkeypatch.setenv('RESERVOIR_HOME', str(tmp_path / 'home'))
    monkeypatch.delenv('RESERVOIR_DATABASE_URL', raising=False)
    monkeypatch.delenv('RESERVOIR_CONF', raising=False)
    with Cloud.open() as opened:
        yield opened
