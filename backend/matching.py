"""EC2 filter value matching: `*` any run, `?` one character, `\\` escapes either. Case-sensitive.

A pattern is matched in time bounded by the product of its length and the value's, never by
backtracking: `*` splits it into segments of fixed length (`?` counts one character), and such
segments can be taken greedily, each at its leftmost place after the one before. A regular
expression with `.*` instead backtracks exponentially on patterns like `*a*a*a*a*b`, and holds the
interpreter lock while it does.
"""
import functools
import re


@functools.lru_cache(maxsize=4096)
def wildcard(value):
    """A predicate on strings for one filter value: exact, or a wildcard pattern."""
    if '*' not in value and '?' not in value and '\\' not in value:
        return value.__eq__
    segments = _segments(value)
    if len(segments) == 1:
        return _Segment(segments[0]).whole
    return _Pattern([_Segment(chars) for chars in segments]).matches


def _segments(pattern):
    """The pattern split at unescaped `*`: lists of characters, with None standing for `?`."""
    segments, current, escaped = [], [], False
    for char in pattern:
        if escaped:
            current.append(char)
            escaped = False
        elif char == '\\':
            escaped = True
        elif char == '*':
            segments.append(current)
            current = []
        elif char == '?':
            current.append(None)
        else:
            current.append(char)
    if escaped:
        current.append('\\')
    segments.append(current)
    return segments


class _Segment:
    """A run of literal characters and `?`s: a fixed number of characters, found without backtracking."""

    def __init__(self, chars):
        self.length = len(chars)
        self.literal = None if None in chars else ''.join(chars)
        # Literals and `.` only: the engine scans each start once, with no choice points to revisit.
        self.regex = re.compile(''.join('.' if char is None else re.escape(char) for char in chars),
                                re.DOTALL)

    def whole(self, text):
        if self.literal is not None:
            return text == self.literal
        return len(text) == self.length and self.regex.match(text) is not None

    def at(self, text, position):
        """True when the segment matches `text` starting exactly at `position`."""
        if self.literal is not None:
            return text.startswith(self.literal, position)
        return self.regex.match(text, position) is not None

    def find(self, text, start, end):
        """The leftmost position in [start, end) where the segment fits before `end`, or -1."""
        if self.literal is not None:
            return text.find(self.literal, start, end)
        found = self.regex.search(text, start, end)
        return -1 if found is None else found.start()


class _Pattern:
    """Segments separated by `*`: the first anchored at the start, the last at the end."""

    def __init__(self, segments):
        self.first, *self.middle, self.last = segments
        self.minimum = sum(segment.length for segment in segments)

    def matches(self, text):
        if len(text) < self.minimum or not self.first.at(text, 0):
            return False
        tail_start = len(text) - self.last.length
        if not self.last.at(text, tail_start):
            return False
        position = self.first.length
        for segment in self.middle:
            found = segment.find(text, position, tail_start)
            if found < 0:
                return False
            position = found + segment.length
        return True
