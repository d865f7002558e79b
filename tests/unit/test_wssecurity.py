"""WS-Security refusals: each is a Client.AuthFailure fault with its reason, and is logged without
the message or its signature."""
import copy
import dataclasses
import datetime
import logging

import pytest
from lxml import etree

from tests.support import soap
from tests.unit.test_soap import SOAP_ENV, SoapCaller, fault_of

WSU = soap.WSU


@pytest.fixture
def alice(world):
    return SoapCaller(world, 'alice')


def _describe(caller):
    return caller.message('DescribeRegions', regionSet={'item': []})


def _refusal(caller, envelope, caplog):
    with caplog.at_level(logging.WARNING, logger='ec2api.authentication'):
        code, message = fault_of(caller.post(etree.tostring(envelope)))
    assert code == 'soapenv:Client.AuthFailure', message
    signature_value = envelope.findtext('.//{http://www.w3.org/2000/09/xmldsig#}SignatureValue')
    assert 'SOAP request refused' in caplog.text
    if signature_value:
        assert signature_value.strip()[:20] not in caplog.text
    return message


def test_an_unsigned_request_is_refused(world, caplog):
    caller = SoapCaller(world, 'alice', sign=False)
    envelope = _describe(caller)
    envelope.remove(envelope.find(f'{{{SOAP_ENV}}}Header'))
    assert 'not signed' in _refusal(caller, envelope, caplog)


def test_a_timestamp_without_a_signature_is_refused(world, caplog):
    caller = SoapCaller(world, 'alice', sign=False)
    assert 'Signature' in _refusal(caller, _describe(caller), caplog)


def test_a_signature_by_another_key_than_the_certificates_is_refused(world, caplog):
    world.account('alice')
    issued = world.cloud.certificates.create('alice')
    other = soap.self_signed()
    caller = SoapCaller(world, 'alice', credentials={'certificate': issued.certificate_pem,
                                                     'private_key': other['private_key']})
    assert 'does not match' in _refusal(caller, _describe(caller), caplog)


def test_an_unregistered_certificate_is_refused(world, caplog):
    caller = SoapCaller(world, 'alice', credentials=soap.self_signed('mallory'))
    assert 'not registered' in _refusal(caller, _describe(caller), caplog)


def test_a_brought_certificate_works_once_registered_and_not_once_revoked(world, caplog):
    own = soap.self_signed('alice')
    world.account('alice')
    record = world.cloud.certificates.add('alice', own['certificate'])
    caller = SoapCaller(world, 'alice', credentials=own)
    caller.call('DescribeRegions', regionSet={'item': []})
    world.cloud.certificates.revoke('alice', record.certificate_id[:12])
    assert 'revoked' in _refusal(caller, _describe(caller), caplog)


def test_a_revoked_issued_certificate_is_refused(world, caplog):
    world.account('alice')
    issued = world.cloud.certificates.create('alice')
    credentials = {'certificate': issued.certificate_pem, 'private_key': issued.private_key_pem}
    world.cloud.certificates.revoke('alice', issued.certificate.certificate_id)
    caller = SoapCaller(world, 'alice', credentials=credentials)
    assert 'revoked' in _refusal(caller, _describe(caller), caplog)


def test_a_deleted_users_certificate_is_refused(world, caplog):
    caller = SoapCaller(world, 'bob')
    world.cloud.users.delete('bob')
    assert 'not registered' in _refusal(caller, _describe(caller), caplog)


@pytest.mark.parametrize('offset, reason', [
    (datetime.timedelta(hours=-1), 'expired'),
    (datetime.timedelta(minutes=30), 'future'),
])
def test_a_timestamp_outside_the_window_is_refused(world, caplog, offset, reason):
    caller = SoapCaller(world, 'alice', offset=offset)
    assert reason in _refusal(caller, _describe(caller), caplog)


def test_a_replayed_message_is_refused(alice, caplog):
    envelope = _describe(alice)
    assert alice.post(etree.tostring(envelope)).status_code == 200
    assert 'replay' in _refusal(alice, envelope, caplog)


def test_a_changed_body_is_refused(alice, caplog):
    envelope = alice.message('DescribeInstances', instancesSet={'item': [{'instanceId': 'i-00000000000000001'}]})
    for node in envelope.iter('{*}instanceId'):
        node.text = 'i-00000000000000002'
    assert 'does not match' in _refusal(alice, envelope, caplog)


def test_a_signed_body_moved_aside_for_another_does_not_count(alice, caplog):
    """The wrapping attack: the signed Body goes into the header, a new Body takes its place."""
    envelope = alice.message('DescribeInstances', instancesSet={'item': []})
    body = envelope.find(f'{{{SOAP_ENV}}}Body')
    wrapper = etree.SubElement(envelope.find(f'{{{SOAP_ENV}}}Header'), '{urn:attacker}Wrapper')
    wrapper.append(body)
    forged = etree.SubElement(envelope, f'{{{SOAP_ENV}}}Body')
    forged.append(copy.deepcopy(alice.message('TerminateInstances', instancesSet={
        'item': [{'instanceId': 'i-00000000000000001'}]}).find(f'{{{SOAP_ENV}}}Body')[0]))
    assert 'exactly the envelope' in _refusal(alice, envelope, caplog)
    # The same with the forged Body carrying the signed one's wsu:Id: two elements hold it.
    forged.set(f'{{{WSU}}}Id', body.get(f'{{{WSU}}}Id'))
    assert 'held by 2 elements' in _refusal(alice, envelope, caplog)


def test_a_signature_over_the_timestamp_alone_is_refused(alice, caplog):
    envelope = _describe(alice)
    signed_info = envelope.find('.//{http://www.w3.org/2000/09/xmldsig#}SignedInfo')
    body_id = envelope.find(f'{{{SOAP_ENV}}}Body').get(f'{{{WSU}}}Id')
    for reference in signed_info.findall('{http://www.w3.org/2000/09/xmldsig#}Reference'):
        if reference.get('URI') == f'#{body_id}':
            signed_info.remove(reference)
    assert 'exactly the envelope' in _refusal(alice, envelope, caplog)


def test_the_clock_skew_allowed_is_the_servers_setting(world, caplog):
    ahead = SoapCaller(world, 'alice', offset=datetime.timedelta(minutes=8))
    assert 'future' in _refusal(ahead, _describe(ahead), caplog)        # the default allows 5 minutes
    server = dataclasses.replace(world.cloud.config.server, soap_clock_skew_seconds=600)
    world.cloud.config = dataclasses.replace(world.cloud.config, server=server)
    answer = ahead.post(etree.tostring(_describe(ahead)))
    assert answer.status_code == 200, answer.data
    server = dataclasses.replace(server, soap_clock_skew_seconds=60)
    world.cloud.config = dataclasses.replace(world.cloud.config, server=server)
    slightly = SoapCaller(world, 'alice', offset=datetime.timedelta(minutes=2))
    assert 'future' in _refusal(slightly, _describe(slightly), caplog)
