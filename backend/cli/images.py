"""`reservoir image …`: the repository for administrators (register, install-stock, list), and
`upload`, which any user runs against an endpoint with their own keys."""
from pathlib import Path

from ..cloud import Cloud
from ..models import CLOUD_ACCOUNT
from .output import plain, print_json, print_table, size


def add_commands(commands, json_flag):
    image = commands.add_parser('image', help='manage images')
    actions = image.add_subparsers(dest='action', required=True, metavar='ACTION')
    _register_command(actions, json_flag)
    stock = actions.add_parser('install-stock', help="build and register the stock tiny image (public, the cloud's)")
    json_flag(stock)
    stock.set_defaults(command=image_install_stock)
    twin = actions.add_parser('ebs-twin', help="an EBS-backed copy of an instance-store image of the cloud's "
                                               '(or --owner): its root disk as a snapshot')
    twin.add_argument('image_id', metavar='AMI')
    twin.add_argument('--name', required=True)
    twin.add_argument('--owner', metavar='USERNAME', help="a user's image instead of the cloud's own")
    json_flag(twin)
    twin.set_defaults(command=image_ebs_twin)
    mapping = actions.add_parser('map', help='run instances of an image on a peer cloud as one of its images')
    mapping.add_argument('image_id', metavar='LOCAL_AMI')
    mapping.add_argument('--host', required=True, metavar='PEER', help='the peer, by host name')
    mapping.add_argument('--peer-image', required=True, metavar='PEER_AMI')
    mapping.set_defaults(command=image_map)
    listing = actions.add_parser('list', help='list the images of every account, their sizes and quotas')
    json_flag(listing)
    listing.set_defaults(command=image_list)
    _upload_command(actions, json_flag)


def _register_command(actions, json_flag):
    register = actions.add_parser('register', help='copy an image file into the repository')
    register.add_argument('file', type=Path)
    register.add_argument('--name', required=True)
    register.add_argument('--public', action='store_true', help='let every account launch it')
    register.add_argument('--type', dest='image_type', choices=('machine', 'kernel', 'ramdisk'),
                          default='machine')
    register.add_argument('--kernel-id')
    register.add_argument('--ramdisk-id')
    register.add_argument('--description')
    register.add_argument('--architecture', default='x86_64')
    register.add_argument('--owner', metavar='USERNAME',
                          help="a user's account instead of the cloud's own (alias 'reservoir')")
    json_flag(register)
    register.set_defaults(command=image_register)


def _upload_command(actions, json_flag):
    upload = actions.add_parser(
        'upload', help='upload an image file to an endpoint with your keys, and register it',
        description='Upload FILE (qcow2 or raw, gzip-compressed or not) and register it as an image of '
                    'your account. Credentials come as for awscli: AWS_ACCESS_KEY_ID and '
                    'AWS_SECRET_ACCESS_KEY, or a profile. Run the same command again to resume an '
                    'interrupted upload.')
    upload.add_argument('file', type=Path)
    upload.add_argument('--name', required=True, help='the image name (and the upload name)')
    upload.add_argument('--endpoint', required=True, metavar='URL', help='the EC2 endpoint, e.g. http://host:8773')
    upload.add_argument('--format', dest='disk_format', choices=('qcow2', 'raw'),
                        help='what the file is (checked; default: whatever it is)')
    upload.add_argument('--type', dest='image_type', choices=('machine', 'kernel', 'ramdisk'), default='machine')
    upload.add_argument('--description')
    upload.add_argument('--architecture')
    upload.add_argument('--kernel-id')
    upload.add_argument('--ramdisk-id')
    upload.add_argument('--profile', help='a profile of ~/.aws/credentials (default: AWS_PROFILE)')
    upload.add_argument('--region', help='region to sign for (default: the profile\'s or AWS_DEFAULT_REGION)')
    upload.add_argument('--replace', action='store_true',
                        help='delete an unfinished upload of the same name first, instead of resuming it')
    upload.add_argument('--no-progress', dest='progress', action='store_false', help='no progress bar')
    json_flag(upload)
    upload.set_defaults(command=image_upload)


