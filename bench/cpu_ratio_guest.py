"""CPU time (time.process_time) of the fan-out guest recorded against not,
in one process, the two interleaved (the order flipped each repetition):

    .venv/bin/python bench/cpu_ratio_guest.py ROOT N REPS

ROOT the checkout whose bench/ and examples/ to use (its callscope is the
interpreter's); prints the medians and the per-pair ratios."""
import os, sys, time, statistics
root = sys.argv[1]
sys.path.insert(0, os.path.join(root, "bench")); sys.path.insert(0, os.path.join(root, "examples"))
import build
from run import _callscope_run
wasm = str(build.build("fanout"))
n = int(sys.argv[2]); reps = int(sys.argv[3])
_callscope_run(True, guest=wasm, repeat=50, concurrency=8); _callscope_run(False, guest=wasm, repeat=50, concurrency=8)
ratios = []
t = {True: [], False: []}
for i in range(reps):
    for rec in ((True, False) if i % 2 else (False, True)):
        c0 = time.process_time(); _callscope_run(rec, guest=wasm, repeat=n, concurrency=8); t[rec].append(time.process_time() - c0)
    ratios.append(t[True][-1] / t[False][-1])
print(root, "cpu rec", statistics.median(t[True]), "norec", statistics.median(t[False]), "median pair ratio %.3f" % statistics.median(ratios), "ratios", " ".join("%.3f" % r for r in sorted(ratios)))
