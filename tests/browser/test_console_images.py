"""The console's images page in headless Chromium: own, shared and public images, launch permissions,
deregistering, and an upload that shows its progress, pauses, resumes (also after a reload) and
registers the image."""
import subprocess
import urllib.parse

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group('browser-images')]

SMALL_CHUNK = 256 << 10          # a few MiB make many chunks, so there is a middle to pause in


def images_page(console, user):
    console.sign_in(user)
    console.signed_in()
    console.go('images')


def choose_view(console, view):
    console.find(f'#image-views [data-view={view}]').click()
    console.wait_for(lambda d: 'current' in console.find(f'#image-views [data-view={view}]').get_attribute('class'))


def listed(console):
    """{image id: [cell texts]} of the images table as it stands."""
    return console.driver.execute_script('''
        return Object.fromEntries(Array.from(document.querySelectorAll('#images tbody tr'),
          (row) => [row.dataset.id, Array.from(row.cells, (cell) => cell.textContent)]));''')


def wait_listed(console, condition):
    return console.wait_for(lambda d: condition(listed(console)) and listed(console))


def account_of(live, user):
    return live.client(user).describe_security_groups()['SecurityGroups'][0]['OwnerId']


def launch_permissions(api, image_id):
    entries = api.describe_image_attribute(ImageId=image_id, Attribute='launchPermission')['LaunchPermissions']
    return {entry.get('UserId') or f"group:{entry['Group']}" for entry in entries}


def upload_status(live, user, name):
    """HEAD /upload/<name>, signed as the Python client signs it: (HTTP status, headers)."""
    keys = live.users[user]
    url = f'{live.endpoint}/upload/{urllib.parse.quote(name, safe="")}'
    request = AWSRequest(method='HEAD', url=url, headers={'X-Amz-Content-SHA256': 'UNSIGNED-PAYLOAD'})

    class Unsigned(SigV4Auth):
        def payload(self, request):
            return 'UNSIGNED-PAYLOAD'

    Unsigned(Credentials(keys['access_key_id'], keys['secret_access_key']), 'ec2', 'reservoir-1').add_auth(request)
    response = requests.head(url, headers=dict(request.headers.items()), timeout=30)
    return response.status_code, response.headers


def qcow2_with_data(path, megabytes, pattern):
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), '64M'], check=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', f'write -P {pattern} 0 {megabytes}M', str(path)],
                   check=True, capture_output=True)
    return path


def pick_file(console, path, name, chunk_bytes=SMALL_CHUNK):
    form = console.find('#upload')
    console.driver.execute_script('arguments[0].dataset.chunkBytes = arguments[1]', form, str(chunk_bytes))
    form.find_element('name', 'file').send_keys(str(path))
    field = form.find_element('name', 'name')
    field.clear()
    field.send_keys(name)


def watch_progress(console, then=None, at_fraction=None):
    """Records the values the progress bar takes once hashing is over into window.progressSeen; once it
    passes `at_fraction` of the whole, runs `then` ('pause' clicks Pause, 'reload' reloads the page)."""
    console.driver.execute_script('''
        const [then, fraction] = arguments;
        const bar = document.querySelector('#upload-progress');
        const box = document.querySelector('#upload-state');
        window.progressSeen = [];
        let done = false;
        new MutationObserver(() => {
          if (box.dataset.phase === 'hashing') return;
          window.progressSeen.push(Number(bar.value));
          if (!then || done || bar.value < fraction * bar.max) return;
          done = true;
          if (then === 'pause') document.querySelector('#upload-pause').click();
          else location.reload();
        }).observe(bar, { attributes: true, attributeFilter: ['value'] });
    ''', then, at_fraction)


def phase(console):
    return console.find('#upload-state').get_attribute('data-phase')


def rising(values):
    return len(set(values)) >= 3 and values == sorted(values)


