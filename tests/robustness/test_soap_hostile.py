"""Signed SOAP requests whose operation element was mangled (children dropped, doubled, moved into
one another, values replaced by junk): every answer is a well-formed envelope, a result or a Client
fault, never an internal error."""
import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.support import soap
from tests.support.harness import CloudUnderTest

pytestmark = pytest.mark.robustness
SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/'
OPERATIONS = {
    'RunInstances': {'imageId': 'ami-00000000000000001', 'minCount': 1, 'maxCount': 1, 'groupSet': {'item': []},
                     'instanceType': 't1.micro', 'userData': {'data': 'aGk=', 'version': '1.0', 'encoding': 'base64'},
                     'blockDeviceMapping': {'item': [{'deviceName': '/dev/sdb', 'ebs': {'volumeSize': 1}}]}},
    'DescribeInstances': {'instancesSet': {'item': [{'instanceId': 'i-00000000000000001'}]},
                          'filterSet': {'item': [{'name': 'instance-state-name',
                                                  'valueSet': {'item': [{'value': 'running'}]}}]}},
    'DescribeImages': {'imagesSet': {'item': []}, 'ownersSet': {'item': [{'owner': 'self'}]}},
    'CreateTags': {'resourcesSet': {'item': [{'resourceId': 'i-00000000000000001'}]},
                   'tagSet': {'item': [{'key': 'k', 'value': 'v'}]}},
    'AuthorizeSecurityGroupIngress': {'userId': '', 'groupName': 'default', 'ipPermissions': {'item': [
        {'ipProtocol': 'tcp', 'fromPort': 1, 'toPort': 2, 'groups': {'item': []},
         'ipRanges': {'item': [{'cidrIp': '10.0.0.0/8'}]}}]}},
}
JUNK = st.one_of(st.text(st.characters(blacklist_categories=('Cs', 'Cc')), max_size=40), st.sampled_from(['', '-1', '99999999999999999999', 'true', 'NaN',
                                                        '2026-13-45T25:61:00Z', 'i-', '\u00e9\u4e2d']))


@pytest.fixture(scope='module')
def deployment(tmp_path_factory):
    world = CloudUnderTest(tmp_path_factory.mktemp('soap-hostile'))
    world.account('mallory')
    issued = world.cloud.certificates.create('mallory')
    credentials = {'certificate': issued.certificate_pem, 'private_key': issued.private_key_pem}
    world.soap, world.service = soap.client('http://localhost', credentials, sign=False)
    world.signer = soap.client('http://localhost', credentials)[0].wsse.signature
    yield world
    world.close()


def _mangle(element, choices, junk):
    nodes = [node for node in element.iter() if isinstance(node.tag, str)]
    target = nodes[choices.draw(st.integers(0, len(nodes) - 1))]
    action = choices.draw(st.sampled_from(['drop', 'double', 'nest', 'text', 'rename']))
    parent = target.getparent()
    if action == 'drop' and parent is not None:
        parent.remove(target)
    elif action == 'double' and parent is not None:
        parent.append(copy.deepcopy(target))
    elif action == 'nest':
        target.append(copy.deepcopy(nodes[choices.draw(st.integers(0, len(nodes) - 1))]))
    elif action == 'text':
        target.text = junk
    elif action == 'rename' and parent is not None:
        target.tag = f'{{{etree.QName(target).namespace}}}item'


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(OPERATIONS)), choices=st.data(), junk=JUNK, rounds=st.integers(1, 3))
def test_mangled_signed_requests_get_a_result_or_a_client_fault(deployment, name, choices, junk, rounds):
    envelope = deployment.soap.create_message(deployment.service, name, **OPERATIONS[name])
    operation = envelope.find(f'{{{SOAP_ENV}}}Body')[0]
    for _ in range(rounds):
        _mangle(operation, choices, junk)
    envelope, _ = deployment.signer.apply(envelope, {})
    response = deployment.web.post('/', data=etree.tostring(envelope), headers={'Content-Type': 'text/xml'})
    answer = etree.fromstring(response.get_data()).find(f'{{{SOAP_ENV}}}Body')[0]
    if response.status_code == 500:
        assert answer.findtext('faultcode').startswith('soapenv:Client.'), answer.findtext('faultstring')
    else:
        assert response.status_code == 200 and etree.QName(answer).localname == f'{name}Response'
