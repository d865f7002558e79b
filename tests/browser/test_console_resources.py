"""The console's VPC & subnet, security group and volume pages in headless Chromium against a live
server with simulated hosts; what the page did is checked through the API."""
import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import Select

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group('browser-resources')]

XSS = '<img src=x onerror=alert(1)>'


def cells(row):
    return [cell.text for cell in row.find_elements('css selector', 'td')]


def actions(row):
    return [button.text for button in row.find_elements('css selector', '[data-action]')]


def submit(form):
    form.find_element('css selector', 'button[type=submit]').click()


def fill(form, **values):
    for name, value in values.items():
        field = form.find_element('name', name)
        field.clear()
        field.send_keys(value)


def choose(console, form_css, name, value):
    """Picks `value` in a select filled from the API, once the page has offered it."""
    console.wait_for(lambda d: console.find_all(f'{form_css} select[name={name}] option[value="{value}"]'))
    Select(console.find(form_css).find_element('name', name)).select_by_value(value)


def created(console, prefix, before=''):
    """The id the status line names after `prefix`, once it says something other than `before`."""
    console.wait_for(lambda d: console.status().startswith(prefix) and console.status() != before)
    return console.status().removeprefix(prefix).split()[0]


def row_of(console, table, resource_id):
    return console.wait_visible(f'#{table} tr[data-id="{resource_id}"]')


def gone(console, table, resource_id):
    console.wait_for(lambda d: not console.find_all(f'#{table} tr[data-id="{resource_id}"]'))


def click(console, table, resource_id, action, confirm=True):
    css = f'#{table} tr[data-id="{resource_id}"] [data-action={action}]'
    console.wait_for(lambda d: console.find_all(css))
    console.find(css).click()
    if confirm:
        console.confirm()


def ids(console, table):
    return {row.get_attribute('data-id') for row in console.find_all(f'#{table} tbody tr')}


def same_element(row):
    try:
        row.is_displayed()
    except StaleElementReferenceException:
        return False
    return True


def shown_as_text(console):
    assert not console.find_all('img')
    assert not console.alert_present()


def test_vpc_and_subnet(console):
    api = console.live.client('alice')
    console.sign_in('alice')
    console.signed_in()
    console.go('networks')
    form = console.find('#create-vpc')
    fill(form, cidr='10.20.0.0/16', name=XSS)
    submit(form)
    vpc_id = created(console, 'Created VPC ')
    row = row_of(console, 'vpcs', vpc_id)
    assert cells(row) == [vpc_id, '10.20.0.0/16', 'available', '', f'Name={XSS}', 'Delete']
    shown_as_text(console)
    [default_vpc] = api.describe_vpcs(Filters=[{'Name': 'is-default', 'Values': ['true']}])['Vpcs']
    assert cells(row_of(console, 'vpcs', default_vpc['VpcId']))[3] == 'default'

    form = console.find('#create-subnet')
    choose(console, '#create-subnet', 'vpc', vpc_id)
    choose(console, '#create-subnet', 'zone', 'reservoir-1a')
    fill(form, cidr='10.20.1.0/24')
    submit(form)
    subnet_id = created(console, 'Created subnet ')
    row = row_of(console, 'subnets', subnet_id)
    assert cells(row) == [subnet_id, vpc_id, '10.20.1.0/24', 'reservoir-1a', '251', '', '', 'Delete']
    [subnet] = api.describe_subnets(SubnetIds=[subnet_id])['Subnets']
    assert (subnet['VpcId'], subnet['CidrBlock']) == (vpc_id, '10.20.1.0/24')
    console.screenshot('networks')

    # A VPC with a subnet in it stays; the API's reason shows in the status line.
    click(console, 'vpcs', vpc_id, 'DeleteVpc')
    console.wait_for(lambda d: 'error' in console.find('#status').get_attribute('class'))
    assert 'DependencyViolation' in console.status()
    assert vpc_id in ids(console, 'vpcs')
    click(console, 'subnets', subnet_id, 'DeleteSubnet')
    gone(console, 'subnets', subnet_id)
    click(console, 'vpcs', vpc_id, 'DeleteVpc')
    gone(console, 'vpcs', vpc_id)
    assert vpc_id not in {vpc['VpcId'] for vpc in api.describe_vpcs()['Vpcs']}
    assert subnet_id not in {s['SubnetId'] for s in api.describe_subnets()['Subnets']}


def rules_of(api, group_id):
    return {rule['SecurityGroupRuleId']: rule for rule in api.describe_security_group_rules(
        Filters=[{'Name': 'group-id', 'Values': [group_id]}])['SecurityGroupRules']}


