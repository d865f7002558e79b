"""The volume state machine, and its attachment's, as transition tables (like instances').

A volume is `creating` until its file exists, `available` while unattached, `in-use` from the
moment an attachment is asked for until the host has unplugged it, then `deleting` until its file is
gone. An attachment is `attaching` until the host has plugged the disk (or, for a stopped instance,
until it is in its definition for the next start), `attached`, then `detaching`.
"""
import enum

from ..errors import Conflict


class VolumeState(str, enum.Enum):
    CREATING = 'creating'
    AVAILABLE = 'available'
    IN_USE = 'in-use'
    DELETING = 'deleting'
    DELETED = 'deleted'
    ERROR = 'error'


class AttachmentState(str, enum.Enum):
    ATTACHING = 'attaching'
    ATTACHED = 'attached'
    DETACHING = 'detaching'


class VolumeEvent(str, enum.Enum):
    CREATED = 'created'
    CREATED_ATTACHED = 'created-attached'    # made by RunInstances for its instance
    CREATE_FAILED = 'create-failed'
    ATTACH = 'attach'
    DETACHED = 'detached'
    DELETE = 'delete'
    DELETED = 'deleted'


class AttachmentEvent(str, enum.Enum):
    PLUGGED = 'plugged'
    DETACH = 'detach'


V, VE = VolumeState, VolumeEvent
VOLUME_TRANSITIONS = {
    (V.CREATING, VE.CREATED): V.AVAILABLE,
    (V.CREATING, VE.CREATED_ATTACHED): V.IN_USE,
    (V.CREATING, VE.CREATE_FAILED): V.ERROR,
    (V.AVAILABLE, VE.ATTACH): V.IN_USE,
    (V.IN_USE, VE.DETACHED): V.AVAILABLE,
    (V.AVAILABLE, VE.DELETE): V.DELETING,
    (V.ERROR, VE.DELETE): V.DELETING,
    (V.DELETING, VE.DELETED): V.DELETED,
}

A, AE = AttachmentState, AttachmentEvent
ATTACHMENT_TRANSITIONS = {
    (A.ATTACHING, AE.PLUGGED): A.ATTACHED,
    (A.ATTACHING, AE.DETACH): A.DETACHING,
    (A.ATTACHED, AE.DETACH): A.DETACHING,
    (A.DETACHING, AE.DETACH): A.DETACHING,
}


def next_volume_state(state, event, volume_id=''):
    target = VOLUME_TRANSITIONS.get((VolumeState(state), event))
    if target is None:
        raise _refused(volume_id, state, event.value)
    return target


def next_attachment_state(state, event, volume_id=''):
    target = ATTACHMENT_TRANSITIONS.get((AttachmentState(state), event))
    if target is None:
        raise Conflict('IncorrectState', f"Volume '{volume_id}' is {state}: it cannot be {event.value}ed now")
    return target


def _refused(volume_id, state, verb):
    if state == V.IN_USE.value:
        return Conflict('VolumeInUse', f'Volume {volume_id} is currently attached')
    return Conflict('IncorrectState', f"The volume '{volume_id}' is '{state}' and cannot be {verb} now")
