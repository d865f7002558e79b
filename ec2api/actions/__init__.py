"""The action registry: one module per resource registers the EC2 actions it serves."""
import dataclasses
import importlib
import threading

from ..errors import EC2Error

_HANDLERS = {}
_loaded = False
_loading = threading.Lock()

# Modules whose import registers their actions.
_ACTION_MODULES = ('regions', 'instance_types', 'keypairs', 'images', 'instances', 'addresses', 'tags',
                   'placement_groups', 'create_image', 'account_attributes', 'vpcs', 'subnets', 'network_interfaces', 'gateways',
                   'security_groups', 'volumes', 'snapshots', 'admin')


@dataclasses.dataclass(frozen=True)
class RequestContext:
    """Who is asking, through which endpoint, and the back-end that will decide."""
    cloud: object
    account_id: str
    user_name: str
    request_id: str
    host: str
    version: str = ''      # the API version the client asked for, e.g. 2014-10-01


@dataclasses.dataclass
class Result:
    """A handler's answer: the output dict, and optional extra XML appended inside the response."""
    body: dict
    extra_xml: str = ''


def action(name):
    """Register the decorated function as the handler of EC2 action `name`."""
    def register(handler):
        _HANDLERS[name] = handler
        return handler
    return register


def refuse_unsupported(args, supported, action_name):
    """Refuse a parameter this cloud cannot honour instead of ignoring it."""
    for name in args:
        if name not in supported and name != 'DryRun':
            raise EC2Error('UnsupportedOperation', f'The parameter {name} of {action_name} is not supported here.')


def handler_for(name):
    _load()
    return _HANDLERS.get(name)


def implemented_actions():
    """The names of every action this cloud serves, sorted."""
    _load()
    return sorted(_HANDLERS)


def _load():
    global _loaded
    if not _loaded:
        # Concurrent first requests: none may look while another is half way through registering.
        with _loading:
            if not _loaded:
                for module in _ACTION_MODULES:
                    importlib.import_module(f'{__name__}.{module}')
                _loaded = True
