"""The web console shows the serial console of a real stock-image VM, following it as it boots.

The browser reaches the cloud over the test's link-local veth: Chromium is told to treat that
origin as a secure context (as it treats localhost), since the page signs with Web Crypto.
"""
import re
import types

import pytest
from selenium.webdriver.common.by import By

from tests.browser.console import Console
from tests.support.browser import chromium, missing_browser

from .conftest import BOOT_TIMEOUT, CONTEXTUALIZED, PORT, wait_for_states

pytestmark = pytest.mark.vm

# Once contextualized, the guest keeps writing to its console, so there is always more to follow.
TICKING = '#!/bin/sh\n( i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo "tick $i"; sleep 1; done ) &\n'


def last_tick(output):
    ticks = [int(n) for n in re.findall(r'^tick (\d+)', output, re.MULTILINE)]
    return max(ticks, default=0)


def test_console_output_follows_a_booting_vm(vm_cloud, ec2, tmp_path):
    missing = missing_browser()
    if missing:
        pytest.fail(missing)
    endpoint = f'http://{vm_cloud.inside_ip}:{PORT}'
    (instance,) = ec2.run_instances(ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    UserData=TICKING)['Instances']
    instance_id = instance['InstanceId']
    try:
        with chromium(secure_origins=[endpoint]) as driver:
            live = types.SimpleNamespace(endpoint=endpoint, users={'tester': vm_cloud.user})
            console = Console(driver, live, tmp_path)
            console.open()
            console.sign_in('tester')
            console.signed_in()
            console.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, f'#instances tr[data-id="{instance_id}"]'))
            console.row(instance_id).find_element(By.CSS_SELECTOR, 'button.link').click()
            output = console.wait_visible('#console-output')
            # The detail stays open while the guest boots and writes on: the text grows in place,
            # through the context agent's line and the ticks after it, with no click or reload.
            console.wait_for(lambda d: CONTEXTUALIZED in output.text, timeout=BOOT_TIMEOUT)
            console.wait_for(lambda d: last_tick(output.text) >= 1, timeout=BOOT_TIMEOUT)
            seen = last_tick(output.text)
            console.wait_for(lambda d: last_tick(output.text) >= seen + 3)
            assert instance_id in console.find('#detail-title').text
            console.screenshot('console-output')
            assert not console.script_problems()
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        wait_for_states(ec2, [instance_id], {'terminated'})
