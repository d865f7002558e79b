"""Fixtures for the web console's browser tests: a live server on simulated hosts, headless Debian
Chromium driven by Selenium, and a directory for the screenshots the tests take.

A missing browser fails these tests instead of skipping them: `make install` puts Chromium there.
"""
from pathlib import Path

import pytest

from tests.support.browser import chromium, missing_browser
from tests.support.server import simulated_cloud

from .console import Console


@pytest.fixture(scope='module')
def console_cloud(tmp_path_factory):
    # carol's many instances make the console page through DescribeInstances.
    live = simulated_cloud(tmp_path_factory.mktemp('console-cloud'), ['alice', 'bob', 'carol'], cpus=64)
    yield live
    live.stop()


@pytest.fixture(scope='module')
def browser():
    missing = missing_browser()
    if missing:
        pytest.fail(missing)
    with chromium() as driver:
        yield driver


@pytest.fixture(scope='module')
def screenshots(tmp_path_factory):
    """Where the tests leave screenshots of the main pages."""
    return Path(tmp_path_factory.mktemp('console-screenshots'))


@pytest.fixture
def console(browser, console_cloud, screenshots):
    page = Console(browser, console_cloud, screenshots)
    page.open()
    yield page
    page.sign_out()
    problems = page.script_problems()
    assert not problems, f'the page reported: {problems}'
