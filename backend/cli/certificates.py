"""`reservoir user create-certificate|add-certificate|certificates|revoke-certificate`: the X.509
certificates users sign SOAP requests with."""
import os
from pathlib import Path

from ..cloud import Cloud
from ..errors import InvalidValue
from .output import plain, print_json, print_table, timestamp


def add_commands(user_commands, json_flag):
    create = user_commands.add_parser(
        'create-certificate', help="issue a key and a certificate signed by the cloud's CA (the key is shown once)")
    create.add_argument('name')
    create.add_argument('--out', metavar='PREFIX',
                        help='write PREFIX-cert.pem and PREFIX-key.pem (mode 600) instead of printing them')
    json_flag(create)
    create.set_defaults(command=create_certificate)
    add = user_commands.add_parser('add-certificate', help='register a PEM certificate the user brings')
    add.add_argument('name')
    add.add_argument('file', type=Path)
    json_flag(add)
    add.set_defaults(command=add_certificate)
    listing = user_commands.add_parser('certificates', help="list a user's certificates")
    listing.add_argument('name')
    json_flag(listing)
    listing.set_defaults(command=list_certificates)
    revoke = user_commands.add_parser('revoke-certificate', help='revoke one of a user\'s certificates')
    revoke.add_argument('name')
    revoke.add_argument('certificate_id', help='its id, or the first 8 or more digits of it')
    json_flag(revoke)
    revoke.set_defaults(command=revoke_certificate)


def create_certificate(args):
    with Cloud.open() as cloud:
        issued = cloud.certificates.create(args.name)
    if args.out:
        _write(Path(f'{args.out}-cert.pem'), issued.certificate_pem, 0o644)
        _write(Path(f'{args.out}-key.pem'), issued.private_key_pem, 0o600)
    if args.json:
        print_json({**plain(issued.certificate), 'certificate': issued.certificate_pem,
                    'private_key': None if args.out else issued.private_key_pem})
    elif args.out:
        print(f'Certificate {issued.certificate.certificate_id} of {args.name}: {args.out}-cert.pem, '
              f'key {args.out}-key.pem (kept nowhere else).')
    else:
        print(f'Certificate id: {issued.certificate.certificate_id}\n{issued.certificate_pem}'
              f'{issued.private_key_pem}', end='')


def add_certificate(args):
    try:
        pem = args.file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidValue(f'cannot read {args.file}: {error}') from None
    with Cloud.open() as cloud:
        record = cloud.certificates.add(args.name, pem)
    _print([record], args.json, single=True)


def list_certificates(args):
    with Cloud.open() as cloud:
        _print(cloud.certificates.list(args.name), args.json)


def revoke_certificate(args):
    with Cloud.open() as cloud:
        record = cloud.certificates.revoke(args.name, args.certificate_id)
    _print([record], args.json, single=True)


def _print(records, as_json, single=False):
    if as_json:
        print_json(plain(records[0]) if single else [plain(record) for record in records])
        return
    print_table(('CERTIFICATE', 'SUBJECT', 'NOT AFTER', 'ISSUED BY', 'STATE'),
                [(record.certificate_id, record.subject, timestamp(record.not_after),
                  'cloud CA' if record.issued_here else 'user',
                  f'revoked {timestamp(record.revoked_at)}' if record.revoked_at else 'active')
                 for record in records])


def _write(path, text, mode):
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, 'w') as file:
        file.write(text)
