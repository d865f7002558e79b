"""The SOAP protocol in process: zeep builds and signs each request from the WSDL, the Flask app
answers it, and every answer is checked against the version's XML Schema with lxml."""
import base64

import pytest
from lxml import etree

from ec2api import soap_request
from ec2api.service_model import operation
from ec2api.soap_schema import schema_for
from tests.support import soap

VERSIONS = ('2009-08-15', '2010-08-31')
SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/'


class SoapCaller:
    """Sends zeep-built, signed requests of one user to the in-process app."""

    def __init__(self, world, user, version='2010-08-31', credentials=None, **client_options):
        world.account(user)
        if credentials is None:
            issued = world.cloud.certificates.create(user)
            credentials = {'certificate': issued.certificate_pem, 'private_key': issued.private_key_pem}
        self.world = world
        self.version = version
        self.client, self.service = soap.client('http://localhost', credentials, version, **client_options)

    def message(self, operation_name, **arguments):
        return self.client.create_message(self.service, operation_name, **arguments)

    def post(self, data, path='/', action=None, content_type='text/xml; charset=utf-8'):
        headers = {'Content-Type': content_type}
        if action:
            headers['SOAPAction'] = f'"{action}"'
        return self.world.web.post(path, data=data, headers=headers)

    def call(self, operation_name, path='/', **arguments):
        """The operation's response element, valid against the version's schema, or AssertionError."""
        response = self.post(etree.tostring(self.message(operation_name, **arguments)), path, operation_name)
        document = etree.fromstring(response.get_data())
        assert response.status_code == 200, fault_of(response)
        answer = document.find(f'{{{SOAP_ENV}}}Body')[0]
        validator = schema_for(self.version).xml_schema
        assert validator.validate(answer), (operation_name, str(validator.error_log))
        return answer


def fault_of(response):
    """(faultcode, faultstring) of a SOAP Fault response."""
    assert response.status_code == 500, response.get_data()
    fault = etree.fromstring(response.get_data()).find(f'{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault')
    return fault.findtext('faultcode'), fault.findtext('faultstring')


def text(element, path, version):
    namespace = f'http://ec2.amazonaws.com/doc/{version}/'
    return element.findtext('/'.join(f'{{{namespace}}}{step}' for step in path.split('/')))


@pytest.fixture(params=VERSIONS)
def alice(world, request):
    return SoapCaller(world, 'alice', request.param)


def test_a_whole_flow_answers_valid_documents_in_both_versions(world, alice):
    v = alice.version
    regions = alice.call('DescribeRegions', regionSet={'item': []})
    assert text(regions, 'regionInfo/item/regionName', v) == world.cloud.config.region
    alice.call('DescribeAvailabilityZones', availabilityZoneSet={'item': []})
    images = alice.call('DescribeImages', imagesSet={'item': [{'imageId': world.image_id}]})
    assert text(images, 'imagesSet/item/imageId', v) == world.image_id
    key = alice.call('CreateKeyPair', keyName='laptop')
    assert text(key, 'keyMaterial', v).startswith('-----BEGIN')
    alice.call('DescribeKeyPairs', keySet={'item': [{'keyName': 'laptop'}]})
    user_data = base64.b64encode(b'#!/bin/sh\necho hi\n').decode()
    launched = alice.call('RunInstances', imageId=world.image_id, minCount=1, maxCount=1, keyName='laptop',
                          groupSet={'item': []}, instanceType='t1.micro',
                          userData={'data': user_data, 'version': '1.0', 'encoding': 'base64'})
    instance_id = text(launched, 'instancesSet/item/instanceId', v)
    world.settle()
    described = alice.call('DescribeInstances', instancesSet={'item': [{'instanceId': instance_id}]})
    assert text(described, 'reservationSet/item/instancesSet/item/instanceState/name', v) == 'running'
    attribute = world.client('alice').describe_instance_attribute(InstanceId=instance_id, Attribute='userData')
    assert base64.b64decode(attribute['UserData']['Value']) == b'#!/bin/sh\necho hi\n'
    alice.call('GetConsoleOutput', instanceId=instance_id)
    alice.call('RebootInstances', instancesSet={'item': [{'instanceId': instance_id}]})
    if 'StopInstances' in schema_for(v).operations:      # since 2009-12-15
        alice.call('StopInstances', instancesSet={'item': [{'instanceId': instance_id}]})
        world.settle()
        alice.call('StartInstances', instancesSet={'item': [{'instanceId': instance_id}]})
    if v == '2010-08-31':
        alice.call('CreateTags', resourcesSet={'item': [{'resourceId': instance_id}]},
                   tagSet={'item': [{'key': 'role', 'value': 'web'}]})
        tags = alice.call('DescribeTags', filterSet={'item': [{'name': 'resource-id',
                                                               'valueSet': {'item': [{'value': instance_id}]}}]})
        assert text(tags, 'tagSet/item/value', v) == 'web'
        filtered = alice.call('DescribeInstances', instancesSet={'item': []}, filterSet={'item': [
            {'name': 'tag:role', 'valueSet': {'item': [{'value': 'web'}]}}]})
        assert text(filtered, 'reservationSet/item/instancesSet/item/instanceId', v) == instance_id
    ended = alice.call('TerminateInstances', instancesSet={'item': [{'instanceId': instance_id}]})
    state = text(ended, 'instancesSet/item/currentState/name', v) or \
        text(ended, 'instancesSet/item/shutdownState/name', v)        # its name before 2009-10-31
    assert state in ('shutting-down', 'terminated')
    alice.call('DeleteKeyPair', keyName='laptop')


