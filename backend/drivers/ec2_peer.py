"""The EC2-peer driver: another EC2 cloud (another Reservoir, Eucalyptus, OpenStack's EC2 API, AWS)
as a host, driven through its Query API with the credentials the administrator registered.

The instances of one reservation placed here go out in one RunInstances, marked with the
reservation's id and with a ClientToken derived from it, then each is marked with its own id
(`reservoir:instance-id`), so a restarted worker finds what it launched: a deploy repeated after a
crash takes over the instances the peer already has instead of launching more. The context (host
name, SSH key, the user's user data) goes as user data: a MIME multipart that cloud-init reads,
whose first part is a cloud-config. The user's tags go with the launch and are kept in step by the
monitor. The peer's states map onto `DomainState`; an
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

from .base import OWN_TAG_PREFIX, CloudInstance, DomainState, DriverError, Feature, HostDriver

TAG = 'reservoir:instance-id'
RESERVATION_TAG = 'reservoir:reservation-id'
INSTALLATION_TAG = 'reservoir:installation'
SCHEMES = ('ec2+http', 'ec2+https')
# The peer's instance states, as a host's domain states; shutting-down and terminated are gone.
STATES = {'pending': DomainState.RUNNING, 'running': DomainState.RUNNING, 'stopping': DomainState.SHUTOFF,
          'stopped': DomainState.SHUTOFF}
GONE = ('shutting-down', 'terminated')
TIMEOUT_SECONDS = 20
MAX_TAG_KEYS = 50                      # EC2's tags per resource


def endpoint_of(uri):
    """The peer's HTTP(S) endpoint for a host URI ec2+https://host[:port][/path]."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in SCHEMES or not parsed.hostname:
        raise DriverError(f'not an EC2 peer URI: {uri!r} (expecting ec2+https://HOST[:PORT][/PATH])')
    return urllib.parse.urlunsplit((parsed.scheme.removeprefix('ec2+'), parsed.netloc, parsed.path or '/', '', ''))