def test_security_group_rules(console):
    api = console.live.client('alice')
    [default_group] = api.describe_security_groups(GroupNames=['default'])['SecurityGroups']
    console.sign_in('alice')
    console.signed_in()
    console.go('security-groups')
    form = console.find('#create-group')
    fill(form, name='web', description=XSS)
    choose(console, '#create-group', 'vpc', default_group['VpcId'])
    submit(form)
    group_id = created(console, 'Created security group ')
    row = row_of(console, 'groups', group_id)
    assert cells(row) == [group_id, 'web', default_group['VpcId'], XSS, 'Delete']
    shown_as_text(console)

    row.find_element('css selector', 'button.link').click()
    console.wait_visible('#group-detail')
    assert console.find('#group-detail-title').text == f'web ({group_id})'
    console.wait_for(lambda d: console.find_all('#outbound-rules tbody tr'))
    [outbound] = console.find_all('#outbound-rules tbody tr')
    assert cells(outbound)[1:4] == ['all', 'all', '0.0.0.0/0']

    rule_form = console.find('#add-rule')
    fill(rule_form, from_port='22', cidr='10.0.0.0/8', description='ssh')
    submit(rule_form)
    ssh_rule = created(console, 'Added rule ')
    assert cells(row_of(console, 'inbound-rules', ssh_rule)) == [ssh_rule, 'tcp', '22', '10.0.0.0/8', 'ssh', 'Revoke']
    rule = rules_of(api, group_id)[ssh_rule]
    assert (rule['IpProtocol'], rule['FromPort'], rule['ToPort'], rule['CidrIpv4'], rule['IsEgress']) == \
        ('tcp', 22, 22, '10.0.0.0/8', False)

    Select(rule_form.find_element('name', 'protocol')).select_by_value('-1')
    choose(console, '#add-rule', 'group', default_group['GroupId'])
    assert not rule_form.find_element('name', 'cidr').is_enabled()
    before = console.status()
    submit(rule_form)
    peer_rule = created(console, 'Added rule ', before)
    assert cells(row_of(console, 'inbound-rules', peer_rule))[1:4] == [
        'all', 'all', f'{default_group["GroupId"]} (default)']
    assert rules_of(api, group_id)[peer_rule]['ReferencedGroupInfo']['GroupId'] == default_group['GroupId']
    console.screenshot('security-groups')

    click(console, 'inbound-rules', ssh_rule, 'Revoke')
    gone(console, 'inbound-rules', ssh_rule)
    assert set(rules_of(api, group_id)) == {peer_rule, outbound.get_attribute('data-id')}

    click(console, 'groups', group_id, 'DeleteSecurityGroup')
    gone(console, 'groups', group_id)
    assert not console.find('#group-detail').is_displayed()
    assert group_id not in {g['GroupId'] for g in api.describe_security_groups()['SecurityGroups']}


def test_every_page_of_groups_is_listed(console):
    carol = console.live.client('carol')
    for i in range(104):            # with the default group, more than one page of the console's 100
        carol.create_security_group(GroupName=f'many-{i:03}', Description='one of many')
    expected = {g['GroupId'] for g in carol.describe_security_groups()['SecurityGroups']}
    assert len(expected) == 105
    console.sign_in('carol')
    console.signed_in()
    console.go('security-groups')
    console.wait_for(lambda d: ids(console, 'groups') == expected)


def running_instance(api, image_id):
    instance_id = api.run_instances(ImageId=image_id, InstanceType='t1.micro', MinCount=1,
                                    MaxCount=1)['Instances'][0]['InstanceId']
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = api.describe_instances(InstanceIds=[instance_id])
        if reply['Reservations'][0]['Instances'][0]['State']['Name'] == 'running':
            return instance_id
        time.sleep(0.3)
    pytest.fail(f'{instance_id} did not start')


def volume_state(console, volume_id):
    return cells(console.find(f'#volumes tr[data-id="{volume_id}"]'))[4]


