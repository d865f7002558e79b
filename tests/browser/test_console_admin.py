"""The administrators' pages in the browser: capacity gauges that move, a host disabled from the
page, plots from the monitor's samples, users and networks; and users who get none of it."""
import json
import os
import shutil
from pathlib import Path

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from selenium.webdriver.common.by import By

from tests.support.server import simulated_cloud

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group('browser-admin')]

HOSTS = 3
README_SCREENSHOT = Path(__file__).resolve().parents[2] / 'docs' / 'console-pool.png'


@pytest.fixture(scope='module')
def console_cloud(tmp_path_factory):
    """Replaces the shared cloud: an administrator, and a monitor that samples every second."""
    live = simulated_cloud(tmp_path_factory.mktemp('admin-console'), ['alice', 'bob'], hosts=HOSTS, cpus=8,
                           memory_mib=8192, start=False,
                           extra_env={'RESERVOIR_MONITOR_SAMPLE_INTERVAL_SECONDS': '1',
                                      'RESERVOIR_COMPUTE_MONITOR_SECONDS': '1'})
    live.create_user('root', admin=True)
    live.start()
    yield live
    live.stop()


def host_rows(console):
    return {row.get_attribute('data-host'): row for row in console.find_all('#hosts tbody tr')}


def used_vcpus(console):
    """Each host's vCPU gauge as the page shows it (read in one step: gauges are redrawn as they move)."""
    return console.driver.execute_script(
        'return Object.fromEntries(Array.from(document.querySelectorAll("#hosts tbody tr"), '
        '(row) => [row.dataset.host, Number(row.querySelector("meter").value)]))')


def cells(console, table):
    """The text of a table's cells, read in one step: the page may redraw the table between two
    WebDriver calls."""
    return console.driver.execute_script(
        'return Array.from(document.querySelectorAll(arguments[0] + " tbody tr"), '
        '(row) => Array.from(row.cells, (cell) => cell.textContent))', table)


def hosts_from_cli(live):
    return {host['name']: host for host in json.loads(live.admin('host', 'list', '--json'))}


def launch(live, user, count):
    reply = live.client(user).run_instances(ImageId=live.image_id, InstanceType='t1.micro', MinCount=count,
                                            MaxCount=count)
    return [instance['InstanceId'] for instance in reply['Instances']]


def in_page_call(console, user, action, params):
    """An admin action signed by the page's own code with `user`'s key: the error code, or 'accepted'."""
    credentials = console.live.users[user]
    return console.driver.execute_async_script('''
        const [keyId, secret, action, params, done] = arguments;
        import(new URL('js/api.js', document.baseURI).href).then(async ({ client, loadConfig }) => {
          const api = client(await loadConfig(), keyId, secret);
          try { await api.call(action, params); done('accepted'); } catch (error) { done(error.code || String(error)); }
        });''', credentials['access_key_id'], credentials['secret_access_key'], action, params)