# --- administrators -------------------------------------------------------------------------------

def image_register(args):
    with Cloud.open() as cloud:
        owner = cloud.users.get(args.owner).account_id if args.owner else CLOUD_ACCOUNT
        image = cloud.images.register_file(
            args.file, args.name, owner, public=args.public, image_type=args.image_type,
            description=args.description, kernel_id=args.kernel_id, ramdisk_id=args.ramdisk_id,
            architecture=args.architecture)
    if args.json:
        print_json(plain(image))
    else:
        print(image.image_id)


def image_ebs_twin(args):
    with Cloud.open() as cloud:
        owner = cloud.users.get(args.owner).account_id if args.owner else CLOUD_ACCOUNT
        image, snapshot = cloud.images.ebs_twin(owner, args.image_id, args.name, cloud.volume_snapshots)
    if args.json:
        print_json({'image_id': image.image_id, 'snapshot_id': snapshot.snapshot_id})
    else:
        print(image.image_id)


def image_map(args):
    with Cloud.open() as cloud:
        cloud.peers.map_image(args.image_id, args.host, args.peer_image)


def image_install_stock(args):
    from .. import stock_image
    with Cloud.open() as cloud:
        images = stock_image.install(cloud, CLOUD_ACCOUNT)
    if args.json:
        print_json({kind: plain(getattr(images, kind)) for kind in ('machine', 'kernel', 'ramdisk')})
    else:
        print(images.machine.image_id)


def image_list(args):
    """Every image (deregistered ones too, until their file is reclaimed and after), every upload,
    and what each account holds against its quota."""
    with Cloud.open() as cloud:
        images = cloud.images.list_all()
        users = cloud.images.users_of([image.image_id for image in images])
        uploads = cloud.uploads.list()
        usage = cloud.images.usage_by_account()
        names = {user.account_id: user.name for user in cloud.users.list()}
        quota = cloud.images.limits.account_quota
    if args.json:
        print_json({
            'images': [{**plain(image), 'instances': users[image.image_id]} for image in images],
            'uploads': [plain(upload) for upload in uploads],
            'accounts': [{'account_id': account, 'user': names.get(account), 'used_bytes': usage.get(account, 0),
                          'quota_bytes': quota} for account in sorted(set(names) | set(usage))],
        })
        return
    print_table(('IMAGE', 'NAME', 'TYPE', 'STATE', 'VISIBILITY', 'OWNER', 'FORMAT', 'STORED', 'VIRTUAL', 'INSTANCES'),
                [(image.image_id, image.name, image.image_type, image.state,
                  'public' if image.public else 'private', image.owner, image.disk_format,
                  '-' if image.reclaimed_at else size(image.size_bytes), size(image.virtual_size_bytes),
                  users[image.image_id]) for image in images])


# --- users ----------------------------------------------------------------------------------------

def image_upload(args):
    from .. import upload_client
    target = upload_client.open_target(args.endpoint, profile=args.profile, region=args.region)
    if args.replace:
        upload_client.delete_upload(target, args.name)
    progress = upload_client.ProgressBar(args.file.stat().st_size, args.name) \
        if args.progress and args.file.is_file() else None
    result = upload_client.upload(target, args.file, args.name, disk_format=args.disk_format,
                                  image_type=args.image_type, progress=progress)
    if progress:
        progress.finish(result.total_bytes)
    image_id = upload_client.register(target, args.name, description=args.description,
                                      architecture=args.architecture, kernel_id=args.kernel_id,
                                      ramdisk_id=args.ramdisk_id)
    if args.json:
        print_json({'image_id': image_id, 'name': args.name, 'total_bytes': result.total_bytes,
                    'sent_bytes': result.sent_bytes, 'resumed_from': result.resumed_from,
                    'seconds': round(result.seconds, 3)})
    else:
        print(image_id)
