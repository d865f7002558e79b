"""The web console in headless Chromium against a live server with simulated hosts."""
import base64
import os
import re
import shutil
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import Select

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group('browser')]

XSS = '<img src=x onerror=alert(1)>'
README_SCREENSHOT = Path(__file__).resolve().parents[2] / 'docs' / 'console.png'
# Set to refresh the README's screenshot; otherwise a run leaves the tree as it found it.
UPDATE_README_SCREENSHOT = os.environ.get('RESERVOIR_UPDATE_SCREENSHOT') == '1'


def launch(console, count):
    form = console.wait_visible('#launch')
    console.wait_for(lambda d: console.find_all('#launch select[name=image] option'))
    Select(form.find_element('name', 'image')).select_by_value(console.live.image_id)
    console.wait_for(lambda d: console.find_all('#launch select[name=type] option[value="t1.micro"]'))
    Select(form.find_element('name', 'type')).select_by_value('t1.micro')
    count_field = form.find_element('name', 'count')
    count_field.clear()
    count_field.send_keys(str(count))
    form.find_element('css selector', 'button[type=submit]').click()
    console.wait_for(lambda d: console.status().startswith('Launched '))
    return console.status().removeprefix('Launched ').split(', ')


def click_action(console, instance_id, action):
    console.wait_for(lambda d: console.row(instance_id).find_elements('css selector', f'[data-action={action}]'))
    console.row(instance_id).find_element('css selector', f'[data-action={action}]').click()
    console.confirm()


def wait_state(console, instance_id, state):
    console.wait_for(lambda d: console.states().get(instance_id) == state)


def test_console_is_served_with_a_strict_policy(console_cloud):
    page = requests.get(f'{console_cloud.endpoint}/console/')
    policy = page.headers['Content-Security-Policy']
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert 'unsafe-inline' not in policy
    assert '<script type="module" src="js/main.js">' in page.text
    assert not re.search(r'(src|href)="/', page.text)       # relative URLs only: works behind a prefix
    config = requests.get(f'{console_cloud.endpoint}/console/config.json')
    assert config.json() == {'region': 'reservoir-1', 'api': '../'}
    assert config.headers['Content-Security-Policy'] == policy
    assert requests.get(f'{console_cloud.endpoint}/console', allow_redirects=False).headers['Location'] == 'console/'
    for path in ('/console/', '/console/config.json'):          # the console itself takes no requests with effects
        assert requests.post(f'{console_cloud.endpoint}{path}', data={'Action': 'RunInstances'}).status_code in (404, 405)


def test_the_secret_is_kept_nowhere_but_in_memory(console):
    console.sign_in('alice')
    console.signed_in()
    stored = console.driver.execute_script(
        'return [localStorage.length, sessionStorage.length, document.cookie,'
        ' document.querySelector("#sign-in [name=secret]").value]')
    assert stored == [0, 0, '', '']
    console.wait_for(lambda d: console.find_all('#launch select[name=image] option'))
    console.sign_out()
    console.wait_for(lambda d: console.find('#sign-in').is_displayed())
    assert not console.find('#nav').is_displayed()
    assert not console.find_all('tbody tr') and not console.find_all('#launch option')


def test_wrong_secret_is_refused(console):
    console.sign_in('alice', secret='not-the-secret')
    console.wait_for(lambda d: console.status().startswith('Sign-in failed'))
    assert 'SignatureDoesNotMatch' in console.status() or 'AuthFailure' in console.status()
    assert not console.find('#page-instances').is_displayed()


def test_launch_watch_tag_stop_terminate(console, screenshots):
    console.sign_in('alice')
    console.signed_in()
    loaded_at = console.driver.execute_script('return performance.timeOrigin')
    ids = launch(console, 2)
    assert len(ids) == 2
    rows = [console.row(instance_id) for instance_id in ids]
    for instance_id in ids:
        wait_state(console, instance_id, 'running')
    # Same page, same row elements: the states changed in place, by polling.
    assert console.driver.execute_script('return performance.timeOrigin') == loaded_at
    for row in rows:
        try:
            row.is_displayed()
        except StaleElementReferenceException:
            pytest.fail('the instance row was replaced instead of updated')

    tagged = ids[0]
    console.row(tagged).find_element('css selector', 'button.link').click()
    tag_form = console.wait_visible('#tag')
    tag_form.find_element('name', 'key').send_keys('note')
    tag_form.find_element('name', 'value').send_keys(XSS)
    tag_form.find_element('css selector', 'button[type=submit]').click()
    console.wait_for(lambda d: console.row(tagged).find_elements('css selector', '.tag'))
    assert console.row(tagged).find_element('css selector', '.tag').text == f'note={XSS}'
    assert not console.find_all('img')
    assert not console.alert_present()
    shot = console.screenshot('instances')
    if UPDATE_README_SCREENSHOT:
        shutil.copy(shot, README_SCREENSHOT)

    click_action(console, tagged, 'StopInstances')
    wait_state(console, tagged, 'stopped')
    click_action(console, tagged, 'StartInstances')
    wait_state(console, tagged, 'running')
    click_action(console, tagged, 'StopInstances')
    wait_state(console, tagged, 'stopped')
    click_action(console, tagged, 'TerminateInstances')
    wait_state(console, tagged, 'terminated')
    click_action(console, ids[1], 'RebootInstances')
    console.wait_for(lambda d: console.status() == f'Reboot: {ids[1]}')
    wait_state(console, ids[1], 'running')
    assert not console.alert_present()


