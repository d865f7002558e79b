"""The `reservoir` administration command: serve the EC2 endpoint, manage users and images."""
import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ..cloud import Cloud
from ..config import ConfigError, load_config, parse_listen
from ..errors import BackendError
from ..vault import VaultError
from . import compute
from .output import plain, print_json, print_table, size, timestamp

PROGRAM = 'reservoir'
FIRST_USER = 'admin'


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
    except (BackendError, ConfigError, VaultError) as error:
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


def _parser():
    parser = argparse.ArgumentParser(prog=PROGRAM, description='An EC2-compatible cloud.')
    commands = parser.add_subparsers(dest='topic', required=True, metavar='COMMAND')

    serve = commands.add_parser('serve', help='run the EC2 endpoint')
    serve.add_argument('--listen', metavar='HOST:PORT', help='address to listen on (default: from reservoir.ini)')
    serve.add_argument('--processes', type=int, default=1,
                       help='API processes (more than one wants PostgreSQL; default 1)')
    serve.add_argument('--no-worker', action='store_true',
                       help='serve the API only; `reservoir worker` processes do the work')
    serve.set_defaults(command=serve_command)

    user = commands.add_parser('user', help='manage users and their access keys')
    user_commands = user.add_subparsers(dest='action', required=True, metavar='ACTION')
    create = user_commands.add_parser('create', help='create a user with an access key')
    create.add_argument('name')
    _json_flag(create)
    create.set_defaults(command=user_create)
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

    image = commands.add_parser('image', help='manage images')
    image_commands = image.add_subparsers(dest='action', required=True, metavar='ACTION')
    register = image_commands.add_parser('register', help='copy an image file into the repository')
    register.add_argument('file', type=Path)
    register.add_argument('--name', required=True)
    register.add_argument('--public', action='store_true', help='let every account launch it')
    register.add_argument('--type', dest='image_type', choices=('machine', 'kernel', 'ramdisk'),
                          default='machine')
    register.add_argument('--kernel-id')
    register.add_argument('--ramdisk-id')
    register.add_argument('--description')
    register.add_argument('--architecture', default='x86_64')
    register.add_argument('--owner', metavar='USERNAME', default=FIRST_USER)
    _json_flag(register)
    register.set_defaults(command=image_register)
    stock = image_commands.add_parser('install-stock', help='build and register the stock tiny image (public)')
    _json_flag(stock)
    stock.set_defaults(command=image_install_stock)
    listing = image_commands.add_parser('list', help='list the images of every account')
    _json_flag(listing)
    listing.set_defaults(command=image_list)
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
        serve(cloud, host, port, workers=args.processes, run_worker=not args.no_worker)
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
        _print_new_user(cloud.users.create(args.name), args.json)


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
    print_table(('NAME', 'ACCOUNT', 'ACCESS KEYS', 'CREATED'),
                 [(user.name, user.account_id, ','.join(user.access_key_ids), timestamp(user.created_at))
                  for user in users])


def _print_new_user(user, as_json):
    if as_json:
        print_json(plain(user))
        return
    print(f'User:              {user.name}\n'
          f'Account:           {user.account_id}\n'
          f'Access key id:     {user.access_key_id}\n'
          f'Secret access key: {user.secret_access_key}')


# --- image ----------------------------------------------------------------------------------------

def image_register(args):
    with Cloud.open() as cloud:
        owner = cloud.users.get(args.owner).account_id
        image = cloud.images.register_file(
            args.file, args.name, owner, public=args.public, image_type=args.image_type,
            description=args.description, kernel_id=args.kernel_id, ramdisk_id=args.ramdisk_id,
            architecture=args.architecture)
    if args.json:
        print_json(plain(image))
    else:
        print(image.image_id)


def image_install_stock(args):
    from .. import stock_image
    with Cloud.open() as cloud:
        if not cloud.users.any_users():   # the images' owner; its keys go to stderr with --json
            with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
                _print_first_user(cloud.users.create(FIRST_USER), cloud.config)
        images = stock_image.install(cloud, cloud.users.get(FIRST_USER).account_id)
    if args.json:
        print_json({kind: plain(getattr(images, kind)) for kind in ('machine', 'kernel', 'ramdisk')})
    else:
        print(images.machine.image_id)


def image_list(args):
    with Cloud.open() as cloud:
        images = cloud.images.list_all()
    if args.json:
        print_json([plain(image) for image in images])
        return
    print_table(('IMAGE', 'NAME', 'TYPE', 'STATE', 'VISIBILITY', 'OWNER', 'FORMAT', 'SIZE'),
                 [(image.image_id, image.name, image.image_type, image.state,
                   'public' if image.public else 'private', image.owner, image.disk_format,
                   size(image.virtual_size_bytes)) for image in images])

