"""Migration: moving instances between hosts.

A move is recorded, not carried out, here: a running instance becomes `migrating` with its target
in `migration_host_id`, holding capacity on both hosts (the lifecycle table and `transition` see to
that), and the worker that drives its source host moves it. A stopped instance becomes `relocating`
and holds nothing: the worker moves its disks (a cold move without a guest to save) and it stays
stopped, on its new host. The target is the one asked for or the scheduler's choice, with the
scheduler's reasons when there is none (`move_targets`).
"""
import dataclasses

from sqlalchemy import select

from . import move_targets
from ..errors import BackendError, NotFound
from ..hosts import host_views
from ..instances import transition
from ..lifecycle import Event, State
from ..models import Host as HostRow, Instance as InstanceRow


@dataclasses.dataclass(frozen=True)
class Move:
    """One instance's move: from and to which host, and how it went ('moving', 'moved', or why not)."""
    instance_id: str
    source: str
    target: str | None
    outcome: str
    live: bool = True

    def as_json(self):
        return dataclasses.asdict(self)


class MigrationService:
    def __init__(self, db, policy='striping', wake_workers=None):
        self.db = db
        self.policy = policy
        self.wake_workers = wake_workers or (lambda: None)

    def migrate(self, instance_ids, host_name=None, live=True, targets=None):
        """Start moving each instance (to `host_name`, to `targets[instance_id]`, or where the
        scheduler says); a Move per instance, refused ones saying why. Nothing moves twice at once."""
        moves = []
        with self.db.write() as session:
            views = host_views(session)
            by_name = {view.name: view for view in views}
            names = {view.host_id: view.name for view in views}
            rows = {row.instance_id: row for row in session.scalars(
                select(InstanceRow).where(InstanceRow.instance_id.in_(list(instance_ids))).with_for_update())}
            for instance_id in instance_ids:
                row = rows.get(instance_id)
                if row is None:
                    raise NotFound('InvalidInstanceID.NotFound', f"The instance ID '{instance_id}' does not exist")
                wanted = (targets or {}).get(instance_id, host_name)
                moves.append(self._start_move(session, row, views, by_name, names, wanted, live))
        if any(move.outcome == 'moving' for move in moves):
            self.wake_workers()
        return moves

    def _start_move(self, session, row, views, by_name, names, wanted, live):
        source = names.get(row.host_id, '-')
        stopped = row.state == State.STOPPED.value
        live = live and not stopped
        if row.state != State.RUNNING.value and not stopped:
            return Move(row.instance_id, source, None, f'neither running nor stopped ({row.state})', live)
        if wanted is not None and wanted not in by_name:
            return Move(row.instance_id, source, wanted, f"no host is named '{wanted}'", live)
        source_view = next(view for view in views if view.host_id == row.host_id)
        place = move_targets.place_stopped if stopped else move_targets.place
        try:
            target = place(views, source_view, row, self.policy, by_name[wanted].host_id if wanted else None)
        except BackendError as error:
            return Move(row.instance_id, source, wanted, error.message, live)
        row.migration_host_id, row.migration_live = target, live
        how = 'its disks' if stopped else 'live' if live else 'cold'
        try:   # the target's share is taken by a conditional update, so a refusal changes nothing
            transition(session, row, Event.MIGRATE, reason_code='Server.Migrating',
                       reason=f'Server.Migrating: moving to another host ({how})')
        except BackendError as error:       # another launch took the room since the host was read
            row.migration_host_id, row.migration_live = None, False
            return Move(row.instance_id, source, names[target], error.message, live)
        return Move(row.instance_id, source, names[target], 'moving', live)

    def progress(self, instance_ids):
        """{instance_id: (state, host name, reason)} as the moves stand now."""
        with self.db.read() as session:
            return {row.instance_id: (row.state, row.host_name, row.state_reason_message) for row in session.execute(
                select(InstanceRow.instance_id, InstanceRow.state, HostRow.name.label('host_name'),
                       InstanceRow.state_reason_message)
                .join(HostRow, HostRow.id == InstanceRow.host_id)
                .where(InstanceRow.instance_id.in_(list(instance_ids))))}

    def evacuate(self, host_name, live=True):
        """Disable the host, then move everything running or stopped on it elsewhere, so that it
        can be serviced: stopped instances go cold, and stay stopped."""
        with self.db.write() as session:
            host = session.scalar(select(HostRow).where(HostRow.name == host_name))
            if host is None:
                raise NotFound('InvalidHost.NotFound', f"no host is named '{host_name}'")
            host.enabled = False
            ids = session.scalars(select(InstanceRow.instance_id).where(
                InstanceRow.host_id == host.id,
                InstanceRow.state.in_((State.RUNNING.value, State.STOPPED.value)))
                .order_by(InstanceRow.instance_id)).all()
        return self.migrate(ids, live=live) if ids else []
