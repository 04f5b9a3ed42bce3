#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Counts real tests in a meson testlog.json.

    tests/summary.py BUILDDIR/meson-logs/testlog.json…   (or just BUILDDIR…)

Several logs (the plain build's and the sanitizer build's) add up to one
line; failures are named with their build directory then.

A test that prints TAP counts each of its "ok"/"not ok" lines; any other
test counts once by its meson result. A TAP test that meson failed although
every line passed (crash after the last line, no plan, timeout) counts one
more failure. Failures are listed, then the last line is exactly
"N passed, N failed, N skipped". Exit 0 when nothing failed, 1 otherwise,
2 when the log cannot be read.
"""

import json
import os
import re
import sys

# "ok 3 - desc", "not ok 4 desc # SKIP why", "ok 5 # TODO later"
TAP_LINE = re.compile(r'^(?P<status>not ok|ok)\b\s*(?P<num>\d+)?\s*(?:-\s*)?(?P<desc>.*)$')
DIRECTIVE = re.compile(r'(?<!\\)#\s*(?P<kind>SKIP|TODO)\S*\s*(?P<reason>.*)$', re.IGNORECASE)
BAIL_OUT = re.compile(r'^Bail out!\s*(?P<reason>.*)$')

# Meson results that are not failures; EXPECTEDFAIL is a should_fail test
# that did fail, which is what it was asked to do.
PASSING = {'OK', 'EXPECTEDFAIL'}
SKIPPING = {'SKIP'}


class Counts:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def fail(self, name, what):
        self.failed += 1
        self.failures.append(f'{name}: {what}')


def tap_lines(stdout):
    """The top-level TAP result lines and a Bail out! reason, if any."""
    results, bail = [], None
    for line in stdout.splitlines():
        line = line.rstrip('\r')
        m = TAP_LINE.match(line)
        if m:
            desc = m.group('desc')
            d = DIRECTIVE.search(desc)
            kind = d.group('kind').upper() if d else None
            if d:
                desc = desc[:d.start()].rstrip()
            results.append((m.group('status'), m.group('num'), desc, kind, line))
            continue
        m = BAIL_OUT.match(line)
        if m and bail is None:
            bail = m.group('reason') or 'no reason given'
    return results, bail


def count_test(entry, counts):
    name = entry.get('name') or '(unnamed test)'
    result = str(entry.get('result', 'ERROR')).upper()
    results, bail = tap_lines(entry.get('stdout') or '')

    if not results:
        if result in PASSING:
            counts.passed += 1
        elif result in SKIPPING:
            counts.skipped += 1
        else:
            counts.fail(name, result + (f' (Bail out! {bail})' if bail else ''))
        return

    line_failed = False
    for status, _num, _desc, kind, line in results:
        if kind == 'SKIP':
            counts.skipped += 1
        elif kind == 'TODO':
            # As meson sees it: a failing TODO is expected, a passing one is news.
            if status == 'ok':
                counts.fail(name, line + ' (TODO passed unexpectedly)')
                line_failed = True
            else:
                counts.passed += 1
        elif status == 'ok':
            counts.passed += 1
        else:
            counts.fail(name, line)
            line_failed = True

    if result not in PASSING | SKIPPING and not line_failed:
        if bail:
            why = f'Bail out! {bail}'
        else:
            why = f'{result} although every TAP line passed (crash, missing plan or timeout?)'
        counts.fail(name, why)


def count_log(path, prefix, counts):
    """Counts one testlog.json into counts; False when it cannot be read."""
    if os.path.isdir(path):
        path = os.path.join(path, 'meson-logs', 'testlog.json')
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    entry = json.loads(raw)
                except json.JSONDecodeError as e:
                    counts.fail(f'{path}:{lineno}', f'not a JSON test record ({e.msg})')
                    continue
                if not isinstance(entry, dict):
                    counts.fail(f'{path}:{lineno}', 'not a JSON test record')
                    continue
                if prefix:
                    entry['name'] = prefix + str(entry.get('name') or '(unnamed test)')
                count_test(entry, counts)
    except OSError as e:
        print(f'{path}: {e.strerror}', file=sys.stderr)
        return False
    return True


def build_dir_of(path):
    """build-asan for build-asan/meson-logs/testlog.json or build-asan."""
    path = os.path.normpath(path)
    if not os.path.isdir(path):
        path = os.path.dirname(os.path.dirname(path))
    return os.path.basename(path) or path


def main(argv):
    if len(argv) < 2 or argv[1] in ('-h', '--help'):
        print(__doc__.strip(), file=sys.stderr)
        return 2

    counts = Counts()
    several = len(argv) > 2
    for path in argv[1:]:
        if not count_log(path, build_dir_of(path) + ': ' if several else '', counts):
            return 2

    if counts.failures:
        print('Failed:')
        for failure in counts.failures:
            print(f'  {failure}')
    print(f'{counts.passed} passed, {counts.failed} failed, {counts.skipped} skipped')
    return 0 if counts.failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
