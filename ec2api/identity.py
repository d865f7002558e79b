"""Who am I: STS GetCallerIdentity and IAM GetUser on the EC2 endpoint.

`aws sts get-caller-identity` is how users check their set-up, and configuration tools ask STS (or
IAM's GetUser) before anything else. Requests signed for the services `sts` and `iam` come here;
they speak AWS's Query protocol, whose documents differ from EC2's: a `<Action>Result` element, a
`ResponseMetadata`, and errors as `ErrorResponse/Error` with a Type. Shapes and member order come
from botocore's `sts` and `iam` models. Nothing else of STS or IAM exists here: any other action
is InvalidAction.
"""
import base64
import datetime
import functools
import hashlib

import botocore.session
from lxml import etree

from .renderer import format_timestamp

# service -> (API version, XML namespace of its documents)
SERVICES = {
    'sts': ('2011-06-15', 'https://sts.amazonaws.com/doc/2011-06-15/'),
    'iam': ('2010-05-08', 'https://iam.amazonaws.com/doc/2010-05-08/'),
}


def user_arn(user):
    return f'arn:aws:iam::{user.account_id}:user/{user.name}'


def user_id(user):
    """A stable IAM-style unique id (AIDA…), derived from the account and the user name."""
    digest = hashlib.sha256(f'{user.account_id}/{user.name}'.encode()).digest()
    return 'AIDA' + base64.b32encode(digest).decode()[:17]


def _caller_identity(user, _created_at):
    return {'UserId': user_id(user), 'Account': user.account_id, 'Arn': user_arn(user)}


def _get_user(user, created_at):
    return {'User': {'Path': '/', 'UserName': user.name, 'UserId': user_id(user), 'Arn': user_arn(user),
                     'CreateDate': created_at}}


ACTIONS = {('sts', 'GetCallerIdentity'): _caller_identity, ('iam', 'GetUser'): _get_user}


def handle(service, params, user, created_at, request_id):
    """(status, XML bytes) of an STS or IAM request from `user` (already authenticated)."""
    action = params.get('Action') or ''
    answer = ACTIONS.get((service, action))
    if answer is None:
        return error_document(service, 'InvalidAction', f'Could not find operation {action[:64]} for version '
                                                        f'{SERVICES[service][0]}', request_id, 400)
    if service == 'iam' and params.get('UserName') not in (None, user.name):
        return error_document(service, 'NoSuchEntity', f"The user with name {params['UserName'][:64]} cannot "
                                                       'be found.', request_id, 404)
    output = _model(service).operation_model(action).output_shape
    root = _root(service, f'{action}Response')
    _write(_sub(root, f'{action}Result'), output, answer(user, created_at))
    _sub(_sub(root, 'ResponseMetadata'), 'RequestId', request_id)
    return 200, etree.tostring(root, xml_declaration=True, encoding='UTF-8')


def error_document(service, code, message, request_id, status):
    root = _root(service, 'ErrorResponse')
    error = _sub(root, 'Error')
    _sub(error, 'Type', 'Sender')
    _sub(error, 'Code', code)
    _sub(error, 'Message', message)
    _sub(root, 'RequestId', request_id)
    return status, etree.tostring(root, xml_declaration=True, encoding='UTF-8')


def _root(service, tag):
    namespace = SERVICES[service][1]
    return etree.Element(f'{{{namespace}}}{tag}', nsmap={None: namespace})


def _sub(parent, tag, text=None):
    """A child in its parent's namespace (the documents have one default namespace)."""
    element = etree.SubElement(parent, f'{{{etree.QName(parent).namespace}}}{tag}')
    if text is not None:
        element.text = text
    return element


@functools.cache
def _model(service):
    return botocore.session.get_session().get_service_model(service)


def _write(parent, shape, value):
    """Members of a structure in the model's order, as the Query protocol spells them."""
    for name, member in shape.members.items():
        if value.get(name) is None:
            continue
        element = _sub(parent, name)
        if member.type_name == 'structure':
            _write(element, member, value[name])
        elif member.type_name == 'timestamp':
            element.text = format_timestamp(value[name]) if isinstance(value[name], datetime.datetime) \
                else str(value[name])
        else:
            element.text = str(value[name])
