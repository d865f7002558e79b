"""`reservoir user set-quota|quota`: administrators' view and overrides of an account's quotas."""
from ..cloud import Cloud
from ..errors import InvalidValue
from ..image_lifetimes import parse_size
from ..quotas import RESOURCES
from .output import print_json, print_table

# (resource, option, how a value is read)
_OPTIONS = (('instances', '--instances', int), ('vcpus', '--vcpus', int), ('elastic-ips', '--elastic-ips', int),
            ('images', '--images', int), ('storage', '--storage', parse_size))


def add_commands(user_commands, json_flag):
    setter = user_commands.add_parser(
        'set-quota', help="override an account's quotas ('default' returns one to the configured value)")
    setter.add_argument('name')
    for resource, option, _read in _OPTIONS:
        setter.add_argument(option, dest=resource.replace('-', '_'), metavar='N|default',
                            help=f'{resource} quota' + (' (bytes; K, M, G, T suffixes)' if resource == 'storage' else ''))
    json_flag(setter)
    setter.set_defaults(command=set_quota)
    show = user_commands.add_parser('quota', help="show an account's quotas and what it uses of them")
    show.add_argument('name')
    json_flag(show)
    show.set_defaults(command=show_quota)


def set_quota(args):
    values = {}
    for resource, option, read in _OPTIONS:
        text = getattr(args, resource.replace('-', '_'))
        if text is not None:
            values[resource] = None if text == 'default' else _value(option, text, read)
    if not values:
        raise InvalidValue('name at least one quota to set, e.g. --instances 50')
    with Cloud.open() as cloud:
        owner = cloud.users.get(args.name).account_id
        cloud.quotas.set(owner, values)
        _print(cloud, args)


def show_quota(args):
    with Cloud.open() as cloud:
        _print(cloud, args)


def _print(cloud, args):
    quotas, usage = cloud.quotas.of(cloud.users.get(args.name).account_id)
    rows = [{'resource': resource, 'quota': quotas.get(resource), 'used': usage.get(resource)}
            for resource in RESOURCES]
    if args.json:
        print_json(rows)
        return
    print_table(('RESOURCE', 'QUOTA', 'USED'),
                [(row['resource'], row['quota'], '-' if row['used'] is None else row['used']) for row in rows])


def _value(option, text, read):
    try:
        value = read(text)
    except ValueError:
        raise InvalidValue(f'{option}: {text!r} is not a number (or default)') from None
    if value < 0:
        raise InvalidValue(f'{option} cannot be negative')
    return value
