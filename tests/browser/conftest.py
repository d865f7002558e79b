"""Fixtures for the web console's browser tests: a live server on simulated hosts, headless Debian
Chromium driven by Selenium, and a directory for the screenshots the tests take.

A missing browser fails these tests instead of skipping them: `make install` puts Chromium there.
"""
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.server import simulated_cloud

from .console import Console

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'


@pytest.fixture(scope='module')
def console_cloud(tmp_path_factory):
    # carol's many instances make the console page through DescribeInstances.
    live = simulated_cloud(tmp_path_factory.mktemp('console-cloud'), ['alice', 'bob', 'carol'], cpus=64)
    yield live
    live.stop()


@pytest.fixture(scope='module')
def browser():
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            pytest.fail(f'{program} is missing: install the chromium and chromium-driver packages (make install)')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                     '--window-size=1280,800'):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


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
