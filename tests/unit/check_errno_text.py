#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# The error contract (docs/errors.md, lib/common/error.h): a call site passes errno to
# the error helper and the helper appends its text once. This check fails on the
# double pattern - an errno-taking helper whose message also carries strerror(...),
# strerrordesc_np(...) or %m - in lib/, daemon/, cli/, vmm/ and agent/. TAP.
#
# Helpers and the (0-based) index of their errno argument; a literal 0 there means
# "no errno", and then formatting strerror yourself is the only way to say it.
import os
import re
import sys

HELPERS = {
    'silo_fail': 2,        # lib/common/error.h
    'silo_fail_vm': 2,
    'die_errno': None,     # always appends strerror(errno)
    'send_error': 1,       # agent/agent.c: the host appends strerror(code) (docs/protocol.md)
}
DIRS = ['lib', 'daemon', 'cli', 'vmm', 'agent']
TEXT = re.compile(r'\bstrerror(desc_np)?\s*\(|\bstrerror_r\s*\(')
CALL = re.compile(r'\b(' + '|'.join(HELPERS) + r')\s*\(')


def string_end(src, i):
    """Index just past the string or character literal that opens at src[i]."""
    j = i + 1
    while j < len(src) and src[j] != src[i]:
        j += 2 if src[j] == '\\' else 1
    return j + 1


def strip_comments(src):
    """Blank out comments, keep strings and line numbers."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith('/*', i):
            j = src.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', src[i:j]))
            i = j
        elif src.startswith('//', i):
            j = src.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif c in '"\'':
            j = string_end(src, i)
            out.append(src[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def call_args(src, start):
    """Split the arguments of the call whose '(' is at start; None if unbalanced."""
    depth, args, cur, i, n = 0, [], [], start, len(src)
    while i < n:
        c = src[i]
        if c in '"\'':
            j = string_end(src, i)
            cur.append(src[i:j])
            i = j
            continue
        if c in '([{':
            depth += 1
            if depth > 1:
                cur.append(c)
        elif c in ')]}':
            depth -= 1
            if depth == 0:
                args.append(''.join(cur).strip())
                return args
            cur.append(c)
        elif c == ',' and depth == 1:
            args.append(''.join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    return None


def strings(arg):
    return ''.join(re.findall(r'"((?:[^"\\]|\\.)*)"', arg))


def findings(path):
    src = strip_comments(open(path, encoding='utf-8', errors='replace').read())
    for m in CALL.finditer(src):
        name = m.group(1)
        args = call_args(src, m.end() - 1)
        if not args:
            continue
        idx = HELPERS[name]
        if idx is not None:
            if len(args) <= idx or args[idx] == '0':
                continue
        rest = args[(idx or -1) + 1:] if idx is not None else args
        text = ' '.join(rest)
        fmt = ''.join(strings(a) for a in rest)
        if TEXT.search(text) or re.search(r'(?<!%)%m', fmt):
            line = src.count('\n', 0, m.start()) + 1
            yield line, name


def main():
    root = os.environ.get('SILO_SOURCE_ROOT') or os.path.join(os.path.dirname(__file__), '..', '..')
    files = []
    for d in DIRS:
        for dirpath, _, names in os.walk(os.path.join(root, d)):
            files += [os.path.join(dirpath, f) for f in sorted(names) if f.endswith(('.c', '.h'))]
    files.sort()
    bad = []
    for f in files:
        for line, name in findings(f):
            bad.append('%s:%d: %s' % (os.path.relpath(f, root), line, name))
    print('1..2')
    if len(files) < 50:
        print('not ok 1 - sources found under %s (only %d files)' % (root, len(files)))
    else:
        print('ok 1 - %d source files scanned' % len(files))
    if bad:
        for b in bad:
            print('# %s: errno passed and its text formatted too (let the helper append it)' % b)
        print('not ok 2 - no call site formats the errno text the error helper appends (%d found)' % len(bad))
        return 1
    print('ok 2 - no call site formats the errno text the error helper appends')
    return 0 if len(files) >= 50 else 1


if __name__ == '__main__':
    sys.exit(main())
