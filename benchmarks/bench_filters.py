"""Worst-case filter matching: the longest values and the most wildcards a filter can hold.

    python3 benchmarks/bench_filters.py [--items 2000] [--repeat 5]

Tag values are at most 256 characters and filter values are taken up to that length too, so each
hostile pattern below is 255 characters of wildcards against 256-character values built to make a
backtracking matcher try every split. For each pattern it prints the cost per item matched (the best
of --repeat passes over --items values, every value a near miss or a late hit), through the same
filter engine every Describe* uses.
"""
import argparse
import time

from ec2api.filters import filter_items

LENGTH = 256
PATTERNS = {
    '*a repeated, then *b': '*a' * 127 + '*',
    '*a? repeated': '*a?' * 85,
    '?* repeated': '?*' * 127 + '?',
    '*aaaa…b (one long segment)': '*' + 'a' * 253 + 'b',
    '*a*a*a*a*a*a*a*b (the reported one)': '*a*a*a*a*a*a*a*b',
    '*aaa…a?d* (a long near miss at every place)': '*' + 'a' * 251 + '?d*',
    '*aaa…ad* (the same, without ?)': '*' + 'a' * 252 + 'd*',
    '*a…a?d*a…a?d* (two near misses)': ('*' + 'a' * 124 + '?d') * 2 + '*',
    '*a…a?d* (a half-length near miss)': '*' + 'a' * 127 + '?d' + '*',
}


def values(count):
    """Near misses: runs of `a` with the one character that would complete a match at varied places."""
    out = []
    for index in range(count):
        position = index % LENGTH
        out.append('a' * position + 'c' + 'a' * (LENGTH - position - 1))
    out[::7] = ['a' * (LENGTH - 1) + 'b'] * len(out[::7])     # some hit, late
    out[1::7] = ['a' * LENGTH] * len(out[1::7])                # some miss only at the very end
    return out


def measure(pattern, items, repeat):
    filters = [{'Name': 'value', 'Values': [pattern]}]
    fields = {'value': lambda item: item}
    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        matched = filter_items(items, filters, fields)
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best, len(matched)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--items', type=int, default=2000)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    items = values(args.items)
    print(f'{args.items} values of {LENGTH} characters, best of {args.repeat}')
    print(f'{"pattern":46} {"µs/item":>9} {"matched":>8}')
    for label, pattern in PATTERNS.items():
        best, matched = measure(pattern, items, args.repeat)
        print(f'{label:46} {best / len(items) * 1e6:9.1f} {matched:8}')


if __name__ == '__main__':
    main()
