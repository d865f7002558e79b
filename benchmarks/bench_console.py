"""The web console in headless Chromium: first paint, and paging through 10,000 instances.

    python3 benchmarks/bench_console.py [--instances 10000] [--rounds 10] [--processes 1]

One account launches --instances through the API (RunInstances of 1,000, the most one call may ask
for) onto ten simulated hosts of 2,048 vCPUs, and waits until all run. Then, in Debian's headless
Chromium under Selenium, it measures:

- first paint of /console/: the Paint Timing entry 'first-contentful-paint' of a fresh load, with
  the browser's cache cleared (cold) and kept (warm, the assets revalidated);
- sign-in to the first page of instances: from the click on "Sign in" to the page's performance mark
  (reservoir:instances-page), set once the rows are in the table;
- Next and Previous: from the click to the mark of the page asked for;
- Next at 200 per page;
- filters over all instances, from the choice to their first page: a state (matched in the
  database) and an instance id with a wildcard (matched in Python while reading);
- the longest main-thread task (Long Tasks API) seen during all of it.

Times are in the page's own clock (performance.now()); each is quoted as median and range of --rounds.
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import Select, WebDriverWait

import boto3
import requests
from botocore.config import Config

from loadgen import signed_request
from servers import Reservoir

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
BATCH = 1000
PAGE_MARK = 'reservoir:instances-page'


def progress(message):
    print(message, file=sys.stderr, flush=True)


def populate(server, count):
    server.admin('host', 'add', '--simulated', '--count', '10', '--cpus', '2048', '--memory', str(512 * 1024))
    subnet = json.loads(server.admin('net', 'create', 'bench', '10.128.0.0/16', '--json'))[0]['subnet_id']
    disk = server.home / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    image_id = server.admin('image', 'register', str(disk), '--name', 'bench', '--public', '--owner', 'bench').strip()
    ec2 = boto3.client('ec2', endpoint_url=server.endpoint, region_name=server.region,
                       aws_access_key_id=server.credentials[0], aws_secret_access_key=server.credentials[1],
                       config=Config(retries={'max_attempts': 10, 'mode': 'standard'}, read_timeout=300))
    started = time.perf_counter()
    for batch in range(count // BATCH):
        # Signed, and the answer of 1,000 instances left unparsed: boto3 would parse longer than the
        # server launches.
        path, headers, body = signed_request(server.endpoint, server.region, *server.credentials, {
            'Action': 'RunInstances', 'Version': '2016-11-15', 'ImageId': image_id, 'InstanceType': 't1.micro',
            'MinCount': BATCH, 'MaxCount': BATCH, 'SubnetId': subnet, 'TagSpecification.1.ResourceType': 'instance',
            'TagSpecification.1.Tag.1.Key': 'batch', 'TagSpecification.1.Tag.1.Value': f'b{batch}'})
        answer = requests.post(server.endpoint + path, data=body, headers=headers, timeout=300)
        answer.raise_for_status()
    launched = time.perf_counter() - started
    while ec2.describe_instances(Filters=[{'Name': 'instance-state-name', 'Values': ['pending']}],
                                 MaxResults=5)['Reservations']:
        time.sleep(0.2)
    return launched, time.perf_counter() - started


def browser():
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            raise SystemExit(f'{program} is missing: install the chromium and chromium-driver packages (make install)')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                     '--window-size=1280,800'):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def wait(driver, condition, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(condition)


def first_paint(driver, url, cold):
    if cold:
        driver.execute_cdp_cmd('Network.clearBrowserCache', {})
    driver.get('about:blank')
    driver.get(url)
    return wait(driver, lambda d: d.execute_script(
        "const [paint] = performance.getEntriesByName('first-contentful-paint'); return paint && paint.startTime"))


def click_timed(driver, css):
    return driver.execute_script(
        'const at = performance.now(); document.querySelector(arguments[0]).click(); return at;', css)


def shown_after(driver, clicked_at, page):
    """Milliseconds from `clicked_at` to the mark of `page`."""
    def mark(d):
        found = d.execute_script(
            'return performance.getEntriesByName(arguments[0]).filter((m) => m.startTime > arguments[1])'
            '.map((m) => [m.startTime, m.detail.page]).pop() || null', PAGE_MARK, clicked_at)
        return found if found and found[1] == page else None
    return wait(driver, mark)[0] - clicked_at


def open_and_watch(driver, url):
    driver.get('about:blank')
    driver.get(url)
    wait(driver, lambda d: d.execute_script("return document.querySelector('#sign-in') !== null"))
    driver.execute_script(
        'window.longTasks = [];'
        'new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration)))'
        '.observe({ type: "longtask" });')


def sign_in(driver, credentials):
    form = driver.find_element('id', 'sign-in')
    form.find_element('name', 'access_key_id').send_keys(credentials[0])
    form.find_element('name', 'secret').send_keys(credentials[1])
    return shown_after(driver, click_timed(driver, '#sign-in button[type=submit]'), 1)


def summary(values):
    return f'{statistics.median(values):6.0f} ms  ({min(values):.0f}–{max(values):.0f})'


def measure(server, rounds):
    url = f'{server.endpoint}/console/'
    driver = browser()
    results = {'cold': [], 'warm': [], 'first_page': [], 'next': [], 'previous': [], 'filter': [], 'wildcard': [],
               'next_200': [], 'longest_task': 0}
    try:
        first_paint(driver, url, cold=False)        # the browser's own start is not the console's
        for _ in range(rounds):
            results['cold'].append(first_paint(driver, url, cold=True))
            results['warm'].append(first_paint(driver, url, cold=False))
        for _ in range(rounds):
            open_and_watch(driver, url)
            results['first_page'].append(sign_in(driver, server.credentials))
            for page in (2, 3):
                results['next'].append(shown_after(driver, click_timed(driver, '#page-next'), page))
            for page in (2, 1):
                results['previous'].append(shown_after(driver, click_timed(driver, '#page-prev'), page))
            started = driver.execute_script('return performance.now()')
            state = driver.find_element('css selector', '#instance-filters [name=state]')
            Select(state).select_by_visible_text('running')
            results['filter'].append(shown_after(driver, started, 1))
            # A wildcard the database cannot match: the server reads instances until the page is full.
            started = driver.execute_script(
                'const form = document.querySelector("#instance-filters"); const at = performance.now();'
                'form.id.value = "i-f*"; form.requestSubmit(); return at;')
            results['wildcard'].append(shown_after(driver, started, 1))
            started = driver.execute_script(
                'const form = document.querySelector("#instance-filters"); const at = performance.now();'
                'form.reset(); form.requestSubmit(); return at;')
            shown_after(driver, started, 1)
            Select(driver.find_element('id', 'page-size')).select_by_visible_text('200')
            wait(driver, lambda d: len(d.find_elements('css selector', '#instances tbody tr')) == 200)
            results['next_200'].append(shown_after(driver, click_timed(driver, '#page-next'), 2))
            longest = driver.execute_script('return Math.max(0, ...window.longTasks)')
            results['longest_task'] = max(results['longest_task'], longest)
    finally:
        driver.quit()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--instances', type=int, default=10000)
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--processes', type=int, default=1,
                        help='API processes (`reservoir serve` runs one by default)')
    args = parser.parse_args()
    server = Reservoir(processes=args.processes).start()
    try:
        progress(f'launching {args.instances} instances')
        launched, running = populate(server, args.instances)
        progress(f'launched in {launched:.1f} s, all running after {running:.1f} s; measuring in Chromium')
        results = measure(server, args.rounds)
    finally:
        server.stop()
    print(f'{args.instances} instances of one account, {args.processes} API process(es), {args.rounds} rounds; '
          f'launched in {launched:.1f} s, all running after {running:.1f} s')
    print(f'first contentful paint, cold cache     {summary(results["cold"])}')
    print(f'first contentful paint, warm cache     {summary(results["warm"])}')
    print(f'sign-in → first page of 100            {summary(results["first_page"])}')
    print(f'Next → next page                       {summary(results["next"])}')
    print(f'Previous → previous page               {summary(results["previous"])}')
    print(f'Next → next page, 200 per page         {summary(results["next_200"])}')
    print(f'state filter → its first page          {summary(results["filter"])}')
    print(f'instance-id i-f* → its first page      {summary(results["wildcard"])}')
    print(f'longest main-thread task               {results["longest_task"]:6.0f} ms')


if __name__ == '__main__':
    main()
