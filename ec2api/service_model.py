"""botocore's EC2 service model: the single source of wire names, list flattening, types and shapes.

Loading it takes ~0.2 s, so it is loaded once per process. Older API versions ship with botocore too;
clients sending them (2014-10-01, 2015-10-01) use the same wire spellings for every action we serve,
so the newest model parses and renders for all of them.

The administrators' actions are data of the same kind: a botocore service model of their own
(`admin_model.json`, service `reservoir-admin`, EC2 protocol, signed as `ec2`), so the same parser
and renderer serve them, and a boto3 client given that model calls them.
"""
import functools
import json
import re
from pathlib import Path

import botocore.model
import botocore.session

DEFAULT_VERSION = '2016-11-15'
ADMIN_SERVICE = 'reservoir-admin'
ADMIN_MODEL_PATH = Path(__file__).resolve().parent / 'admin_model.json'
_VERSION_PATTERN = re.compile(r'^\d{4}-\d{2}-\d{2}$')


@functools.cache
def ec2_model():
    return botocore.session.get_session().get_service_model('ec2')


@functools.cache
def admin_model():
    with open(ADMIN_MODEL_PATH, encoding='utf-8') as document:
        return botocore.model.ServiceModel(json.load(document), service_name=ADMIN_SERVICE)


@functools.cache
def operation(action):
    """The operation model for an Action name (EC2's, or an administrators' action), or None."""
    for model in (ec2_model(), admin_model()):
        if action in model.operation_names:
            return model.operation_model(action)
    return None


def is_admin_action(action):
    """Whether only administrators may call `action`."""
    return action in admin_model().operation_names


def response_version(requested):
    """The API version to echo in the response namespace; junk falls back to the default."""
    if requested and _VERSION_PATTERN.match(requested):
        return requested
    return DEFAULT_VERSION


def wire_name(member_name, member_shape):
    """How a request member is spelled on the wire (the EC2 protocol's rule, as botocore serializes)."""
    serialization = member_shape.serialization
    if 'queryName' in serialization:
        return serialization['queryName']
    if 'name' in serialization:
        name = serialization['name']
        return name[0].upper() + name[1:]
    return member_name


def xml_name(member_name, member_shape):
    """How a response member is tagged in XML."""
    return member_shape.serialization.get('name', member_name)