def test_sha256_of_the_page_is_web_crypto_s(console):
    """The page hashes files piece by piece in JS: the same digest as Web Crypto's of the whole."""
    mismatches = console.driver.execute_async_script('''
        const done = arguments[arguments.length - 1];
        (async () => {
          const { Sha256 } = await import('./js/sha256.js');
          const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
          const sizes = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 65536, 1 << 20, 3 * 1048576 + 17];
          for (let i = 0; i < 12; i++) sizes.push(Math.floor(Math.random() * 300000));
          const bad = [];
          for (const size of sizes) {
            const data = new Uint8Array(size);
            for (let at = 0; at < size; at += 65536) crypto.getRandomValues(data.subarray(at, Math.min(size, at + 65536)));
            const digest = new Sha256();
            for (let at = 0; at < size;) {
              const step = 1 + Math.floor(Math.random() * 70000);
              digest.update(data.subarray(at, at + step));
              at += step;
            }
            const mine = digest.hex();
            const theirs = hex(await crypto.subtle.digest('SHA-256', data));
            if (mine !== theirs) bad.push([size, mine, theirs]);
          }
          return bad;
        })().then(done, (error) => done(String(error)));
    ''')
    assert mismatches == []


def test_own_shared_public_and_launch_permissions(console):
    alice = console.live.client('alice')
    public_id = console.live.image_id
    shared_id = alice.copy_image(SourceImageId=public_id, SourceRegion='reservoir-1', Name='to-share')['ImageId']
    private_id = alice.copy_image(SourceImageId=public_id, SourceRegion='reservoir-1', Name='kept-private')['ImageId']
    bob_account = account_of(console.live, 'bob')

    images_page(console, 'alice')
    own = wait_listed(console, lambda rows: {public_id, shared_id, private_id} <= set(rows))
    assert own[public_id][1:4] == ['tiny', account_of(console.live, 'alice'), 'public']
    assert own[private_id][3] == 'private'
    assert own[private_id][5:7] == ['x86_64', 'instance-store']
    assert console.find_all(f'#images tr[data-id="{private_id}"] [data-action=DeregisterImage]')

    # Share one image with bob through the page; add and take away another account; public and back.
    console.find(f'#images tr[data-id="{shared_id}"] [data-action=permissions]').click()
    console.wait_visible('#image-permissions')
    console.wait_for(lambda d: console.find('#permissions-public').text == 'private')
    for account in (bob_account, '123456789012'):
        field = console.find('#permission-add [name=account]')
        field.send_keys(account)
        console.find('#permission-add button[type=submit]').click()
        console.wait_for(lambda d, account=account: console.find_all(f'#permissions tr[data-account="{account}"]'))
    assert launch_permissions(alice, shared_id) == {bob_account, '123456789012'}
    console.find('#permissions tr[data-account="123456789012"] button').click()
    console.wait_for(lambda d: not console.find_all('#permissions tr[data-account="123456789012"]'))
    assert launch_permissions(alice, shared_id) == {bob_account}
    console.find('#permissions-toggle').click()
    console.wait_for(lambda d: console.find('#permissions-toggle').text == 'Make private')
    assert launch_permissions(alice, shared_id) == {bob_account, 'group:all'}
    wait_listed(console, lambda rows: rows.get(shared_id, [''] * 4)[3] == 'public')
    console.screenshot('images-permissions')
    console.find('#permissions-toggle').click()
    console.wait_for(lambda d: console.find('#permissions-toggle').text == 'Make public')
    assert launch_permissions(alice, shared_id) == {bob_account}

    choose_view(console, 'public')
    public = wait_listed(console, lambda rows: public_id in rows)
    assert shared_id not in public and private_id not in public
    console.sign_out()

    images_page(console, 'bob')
    console.wait_visible('#images-empty')           # bob owns nothing
    choose_view(console, 'shared')
    shared = wait_listed(console, lambda rows: shared_id in rows)
    assert set(shared) == {shared_id}              # not alice's private one, nor her public one
    assert not console.find_all('#images [data-action]')   # nothing to change in another's image
    console.screenshot('images-shared')
    choose_view(console, 'public')
    assert private_id not in wait_listed(console, lambda rows: public_id in rows)
    console.sign_out()

    images_page(console, 'alice')
    wait_listed(console, lambda rows: private_id in rows)
    console.find(f'#images tr[data-id="{private_id}"] [data-action=DeregisterImage]').click()
    console.confirm()
    console.wait_for(lambda d: private_id not in listed(console))
    assert private_id not in {image['ImageId'] for image in alice.describe_images(Owners=['self'])['Images']}


