"""The instances page with 10,000 instances of one account: paging through NextToken, filters the
API applies, sorting of the page shown, and how long the first and the next page take.

The times are measured in the page (from the click to the page's performance mark, set when its rows
are in the table) and printed; the targets are the benchmark's (benchmarks/bench_console.py), not
asserted here.
"""
import json
import time
import urllib.parse

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from selenium.webdriver.support.ui import Select

from tests.support.server import REGION, simulated_cloud

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group('browser-paging')]

COUNT = 10_000
BATCH = 1000                  # [compute] max_launch: the most one RunInstances may ask for
PAGE = 100                    # the page's default size
PAGE_MARK = 'reservoir:instances-page'


def run_instances(live, user, **params):
    """RunInstances as a signed Query request whose answer is not parsed: boto3 spends more time
    parsing the 1,000 instances of the answer than the server spends launching them."""
    credentials = live.users[user]
    body = urllib.parse.urlencode({'Action': 'RunInstances', 'Version': '2016-11-15', **params})
    request = AWSRequest(method='POST', url=f'{live.endpoint}/', data=body,
                         headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8'})
    SigV4Auth(Credentials(credentials['access_key_id'], credentials['secret_access_key']), 'ec2',
              REGION).add_auth(request)
    answer = requests.post(request.url, data=body, headers=dict(request.headers.items()), timeout=120)
    assert answer.status_code == 200, answer.text[:2000]


@pytest.fixture(scope='module')
def console_cloud(tmp_path_factory):
    """Replaces the shared cloud (so the conftest's `console` signs in here): a live server where dave has 10,000 running instances, launched through the API in ten
    RunInstances of 1,000 (each tagged batch=bN) onto ten simulated hosts big enough for them all,
    into a /16 network (the default VPC's subnet, a /20, holds 4,091)."""
    live = simulated_cloud(tmp_path_factory.mktemp('paging-cloud'), ['dave'], hosts=10, cpus=2048,
                           memory_mib=512 * 1024)
    try:
        subnet = json.loads(live.admin('net', 'create', 'crowd', '10.128.0.0/16', '--json'))[0]['subnet_id']
        started = time.monotonic()
        for batch in range(COUNT // BATCH):
            run_instances(live, 'dave', ImageId=live.image_id, InstanceType='t1.micro', MinCount=BATCH,
                          MaxCount=BATCH, SubnetId=subnet, **{
                              'TagSpecification.1.ResourceType': 'instance', 'TagSpecification.1.Tag.1.Key': 'batch',
                              'TagSpecification.1.Tag.1.Value': f'b{batch}'})
        launched = time.monotonic() - started
        ec2 = live.client('dave')
        while ec2.describe_instances(Filters=[{'Name': 'instance-state-name', 'Values': ['pending']}],
                                     MaxResults=5)['Reservations']:
            assert time.monotonic() - started < 120, 'the instances did not all start in two minutes'
            time.sleep(0.5)
        live.populated = {'launched_s': launched, 'running_s': time.monotonic() - started}
    except BaseException:
        live.stop()
        raise
    yield live
    live.stop()


@pytest.fixture(scope='module')
def crowd(console_cloud):
    return console_cloud


def report(capsys, line):
    with capsys.disabled():
        print(f'\n[console paging] {line}')


def api_page(live, token=None, size=PAGE, filters=()):
    """One page as the API lists it: (ids in listing order, next token)."""
    arguments = {'MaxResults': size, 'Filters': list(filters)}
    if token:
        arguments['NextToken'] = token
    reply = live.client('dave').describe_instances(**arguments)
    ids = [instance['InstanceId'] for reservation in reply['Reservations'] for instance in reservation['Instances']]
    return ids, reply.get('NextToken')


def table_ids(console):
    return console.driver.execute_script(
        "return Array.from(document.querySelectorAll('#instances tbody tr'), (row) => row.dataset.id)")


def cell_texts(console, column):
    return console.driver.execute_script(
        "return Array.from(document.querySelectorAll('#instances tbody tr'),"
        " (row) => row.cells[arguments[0]].textContent)",
        column)


def click_timed(console, css):
    """Clicks in the page and returns the page's clock at the click."""
    return console.driver.execute_script(
        'const at = performance.now(); document.querySelector(arguments[0]).click(); return at;', css)


def page_shown_after(console, clicked_at, page):
    """Milliseconds from `clicked_at` to the mark of `page` shown after it, waiting for it."""
    def mark(driver):
        return driver.execute_script(
            'return performance.getEntriesByName(arguments[0]).filter((m) => m.startTime > arguments[1])'
            '.map((m) => [m.startTime, m.detail.page, m.detail.rows]).pop() || null', PAGE_MARK, clicked_at)
    shown_at, shown_page, _rows = console.wait_for(lambda d: (m := mark(d)) and m[1] == page and m)
    return shown_at - clicked_at


def watch_long_tasks(console):
    console.driver.execute_script(
        'window.longTasks = [];'
        'new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration)))'
        '.observe({ type: "longtask" });')


def longest_task(console):
    return console.driver.execute_script('return Math.max(0, ...window.longTasks)')


def sign_in_timed(console, user='dave'):
    credentials = console.live.users[user]
    form = console.find('#sign-in')
    form.find_element('name', 'access_key_id').send_keys(credentials['access_key_id'])
    form.find_element('name', 'secret').send_keys(credentials['secret_access_key'])
    clicked_at = click_timed(console, '#sign-in button[type=submit]')
    return page_shown_after(console, clicked_at, 1)


def wait_rows(console, expected):
    console.wait_for(lambda d: table_ids(console) == expected)


def test_pages_of_ten_thousand(console, crowd, capsys):
    report(capsys, f'{COUNT} instances launched in {crowd.populated["launched_s"]:.1f} s, '
                   f'all running after {crowd.populated["running_s"]:.1f} s')
    watch_long_tasks(console)
    first_ms = sign_in_timed(console)
    first, token = api_page(crowd)
    assert len(first) == PAGE and token
    wait_rows(console, first)
    assert console.find('#page-indicator').text == f'Page 1 · instances 1–{PAGE}'
    assert not console.find('#page-prev').is_enabled()

    next_ms = page_shown_after(console, click_timed(console, '#page-next'), 2)
    second, token = api_page(crowd, token)
    assert len(set(second)) == PAGE and not set(second) & set(first)
    wait_rows(console, second)
    assert console.find('#page-indicator').text == f'Page 2 · instances {PAGE + 1}–{2 * PAGE}'
    third_ms = page_shown_after(console, click_timed(console, '#page-next'), 3)
    third, _ = api_page(crowd, token)
    wait_rows(console, third)
    assert min(third) > max(second) > max(first)       # pages follow instance ids

    previous_ms = page_shown_after(console, click_timed(console, '#page-prev'), 2)
    wait_rows(console, second)
    page_shown_after(console, click_timed(console, '#page-prev'), 1)
    wait_rows(console, first)
    assert not console.find('#page-prev').is_enabled()
    console.screenshot('instances-paging')
    report(capsys, f'sign-in to first page {first_ms:.0f} ms; Next {next_ms:.0f} ms, {third_ms:.0f} ms; '
                   f'Previous {previous_ms:.0f} ms; longest task {longest_task(console):.0f} ms')


def test_page_size_and_the_last_page(console, crowd, capsys):
    console.sign_in('dave')
    console.signed_in()
    console.wait_for(lambda d: len(table_ids(console)) == PAGE)
    Select(console.find('#page-size')).select_by_visible_text('200')
    first, _ = api_page(crowd, size=200)
    wait_rows(console, first)
    # The last page of a filter: one batch's 1,000 instances are five pages of 200.
    tag = console.find('#instance-filters [name=tag]')
    tag.send_keys('batch=b3')
    batch, token = api_page(crowd, size=200, filters=[{'Name': 'tag:batch', 'Values': ['b3']}])
    wait_rows(console, batch)
    for page in range(2, 6):
        page_shown_after(console, click_timed(console, '#page-next'), page)
    batch, token = [], None
    while True:
        ids, token = api_page(crowd, token, size=200, filters=[{'Name': 'tag:batch', 'Values': ['b3']}])
        batch.extend(ids)
        if not token:
            break
    wait_rows(console, batch[800:])
    assert console.find('#page-indicator').text == 'Page 5 · instances 801–1000 (last page)'
    assert not console.find('#page-next').is_enabled()


def test_filters_are_applied_by_the_api(console, crowd, capsys):
    ec2 = crowd.client('dave')
    # Instances far beyond the first page (ids starting i-f are the last sixteenth): only the API can
    # find them there.
    far, _ = api_page(crowd, size=5, filters=[{'Name': 'instance-id', 'Values': ['i-f*']}])
    stopped = sorted(far[:3])
    ec2.stop_instances(InstanceIds=stopped)
    console.sign_in('dave')
    console.signed_in()
    console.wait_for(lambda d: len(table_ids(console)) == PAGE)
    page_shown_after(console, click_timed(console, '#page-next'), 2)

    filters = console.find('#instance-filters')
    started = console.driver.execute_script('return performance.now()')
    Select(filters.find_element('name', 'state')).select_by_visible_text('stopped')
    filtered_ms = page_shown_after(console, started, 1)        # a new filter starts on the first page
    console.wait_for(lambda d: sorted(table_ids(console)) == stopped)
    assert set(cell_texts(console, 1)) == {'stopped'}
    assert console.find('#page-indicator').text == 'Page 1 · instances 1–3 (last page)'

    Select(filters.find_element('name', 'state')).select_by_visible_text('any')
    ids = filters.find_element('name', 'id')
    ids.send_keys(f'{stopped[0]} {far[4]}')                    # several ids, separated by a space
    console.wait_for(lambda d: sorted(table_ids(console)) == sorted([stopped[0], far[4]]))
    ids.clear()
    ids.send_keys('i-nothing')
    console.wait_for(lambda d: table_ids(console) == [])
    assert console.find('#page-indicator').text == 'Page 1 · no instances match these filters'
    ids.clear()
    address = filters.find_element('name', 'ip')
    address.send_keys('10.128.0.1?')                           # a wildcard
    near, _ = api_page(crowd, filters=[{'Name': 'private-ip-address', 'Values': ['10.128.0.1?']}])
    assert 0 < len(near) <= 10
    console.wait_for(lambda d: sorted(table_ids(console)) == sorted(near))
    address.clear()
    filters.find_element('name', 'tag').send_keys('batch=b9')
    batch, _ = api_page(crowd, filters=[{'Name': 'tag:batch', 'Values': ['b9']}])
    wait_rows(console, batch)
    assert {tag.text for tag in console.find_all('#instances .tag')} == {'batch=b9'}
    report(capsys, f'state filter over {COUNT} instances to its page {filtered_ms:.0f} ms')
    ec2.start_instances(InstanceIds=stopped)


def test_sorting_orders_the_page_and_holds_across_polls(console, crowd):
    console.sign_in('dave')
    console.signed_in()
    first, _ = api_page(crowd)
    wait_rows(console, first)
    rows = {instance_id: console.row(instance_id) for instance_id in first}
    console.find('#instances th[data-sort=privateIp] button').click()
    addresses = cell_texts(console, 3)
    assert addresses == sorted(addresses, key=lambda ip: tuple(int(part) for part in ip.split('.')))
    assert table_ids(console) != first                         # ids and addresses are not in one order
    assert console.find('#instances th[data-sort=privateIp]').get_attribute('aria-sort') == 'ascending'
    console.find('#instances th[data-sort=privateIp] button').click()
    assert cell_texts(console, 3) == addresses[::-1]
    assert 'EC2 has no server-side sort' in console.find('#instances thead').get_attribute('title')

    # Sorted by state, an instance stopped elsewhere moves to the end when a poll brings its state.
    console.find('#instances th[data-sort=state] button').click()
    assert table_ids(console) == sorted(first)               # one state: ties keep the id order
    moved = sorted(first)[0]
    crowd.client('dave').stop_instances(InstanceIds=[moved])
    console.wait_for(lambda d: table_ids(console)[-1] == moved and cell_texts(console, 1)[-1] == 'stopped')
    assert table_ids(console)[:-1] == sorted(first)[1:]
    for instance_id, row in rows.items():                    # moved, never replaced
        assert row.get_attribute('data-id') == instance_id
    crowd.client('dave').start_instances(InstanceIds=[moved])
