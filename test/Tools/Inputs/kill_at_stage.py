"""Runs a command and SIGKILLs it as soon as its calibration manifest
(argv[1]) names at least argv[2] committed stages: a crash in the middle of
a run, for the --resume test. With argv[2] "file", as soon as the file
argv[1] exists instead (e.g. the statistics index: a crash during the steps
after calibration). Exits 1 if the command ended first."""
import json
import os
import signal
import subprocess
import sys
import time

manifest, cmd = sys.argv[1], sys.argv[3:]
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while proc.poll() is None:
    if sys.argv[2] == "file":
        if os.path.exists(manifest):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            print(f"killed once {os.path.basename(manifest)} existed")
            sys.exit(0)
        time.sleep(0.0002)
        continue
    stages = int(sys.argv[2])
    try:
        with open(manifest) as f:
            done = json.load(f)["stages"]
    except (OSError, ValueError, KeyError):
        done = 0
    if done >= stages:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"killed after {done} stages")
        sys.exit(0)
    time.sleep(0.001)
print(f"the command ended first (exit {proc.returncode})")
sys.exit(1)