def test_upload_shows_progress_pauses_and_resumes(console, tmp_path):
    disk = qcow2_with_data(tmp_path / 'paused.qcow2', 3, '0x5a')
    total = disk.stat().st_size
    images_page(console, 'alice')
    pick_file(console, disk, 'paused upload')
    watch_progress(console, then='pause', at_fraction=0.4)
    console.find('#upload [name=start]').click()
    console.wait_for(lambda d: phase(console) == 'paused')
    before = console.driver.execute_script('return window.progressSeen')
    assert rising(before), before
    assert 0 < before[-1] < total

    status_code, headers = upload_status(console.live, 'alice', 'paused upload')
    assert status_code == 200
    assert headers['x-reservoir-upload-state'] == 'receiving'
    assert 0 < int(headers['x-reservoir-received-bytes']) < total
    assert int(headers['x-reservoir-total-bytes']) == total
    assert console.find('#upload [name=start]').text == 'Resume'
    console.screenshot('images-upload-paused')

    watch_progress(console)
    console.find('#upload [name=start]').click()
    console.wait_for(lambda d: phase(console) == 'done')
    after = console.driver.execute_script('return window.progressSeen')
    assert rising(after) and after[0] >= before[-1] - SMALL_CHUNK and after[-1] == total, after
    assert 'registered as ami-' in console.find('#upload-text').text
    console.wait_for(lambda d: any(row[1] == 'paused upload' for row in listed(console).values()))
    console.screenshot('images-upload-done')
    [image] = console.live.client('alice').describe_images(
        Owners=['self'], Filters=[{'Name': 'name', 'Values': ['paused upload']}])['Images']
    assert image['ImageLocation'].endswith('/paused upload')
    assert upload_status(console.live, 'alice', 'paused upload')[0] == 404     # it became the image


def test_upload_interrupted_by_a_reload_resumes(console, tmp_path):
    disk = qcow2_with_data(tmp_path / 'reloaded.qcow2', 3, '0x33')
    total = disk.stat().st_size
    images_page(console, 'alice')
    pick_file(console, disk, 'reloaded upload')
    watch_progress(console, then='reload', at_fraction=0.5)
    console.find('#upload [name=start]').click()
    console.wait_for(lambda d: d.find_element('id', 'sign-in').is_displayed())
    status_code, headers = upload_status(console.live, 'alice', 'reloaded upload')
    assert status_code == 200
    received = int(headers['x-reservoir-received-bytes'])
    assert 0 < received < total

    # Another visit: the same file under the same name goes on from what the server has.
    images_page(console, 'alice')
    pick_file(console, disk, 'reloaded upload', chunk_bytes=1 << 20)
    console.find('#upload [name=start]').click()
    console.wait_for(lambda d: phase(console) in ('done', 'failed'))
    text = console.find('#upload-text').text
    assert phase(console) == 'done', text
    assert 'resumed from' in text
    images = console.live.client('alice').describe_images(
        Owners=['self'], Filters=[{'Name': 'name', 'Values': ['reloaded upload']}])['Images']
    assert len(images) == 1


def test_cancelled_upload_is_discarded_and_a_name_holds_one_content(console, tmp_path):
    first = qcow2_with_data(tmp_path / 'first.qcow2', 2, '0x11')
    other = qcow2_with_data(tmp_path / 'other.qcow2', 2, '0x22')
    images_page(console, 'alice')
    pick_file(console, first, 'taken name')
    watch_progress(console, then='pause', at_fraction=0.3)
    console.find('#upload [name=start]').click()
    console.wait_for(lambda d: phase(console) == 'paused')
    assert upload_status(console.live, 'alice', 'taken name')[0] == 200

    # Another file under that name is refused, not mixed in; Cancel discards what the server has.
    console.find('#upload [name=file]').send_keys(str(other))
    console.find('#upload [name=start]').click()
    console.wait_for(lambda d: phase(console) == 'failed')
    assert 'other content' in console.find('#upload-text').text
    assert int(upload_status(console.live, 'alice', 'taken name')[1]['x-reservoir-total-bytes']) == first.stat().st_size
    console.find('#upload-cancel').click()
    console.confirm()
    console.wait_for(lambda d: phase(console) == 'cancelled')
    assert upload_status(console.live, 'alice', 'taken name')[0] == 404
    assert console.find('#upload-cancel').get_attribute('hidden') is not None
