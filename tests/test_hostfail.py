"""Host exceptions become a trap of the import call, recorded with the
import's name and one line, exit 3; guest-chosen sizes are checked before
use (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from callscope.cli import main
from callscope.trace import TraceReader

HERE = Path(__file__).resolve().parent


@pytest.fixture
def guest(tmp_path):
    wasm = tmp_path / "hostfail.wasm"
    wasm.write_bytes(wasmtime.wat2wasm((HERE / "guests" / "hostfail.wat").read_text()))
    return wasm


def traps(path):
    with TraceReader(path) as r:
        return [ev.get("message") for ev in r.events() if ev.kind == "trap"]


MODULE = {
    "raises": "def f(call, args):\n    raise ValueError('bad\\nthing')\n",
    "memory": "def f(call, args):\n    raise MemoryError()\n",
    "wrong-type": "def f(call, args):\n    return ['not a u32']\n",
    "not-a-list": "def f(call, args):\n    return 5\n",
}


@pytest.mark.parametrize("which, words", [
    ("raises", ("host import test:host/api#f raised ValueError: bad thing",)),
    ("memory", ("MemoryError",)),
    ("wrong-type", ("test:host/api#f", "returned a value")),
    ("not-a-list", ("test:host/api#f", "returned a value")),
])
def test_import_module_exception_is_a_trap_of_the_import(guest, tmp_path, capsys, which, words):
    mod = tmp_path / "imports.py"
    mod.write_text(MODULE[which])
    out = tmp_path / "t.trace"
    code = main(["run", str(guest), "--invoke", "callf(1)", "--import-module", str(mod), "-o", str(out)])
    err = capsys.readouterr()
    assert code == 3, err
    assert "Traceback" not in err.out + err.err
    msgs = traps(out)
    assert msgs and all(w in msgs[0] for w in words), msgs
    assert "\n" not in msgs[0]


def test_guest_chosen_random_size_is_checked(guest, tmp_path, capsys):
    out = tmp_path / "t.trace"
    code = main(["run", str(guest), "--invoke", f"rand({2**32})", "--allow-unknown-imports", "-o", str(out)])
    err = capsys.readouterr()
    assert code == 3 and "Traceback" not in err.out + err.err
    msgs = traps(out)
    assert msgs and "get-random-bytes(4294967296)" in msgs[0] and "more than" in msgs[0]
    assert main(["run", str(guest), "--invoke", "rand(32)", "--allow-unknown-imports", "-o", str(out)]) == 0


def test_a_host_timer_callback_that_raises_is_a_trap_naming_the_import():
    from callscope.runtime.errors import Trap
    from callscope.runtime.hostfunc import HostCall

    class Store:
        def call_later(self, delay, fn):
            fn()

    class Func:
        name = "wasi:http/client@0.3.0#send"

    hc = HostCall(Store(), Func(), [], None, None, lambda r: None)

    def boom():
        raise KeyError("late")

    with pytest.raises(Trap, match=r"host import wasi:http/client@0.3.0#send raised KeyError: 'late'"):
        hc.later(10, boom)
