"""Render result dicts as EC2 XML responses, driven by the operation's output shape.

A result is what boto3 would return (botocore member names); tags, list wrapping (`<xSet><item>`)
and value formats come from the model. Each shape is compiled once into a writer function that
appends text fragments, which keeps a 1,000-instance listing in the low milliseconds.
"""
import base64
import datetime
import re

from .service_model import response_version, xml_name

# Characters XML 1.0 cannot carry: the parser refuses them in requests, so nothing stored has them.
NOT_XML_CHARS = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_NEEDS_ESCAPING = re.compile('[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_writers = {}


def render_response(operation_model, result, request_id, version=None, extra_xml=''):
    """The whole response document for a successful call, as bytes."""
    root = operation_model.name + 'Response'
    namespace = f'http://ec2.amazonaws.com/doc/{response_version(version)}/'
    out = [_XML_DECLARATION, '<', root, ' xmlns="', namespace, '"><requestId>',
           escape(request_id), '</requestId>']
    shape = operation_model.output_shape
    if shape is None:
        out.append('<return>true</return>')   # what EC2 answers for actions with no output shape
    elif result:
        writer_for(shape)(result, out)
    out.extend((extra_xml, '</', root, '>'))
    return ''.join(out).encode('utf-8')


def render_error(code, message, request_id):
    """An error document: no namespace, exactly Code then Message (libcloud unpacks the pair)."""
    return (f'{_XML_DECLARATION}<Response><Errors><Error><Code>{escape(code)}</Code>'
            f'<Message>{escape(message)}</Message></Error></Errors>'
            f'<RequestID>{escape(request_id)}</RequestID></Response>').encode('utf-8')


def writer_for(shape):
    """The compiled writer of a shape's content (not its own tag): fn(value, out_list)."""
    writer = _writers.get(shape.name)
    if writer is None:
        # Register a forwarder first so recursive shapes resolve to the finished writer.
        _writers[shape.name] = lambda value, out: _writers[shape.name](value, out)
        writer = _compile(shape)
        _writers[shape.name] = writer
    return writer


def _compile(shape):
    kind = shape.type_name
    if kind == 'structure':
        return _structure_writer(shape)
    if kind == 'list':
        return _list_writer(shape)
    if kind == 'map':
        return _map_writer(shape)
    return _SCALAR_WRITERS.get(kind, _write_string)


def _member_rank(pair):
    """Scalars first, then tags, then other sets, as EC2 writes ids first: boto 2's SAX handlers end
    an item at the first nested </item> of a set they do not know, so what follows it would be lost,
    or taken for a new item."""
    name, member = pair
    if member.type_name not in ('list', 'structure', 'map'):
        return 0
    return 1 if name in ('Tags', 'TagSet') else 2


def _structure_writer(shape):
    members = sorted(shape.members.items(), key=_member_rank)
    fields = [(name, f'<{xml_name(name, member)}>', f'</{xml_name(name, member)}>', writer_for(member))
              for name, member in members]
    append_string = _SCALAR_WRITERS['string']

    def write_structure(value, out):
        get, append = value.get, out.append
        for name, open_tag, close_tag, write in fields:
            item = get(name)
            if item is None:
                continue
            append(open_tag)
            if write is append_string:        # the common case, inlined
                append(escape(item) if isinstance(item, str) else escape(str(item)))
            else:
                write(item, out)
            append(close_tag)
    return write_structure


def _list_writer(shape):
    item_tag = xml_name('item', shape.member) if shape.member.serialization else 'item'
    open_tag, close_tag = f'<{item_tag}>', f'</{item_tag}>'
    write_member = writer_for(shape.member)

    def write_list(values, out):
        for value in values:
            out.append(open_tag)
            write_member(value, out)
            out.append(close_tag)
    return write_list


def _map_writer(shape):
    write_key, write_value = writer_for(shape.key), writer_for(shape.value)

    def write_map(values, out):
        for key, value in values.items():
            out.append('<item><key>')
            write_key(key, out)
            out.append('</key><value>')
            write_value(value, out)
            out.append('</value></item>')
    return write_map


def _write_string(value, out):
    out.append(escape(str(value)))


def _write_number(value, out):
    out.append(str(value))


def _write_boolean(value, out):
    out.append('true' if value else 'false')


def _write_timestamp(value, out):
    out.append(format_timestamp(value))


def _write_blob(value, out):
    if isinstance(value, str):
        value = value.encode('utf-8')
    out.append(base64.b64encode(value).decode('ascii'))


def escape(text):
    """Escape markup, and CR (a parser folds a literal one into LF); the characters XML cannot represent
    at all are dropped, so even a message quoting a refused value stays a well-formed document."""
    if not _NEEDS_ESCAPING.search(text):
        return text
    text = text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('\r', '&#xD;')
    if NOT_XML_CHARS.search(text):
        text = NOT_XML_CHARS.sub('', text)
    return text


def format_timestamp(moment):
    """EC2's timestamp form, always UTC with milliseconds: 2026-11-24T16:02:17.000Z."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    # Formatted by hand: strftime costs twice as much, and listings format thousands of these.
    return (f'{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:'
            f'{moment.second:02d}.{moment.microsecond // 1000:03d}Z')


_SCALAR_WRITERS = {
    'string': _write_string,
    'integer': _write_number,
    'long': _write_number,
    'float': _write_number,
    'double': _write_number,
    'boolean': _write_boolean,
    'timestamp': _write_timestamp,
    'blob': _write_blob,
}
