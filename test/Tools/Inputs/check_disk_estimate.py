"""Holds quant-compile's disk estimate (its "disk: this run writes about"
log line, argv[1]) to the files a run wrote: the statistics shards of a
complete output (argv[2]), and the GPTQ results and the activations file in
the state of a run stopped after its last block (argv[3]); each within 10%.
The estimate counts two activation files (one read while the next is
written); a stopped state holds one."""
import glob
import os
import re
import sys

UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
line = next(l for l in open(sys.argv[1]) if "disk: this run writes about" in l)
parts = {name: float(v) * UNITS[u] for name, v, u in
         re.findall(r"(statistics|GPTQ results|activations) ([0-9.]+) (B|KiB|MiB|GiB|TiB)", line)}
out, state = sys.argv[2], os.path.join(sys.argv[3], "calibration.state")
size = lambda pattern: sum(os.path.getsize(p) for p in glob.glob(pattern))
actual = {"statistics": size(os.path.join(out, "stats-*-of-*.safetensors")),
          "GPTQ results": size(os.path.join(state, "gptq-*.safetensors")),
          "activations": 2 * size(os.path.join(state, "acts-*.bin"))}
bad = False
for name in ("statistics", "GPTQ results", "activations"):
    ratio = parts[name] / actual[name]
    print(f"{name}: estimate {parts[name]:.0f} B, written {actual[name]} B, ratio {ratio:.3f}")
    bad |= not 0.9 <= ratio <= 1.1
sys.exit(1 if bad else 0)
