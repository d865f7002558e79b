"""botocore's EC2 service model: the single source of wire names, list flattening, types and shapes.

Loading it takes ~0.2 s, so it is loaded once per process. Older API versions ship with botocore too;
clients sending them (2014-10-01, 2015-10-01) use the same wire spellings for every action we serve,
so the newest model parses and renders for all of them.
"""
import functools
import re

import botocore.session

DEFAULT_VERSION = '2016-11-15'
_VERSION_PATTERN = re.compile(r'^\d{4}-\d{2}-\d{2}$')


@functools.cache
def ec2_model():
    return botocore.session.get_session().get_service_model('ec2')


@functools.cache
def operation(action):
    """The operation model for an Action name, or None if EC2 has no such action."""
    model = ec2_model()
    if action not in model.operation_names:
        return None
    return model.operation_model(action)


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
