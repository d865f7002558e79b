"""The EC2-peer driver: another EC2 cloud (another Reservoir, Eucalyptus, OpenStack's EC2 API, AWS)
as a host, driven through its Query API with the credentials the administrator registered.

An instance placed here is one instance on the peer, found again by the tag `reservoir:instance-id`
(so a restarted worker finds what it launched) and launched with a ClientToken derived from
Reservoir's own instance id, so a deploy repeated after a crash never launches a second one. Its
context (host name, SSH key, the user's user data) goes as user data: a MIME multipart that
cloud-init reads, whose first part is a cloud-config. The peer's states map onto `DomainState`; an
instance the peer no longer has (terminated there) is absent from `states()`. What a peer cannot do
through EC2 (hot-plugging, CreateImage of its disk) is not in `features`.

Requests are signed by botocore (SigV4, or SigV2 for peers of that era), which every EC2 client
already trusts; one client per driver, with short timeouts and no retries of its own (the worker
retries with backoff).
"""
import base64
import email.mime.multipart
import email.mime.text
import hashlib
import urllib.parse

import botocore.config
import botocore.exceptions
import botocore.session

from .base import DomainState, DriverError, Feature, HostDriver

TAG = 'reservoir:instance-id'
INSTALLATION_TAG = 'reservoir:installation'
SCHEMES = ('ec2+http', 'ec2+https')
# The peer's instance states, as a host's domain states; shutting-down and terminated are gone.
STATES = {'pending': DomainState.RUNNING, 'running': DomainState.RUNNING, 'stopping': DomainState.SHUTOFF,
          'stopped': DomainState.SHUTOFF}
TIMEOUT_SECONDS = 20


