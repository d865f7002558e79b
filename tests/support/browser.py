"""Headless Debian Chromium under Selenium, for the console's browser tests and benchmarks.

A missing browser fails instead of skipping: `make install` puts Chromium there.
"""
import contextlib
import shutil

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
ARGUMENTS = ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--window-size=1280,800')


def missing_browser():
    """What is missing to drive Chromium, or None."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            return f'{program} is missing: install the chromium and chromium-driver packages (make install)'
    return None


@contextlib.contextmanager
def chromium(secure_origins=()):
    """A WebDriver for headless Chromium. `secure_origins` are plain-HTTP origins the browser treats
    as secure contexts, as it treats localhost, so Web Crypto works there (e.g. a test's link-local
    endpoint in a network namespace)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    for argument in ARGUMENTS:
        options.add_argument(argument)
    if secure_origins:
        options.add_argument(f"--unsafely-treat-insecure-origin-as-secure={','.join(secure_origins)}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
