#!/usr/bin/env python3
"""Collapses an upgrade script: of a function defined several times in it, only the last
definition is kept, and the first one too when the function is new in the script (statements
between may need it to exist). Usage: upgrade-collapse.py SCRIPT BASE_SCRIPT [--write]
(BASE_SCRIPT: the release the script upgrades from). Prints what it would drop."""
import re, sys
path = sys.argv[1]; base = open(sys.argv[2]).read()  # base: the 1.0 script
lines = open(path).read().split('\n')
hdr = re.compile(r'^CREATE (?:OR REPLACE )?FUNCTION (steep_repl\.[A-Za-z_0-9]+)\(')
end = re.compile(r'^\$[A-Za-z_]*\$;\s*$')
c_fn = re.compile(r"AS 'MODULE_PATHNAME'")
blocks = []  # (start, end_inclusive, key)
i = 0
while i < len(lines):
    m = hdr.match(lines[i])
    if m:
        j = i
        # a C function has no dollar quote: it ends with its AS 'MODULE_PATHNAME' line
        while not end.match(lines[j]) and not (c_fn.search(lines[j]) and lines[j].rstrip().endswith(';')):
            j += 1
        text = '\n'.join(lines[i:j+1])
        # signature: name + the text up to RETURNS, whitespace-normalized, without arg defaults
        head = text.split(' RETURNS ')[0] if ' RETURNS ' in text else text.split('\n')[0]
        head = re.sub(r'^CREATE (?:OR REPLACE )?FUNCTION ', '', head)
        head = re.sub(r'\s+', ' ', head)
        blocks.append((i, j, head, m.group(1)))
        i = j + 1
    else:
        i += 1
from collections import defaultdict
by = defaultdict(list)
for b in blocks:
    by[b[2]].append(b)
in_base = lambda name: ('FUNCTION ' + name + '(') in base
drop = []
for key, bs in by.items():
    if len(bs) < 2:
        continue
    keep = {bs[-1][0]}
    if not in_base(bs[0][3]):
        keep.add(bs[0][0])
    drop += [b for b in bs if b[0] not in keep]
# statements at top level that execute code between a dropped block and its kept last one
execs = [k for k, l in enumerate(lines) if re.match(r'^(DO |SELECT |INSERT |UPDATE |DELETE )', l) and 'pg_extension_config_dump' not in l]
print('function blocks', len(blocks), 'signatures', len(by), 'blocks to drop', len(drop),
      'lines dropped', sum(b[1] - b[0] + 1 for b in drop), 'of', len(lines))
for k in execs:
    print('exec at', k + 1, lines[k][:100])
if '--write' in sys.argv:
    dl = set()
    for b in drop:
        dl.update(range(b[0], b[1] + 1))
        # a blank line after the block goes with it
        if b[1] + 1 < len(lines) and lines[b[1] + 1] == '':
            dl.add(b[1] + 1)
    out = [l for k, l in enumerate(lines) if k not in dl]
    open(path, 'w').write('\n'.join(out))
