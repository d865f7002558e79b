"""Remember me: stored only when asked, sealed by a passphrase, and forgotten on request."""
import json

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group('browser')]

PASSPHRASE = 'correct horse battery'


def storage(console):
    return console.driver.execute_script(
        'return [Object.assign({}, localStorage), sessionStorage.length, document.cookie]')


def sign_in_remembered(console, user, passphrase):
    form = console.find('#sign-in')
    form.find_element('name', 'remember').click()
    console.wait_visible('#passphrase-field')
    form.find_element('name', 'passphrase').send_keys(passphrase)
    console.sign_in(user)


def unlock(console, passphrase):
    form = console.wait_visible('#unlock')
    form.find_element('name', 'passphrase').send_keys(passphrase)
    form.find_element('css selector', 'button[type=submit]').click()


def test_a_remembered_key_is_sealed_and_opens_only_with_its_passphrase(console):
    credentials = console.live.users['alice']
    sign_in_remembered(console, 'alice', PASSPHRASE)
    console.signed_in()
    console.wait_for(lambda d: 'remembers' in console.status())
    local, session_items, cookies = storage(console)
    assert (session_items, cookies) == (0, '')
    [record] = local.values()
    assert credentials['secret_access_key'] not in record and PASSPHRASE not in record
    assert json.loads(record)['accessKeyId'] == credentials['access_key_id']

    console.sign_out()
    console.driver.refresh()                      # a new page: nothing but the sealed record is left
    console.wait_visible('#unlock')
    assert console.find('#unlock-who').text == credentials['access_key_id']
    unlock(console, 'not the passphrase')
    console.wait_for(lambda d: 'does not open' in console.status())
    assert not console.find('#page-instances').is_displayed()

    unlock(console, PASSPHRASE)
    console.signed_in()
    assert credentials['access_key_id'] in console.find('#who').text
    console.sign_out()
    console.find('#forget').click()
    console.wait_for(lambda d: not console.find('#unlock').is_displayed())
    assert storage(console)[0] == {}


def test_a_short_passphrase_remembers_nothing(console):
    sign_in_remembered(console, 'bob', 'short')
    # The browser's own check refuses the form; nothing is sent, nothing stored.
    assert not console.find('#page-instances').is_displayed()
    assert storage(console)[0] == {}
    console.driver.refresh()
    console.open()
