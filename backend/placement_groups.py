"""Placement groups: `cluster` keeps members on one host, `spread` gives each its own."""
import dataclasses
import datetime
import re

from sqlalchemy import func, select

from .errors import Conflict, InvalidValue, NotFound
from .lifecycle import HOLDS_CAPACITY
from .models import Instance as InstanceRow, PlacementGroup as GroupRow, new_resource_id

STRATEGIES = ('cluster', 'spread')
_GROUP_NAME = re.compile(r'[\x20-\x7e]{1,255}')


@dataclasses.dataclass(frozen=True)
class PlacementGroup:
    group_id: str
    name: str
    strategy: str
    owner: str
    created_at: datetime.datetime


class PlacementGroupService:
    def __init__(self, db):
        self.db = db

    def create(self, owner, name, strategy):
        if not _GROUP_NAME.fullmatch(name or ''):
            raise InvalidValue(f"'{name}' is not a valid placement group name")
        if strategy not in STRATEGIES:
            raise InvalidValue(f"The strategy '{strategy}' is not supported here: {', '.join(STRATEGIES)}")
        with self.db.write() as session:
            if session.scalar(select(GroupRow.group_id).where(GroupRow.owner == owner, GroupRow.name == name)):
                raise Conflict('InvalidPlacementGroup.Duplicate', f"The Placement Group '{name}' already exists.")
            row = GroupRow(group_id=new_resource_id('pg'), owner=owner, name=name, strategy=strategy)
            session.add(row)
            session.flush()
            return _record(row)

    def delete(self, owner, name):
        with self.db.write() as session:
            row = session.scalar(select(GroupRow).where(GroupRow.owner == owner, GroupRow.name == name))
            if row is None:
                raise NotFound('InvalidPlacementGroup.Unknown', f"The Placement Group '{name}' is unknown.")
            members = session.scalar(select(func.count()).select_from(InstanceRow).where(
                InstanceRow.owner == owner, InstanceRow.placement_group == name,
                InstanceRow.state.in_([state.value for state in HOLDS_CAPACITY])))
            if members:
                raise Conflict('InvalidPlacementGroup.InUse', f"The Placement Group '{name}' is in use.")
            session.delete(row)

    def describe(self, owner, names=None, group_ids=None):
        query = select(GroupRow).where(GroupRow.owner == owner).order_by(GroupRow.name)
        with self.db.read() as session:
            records = [_record(row) for row in session.scalars(query)]
        for wanted, attribute in ((names, 'name'), (group_ids, 'group_id')):
            if wanted:
                found = {getattr(record, attribute) for record in records}
                missing = [value for value in wanted if value not in found]
                if missing:
                    raise NotFound('InvalidPlacementGroup.Unknown',
                                   f"The Placement Group '{missing[0]}' is unknown.")
                records = [record for record in records if getattr(record, attribute) in wanted]
        return records


def _record(row):
    return PlacementGroup(row.group_id, row.name, row.strategy, row.owner, row.created_at)