def test_cancelled_confirmation_does_nothing(console):
    console.sign_in('alice')
    console.signed_in()
    [instance_id] = launch(console, 1)
    wait_state(console, instance_id, 'running')
    console.row(instance_id).find_element('css selector', '[data-action=TerminateInstances]').click()
    console.wait_visible('#confirm')
    console.find('#confirm button[value=no]').click()
    api = console.live.client('alice')
    reply = api.describe_instances(InstanceIds=[instance_id])
    assert reply['Reservations'][0]['Instances'][0]['State']['Name'] == 'running'


def test_another_user_does_not_see_them(console):
    alice = console.live.client('alice')
    reply = alice.run_instances(ImageId=console.live.image_id, InstanceType='t1.micro', MinCount=1, MaxCount=1)
    alices = reply['Instances'][0]['InstanceId']
    console.sign_in('bob')
    console.signed_in()
    [bobs] = launch(console, 1)
    wait_state(console, bobs, 'running')
    assert alices not in console.states()
    assert set(console.states()) == {bobs}


def test_launch_with_subnet_groups_and_user_data(console):
    api = console.live.client('alice')
    [subnet] = api.describe_subnets()['Subnets']
    [group] = api.describe_security_groups()['SecurityGroups']
    user_data = '#!/bin/sh\necho héllo\n'
    console.sign_in('alice')
    console.signed_in()
    form = console.wait_visible('#launch')
    console.wait_for(lambda d: console.find_all(f'#launch option[value="{group["GroupId"]}"]'))
    Select(form.find_element('name', 'subnet')).select_by_value(subnet['SubnetId'])
    Select(form.find_element('name', 'groups')).select_by_value(group['GroupId'])
    form.find_element('name', 'user_data').send_keys(user_data)
    [instance_id] = launch(console, 1)
    instance = api.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]
    assert instance['SubnetId'] == subnet['SubnetId']
    assert [g['GroupId'] for g in instance['SecurityGroups']] == [group['GroupId']]
    attribute = api.describe_instance_attribute(InstanceId=instance_id, Attribute='userData')
    assert base64.b64decode(attribute['UserData']['Value']).decode() == user_data


def test_instances_beyond_the_first_page_are_one_click_away(console):
    many = 60                       # more than one page of 50
    reply = console.live.client('carol').run_instances(ImageId=console.live.image_id, InstanceType='t1.micro',
                                                       MinCount=many, MaxCount=many)
    launched = {instance['InstanceId'] for instance in reply['Instances']}
    console.sign_in('carol')
    console.signed_in()
    Select(console.find('#page-size')).select_by_visible_text('50')
    console.wait_for(lambda d: len(console.find_all('#instances tbody tr')) == 50)
    first = set(console.states())
    console.find('#page-next').click()
    console.wait_for(lambda d: len(console.find_all('#instances tbody tr')) == many - 50)
    console.wait_for(lambda d: set(console.states().values()) == {'running'})
    assert first | set(console.states()) == launched and not first & set(console.states())


def test_console_output_of_an_instance(console):
    console.sign_in('alice')
    console.signed_in()
    [instance_id] = launch(console, 1)
    wait_state(console, instance_id, 'running')
    console.row(instance_id).find_element('css selector', 'button.link').click()
    console.wait_visible('#console-output')
    assert console.find('#detail-title').text == instance_id
    console.wait_for(lambda d: console.find('#console-output').text)
    console.screenshot('console-output')


def test_unsigned_post_from_the_page_is_refused(console):
    answer = console.driver.execute_async_script('''
        const done = arguments[arguments.length - 1];
        fetch('../', {method: 'POST', body: 'Action=RunInstances&Version=2016-11-15&ImageId=ami-1&MinCount=1&MaxCount=1',
                      headers: {'Content-Type': 'application/x-www-form-urlencoded'}})
          .then(async (r) => done([r.status, await r.text()]), (e) => done([0, String(e)]));
    ''')
    status, body = answer
    assert status == 401
    assert 'MissingAuthenticationToken' in body


def test_key_pairs_images_and_addresses(console, screenshots):
    console.sign_in('alice')
    console.signed_in()
    console.go('keypairs')
    form = console.find('#create-key')
    form.find_element('name', 'name').send_keys('laptop')
    form.find_element('css selector', 'button[type=submit]').click()
    link = console.wait_visible('#key-download')
    assert link.get_attribute('download') == 'laptop.pem'
    assert link.get_attribute('href').startswith('blob:')
    console.wait_for(lambda d: 'laptop' in console.find('#keypairs tbody').text)
    openssh = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    imported = console.find('#import-key')
    imported.find_element('name', 'name').send_keys('desktop')
    imported.find_element('name', 'material').send_keys(openssh)
    imported.find_element('css selector', 'button[type=submit]').click()
    console.wait_for(lambda d: 'desktop' in console.find('#keypairs tbody').text)
    console.screenshot('keypairs')

    console.go('images')
    console.wait_for(lambda d: console.live.image_id in console.find('#images tbody').text)
    assert 'tiny' in console.find('#images tbody').text
    console.screenshot('images')
    console.go('instances')         # back again: the table fills anew
    console.wait_for(lambda d: console.find_all('#instances tbody tr'))
    reservations = console.live.client('alice').describe_instances()['Reservations']
    expected = {i['InstanceId'] for r in reservations for i in r['Instances']}
    console.wait_for(lambda d: set(console.states()) == expected)

    address = console.live.client('alice').allocate_address(Domain='vpc')['PublicIp']
    console.go('addresses')
    console.wait_for(lambda d: address in console.find('#addresses tbody').text)
    console.screenshot('addresses')
    assert {'keypairs.png', 'images.png', 'addresses.png'} <= {p.name for p in screenshots.iterdir()}
