"""The `reservoir` command: serve the EC2 endpoint, manage users and images, upload images."""
import argparse
import dataclasses
import os
import sys

from sqlalchemy.exc import SQLAlchemyError

from ..cloud import Cloud
from ..config import ConfigError, load_config, parse_listen
from ..errors import BackendError
from ..upload_client import UploadFailed
from ..vault import VaultError
from . import certificates, compute, images, quotas
from .output import plain, print_json, print_table, timestamp

PROGRAM = 'reservoir'
FIRST_USER = 'admin'
# Enough threads that a request waiting on the database does not hold up the others; more than
# two per core only adds contention for Python's interpreter lock.
DEFAULT_SERVE_THREADS = min(8, 2 * (os.cpu_count() or 1) + 1)


def main(argv=None):
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its message or the help
        return exit_.code or 0
    try:
        return args.command(args) or 0
    except KeyboardInterrupt:
        return 130
    except (BackendError, ConfigError, VaultError, UploadFailed) as error:
        return _fail(str(error))
    except SQLAlchemyError as error:
        return _fail(f'database: {error.orig if getattr(error, "orig", None) else error}')
    except OSError as error:
        return _fail(f'{error.filename + ": " if error.filename else ""}{error.strerror or error}')
    except Exception as error:  # still one line, never a traceback
        return _fail(f'{type(error).__name__}: {error}')


def _fail(message):
    print(f'{PROGRAM}: error: {message}', file=sys.stderr)
    return 1


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a whole number of at least 1, not {text!r}')
    return value


def _parser():
    parser = argparse.ArgumentParser(prog=PROGRAM, description='An EC2-compatible cloud.')
    commands = parser.add_subparsers(dest='topic', required=True, metavar='COMMAND')

    serve = commands.add_parser('serve', help='run the EC2 endpoint')
    serve.add_argument('--listen', metavar='HOST:PORT', help='address to listen on (default: from reservoir.ini)')
    serve.add_argument('--processes', type=_positive_int, default=1,
                       help='API processes (more than one wants PostgreSQL; default 1)')
    serve.add_argument('--threads', type=_positive_int, default=DEFAULT_SERVE_THREADS,
                       help=f'request threads per API process (default {DEFAULT_SERVE_THREADS})')
    serve.add_argument('--no-worker', action='store_true',
                       help='serve the API only; `reservoir worker` processes do the work')
    serve.set_defaults(command=serve_command)

    user = commands.add_parser('user', help='manage users and their access keys')
    user_commands = user.add_subparsers(dest='action', required=True, metavar='ACTION')
    create = user_commands.add_parser('create', help='create a user with an access key')
    create.add_argument('name')
    create.add_argument('--admin', action='store_true',
                        help="may call the administrators' actions (hosts, networks, users, history)")
    _json_flag(create)
    create.set_defaults(command=user_create)
    set_admin = user_commands.add_parser('set-admin', help="grant or revoke the administrators' actions")
    set_admin.add_argument('name')
    granted = set_admin.add_mutually_exclusive_group(required=True)
    granted.add_argument('--on', dest='admin', action='store_true', help='grant')
    granted.add_argument('--off', dest='admin', action='store_false', help='revoke')
    _json_flag(set_admin)
    set_admin.set_defaults(command=user_set_admin)
    listing = user_commands.add_parser('list', help='list users')
    _json_flag(listing)
    listing.set_defaults(command=user_list)
    delete = user_commands.add_parser('delete', help='delete a user, its access keys and key pairs')
    delete.add_argument('name')
    delete.set_defaults(command=user_delete)
    rotate = user_commands.add_parser('rotate-keys', help='issue a new access key, deactivating the old ones')
    rotate.add_argument('name')
    _json_flag(rotate)
    rotate.set_defaults(command=user_rotate_keys)
    quotas.add_commands(user_commands, _json_flag)
    certificates.add_commands(user_commands, _json_flag)

    images.add_commands(commands, _json_flag)
    compute.add_commands(commands, _json_flag)
    return parser


def _json_flag(parser):
    parser.add_argument('--json', action='store_true', help='print JSON')


# --- serve ----------------------------------------------------------------------------------------

def serve_command(args):
    config = load_config()
    if args.listen:
        parse_listen(args.listen)
        config = dataclasses.replace(config, listen=args.listen)
    host, port = parse_listen(config.listen)
    with Cloud.open(config) as cloud:
        if not cloud.users.any_users():
            _print_first_user(cloud.users.create(FIRST_USER), config)
        from ec2api.server import serve  # the front-end; imported only to serve
        serve(cloud, host, port, workers=args.processes, threads=args.threads, run_worker=not args.no_worker)
    return 0


def _print_first_user(user, config):
    endpoint = config.endpoint_url
    print(f"Created user '{user.name}' (account {user.account_id}). Its secret is shown only now.\n"
          f'\n'
          f'  Access key id:     {user.access_key_id}\n'
          f'  Secret access key: {user.secret_access_key}\n'
          f'\n'
          f'In a shell:\n'
          f'  export AWS_ACCESS_KEY_ID={user.access_key_id} AWS_SECRET_ACCESS_KEY={user.secret_access_key}'
          f' AWS_DEFAULT_REGION={config.region}\n'
          f'  aws ec2 describe-regions --endpoint-url {endpoint}\n'
          f'\n'
          f'In Python:\n'
          f'  import boto3\n'
          f"  ec2 = boto3.client('ec2', endpoint_url='{endpoint}', region_name='{config.region}',\n"
          f"                     aws_access_key_id='{user.access_key_id}',\n"
          f"                     aws_secret_access_key='{user.secret_access_key}')\n"
          f"  print(ec2.describe_regions()['Regions'])\n", flush=True)


# --- user -----------------------------------------------------------------------------------------

def user_create(args):
    with Cloud.open() as cloud:
        _print_new_user(cloud.users.create(args.name, admin=args.admin), args.json)


def user_set_admin(args):
    with Cloud.open() as cloud:
        user = cloud.users.set_admin(args.name, args.admin)
    if args.json:
        print_json(plain(user))
        return
    print(f"User '{user.name}' {'is' if user.admin else 'is not'} an administrator now.")


def user_rotate_keys(args):
    with Cloud.open() as cloud:
        _print_new_user(cloud.users.rotate_keys(args.name), args.json)


def user_delete(args):
    with Cloud.open() as cloud:
        cloud.users.delete(args.name)
    print(f"Deleted user '{args.name}'.")


def user_list(args):
    with Cloud.open() as cloud:
        users = cloud.users.list()
    if args.json:
        print_json([plain(user) for user in users])
        return
    print_table(('NAME', 'ACCOUNT', 'ADMIN', 'ACCESS KEYS', 'CREATED'),
                 [(user.name, user.account_id, 'yes' if user.admin else 'no', ','.join(user.access_key_ids),
                   timestamp(user.created_at)) for user in users])


def _print_new_user(user, as_json):
    if as_json:
        print_json(plain(user))
        return
    print(f'User:              {user.name}\n'
          f'Account:           {user.account_id}\n'
          f'Access key id:     {user.access_key_id}\n'
          f'Secret access key: {user.secret_access_key}'
          + ('\nAdministrator:     yes' if user.admin else ''))
