"""Tags on every resource an account owns: instances, images, key pairs, addresses, groups."""
import dataclasses

from sqlalchemy import delete, select

from .errors import InvalidValue, NotFound
from .matching import wildcard
from .models import (Address, Image as ImageRow, InternetGateway as GatewayRow, Instance as InstanceRow,
                     KeyPair as KeyPairRow, Network as NetworkRow, NetworkInterface as InterfaceRow, PlacementGroup,
                     SecurityGroup, Snapshot as SnapshotRow, Tag, Volume as VolumeRow, Vpc as VpcRow, is_resource_id)

MAX_TAGS_PER_RESOURCE = 50
MAX_KEY_LENGTH, MAX_VALUE_LENGTH = 128, 256

# Resource id prefix -> (EC2 resource type, table, id column, owner column, EC2's code for an id that
# is not there): one row per taggable kind, so a kind cannot be taggable without its error.
_RESOURCES = {
    'i': ('instance', InstanceRow, InstanceRow.instance_id, InstanceRow.owner, 'InvalidInstanceID.NotFound'),
    'ami': ('image', ImageRow, ImageRow.image_id, ImageRow.owner, 'InvalidAMIID.NotFound'),
    'aki': ('image', ImageRow, ImageRow.image_id, ImageRow.owner, 'InvalidAMIID.NotFound'),
    'ari': ('image', ImageRow, ImageRow.image_id, ImageRow.owner, 'InvalidAMIID.NotFound'),
    'key': ('key-pair', KeyPairRow, KeyPairRow.key_pair_id, KeyPairRow.owner, 'InvalidKeyPair.NotFound'),
    'eipalloc': ('elastic-ip', Address, Address.allocation_id, Address.owner, 'InvalidAllocationID.NotFound'),
    'pg': ('placement-group', PlacementGroup, PlacementGroup.group_id, PlacementGroup.owner,
           'InvalidPlacementGroup.Unknown'),
    'vpc': ('vpc', VpcRow, VpcRow.vpc_id, VpcRow.owner, 'InvalidVpcID.NotFound'),
    'subnet': ('subnet', NetworkRow, NetworkRow.subnet_id, NetworkRow.owner, 'InvalidSubnetID.NotFound'),
    'eni': ('network-interface', InterfaceRow, InterfaceRow.interface_id, InterfaceRow.owner,
            'InvalidNetworkInterfaceID.NotFound'),
    'igw': ('internet-gateway', GatewayRow, GatewayRow.gateway_id, GatewayRow.owner,
            'InvalidInternetGatewayID.NotFound'),
    'sg': ('security-group', SecurityGroup, SecurityGroup.group_id, SecurityGroup.owner, 'InvalidGroup.NotFound'),
    'vol': ('volume', VolumeRow, VolumeRow.volume_id, VolumeRow.owner, 'InvalidVolume.NotFound'),
    'snap': ('snapshot', SnapshotRow, SnapshotRow.snapshot_id, SnapshotRow.owner, 'InvalidSnapshot.NotFound'),
}


@dataclasses.dataclass(frozen=True)
class TagRecord:
    resource_id: str
    resource_type: str
    key: str
    value: str


