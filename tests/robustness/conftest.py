"""A cloud with two accounts for hostile requests: a victim that owns one of everything, and an
attacker. Requests are signed with botocore's own SigV4 signer and sent to the Flask application
in-process, so thousands of them cost seconds."""
import subprocess
import urllib.parse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from lxml import etree
from sqlalchemy import MetaData, select

from backend.cloud import Cloud
from backend.config import load_config
from backend.instances import LaunchRequest
from backend.storage.volumes import CreateRequest
from backend.models import (Image, KeyPair, NetworkInterface, PlacementGroup, SecurityGroup,
                            SecurityGroupRule, Snapshot, Tag)
from backend.worker import Worker
from ec2api.app import create_app

ENDPOINT = 'http://127.0.0.1:8773/'
VERSION = '2016-11-15'
FORM = 'application/x-www-form-urlencoded; charset=utf-8'
# Marks the victim's data: no request can contain it, so any answer showing it leaked.
SECRET = 'victim-secret-5f1c0a'


class Deployment:
    def __init__(self, home):
        self.cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(home), 'RESERVOIR_COMPUTE_RATE_LIMITS': 'false'}))
        self.web = create_app(self.cloud).test_client()
        self.cloud.hosts.add_simulated(2, cpus=8, memory_mib=4096)
        self.worker = Worker(self.cloud)
        self.worker.claim_hosts()
        self.victim = self.cloud.users.create('victim')
        self.attacker = self.cloud.users.create('attacker')
        self.operator = self.cloud.users.create('operator', admin=True)     # may call the admin actions
        self.victim_ids = self._victim_resources(home)
        self.attacker_ids = self._attacker_resources(home)
        self._tables = None
        self.victim_untouched_state = None     # a state() in which victim_untouched held

    def _victim_resources(self, home):
        """One of each kind of resource, the victim's; returns their ids (none of them public)."""
        cloud, owner = self.cloud, self.victim.account_id
        disk = home / 'victim.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '8M'], check=True)
        image = cloud.images.register_file(disk, 'victim-image', owner)
        # A VPC of its own, so its instance's address is the victim's alone (default VPCs all overlap).
        vpc = cloud.vpcs.create(owner, '10.99.0.0/16')
        subnet = cloud.subnets.create(owner, vpc.vpc_id, '10.99.1.0/24')
        gateway = cloud.gateways.create(owner)
        cloud.gateways.attach(owner, gateway.gateway_id, vpc.vpc_id)
        cloud.gateways.create_route(owner, f'rtb-{vpc.vpc_id[4:]}', '0.0.0.0/0', gateway.gateway_id)
        (instance,) = cloud.instances.run(owner, LaunchRequest(image.image_id, 1, 1, 't1.micro',
                                                               subnet_id=subnet.subnet_id))
        while self.worker.dispatch(wait=True):
            pass
        address = cloud.addresses.allocate(owner)
        cloud.addresses.associate(owner, instance.instance_id, allocation_id=address.allocation_id)
        key, _private = cloud.keypairs.create(owner, 'victim-key', 'rsa')
        cloud.placement_groups.create(owner, 'victim-group', 'spread')
        volume = cloud.volumes.create(owner, CreateRequest(instance.zone, 1))
        cloud.volumes.attach(owner, volume.volume_id, instance.instance_id, '/dev/sdf')
        group_id = cloud.security_groups.create(owner, 'victim-sg', 'the victim', vpc.vpc_id)
        snapshot = cloud.volume_snapshots.create(owner, volume.volume_id, 'the victim')
        cloud.tags.create(owner, [instance.instance_id, image.image_id, volume.volume_id, snapshot.snapshot_id],
                          [('secret', SECRET)])
        return {'instance': instance.instance_id, 'image': image.image_id, 'allocation': address.allocation_id,
                'public_ip': address.public_ip, 'key_name': 'victim-key', 'key_id': key.key_pair_id,
                'group': 'victim-group', 'account': owner, 'private_ip': instance.private_ip,
                'fingerprint': key.fingerprint, 'vpc': vpc.vpc_id, 'subnet': subnet.subnet_id,
                'gateway': gateway.gateway_id,
                'volume': volume.volume_id, 'security_group': group_id, 'snapshot': snapshot.snapshot_id,
                'eni': cloud.interfaces.by_instance([instance.instance_id])[instance.instance_id][0].interface_id}

    def _attacker_resources(self, home):
        """The attacker's own image and instance, so requests can get past 'not found' to later checks."""
        cloud, owner = self.cloud, self.attacker.account_id
        disk = home / 'attacker.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '8M'], check=True)
        image = cloud.images.register_file(disk, 'attacker-image', owner)
        (instance,) = cloud.instances.run(owner, LaunchRequest(image.image_id, 1, 1, 't1.micro'))
        while self.worker.dispatch(wait=True):
            pass
        return {'image': image.image_id, 'instance': instance.instance_id}

    def send(self, params, user=None, sign=True, mutate=None):
        """POST the form `params` as `user` (the attacker), signed; returns (status, body bytes)."""
        user = user or self.attacker
        body = urllib.parse.urlencode(params)
        request = AWSRequest(method='POST', url=ENDPOINT, data=body, headers={'Content-Type': FORM})
        if sign:
            SigV4Auth(Credentials(user.access_key_id, user.secret_access_key), 'ec2',
                      self.cloud.config.region).add_auth(request)
        prepared = request.prepare()
        headers = {name: value for name, value in prepared.headers.items()}
        data = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        if mutate is not None:
            headers, data = mutate(headers, data)
        response = self.web.open('/', base_url=ENDPOINT.rstrip('/'), method='POST', headers=headers, data=data)
        return response.status_code, response.get_data()

    def stored_by_attacker(self):
        """What the attacker itself put in the cloud (tags, names, descriptions), as text: showing it
        back is no leak."""
        owner = self.attacker.account_id
        own_groups = select(SecurityGroup.group_id).where(SecurityGroup.owner == owner)
        with self.cloud.db.read() as session:
            rows = [*session.execute(select(Tag.key, Tag.value).where(Tag.owner == owner)).all(),
                    *session.execute(select(KeyPair.name, KeyPair.public_key).where(KeyPair.owner == owner)).all(),
                    *session.execute(select(PlacementGroup.name).where(PlacementGroup.owner == owner)).all(),
                    *session.execute(select(SecurityGroup.name, SecurityGroup.description)
                                     .where(SecurityGroup.owner == owner)).all(),
                    *session.execute(select(SecurityGroupRule.description)
                                     .where(SecurityGroupRule.group_id.in_(own_groups))).all(),
                    *session.execute(select(Image.name, Image.description).where(Image.owner == owner)).all(),
                    *session.execute(select(Snapshot.description).where(Snapshot.owner == owner)).all(),
                    *session.execute(select(NetworkInterface.description)
                                     .where(NetworkInterface.owner == owner)).all()]
        return repr(rows)

    def state(self):
        """Every row of every table, for 'a refused request changed nothing'; but the scheduler's
        refusals, which are kept for administrators by design.

        Taken before and after most requests, so read as cheaply as it can be: a plain SELECT a table
        on one bare DB-API connection, in one transaction (on SQLite one snapshot). Through SQLAlchemy's
        per-statement machinery the snapshots cost several times the requests themselves."""
        if self._tables is None:
            with self.cloud.db.read() as session:
                metadata = MetaData()
                metadata.reflect(bind=session.connection())
            quote = self.cloud.db.engine.dialect.identifier_preparer.quote
            self._tables = [(name, f'SELECT * FROM {quote(name)}') for name in sorted(metadata.tables)
                            if name not in ('alembic_version', 'placement_failures')]
        connection = self.cloud.db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            if self.cloud.db.engine.dialect.name == 'sqlite':
                cursor.execute('BEGIN')     # autocommit otherwise: one snapshot for every table
            rows = {}
            for name, query in self._tables:
                cursor.execute(query)
                rows[name] = sorted(map(repr, cursor.fetchall()))
            cursor.close()
        finally:
            connection.close()              # back to the pool, which rolls the read transaction back
        return rows

    def close(self):
        self.worker.stop()
        self.cloud.close()


@pytest.fixture(scope='module')
def deployment(tmp_path_factory):
    deployed = Deployment(tmp_path_factory.mktemp('robustness'))
    yield deployed
    deployed.close()


def assert_well_formed(status, body):
    """Never a 5xx; a refusal is an EC2 error document: Response/Errors/Error with exactly Code then
    Message, no namespace, and a RequestID."""
    assert status < 500, body[:500]
    if status < 400:
        return None
    root = etree.fromstring(body)
    assert root.tag == 'Response', body[:300]
    (error,) = root.findall('Errors/Error')
    assert [child.tag for child in error] == ['Code', 'Message'], body[:300]
    assert error.findtext('Code') and root.findtext('RequestID')
    return error.findtext('Code')