def endpoint_of(uri):
    """The peer's HTTP(S) endpoint for a host URI ec2+https://host[:port][/path]."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in SCHEMES or not parsed.hostname:
        raise DriverError(f'not an EC2 peer URI: {uri!r} (expecting ec2+https://HOST[:PORT][/PATH])')
    return urllib.parse.urlunsplit((parsed.scheme.removeprefix('ec2+'), parsed.netloc, parsed.path or '/', '', ''))


def client_token(instance_id):
    """The ClientToken of the one RunInstances that launches `instance_id` on a peer."""
    return 'reservoir-' + hashlib.sha256(instance_id.encode()).hexdigest()[:40]


class PeerSettings:
    """What the administrator registered about a peer: its region, keys, signature, image map."""

    def __init__(self, region, access_key, secret_key, signature='v4', images=None, installation=''):
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.signature = signature
        self.images = dict(images or {})          # local image id -> the peer's image id
        self.installation = installation


class Ec2PeerDriver(HostDriver):
    features = frozenset({Feature.REBOOT, Feature.ACPI_SHUTDOWN, Feature.CONSOLE, Feature.OWN_LIFECYCLE})

    def __init__(self, uri, settings, capacity=(0, 0)):
        self.uri = uri
        self.settings = settings
        self._capacity = capacity
        config = botocore.config.Config(
            signature_version='v2' if settings.signature == 'v2' else 'v4',
            connect_timeout=TIMEOUT_SECONDS, read_timeout=TIMEOUT_SECONDS, retries={'max_attempts': 1})
        self.ec2 = botocore.session.Session().create_client(
            'ec2', endpoint_url=endpoint_of(uri), region_name=settings.region,
            aws_access_key_id=settings.access_key, aws_secret_access_key=settings.secret_key, config=config)

    def capacity(self):
        return self._capacity

    # -- the life cycle ------------------------------------------------------------------------------

    def deploy(self, spec):
        """RunInstances on the peer (the same instance again after a crash, by ClientToken), or
        StartInstances of the instance stopped there."""
        found = self._find(spec.instance_id)
        if found is not None:
            if found['State']['Name'] in ('stopped', 'stopping'):
                self._call('start_instances', InstanceIds=[found['InstanceId']])
            return
        peer_image = self.settings.images.get(spec.image_id)
        if peer_image is None:
            raise DriverError(f'no image of the peer is mapped to {spec.image_id} '
                              f'(reservoir image map {spec.image_id} --host … --peer-image …)')
        tags = [{'Key': TAG, 'Value': spec.instance_id}]
        if self.settings.installation:
            tags.append({'Key': INSTALLATION_TAG, 'Value': self.settings.installation})
        self._call('run_instances', ImageId=peer_image, InstanceType=spec.instance_type, MinCount=1, MaxCount=1,
                   ClientToken=client_token(spec.instance_id), UserData=context_user_data(spec),
                   TagSpecifications=[{'ResourceType': 'instance', 'Tags': tags}])

    def reboot(self, instance_id):
        self._call('reboot_instances', InstanceIds=[self._peer_id(instance_id)])

    def shutdown(self, instance_id):
        found = self._find(instance_id)
        if found is None or found['State']['Name'] not in ('pending', 'running'):
            return False
        self._call('stop_instances', InstanceIds=[found['InstanceId']])
        return True

    def power_off(self, instance_id):
        found = self._find(instance_id)
        if found is not None and found['State']['Name'] in ('pending', 'running', 'stopping'):
            self._call('stop_instances', InstanceIds=[found['InstanceId']], Force=True)

    def destroy(self, instance_id):
        found = self._find(instance_id)
        if found is not None:
            self._call('terminate_instances', InstanceIds=[found['InstanceId']])

    # -- what the peer says --------------------------------------------------------------------------

    def state(self, instance_id):
        found = self._find(instance_id)
        return None if found is None else STATES.get(found['State']['Name'])

    def states(self):
        """{instance_id: DomainState} in one DescribeInstances (pages followed)."""
        return {tag_value(i): STATES[i['State']['Name']] for i in self._ours() if i['State']['Name'] in STATES}

    def addresses(self):
        """{instance_id: (private IP, public IP)} the peer gave its instances."""
        return {tag_value(i): (i.get('PrivateIpAddress'), i.get('PublicIpAddress')) for i in self._ours()
                if i['State']['Name'] in STATES}

    def console_output(self, instance_id):
        found = self._find(instance_id)
        if found is None:
            return b''
        # botocore has already decoded the base64 the peer sent.
        return (self._call('get_console_output', InstanceId=found['InstanceId']).get('Output') or '').encode()

    def close(self):
        self.ec2.close()

    # -- helpers -------------------------------------------------------------------------------------

    def _ours(self, instance_id=None):
        filters = [{'Name': 'tag-key', 'Values': [TAG]}]
        if instance_id is not None:
            filters = [{'Name': f'tag:{TAG}', 'Values': [instance_id]}]
        if self.settings.installation:
            filters.append({'Name': f'tag:{INSTALLATION_TAG}', 'Values': [self.settings.installation]})
        found, token = [], None
        while True:
            page = self._call('describe_instances', Filters=filters, **({'NextToken': token} if token else {}))
            found += [i for r in page.get('Reservations', ()) for i in r['Instances']]
            token = page.get('NextToken')
            if not token:
                return found

    def _find(self, instance_id):
        """The peer's live instance for `instance_id` (not terminated), or None."""
        live = [i for i in self._ours(instance_id) if i['State']['Name'] not in ('shutting-down', 'terminated')]
        return live[0] if live else None

    def _peer_id(self, instance_id):
        found = self._find(instance_id)
        if found is None:
            raise DriverError(f'{instance_id} is not on the peer {self.uri}')
        return found['InstanceId']

    def _call(self, operation, **parameters):
        try:
            return getattr(self.ec2, operation)(**parameters)
        except botocore.exceptions.ClientError as error:
            detail = error.response.get('Error', {})
            raise DriverError(f"the peer {self.uri} refused {operation}: {detail.get('Code')}: "
                              f"{detail.get('Message')}") from None
        except botocore.exceptions.BotoCoreError as error:
            raise DriverError(f'the peer {self.uri} cannot be reached: {error}') from None


def tag_value(instance):
    return next(tag['Value'] for tag in instance.get('Tags', ()) if tag['Key'] == TAG)


def context_user_data(spec):
    """The instance's context as user data cloud-init reads: a cloud-config (host name, the SSH key)
    and, after it, the user's own user data as it was given."""
    message = email.mime.multipart.MIMEMultipart()
    config = ['#cloud-config', f'hostname: {spec.instance_id}']
    if spec.ssh_public_key:
        config += ['ssh_authorized_keys:', f'  - {spec.ssh_public_key.strip()}']
    message.attach(email.mime.text.MIMEText('\n'.join(config) + '\n', 'cloud-config'))
    if spec.user_data:
        own = base64.b64decode(spec.user_data)
        part = email.mime.text.MIMEText(own.decode('utf-8', errors='replace'), _user_data_type(own))
        message.attach(part)
    return message.as_string()


def _user_data_type(data):
    if data.startswith(b'#!'):
        return 'x-shellscript'
    if data.startswith(b'#cloud-config'):
        return 'cloud-config'
    return 'plain'