class TagService:
    def __init__(self, db):
        self.db = db

    def create(self, owner, resource_ids, tags):
        """CreateTags: set (key, value) pairs on resources the owner holds; all or nothing."""
        check_tags(tags)
        with self.db.write() as session:
            types = _owned_types(session, owner, resource_ids)
            for resource_id in dict.fromkeys(resource_ids):
                existing = {tag.key: tag for tag in session.scalars(select(Tag).where(Tag.resource_id == resource_id))}
                for key, value in tags:
                    if key in existing:
                        existing[key].value = value
                    else:
                        existing[key] = Tag(resource_id=resource_id, key=key, value=value, owner=owner,
                                            resource_type=types[resource_id])
                        session.add(existing[key])
                if len(existing) > MAX_TAGS_PER_RESOURCE:
                    raise InvalidValue(f"'{resource_id}' would have more than {MAX_TAGS_PER_RESOURCE} tags",
                                       code='TagLimitExceeded')

    def delete(self, owner, resource_ids, tags=()):
        """DeleteTags: tags given as (key, value or None); none given deletes every tag."""
        with self.db.write() as session:
            _owned_types(session, owner, resource_ids)
            rows = session.scalars(select(Tag).where(Tag.resource_id.in_(list(resource_ids)), Tag.owner == owner))
            # Matched here rather than as one OR per tag in SQL: a thousand tags would exceed the
            # database's expression depth.
            named = _values_by_key(tags)
            doomed = [row for row in rows if not tags or _named_by(row, named)]
            for row in doomed:
                session.delete(row)

    def describe(self, owner, filters=()):
        """DescribeTags: the owner's tags, filtered by key, value, resource-id, resource-type."""
        with self.db.read() as session:
            rows = session.scalars(select(Tag).where(Tag.owner == owner).order_by(Tag.resource_id, Tag.key))
            records = [TagRecord(row.resource_id, row.resource_type, row.key, row.value) for row in rows]
        for field, values in filters:
            patterns = [wildcard(value) for value in values]
            read = _FIELDS.get(field)
            if read is None:
                raise InvalidValue(f"The filter '{field}' is invalid")
            records = [record for record in records if any(pattern(read(record)) for pattern in patterns)]
        return records

    def of(self, session, resource_ids):
        """{resource_id: {key: value}} for a batch of resources, in one query."""
        result = {}
        ids = list(resource_ids)
        for start in range(0, len(ids), 900):
            for row in session.execute(select(Tag.resource_id, Tag.key, Tag.value)
                                       .where(Tag.resource_id.in_(ids[start:start + 900]))):
                result.setdefault(row.resource_id, {})[row.key] = row.value
        return result

    def forget(self, resource_ids):
        """Drop the tags of resources that are gone."""
        with self.db.write() as session:
            session.execute(delete(Tag).where(Tag.resource_id.in_(list(resource_ids))))

    def tags_of(self, resource_ids):
        with self.db.read() as session:
            return self.of(session, resource_ids)


_FIELDS = {
    'key': lambda record: record.key,
    'value': lambda record: record.value,
    'resource-id': lambda record: record.resource_id,
    'resource-type': lambda record: record.resource_type,
}
FILTER_FIELDS = frozenset(_FIELDS)


def check_tags(tags):
    """Refuse what EC2 refuses in (key, value) pairs, before anything is created or changed."""
    for key, value in tags:
        if not key:
            raise InvalidValue('Tag keys must not be empty', code='InvalidTagKey.Malformed')
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidValue(f'Tag key exceeds the maximum length of {MAX_KEY_LENGTH} characters')
        if key.lower().startswith('aws:'):
            raise InvalidValue(f"Value ( {key} ) for parameter key is invalid. "
                               "Tag keys starting with 'aws:' are reserved for internal use")
        if len(value or '') > MAX_VALUE_LENGTH:
            raise InvalidValue(f'Tag value exceeds the maximum length of {MAX_VALUE_LENGTH} characters')
    if len({key for key, _ in tags}) > MAX_TAGS_PER_RESOURCE:
        raise InvalidValue(f'A resource may have at most {MAX_TAGS_PER_RESOURCE} tags', code='TagLimitExceeded')


def _values_by_key(tags):
    """(key, value or None) pairs as {key: {values}}, None standing for any value."""
    named = {}
    for key, value in tags:
        named.setdefault(key, set()).add(value)
    return named


def _named_by(row, named):
    values = named.get(row.key)
    return values is not None and (None in values or row.value in values)


def _owned_types(session, owner, resource_ids):
    """{resource_id: resource type}, refusing ids that are unknown or not the owner's."""
    types = {}
    for resource_id in resource_ids:
        prefix = (resource_id or '').split('-', 1)[0]
        entry = _RESOURCES.get(prefix)
        if entry is None or not is_resource_id(resource_id, prefix):
            raise InvalidValue(f"Invalid id: \"{resource_id}\"", code='InvalidID')
        resource_type, _table, id_column, owner_column, not_found = entry
        if session.scalar(select(id_column).where(id_column == resource_id, owner_column == owner)) is None:
            raise NotFound(not_found, f"The ID '{resource_id}' does not exist")
        types[resource_id] = resource_type
    return types
