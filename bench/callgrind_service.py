"""callgrind of exactly bench/run.py's timed region of a componentize-py
guest row ((e) service, (f) fanout): collection off from the start, on when
the run has instantiated the guest (``plan_requests``, the first thing
after ``instantiate_s``), off when the run ends (``Host.close``, the first
thing after ``elapsed_s``), so the counts are the requests' and the trace's
close, recorded or not, without decoding/precompiling/instantiating.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --collect-atstart=no \
        --callgrind-out-file=OUT python bench/callgrind_service.py service|fanout N [--no-record]

Per request: (N=60 - N=20) / 40; once a run: N=20 less 20 of those.
``--flush-ms MS``: the recorder's 100 ms rule at MS instead (under valgrind
a run takes ~50x its time, so the rule cuts a chunk every few requests where
bench/run.py's ~30 ms run cuts none: 5000 counts what the bench runs).
The toggle is valgrind's client request, from a small C library built here
(needs <valgrind/callgrind.h>); outside valgrind it does nothing."""
import ctypes
import os
import subprocess
import sys
import tempfile

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, "bench"))
sys.path.insert(0, os.path.join(_ROOT, "examples"))


def _toggler():
    d = tempfile.mkdtemp(prefix="cgtoggle")
    src, lib = os.path.join(d, "t.c"), os.path.join(d, "t.so")
    with open(src, "w") as f:
        f.write("#include <valgrind/callgrind.h>\nvoid toggle(void) { CALLGRIND_TOGGLE_COLLECT; }\n")
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", lib, src], check=True)
    return ctypes.CDLL(lib).toggle


def main():
    import build
    import callscope.run as csrun
    from callscope.host import Host
    from run import _callscope_run
    toggle = _toggler()
    wasm = str(build.build(sys.argv[1]))
    on = [False]
    plan = csrun.plan_requests

    def plan_requests(*a, **k):
        if not on[0]:
            on[0] = True
            toggle()
        return plan(*a, **k)

    close = Host.close

    def host_close(self):
        if on[0]:
            on[0] = False
            toggle()
        return close(self)

    csrun.plan_requests = plan_requests
    Host.close = host_close
    if "--flush-ms" in sys.argv:
        from callscope.trace import recorder
        ns = int(float(sys.argv[sys.argv.index("--flush-ms") + 1]) * 1e6)
        init = recorder.Recorder.__init__

        def rec_init(self, *a, **k):
            k["flush_interval_ns"] = ns
            init(self, *a, **k)
        recorder.Recorder.__init__ = rec_init
    _callscope_run("--no-record" not in sys.argv[3:], guest=wasm, repeat=int(sys.argv[2]), concurrency=8)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
