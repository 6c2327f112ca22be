"""Writes the PTX text of the first gpu.binary object (format=isa) to argv[2].

The object's `assembly = "..."` string uses MLIR escapes (\\XX hex, \\\\, \\")."""
import re
import sys

text = open(sys.argv[1]).read()
m = re.search(r'assembly = "((?:[^"\\]|\\.)*)"', text)
if not m:
    sys.exit("no gpu.object assembly in " + sys.argv[1])
ptx = re.sub(r'\\([0-9A-Fa-f]{2}|\\|")',
             lambda g: g.group(1) if g.group(1) in ('\\', '"') else chr(int(g.group(1), 16)),
             m.group(1))
open(sys.argv[2], "w").write(ptx)