def test_an_administrator_watches_the_pool_and_disables_a_host(console):
    console.sign_in('root')
    console.signed_in()
    assert '(administrator)' in console.find('#who').text
    console.go('pool')
    console.wait_for(lambda d: len(host_rows(console)) == HOSTS)
    before = used_vcpus(console)
    rows = host_rows(console)

    ids = launch(console.live, 'alice', 4)
    console.wait_for(lambda d: sum(used_vcpus(console).values()) >= sum(before.values()) + 4)
    assert host_rows(console) == rows            # the same rows: the gauges moved in place
    busiest = max(used_vcpus(console).items(), key=lambda item: item[1])[0]

    rows[busiest].find_element(By.CSS_SELECTOR, 'button.link').click()
    console.wait_visible('#host-detail')
    console.wait_for(lambda d: cells(console, '#host-instances'))
    shown = {row[0] for row in cells(console, '#host-instances')}
    assert shown and shown <= set(ids)

    # A launch the pool cannot hold: the scheduler's reason shows in the failures table.
    with pytest.raises(ClientError, match='InsufficientInstanceCapacity'):
        console.live.client('alice').run_instances(ImageId=console.live.image_id, InstanceType='m1.large',
                                                   MinCount=12, MaxCount=12)
    console.wait_for(lambda d: cells(console, '#failures'), timeout=40)
    failure = cells(console, '#failures')[0]
    assert failure[1] == console.live.users['alice']['account_id'] and failure[2:4] == ['m1.large', '12']
    assert failure[5]

    # Plots come from the monitor's samples: lines appear once there are some.
    console.wait_for(lambda d: len(d.execute_script(
        'const line = document.querySelector("#plot-capacity polyline"); return line ? line.getAttribute("points") : ""'
    ).split()) >= 2)
    console.wait_for(lambda d: console.find_all('#plot-launches polyline'))
    shot = console.screenshot('pool')
    if os.environ.get('RESERVOIR_UPDATE_SCREENSHOT') == '1':
        shutil.copy(shot, README_SCREENSHOT)

    row = host_rows(console)[busiest]
    row.find_element(By.CSS_SELECTOR, '[data-action=disable]').click()
    console.confirm()
    console.wait_for(lambda d: 'disabled' in host_rows(console)[busiest].find_elements(By.TAG_NAME, 'td')[2].text)
    assert hosts_from_cli(console.live)[busiest]['enabled'] is False
    more = launch(console.live, 'alice', 3)
    assert len(more) == 3
    console.find('#host-detail-close').click()
    host_rows(console)[busiest].find_element(By.CSS_SELECTOR, 'button.link').click()
    console.wait_for(lambda d: cells(console, '#host-instances'))
    now_there = {row[0] for row in cells(console, '#host-instances')}
    assert not now_there & set(more), 'a disabled host took new instances'

    host_rows(console)[busiest].find_element(By.CSS_SELECTOR, '[data-action=enable]').click()
    console.confirm()
    console.wait_for(lambda d: host_rows(console)[busiest].find_elements(By.CSS_SELECTOR, '[data-action=disable]'))
    assert hosts_from_cli(console.live)[busiest]['enabled'] is True

    # Evacuating returns at once; the host's count falls to nothing as its instances move away.
    host_rows(console)[busiest].find_element(By.CSS_SELECTOR, '[data-action=evacuate]').click()
    console.confirm()
    console.wait_for(lambda d: console.status().startswith(f'Evacuating {busiest}: i-'))
    console.wait_for(lambda d: host_rows(console)[busiest].find_elements(By.TAG_NAME, 'td')[5].text == '0', timeout=60)
    assert hosts_from_cli(console.live)[busiest]['enabled'] is False
    states = {instance['State']['Name'] for reservation in console.live.client('alice').describe_instances(
        InstanceIds=ids + more)['Reservations'] for instance in reservation['Instances']}
    assert states == {'running'}

    console.go('accounts')
    console.wait_for(lambda d: {'alice', 'bob', 'root'} <= {row.get_attribute('data-user')
                                                            for row in console.find_all('#users tbody tr')})
    alice = console.find('#users tr[data-user="alice"]')
    assert alice.find_elements(By.TAG_NAME, 'meter')
    console.wait_for(lambda d: console.find_all('#networks-admin tbody tr meter'))
    console.screenshot('accounts')


def test_a_user_sees_no_pool_and_cannot_call_an_admin_action(console):
    console.sign_in('bob')
    console.signed_in()
    assert not [button for button in console.find_all('nav .admin-only') if button.is_displayed()]
    assert '(administrator)' not in console.find('#who').text
    name = next(name for name, host in hosts_from_cli(console.live).items() if host['enabled'])
    # Through the page's own signing code, with bob's key: refused, and nothing changes.
    assert in_page_call(console, 'bob', 'ModifyCloudHost', {'HostName': name, 'Enabled': 'false'}) == 'UnauthorizedOperation'
    assert in_page_call(console, 'bob', 'DescribeCloudUsers', {}) == 'UnauthorizedOperation'
    assert hosts_from_cli(console.live)[name]['enabled'] is True
    # And straight at the API, signed as any client signs.
    credentials = console.live.users['bob']
    request = AWSRequest(method='POST', url=f'{console.live.endpoint}/',
                         data={'Action': 'EvacuateCloudHost', 'HostName': name, 'Version': '2016-11-15'},
                         headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8'})
    SigV4Auth(Credentials(credentials['access_key_id'], credentials['secret_access_key']), 'ec2',
              'reservoir-1').add_auth(request)
    prepared = request.prepare()
    reply = requests.post(prepared.url, data=prepared.body, headers=dict(prepared.headers))
    assert reply.status_code == 403 and '<Code>UnauthorizedOperation</Code>' in reply.text
    assert hosts_from_cli(console.live)[name]['enabled'] is True
    # The same call by the administrator is accepted by the page's code.
    assert in_page_call(console, 'root', 'DescribeCloudHosts', {}) == 'accepted'


def test_administrators_see_where_their_instances_run(console):
    [instance_id] = launch(console.live, 'root', 1)
    host = next(name for name in hosts_from_cli(console.live)
                if instance_id in {row[0] for row in cells_of_host(console.live, name)})
    console.sign_in('root')
    console.signed_in()
    assert console.find('#zone-heading').text == 'Zone / host'
    console.wait_for(lambda d: console.find_all(f'#instances tr[data-id="{instance_id}"]'))
    console.wait_for(lambda d: console.row(instance_id).find_elements(By.TAG_NAME, 'td')[5].text.endswith(f' / {host}'))
    console.sign_out()
    console.sign_in('bob')                      # a user's page has no host column
    console.signed_in()
    assert console.find('#zone-heading').text == 'Zone'


def cells_of_host(live, name):
    return [[row['InstanceId']] for row in live.admin_client('root').describe_cloud_host_instances(HostName=name)['Instances']]
