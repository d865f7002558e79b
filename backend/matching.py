"""EC2 filter value matching: `*` any run, `?` one character, `\\` escapes either. Case-sensitive."""
import functools
import re


@functools.lru_cache(maxsize=4096)
def wildcard(value):
    """A matcher for one filter value: exact, or a regex when it holds unescaped * or ?."""
    if '*' not in value and '?' not in value and '\\' not in value:
        return value.__eq__
    return re.compile(wildcard_regex(value), re.DOTALL).fullmatch


def wildcard_regex(value):
    parts = []
    escaped = False
    for char in value:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == '\\':
            escaped = True
        elif char == '*':
            parts.append('.*')
        elif char == '?':
            parts.append('.')
        else:
            parts.append(re.escape(char))
    if escaped:
        parts.append(re.escape('\\'))
    return ''.join(parts)
