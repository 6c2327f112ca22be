"""Checks that docs/importer.md names every case of the expected-refusals list
(conformance.test): a refusal is allowed only when documented with its reason."""
import sys

refusals, docs = sys.argv[1], sys.argv[2]
text = open(docs, encoding="utf-8").read()
missing = []
for line in open(refusals, encoding="utf-8"):
    name = line.split("#", 1)[0].split()
    if name and name[0] not in text:
        missing.append(name[0])
if missing:
    print("refused cases not documented in %s: %s" % (docs, " ".join(missing)))
    sys.exit(1)
print("all refusals documented")
