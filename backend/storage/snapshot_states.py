"""The snapshot state machine as a transition table (like volumes' and instances').

A snapshot is `pending` from CreateSnapshot or CopySnapshot until its file is in place, then
`completed`; `error` if it could not be taken. DeleteSnapshot makes it `deleted`: hidden from every
call, its row kept until no file is built on its file any more (then both go).
"""
import enum

from ..errors import Conflict


class SnapshotState(str, enum.Enum):
    PENDING = 'pending'
    COMPLETED = 'completed'
    ERROR = 'error'
    DELETED = 'deleted'


class SnapshotEvent(str, enum.Enum):
    TAKEN = 'taken'
    FAILED = 'failed'
    DELETE = 'delete'


S, E = SnapshotState, SnapshotEvent
SNAPSHOT_TRANSITIONS = {
    (S.PENDING, E.TAKEN): S.COMPLETED,
    (S.PENDING, E.FAILED): S.ERROR,
    (S.COMPLETED, E.DELETE): S.DELETED,
    (S.ERROR, E.DELETE): S.DELETED,
}
VISIBLE = (S.PENDING.value, S.COMPLETED.value, S.ERROR.value)


def next_snapshot_state(state, event, snapshot_id=''):
    target = SNAPSHOT_TRANSITIONS.get((SnapshotState(state), event))
    if target is None:
        raise Conflict('IncorrectState', f"Snapshot '{snapshot_id}' is {state}: it cannot be {event.value}d now"
                       if event is E.DELETE else f"Snapshot '{snapshot_id}' is {state}")
    return target