def test_volume_attach_snapshot_delete(console):
    api = console.live.client('alice')
    instance_id = running_instance(api, console.live.image_id)
    console.sign_in('alice')
    console.signed_in()
    console.go('volumes')
    form = console.find('#create-volume')
    fill(form, size='2')
    Select(form.find_element('name', 'type')).select_by_value('gp3')
    choose(console, '#create-volume', 'zone', 'reservoir-1a')
    submit(form)
    volume_id = created(console, 'Created volume ')
    row = row_of(console, 'volumes', volume_id)
    console.wait_for(lambda d: volume_state(console, volume_id) == 'available')
    assert cells(row)[:7] == [volume_id, '2 GiB', 'gp3', 'reservoir-1a', 'available', '', '']
    assert actions(row) == ['Attach', 'Snapshot', 'Delete']

    click(console, 'volumes', volume_id, 'AttachVolume', confirm=False)
    attach = console.wait_visible('#attach-volume')
    assert volume_id in console.find('#attach-title').text
    choose(console, '#attach-volume', 'instance', instance_id)
    fill(attach, device='/dev/sdg')
    submit(attach)
    console.wait_for(lambda d: volume_state(console, volume_id) == 'in-use')
    assert cells(row)[5:7] == [instance_id, '/dev/sdg']
    assert actions(row) == ['Detach', 'Snapshot']
    assert not console.find('#attach-volume').is_displayed()
    [attachment] = api.describe_volumes(VolumeIds=[volume_id])['Volumes'][0]['Attachments']
    assert (attachment['InstanceId'], attachment['Device']) == (instance_id, '/dev/sdg')

    click(console, 'volumes', volume_id, 'CreateSnapshot', confirm=False)
    snapshot_id = created(console, 'Snapshot ')
    snapshot_row = row_of(console, 'snapshots', snapshot_id)
    console.wait_for(lambda d: cells(snapshot_row)[2] == 'completed')
    assert cells(snapshot_row)[:4] == [snapshot_id, volume_id, 'completed', '100%']
    console.screenshot('volumes')

    click(console, 'volumes', volume_id, 'DetachVolume')
    console.wait_for(lambda d: volume_state(console, volume_id) == 'available')
    assert cells(row)[5:7] == ['', '']
    assert not api.describe_volumes(VolumeIds=[volume_id])['Volumes'][0]['Attachments']
    assert same_element(row) and same_element(snapshot_row), 'rows were replaced instead of updated in place'

    # A new volume from the snapshot.
    choose(console, '#create-volume', 'snapshot', snapshot_id)
    before = console.status()
    submit(form)
    restored = created(console, 'Created volume ', before)
    console.wait_for(lambda d: volume_state(console, restored) == 'available')
    assert api.describe_volumes(VolumeIds=[restored])['Volumes'][0]['SnapshotId'] == snapshot_id

    for volume in (volume_id, restored):
        click(console, 'volumes', volume, 'DeleteVolume')
        gone(console, 'volumes', volume)
    assert not {volume_id, restored} & {v['VolumeId'] for v in api.describe_volumes()['Volumes']}


def test_another_user_sees_none_of_them(console):
    alice = console.live.client('alice')
    vpc = alice.create_vpc(CidrBlock='10.30.0.0/16')['Vpc']['VpcId']
    subnet = alice.create_subnet(VpcId=vpc, CidrBlock='10.30.1.0/24')['Subnet']['SubnetId']
    group = alice.create_security_group(GroupName='alices', Description='of alice')['GroupId']
    volume = alice.create_volume(Size=1, AvailabilityZone='reservoir-1a')['VolumeId']
    bob = console.live.client('bob')
    bobs_volume = bob.create_volume(Size=1, AvailabilityZone='reservoir-1a')['VolumeId']
    bobs = {
        'vpcs': {v['VpcId'] for v in bob.describe_vpcs()['Vpcs']},
        'subnets': {s['SubnetId'] for s in bob.describe_subnets()['Subnets']},
        'groups': {g['GroupId'] for g in bob.describe_security_groups()['SecurityGroups']},
    }
    console.sign_in('bob')
    console.signed_in()
    console.go('networks')
    console.wait_for(lambda d: ids(console, 'vpcs') == bobs['vpcs'] and ids(console, 'subnets') == bobs['subnets'])
    console.go('security-groups')
    console.wait_for(lambda d: ids(console, 'groups') == bobs['groups'])
    console.go('volumes')
    console.wait_for(lambda d: ids(console, 'volumes') == {bobs_volume})
    assert not {vpc, subnet, group, volume} & set(bobs['vpcs'] | bobs['subnets'] | bobs['groups'])
    text = console.find('main').text
    assert not any(resource in text for resource in (vpc, subnet, group, volume))

    # Signing out leaves nothing of bob's: no rows, no choices filled from the API.
    console.sign_out()
    console.wait_for(lambda d: console.find('#sign-in').is_displayed())
    assert not console.find_all('tbody tr')
    assert not console.find_all('select[data-from-api] option')