def test_addresses_security_groups_and_volumes(world, alice):
    v = alice.version
    address = text(alice.call('AllocateAddress'), 'publicIp', v)
    alice.call('DescribeAddresses', publicIpsSet={'item': [{'publicIp': address}]})
    alice.call('ReleaseAddress', publicIp=address)
    alice.call('CreateSecurityGroup', groupName='web', groupDescription='web servers')
    alice.call('AuthorizeSecurityGroupIngress', userId='', groupName='web', ipPermissions={'item': [
        {'ipProtocol': 'tcp', 'fromPort': 80, 'toPort': 80, 'groups': {'item': []},
         'ipRanges': {'item': [{'cidrIp': '0.0.0.0/0'}]}}]})
    groups = alice.call('DescribeSecurityGroups', securityGroupSet={'item': [{'groupName': 'web'}]})
    assert text(groups, 'securityGroupInfo/item/ipPermissions/item/fromPort', v) == '80'
    alice.call('DeleteSecurityGroup', groupName='web')
    zone = world.cloud.config.zones[0] if hasattr(world.cloud.config, 'zones') else None
    zone = zone or text(alice.call('DescribeAvailabilityZones', availabilityZoneSet={'item': []}),
                        'availabilityZoneInfo/item/zoneName', v)
    volume = text(alice.call('CreateVolume', size='1', availabilityZone=zone), 'volumeId', v)
    alice.call('DescribeVolumes', volumeSet={'item': [{'volumeId': volume}]})
    alice.call('DeleteVolume', volumeId=volume)


@pytest.mark.parametrize('path', ['/', '/services/Cloud', '/services/Eucalyptus'])
def test_every_ec2_path_speaks_soap(world, path):
    caller = SoapCaller(world, 'alice')
    caller.call('DescribeRegions', path=path, regionSet={'item': []})


def test_rsa_sha256_signatures_are_accepted(world):
    SoapCaller(world, 'alice', sha256=True).call('DescribeRegions', regionSet={'item': []})


def test_errors_are_client_faults_with_the_ec2_code(world):
    caller = SoapCaller(world, 'alice')
    response = caller.post(etree.tostring(caller.message('DescribeInstances', instancesSet={
        'item': [{'instanceId': 'i-0123456789abcdef0'}]})))
    code, message = fault_of(response)
    assert code == 'soapenv:Client.InvalidInstanceID.NotFound'
    assert 'i-0123456789abcdef0' in message


def test_an_operation_the_cloud_does_not_serve_is_unsupported(world):
    caller = SoapCaller(world, 'alice')
    response = caller.post(etree.tostring(caller.message('DescribeReservedInstancesOfferings',
                                                         reservedInstancesOfferingsSet={'item': []})))
    assert fault_of(response)[0] == 'soapenv:Client.UnsupportedOperation'


def test_an_operation_no_wsdl_has_is_an_invalid_action(world):
    caller = SoapCaller(world, 'alice')
    envelope = caller.message('DescribeRegions', regionSet={'item': []})
    body_element = envelope.find(f'{{{SOAP_ENV}}}Body')[0]
    body_element.tag = body_element.tag.replace('DescribeRegions', 'LaunchRockets')
    signed = caller.client.wsse.signature.apply(_unsigned_copy(envelope), {})[0]
    assert fault_of(caller.post(etree.tostring(signed)))[0] == 'soapenv:Client.InvalidAction'


def test_a_soap_action_header_must_agree_with_the_body(world):
    caller = SoapCaller(world, 'alice')
    response = caller.post(etree.tostring(caller.message('DescribeRegions', regionSet={'item': []})),
                           action='TerminateInstances')
    code, message = fault_of(response)
    assert code == 'soapenv:Client.InvalidRequest' and 'SOAPAction' in message


def test_a_request_the_schema_refuses_is_named(world):
    caller = SoapCaller(world, 'alice')
    envelope = caller.message('DescribeRegions', regionSet={'item': []})
    operation_element = envelope.find(f'{{{SOAP_ENV}}}Body')[0]
    etree.SubElement(operation_element, etree.QName(operation_element).namespace and
                     f'{{{etree.QName(operation_element).namespace}}}bogus')
    signed = caller.client.wsse.signature.apply(_unsigned_copy(envelope), {})[0]
    code, message = fault_of(caller.post(etree.tostring(signed)))
    assert code == 'soapenv:Client.InvalidParameterValue' and 'bogus' in message


