"""zeep, generated from the WSDL and signing with WS-Security, against `reservoir serve` on simulated
hosts: the whole flow on SQLite and on PostgreSQL, the refusals over HTTP, and the same launches
through SOAP and Query giving the same DescribeInstances."""
import copy
import datetime
import time

import pytest
import requests
import zeep.exceptions
from lxml import etree

from tests.support import soap
from tests.support.postgres import fresh_database
from tests.support.server import simulated_cloud

pytestmark = pytest.mark.clients
SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/'


@pytest.fixture
def live(tmp_path):
    server = simulated_cloud(tmp_path, ['alice', 'bob'])
    yield server
    server.stop()


@pytest.fixture
def live_on_postgres(tmp_path):
    with fresh_database() as url:
        server = simulated_cloud(tmp_path, ['alice', 'bob'], extra_env={'RESERVOIR_DATABASE_URL': url})
        try:
            yield server
            assert not (tmp_path / 'reservoir.db').exists()
        finally:
            server.stop()


def _flow(live, version='2010-08-31', path='/'):
    """Regions, images, a key pair, an instance from launch to termination, through zeep."""
    _, ec2 = soap.client(live.endpoint, soap.certificate_of(live, 'alice'), version, path)
    regions = ec2.DescribeRegions(regionSet={'item': []})
    assert [region.regionName for region in regions.regionInfo.item] == ['reservoir-1']
    images = ec2.DescribeImages(imagesSet={'item': []}, ownersSet={'item': [{'owner': live.users['alice']['account_id']}]})
    assert live.image_id in [image.imageId for image in images.imagesSet.item]
    key = ec2.CreateKeyPair(keyName='soap-key')
    assert key.keyMaterial.startswith('-----BEGIN')
    launched = ec2.RunInstances(imageId=live.image_id, minCount=1, maxCount=1, keyName='soap-key',
                                groupSet={'item': []}, instanceType='t1.micro',
                                userData={'data': 'IyEvYmluL3NoCmVjaG8gaGkK', 'version': '1.0',
                                          'encoding': 'base64'})
    instance_id = launched.instancesSet.item[0].instanceId
    state = _wait_for(ec2, instance_id, 'running')
    assert state.instanceType == 't1.micro' and state.keyName == 'soap-key'
    console = ec2.GetConsoleOutput(instanceId=instance_id)
    assert console.instanceId == instance_id
    ended = ec2.TerminateInstances(instancesSet={'item': [{'instanceId': instance_id}]})
    assert ended.instancesSet.item[0].currentState.name in ('shutting-down', 'terminated')
    _wait_for(ec2, instance_id, 'terminated')
    ec2.DeleteKeyPair(keyName='soap-key')