def client_token(reservation_id, instance_ids):
    """The ClientToken of the one RunInstances that launches these instances of a reservation on a
    peer: the same after a crash, so the peer answers a repeat with what it launched the first time."""
    key = reservation_id + ':' + ','.join(sorted(instance_ids))
    return 'reservoir-' + hashlib.sha256(key.encode()).hexdigest()[:40]


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
    deploys_together = True

    def __init__(self, uri, settings, capacity=(0, 0)):
        self.uri = uri
        self.settings = settings
        self._capacity = capacity
        self._peer_ids = {}                        # instance id -> the peer's, as last listed
        config = botocore.config.Config(
            signature_version='v2' if settings.signature == 'v2' else 'v4',
            connect_timeout=TIMEOUT_SECONDS, read_timeout=TIMEOUT_SECONDS, retries={'max_attempts': 1})
        self.ec2 = botocore.session.Session().create_client(
            'ec2', endpoint_url=endpoint_of(uri), region_name=settings.region,
            aws_access_key_id=settings.access_key, aws_secret_access_key=settings.secret_key, config=config)

    def capacity(self):
        return self._capacity

    def instance_limit(self):
        """How many instances the peer lets this cloud's account run (max-instances)."""
        answer = self._call('describe_account_attributes', AttributeNames=['max-instances'])
        for attribute in answer.get('AccountAttributes', ()):
            if attribute.get('AttributeName') == 'max-instances':
                values = attribute.get('AttributeValues') or ()
                try:
                    return int(values[0]['AttributeValue'])
                except (IndexError, KeyError, ValueError):
                    break
        raise DriverError(f'the peer {self.uri} does not report max-instances')

    # -- the life cycle ------------------------------------------------------------------------------

    def deploy(self, spec):
        error = self.deploy_many([spec])[spec.instance_id]
        if error is not None:
            raise error

    def deploy_many(self, specs):
        """Each reservation's instances in one RunInstances; instances the peer already has (started
        again, or launched by an attempt that crashed before it could record them) are taken over."""
        outcomes = {}
        by_reservation = {}
        for spec in specs:
            by_reservation.setdefault(spec.reservation_id, []).append(spec)
        for reservation_id, members in by_reservation.items():
            try:
                self._deploy_reservation(reservation_id, sorted(members, key=lambda spec: spec.launch_index),
                                         outcomes)
            except DriverError as error:
                outcomes.update({spec.instance_id: error for spec in members if spec.instance_id not in outcomes})
        return outcomes

    def _deploy_reservation(self, reservation_id, specs, outcomes):
        live = [i for i in self._list(f'tag:{RESERVATION_TAG}', [reservation_id]) if i['State']['Name'] not in GONE]
        known = {tag_value(i): i for i in live if tag_value(i)}
        untagged = sorted((i for i in live if not tag_value(i)), key=lambda i: i.get('AmiLaunchIndex', 0))
        waiting = []
        for spec in specs:
            found = known.get(spec.instance_id)
            if found is None:
                waiting.append(spec)
                continue
            if found['State']['Name'] in ('stopped', 'stopping'):
                self._call('start_instances', InstanceIds=[found['InstanceId']])
            outcomes[spec.instance_id] = None
        # An attempt that launched but crashed before marking its instances left them untagged.
        adopted, surplus = untagged[:len(waiting)], untagged[len(waiting):]
        if surplus:   # launched for members terminated since: nobody here wants them
            self._call('terminate_instances', InstanceIds=[i['InstanceId'] for i in surplus])
        fresh = waiting[len(adopted):]
        if fresh:
            adopted += self._run(reservation_id, fresh)
        for spec, instance in zip(waiting, adopted):
            self._call('create_tags', Resources=[instance['InstanceId']],
                       Tags=[{'Key': TAG, 'Value': spec.instance_id}])
            self._peer_ids[spec.instance_id] = instance['InstanceId']
            outcomes[spec.instance_id] = None

    def _run(self, reservation_id, specs):
        """RunInstances of `specs` (one reservation, one image and type, one user data): the peer's
        instances in launch order."""
        first = specs[0]
        peer_image = self.settings.images.get(first.image_id)
        if peer_image is None:
            raise DriverError(f'no image of the peer is mapped to {first.image_id} '
                              f'(reservoir image map {first.image_id} --host … --peer-image …)')
        tags = [{'Key': RESERVATION_TAG, 'Value': reservation_id}]
        if self.settings.installation:
            tags.append({'Key': INSTALLATION_TAG, 'Value': self.settings.installation})
        tags += [{'Key': key, 'Value': value} for key, value in user_tags(first.tags)][:MAX_TAG_KEYS - len(tags) - 1]
        answer = self._call('run_instances', ImageId=peer_image, InstanceType=first.instance_type,
                            MinCount=len(specs), MaxCount=len(specs),
                            ClientToken=client_token(reservation_id, [spec.instance_id for spec in specs]),
                            UserData=context_user_data(first, hostname=len(specs) == 1),
                            TagSpecifications=[{'ResourceType': 'instance', 'Tags': tags}])
        launched = sorted(answer.get('Instances', ()), key=lambda i: i.get('AmiLaunchIndex', 0))
        if len(launched) != len(specs):
            raise DriverError(f'the peer {self.uri} launched {len(launched)} of {len(specs)} instances')
        return launched

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
        return {instance_id: reported.state for instance_id, reported in self.report().items()}

    def report(self):
        """{instance_id: CloudInstance} of every instance of ours the peer has, in one DescribeInstances
        (pages followed)."""
        listed = [i for i in self._list('tag-key', [TAG]) if i['State']['Name'] in STATES]
        self._peer_ids = {tag_value(i): i['InstanceId'] for i in listed}
        return {tag_value(i): CloudInstance(STATES[i['State']['Name']], i.get('PrivateIpAddress'),
                                            i.get('PublicIpAddress'), user_tags(tag_pairs(i)))
                for i in listed}

    def mirror_tags(self, instance_id, tags, removed_keys):
        peer_id = self._peer_id(instance_id)
        if tags:
            self._call('create_tags', Resources=[peer_id], Tags=[{'Key': k, 'Value': v} for k, v in tags])
        if removed_keys:
            self._call('delete_tags', Resources=[peer_id], Tags=[{'Key': key} for key in removed_keys])

    def console_output(self, instance_id):
        found = self._find(instance_id)
        if found is None:
            return b''
        # botocore has already decoded the base64 the peer sent.
        return (self._call('get_console_output', InstanceId=found['InstanceId']).get('Output') or '').encode()

    def close(self):
        self.ec2.close()

    # -- helpers -------------------------------------------------------------------------------------

    def _list(self, filter_name, values):
        """The peer's instances of this installation matching one tag filter, every page."""
        filters = [{'Name': filter_name, 'Values': list(values)}]
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
        live = [i for i in self._list(f'tag:{TAG}', [instance_id]) if i['State']['Name'] not in GONE]
        return live[0] if live else None

    def _peer_id(self, instance_id):
        known = self._peer_ids.get(instance_id)
        if known is not None:
            return known
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


def tag_pairs(instance):
    return tuple((tag['Key'], tag['Value']) for tag in instance.get('Tags') or ())


def tag_value(instance):
    """The local instance id a peer's instance is marked with, or None before it is marked."""
    return dict(tag_pairs(instance)).get(TAG)


def user_tags(pairs):
    """The user's tags among (key, value) pairs: this cloud's own marks left out."""
    return tuple(sorted((key, value) for key, value in pairs if not key.startswith(OWN_TAG_PREFIX)))


def context_user_data(spec, hostname=True):
    """The instance's context as user data cloud-init reads: a cloud-config (host name, the SSH key)
    and, after it, the user's own user data as it was given. Instances launched together share one
    user data, so they keep the names the peer gives them."""
    message = email.mime.multipart.MIMEMultipart()
    config = ['#cloud-config'] + ([f'hostname: {spec.instance_id}'] if hostname else [])
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
