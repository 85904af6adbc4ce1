"""Runtime behaviours not covered by the reference tests."""

import pytest
import wasmtime

from callscope.host import Host
from callscope.runtime.errors import Trap

# $A calls $B.get (async, result u32) through an async lower whose result
# pointer is the argument of $A.run: the result is stored there when $B returns.
ASYNC_RESULT_PTR = r"""
(component
  (component $B
    (core module $M
      (func (export "get") (result i32) (i32.const 42)))
    (core instance $m (instantiate $M))
    (func (export "get") async (result u32) (canon lift (core func $m "get"))))
  (component $A
    (import "get" (func $get async (result u32)))
    (core module $Mem (memory (export "mem") 1))
    (core instance $mem (instantiate $Mem))
    (core func $get' (canon lower (func $get) async (memory (core memory $mem "mem"))))
    (core module $M
      (import "" "mem" (memory 1))
      (import "" "get" (func $get (param i32) (result i32)))
      (func (export "run") (param $ptr i32) (result i32)
        (drop (call $get (local.get $ptr)))
        (i32.load (i32.and (i32.and (local.get $ptr) (i32.const -4)) (i32.const 0xfff0)))))
    (core instance $m (instantiate $M (with "" (instance
      (export "mem" (memory $mem "mem")) (export "get" (func $get'))))))
    (func (export "run") (param "ptr" u32) (result u32) (canon lift (core func $m "run"))))
  (instance $b (instantiate $B))
  (instance $a (instantiate $A (with "get" (func $b "get"))))
  (func (export "run") (alias export $a "run")))
"""


@pytest.fixture()
def run():
    host = Host()
    ex = host.instantiate(wasmtime.wat2wasm(ASYNC_RESULT_PTR))
    yield lambda ptr: host.call(ex.func("run"), [ptr])
    host.close()


def test_async_lower_stores_its_result_through_the_pointer(run):
    assert run(16) == [42]


def test_async_lower_result_pointer_must_be_aligned(run):
    with pytest.raises(Trap, match="unaligned"):
        run(17)


def test_async_lower_result_pointer_must_be_in_bounds(run):
    with pytest.raises(Trap, match="out of bounds|out-of-bounds"):
        run(65536)


def test_a_process_that_ran_guests_exits_cleanly():
    """Stores and engines left for interpreter shutdown to clean up must not
    crash the process at exit. (A fiber stack pool whose Python finalizer
    wasmtime called during shutdown once did, exit status 139, in a process
    that had also made native component calls; pytest's own exit status
    catches that case in CI, this checks the plain one.)"""
    import subprocess
    import sys
    code = (
        "import wasmtime, wasmtime.component\n"
        "from callscope.run import RunOptions, run\n"
        "from callscope.runtime import fiber\n"
        "from callscope.host import Host\n"
        "import io\n"
        "run(RunOptions(repeat=20, concurrency=4, record=False), out=io.StringIO())\n"
        "h = Host()\n"  # left open on purpose
        "eng = fiber.new_engine()\n"
        "store = wasmtime.Store(eng)\n"
        "c = wasmtime.component.Component(eng, wasmtime.wat2wasm('(component)'))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
