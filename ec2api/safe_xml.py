"""Parsing XML from the network: no DTD, no entity expansion, no network access, bounded size.

SOAP 1.1 forbids a document type declaration in a message, so one is refused outright rather than
parsed with its entities left unexpanded: an entity bomb never reaches the parser's expansion.
libxml2's own limits (depth, text node size) hold since huge_tree stays off.
"""
import threading

from lxml import etree

from .errors import EC2Error

MAX_ELEMENTS = 20_000        # far more than any EC2 request has; bounds the work a message can cause
_local = threading.local()


def parse(document):
    """The root element of `document` (bytes), or EC2Error InvalidRequest saying what is wrong."""
    if b'<!DOCTYPE' in document or b'<!ENTITY' in document:
        raise _refused('a document type declaration is not allowed in a SOAP message')
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as error:
        raise _refused(f'it is not well-formed XML ({error.msg})') from None
    if root is None:
        raise _refused('it is empty')
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:    # in an encoding the byte check missed
        raise _refused('a document type declaration is not allowed in a SOAP message')
    count = 0
    for _ in root.iter():
        count += 1
        if count > MAX_ELEMENTS:
            raise _refused(f'it has more than {MAX_ELEMENTS} elements')
    return root


def _parser():
    # lxml parsers keep state per parse: one per thread.
    parser = getattr(_local, 'parser', None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
            huge_tree=False, collect_ids=False)
    return parser


def _refused(reason):
    return EC2Error('InvalidRequest', f'The SOAP message was refused: {reason}.')
