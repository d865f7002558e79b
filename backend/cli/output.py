"""How the `reservoir` command prints: tables for people, JSON for scripts."""
import dataclasses
import datetime
import json
from pathlib import Path


def plain(record):
    """A record as JSON-ready values."""
    def value(item):
        if isinstance(item, datetime.datetime):
            return item.isoformat()
        if isinstance(item, Path):
            return str(item)
        if isinstance(item, tuple):
            return list(item)
        return item
    return {field.name: value(getattr(record, field.name)) for field in dataclasses.fields(record)}


def print_json(data):
    print(json.dumps(data, indent=2))


def print_table(headings, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(headings, *rows)]
    for row in (headings, *rows):
        print('  '.join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def timestamp(moment):
    return moment.strftime('%Y-%m-%d %H:%M:%SZ')


def size(size_bytes):
    if size_bytes is None:
        return '-'
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if size_bytes < 1024:
            return f'{size_bytes:.0f}{unit}' if unit == 'B' else f'{size_bytes:.1f}{unit}'
        size_bytes /= 1024
    return f'{size_bytes:.1f}TiB'