def test_an_unknown_version_is_refused(world):
    caller = SoapCaller(world, 'alice')
    data = etree.tostring(caller.message('DescribeRegions', regionSet={'item': []}))
    code, _ = fault_of(caller.post(data.replace(b'doc/2010-08-31/', b'doc/2031-01-01/')))
    assert code == 'soapenv:Client.NoSuchVersion'


@pytest.mark.parametrize('document', [
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>',
    b'not xml at all',
    b'',
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><Envelope>&lol3;</Envelope>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]><x>&ext;</x>',
    b'<a>' * 5000 + b'</a>' * 5000,
    b'<Envelope>' + b'<b/>' * 30000 + b'</Envelope>',
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'.encode('utf-16'),
    b'<x:Envelope xmlns:x="urn:not-soap"><x:Body/></x:Envelope>',
], ids=['truncated', 'not-xml', 'empty', 'entity-expansion', 'external-entity', 'deep', 'wide', 'utf16-dtd',
        'not-an-envelope'])
def test_malformed_and_hostile_documents_are_client_faults(world, document):
    caller = SoapCaller(world, 'alice')
    code, message = fault_of(caller.post(document))
    assert code == 'soapenv:Client.InvalidRequest', message
    assert 'lollol' not in message and 'root:' not in message


def test_requests_map_onto_the_parameters_query_would_send():
    schema = schema_for('2010-08-31')
    element = etree.fromstring(b'''<RunInstances xmlns="http://ec2.amazonaws.com/doc/2010-08-31/">
      <imageId>ami-1</imageId><minCount>1</minCount><maxCount>2</maxCount><keyName>k</keyName>
      <groupSet><item><groupId>default</groupId></item><item><groupId>web</groupId></item></groupSet>
      <userData version="1.0" encoding="base64"><data>aGk=</data></userData>
      <instanceType>m1.small</instanceType><placement><availabilityZone>z</availabilityZone></placement>
      <blockDeviceMapping><item><deviceName>/dev/sdb</deviceName><ebs><volumeSize>2</volumeSize>
      <deleteOnTermination>1</deleteOnTermination></ebs></item></blockDeviceMapping>
      <monitoring><enabled>false</enabled></monitoring><disableApiTermination>0</disableApiTermination>
      </RunInstances>''')
    assert schema.xml_schema.validate(element), schema.xml_schema.error_log
    params = soap_request.query_params(element, schema, schema.operations['RunInstances'],
                                       operation('RunInstances').input_shape)
    assert params == {
        'ImageId': 'ami-1', 'MinCount': '1', 'MaxCount': '2', 'KeyName': 'k', 'SecurityGroup.1': 'default',
        'SecurityGroup.2': 'web', 'UserData': 'aGk=', 'InstanceType': 'm1.small',
        'Placement.AvailabilityZone': 'z', 'BlockDeviceMapping.1.DeviceName': '/dev/sdb',
        'BlockDeviceMapping.1.Ebs.VolumeSize': '2', 'BlockDeviceMapping.1.Ebs.DeleteOnTermination': 'true',
        'Monitoring.Enabled': 'false', 'DisableApiTermination': 'false'}


def test_filters_and_wrapped_lists_map_as_query_spells_them():
    schema = schema_for('2010-08-31')
    element = etree.fromstring(b'''<DescribeImages xmlns="http://ec2.amazonaws.com/doc/2010-08-31/">
      <executableBySet><item><user>self</user></item></executableBySet>
      <imagesSet><item><imageId>ami-1</imageId></item></imagesSet>
      <ownersSet><item><owner>amazon</owner></item></ownersSet>
      <filterSet><item><name>name</name><valueSet><item><value>a*</value></item><item><value>b</value></item>
      </valueSet></item></filterSet></DescribeImages>''')
    assert schema.xml_schema.validate(element), schema.xml_schema.error_log
    params = soap_request.query_params(element, schema, schema.operations['DescribeImages'],
                                       operation('DescribeImages').input_shape)
    assert params == {'ExecutableBy.1': 'self', 'ImageId.1': 'ami-1', 'Owner.1': 'amazon',
                      'Filter.1.Name': 'name', 'Filter.1.Value.1': 'a*', 'Filter.1.Value.2': 'b'}


def _unsigned_copy(envelope):
    """The envelope without its Security header, to be signed again after a change."""
    copy = etree.fromstring(etree.tostring(envelope))
    header = copy.find(f'{{{SOAP_ENV}}}Header')
    security = header[0]
    for child in list(security):
        if etree.QName(child).localname != 'Timestamp':
            security.remove(child)
    body = copy.find(f'{{{SOAP_ENV}}}Body')
    for name in list(body.attrib):
        del body.attrib[name]
    timestamp = security[0]
    for name in list(timestamp.attrib):
        del timestamp.attrib[name]
    return copy