def _wait_for(ec2, instance_id, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        answer = ec2.DescribeInstances(instancesSet={'item': [{'instanceId': instance_id}]})
        instance = answer.reservationSet.item[0].instancesSet.item[0]
        if instance.instanceState.name == wanted or time.monotonic() > deadline:
            assert instance.instanceState.name == wanted
            return instance
        time.sleep(0.3)


def test_the_zeep_flow_on_sqlite(live):
    _flow(live)


def test_the_zeep_flow_with_the_2009_wsdl_on_the_eucalyptus_path(live):
    _flow_2009(live)


@pytest.mark.postgres
def test_the_zeep_flow_on_postgres(live_on_postgres):
    _flow(live_on_postgres, path='/services/Cloud')


def _flow_2009(live):
    _, ec2 = soap.client(live.endpoint, soap.certificate_of(live, 'alice'), '2009-08-15', '/services/Eucalyptus')
    launched = ec2.RunInstances(imageId=live.image_id, minCount=2, maxCount=2, groupSet={'item': []},
                                instanceType='t1.micro')
    ids = [item.instanceId for item in launched.instancesSet.item]
    for instance_id in ids:
        _wait_for(ec2, instance_id, 'running')
    ended = ec2.TerminateInstances(instancesSet={'item': [{'instanceId': i} for i in ids]})
    assert {item.shutdownState.name for item in ended.instancesSet.item} <= {'shutting-down', 'terminated'}


def test_soap_and_query_launches_describe_the_same(live):
    _, ec2_soap = soap.client(live.endpoint, soap.certificate_of(live, 'alice'))
    ec2_query = live.client('alice')
    by_soap = ec2_soap.RunInstances(imageId=live.image_id, minCount=2, maxCount=2, groupSet={'item': []},
                                    instanceType='t1.micro')
    soap_ids = sorted(item.instanceId for item in by_soap.instancesSet.item)
    by_query = ec2_query.run_instances(ImageId=live.image_id, MinCount=2, MaxCount=2, InstanceType='t1.micro')
    query_ids = sorted(instance['InstanceId'] for instance in by_query['Instances'])
    ec2_query.get_waiter('instance_running').wait(InstanceIds=soap_ids + query_ids,
                                                  WaiterConfig={'Delay': 1, 'MaxAttempts': 60})
    ec2_query.create_tags(Resources=soap_ids + query_ids, Tags=[{'Key': 'flow', 'Value': 'both'}])

    soap_view = ec2_soap.DescribeInstances(instancesSet={'item': []}, filterSet={'item': [
        {'name': 'tag:flow', 'valueSet': {'item': [{'value': 'both'}]}}]})
    query_view = ec2_query.describe_instances(Filters=[{'Name': 'tag:flow', 'Values': ['both']}])

    def from_soap(instance, reservation):
        return (instance.instanceId, reservation.reservationId, reservation.ownerId, instance.imageId,
                instance.instanceState.name, instance.instanceType, instance.privateIpAddress,
                instance.placement.availabilityZone, instance.launchTime.astimezone(datetime.timezone.utc),
                sorted((tag.key, tag.value) for tag in instance.tagSet.item))

    def from_query(instance, reservation):
        return (instance['InstanceId'], reservation['ReservationId'], reservation['OwnerId'], instance['ImageId'],
                instance['State']['Name'], instance['InstanceType'], instance['PrivateIpAddress'],
                instance['Placement']['AvailabilityZone'], instance['LaunchTime'].astimezone(datetime.timezone.utc),
                sorted((tag['Key'], tag['Value']) for tag in instance['Tags']))

    seen_by_soap = sorted(from_soap(i, r) for r in soap_view.reservationSet.item for i in r.instancesSet.item)
    seen_by_query = sorted(from_query(i, r) for r in query_view['Reservations'] for i in r['Instances'])
    assert seen_by_soap == seen_by_query
    assert sorted(row[0] for row in seen_by_soap) == sorted(soap_ids + query_ids)


def test_refusals_over_http_are_faults(live):
    """Each negative case of the issue, against the live server: its fault code and reason."""
    credentials = soap.certificate_of(live, 'alice')
    client, service = soap.client(live.endpoint, credentials)

    def message(operation='DescribeRegions', **arguments):
        return client.create_message(service, operation, **(arguments or {'regionSet': {'item': []}}))

    def fault(document):
        reply = requests.post(live.endpoint + '/', data=document, headers={'Content-Type': 'text/xml'}, timeout=30)
        assert reply.status_code == 500, reply.text
        found = etree.fromstring(reply.content).find(f'{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault')
        return found.findtext('faultcode'), found.findtext('faultstring')

    unsigned_client, unsigned_service = soap.client(live.endpoint, credentials, sign=False)
    unsigned = unsigned_client.create_message(unsigned_service, 'DescribeRegions', regionSet={'item': []})
    unsigned.remove(unsigned.find(f'{{{SOAP_ENV}}}Header'))
    code, reason = fault(etree.tostring(unsigned))
    assert code == 'soapenv:Client.AuthFailure' and 'not signed' in reason

    wrong_key = soap.client(live.endpoint, {'certificate': credentials['certificate'],
                                            'private_key': soap.self_signed()['private_key']})
    code, reason = fault(etree.tostring(wrong_key[0].create_message(wrong_key[1], 'DescribeRegions',
                                                                    regionSet={'item': []})))
    assert code == 'soapenv:Client.AuthFailure' and 'does not match' in reason

    stranger = soap.client(live.endpoint, soap.self_signed('mallory'))
    code, reason = fault(etree.tostring(stranger[0].create_message(stranger[1], 'DescribeRegions',
                                                                   regionSet={'item': []})))
    assert code == 'soapenv:Client.AuthFailure' and 'not registered' in reason

    revoked = soap.certificate_of(live, 'alice')
    live.admin('user', 'revoke-certificate', 'alice', revoked['certificate_id'][:10])
    assert revoked['certificate_id'] in live.admin('user', 'certificates', 'alice')
    gone = soap.client(live.endpoint, revoked)
    code, reason = fault(etree.tostring(gone[0].create_message(gone[1], 'DescribeRegions', regionSet={'item': []})))
    assert code == 'soapenv:Client.AuthFailure' and 'revoked' in reason

    late = soap.client(live.endpoint, credentials, offset=datetime.timedelta(hours=-2))
    code, reason = fault(etree.tostring(late[0].create_message(late[1], 'DescribeRegions', regionSet={'item': []})))
    assert code == 'soapenv:Client.AuthFailure' and 'expired' in reason

    once = etree.tostring(message())
    assert requests.post(live.endpoint, data=once, headers={'Content-Type': 'text/xml'}, timeout=30).ok
    code, reason = fault(once)
    assert code == 'soapenv:Client.AuthFailure' and 'replay' in reason

    wrapped = message('DescribeInstances', instancesSet={'item': []})
    body = wrapped.find(f'{{{SOAP_ENV}}}Body')
    etree.SubElement(wrapped.find(f'{{{SOAP_ENV}}}Header'), '{urn:attacker}Wrapper').append(body)
    forged = etree.SubElement(wrapped, f'{{{SOAP_ENV}}}Body')
    forged.append(copy.deepcopy(message('TerminateInstances', instancesSet={
        'item': [{'instanceId': 'i-00000000000000001'}]}).find(f'{{{SOAP_ENV}}}Body')[0]))
    code, reason = fault(etree.tostring(wrapped))
    assert code == 'soapenv:Client.AuthFailure' and 'exactly the envelope' in reason

    assert fault(b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">')[0] == \
        'soapenv:Client.InvalidRequest'
    bomb = (b'<?xml version="1.0"?><!DOCTYPE z [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]><z>&d;&d;&d;</z>')
    code, reason = fault(bomb)
    assert code == 'soapenv:Client.InvalidRequest' and 'document type declaration' in reason
    code, reason = fault(b'<a>' * 3000 + b'</a>' * 3000)
    assert code == 'soapenv:Client.InvalidRequest'
    huge = b'<a>' + b' ' * (2 * 1024 * 1024) + b'</a>'
    code, reason = fault(huge)                       # refused by its Content-Length, still as a Fault
    assert code == 'soapenv:Client.RequestEntityTooLarge' and 'larger than' in reason
    code, _ = fault(iter([huge[:1024 * 1024], huge[1024 * 1024:]]))       # chunked: refused once over
    assert code == 'soapenv:Client.RequestEntityTooLarge'
    query = requests.post(live.endpoint, data=huge, headers={'Content-Type': 'application/x-www-form-urlencoded'},
                          timeout=30)
    assert query.status_code == 413 and b'<Code>RequestEntityTooLarge</Code>' in query.content

    unknown = message()
    operation = unknown.find(f'{{{SOAP_ENV}}}Body')[0]
    operation.tag = operation.tag.replace('DescribeRegions', 'LaunchRockets')
    code, reason = fault(etree.tostring(unknown))      # the signature no longer matches the Body
    assert code == 'soapenv:Client.AuthFailure'
    with pytest.raises(zeep.exceptions.Fault) as refused:
        service.DescribeInstances(instancesSet={'item': [{'instanceId': 'i-00000000000000001'}]})
    assert refused.value.code == 'soapenv:Client.InvalidInstanceID.NotFound'

