"""The glue between callscope and wasmtime's fibers (design NOTES §2).

Every entry into wasm is a ``wasmtime_func_call_async`` future. While core
code runs inside one, a host function defined with
``wasmtime_linker_define_async_func`` may *block*: it hands wasmtime a
continuation that answers "not yet" and wasmtime suspends that wasm stack on
its own fiber, so ``poll`` returns False to whoever polled it. Polling the
same future again later calls the continuation again, which finishes the host
call and lets the wasm go on.

A host function here is a Python callable ``impl(args) -> list | generator``.
A list is the results (the fast path: no blocking). A generator blocks by
yielding a value; that value is handed to ``on_block`` (the runtime records
which thread to switch to, if any), and the generator is resumed with whatever
``HostCall.resume(value)`` passes in. When it returns, its return value is the
list of results.

Nothing here knows about tasks or threads: :mod:`callscope.runtime.thread`
builds those on top.
"""

from __future__ import annotations

import ctypes
import struct
from ctypes import byref, POINTER
from typing import Any, Callable, Optional, Sequence

import wasmtime
from wasmtime import _bindings, _ffi as ffi

from .errors import Trap

_I32 = ffi.WASMTIME_I32.value
_I64 = ffi.WASMTIME_I64.value
_F32 = ffi.WASMTIME_F32.value
_F64 = ffi.WASMTIME_F64.value
_KIND = {"i32": _I32, "i64": _I64, "f32": _F32, "f64": _F64}
_VALTYPE = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
}


def new_engine() -> wasmtime.Engine:
    """An engine with async support and the component-model features on."""
    cfg = wasmtime.Config()
    for name in (
        "wasmtime_config_wasm_component_model_set",
        "wasmtime_config_wasm_component_model_async_set",
        "wasmtime_config_wasm_component_model_more_async_builtins_set",
        "wasmtime_config_wasm_component_model_async_stackful_set",
    ):
        getattr(ffi, name)(cfg.ptr(), True)
    cfg.wasm_multi_memory = True
    cfg.wasm_reference_types = True
    # lets a run's timeout interrupt a guest stuck in wasm (stores set a
    # deadline far away unless a timeout is asked for)
    cfg.epoch_interruption = True
    return wasmtime.Engine(cfg)


def read_vals(ptr, n: int, types: Sequence[str]) -> list:
    out = []
    for i in range(n):
        v = ptr[i]
        k = v.kind
        if k == _I32:
            out.append(v.of.i32 & 0xFFFFFFFF)
        elif k == _I64:
            out.append(v.of.i64 & 0xFFFFFFFFFFFFFFFF)
        elif k == _F32:
            out.append(v.of.f32)
        elif k == _F64:
            out.append(v.of.f64)
        else:
            raise Trap(f"unsupported core value kind {k}")
    return out


def write_vals(ptr, values: Sequence, types: Sequence[str]) -> None:
    for i, (v, t) in enumerate(zip(values, types)):
        slot = ptr[i]
        slot.kind = _KIND[t]
        if t == "i32":
            slot.of.i32 = v
        elif t == "i64":
            slot.of.i64 = v
        elif t == "f32":
            slot.of.f32 = v
        else:
            slot.of.f64 = v


_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_val_t)
_VAL_OF = ffi.wasmtime_val_t.of.offset
_CODE = {"i32": ("I", 4, 0xFFFFFFFF), "i64": ("Q", 8, 0xFFFFFFFFFFFFFFFF), "f32": ("f", 4, None),
         "f64": ("d", 8, None)}


class ValCodec:
    """Reads and writes the core values of one tuple of core types in a
    ``wasmtime_val_t`` array given by address, as bytes through one
    ``struct`` format (what a host function's trampoline does on every
    call). Integers are read unsigned, as ``read_vals`` does; writing goes
    through ``write_vals`` when a float is among the types (``struct`` would
    refuse a float out of f32 range where ctypes rounds it to infinity)."""

    __slots__ = ("types", "n", "nbytes", "unpack", "pack", "kinds", "masks")

    def __init__(self, types: tuple):
        self.types = types
        self.n = len(types)
        self.nbytes = self.n * _VAL_SIZE
        reads, writes = [], []
        for t in types:
            code, width, _ = _CODE[t]
            reads.append(f"{_VAL_OF}x{code}{_VAL_SIZE - _VAL_OF - width}x")
            writes.append(f"B{_VAL_OF - 1}x{code}{_VAL_SIZE - _VAL_OF - width}x")
        self.unpack = struct.Struct("<" + "".join(reads)).unpack
        self.kinds = tuple(_KIND[t] for t in types)
        self.masks = tuple(_CODE[t][2] for t in types)
        ints = all(m is not None for m in self.masks)
        self.pack = struct.Struct("<" + "".join(writes)).pack if ints else None

    def read(self, addr: int) -> list:
        if not self.n:
            return []
        return list(self.unpack(_string_at(addr, self.nbytes)))

    def write(self, addr: int, values) -> None:
        if not self.n:
            return
        if self.pack is None or len(values) != self.n:
            write_vals((ffi.wasmtime_val_t * self.n).from_address(addr), values, self.types)
            return
        if self.n == 1:
            data = self.pack(self.kinds[0], values[0] & self.masks[0])
        else:
            fields = []
            for k, m, v in zip(self.kinds, self.masks, values):
                fields.append(k)
                fields.append(v & m)
            data = self.pack(*fields)
        _memmove(addr, data, len(data))


_string_at = ctypes.string_at
_memmove = ctypes.memmove


def functype(params: Sequence[str], results: Sequence[str]) -> wasmtime.FuncType:
    return wasmtime.FuncType([_VALTYPE[t]() for t in params], [_VALTYPE[t]() for t in results])


# --------------------------------------------------------------------------
# Errors crossing the C boundary

# A Python exception raised inside a ctypes callback cannot cross into Rust.
# We turn it into a wasm trap whose message names a slot here, and re-raise the
# original exception when that trap surfaces at the poll that observes it.
_PENDING_EXC: dict[int, BaseException] = {}
_exc_seq = 0
_MARK = "\x00callscope-exc#"


def _trap_ptr_for(exc: BaseException):
    global _exc_seq
    _exc_seq += 1
    _PENDING_EXC[_exc_seq] = exc
    msg = f"{_MARK}{_exc_seq}"
    data = msg.encode("utf-8")
    return ffi.wasmtime_trap_new(ctypes.create_string_buffer(data), len(data))


def _set_trap(trap_ret: int, exc: BaseException) -> None:
    """Hand ``exc`` to wasmtime as the trap of a host call (``trap_ret`` is
    the address of the trap out-pointer)."""
    ctypes.c_void_p.from_address(trap_ret).value = ctypes.cast(_trap_ptr_for(exc), ctypes.c_void_p).value


def _message_of(error_ptr, trap_ptr) -> BaseException:
    """Turn a wasmtime error or trap pointer into the exception to raise."""
    vec = ffi.wasm_byte_vec_t()
    if error_ptr:
        ffi.wasmtime_error_message(error_ptr, byref(vec))
        ffi.wasmtime_error_delete(error_ptr)
    else:
        ffi.wasm_trap_message(trap_ptr, byref(vec))
        ffi.wasm_trap_delete(trap_ptr)
    msg = ctypes.string_at(vec.data, vec.size).decode("utf-8", "replace")
    ffi.wasm_byte_vec_delete(byref(vec))
    i = msg.find(_MARK)
    if i >= 0:
        num = ""
        for ch in msg[i + len(_MARK):]:
            if not ch.isdigit():
                break
            num += ch
        exc = _PENDING_EXC.pop(int(num), None)
        if exc is not None:
            return exc
    return Trap(msg.rstrip("\x00"))


# --------------------------------------------------------------------------
# Host functions


class HostCall:
    """One call of an async host function that is blocked (its generator is
    suspended at a ``yield``)."""

    __slots__ = ("gen", "results", "nresults", "result_codec", "trap_ret", "resumed", "value", "slot")

    def __init__(self, gen, results: int, nresults, result_codec: "ValCodec", trap_ret: int):
        self.gen = gen
        self.results = results  # address of wasmtime's result array
        self.nresults = nresults
        self.result_codec = result_codec
        self.trap_ret = trap_ret  # address of wasmtime's trap out-pointer
        self.resumed = False
        self.value = None
        self.slot = 0

    def resume(self, value) -> None:
        """Mark this call to go on with ``value`` at the next poll."""
        self.resumed = True
        self.value = value

    def release(self) -> None:
        """Its future was deleted while it was blocked: forget it."""
        _HOST_CALLS.pop(self.slot, None)


class HostFunc:
    """A core function implemented in Python, for linking into core instances."""

    __slots__ = ("params", "results", "impl", "name", "_ty", "slot", "param_codec", "result_codec", "spread")

    def __init__(self, params: Sequence[str], results: Sequence[str], impl: Callable, name: str = "host",
                 spread: Optional[Callable] = None):
        self.params = tuple(params)
        self.results = tuple(results)
        self.param_codec = ValCodec(self.params)
        self.result_codec = ValCodec(self.results)
        self.impl = impl
        self.name = name
        self._ty = None
        self.slot = 0
        # the same as ``impl`` taking the core arguments spread, not as a list
        # (``impl(args)`` is ``spread(*args)``): the C trampoline calls it
        # with no list made (a built-in's ``partial`` of its immediates)
        self.spread = spread

    def wasm_type(self) -> wasmtime.FuncType:
        if self._ty is None:
            self._ty = functype(self.params, self.results)
        return self._ty


# Registries indexed by the C ``env`` pointer values.
_HOST_FUNCS: list[HostFunc] = [None]  # type: ignore[list-item]
_HOST_CALLS: dict[int, HostCall] = {}
_call_seq = 0

# Counts entries into and returns from wasm: memory views taken at one count
# stay valid until it changes (only running wasm can grow a memory). It
# changes a dozen times a subtask and is read about once, so it lives in the
# C trampoline's module when that is built (``epoch``/``bump_epoch`` are then
# its functions, and the trampoline counts without a Python call); these are
# the definition and the fallback.
_epoch_count = 0


def epoch() -> int:
    """The count of entries into and returns from wasm so far."""
    return _epoch_count


def bump_epoch() -> None:
    """Count one entry into or return from wasm."""
    global _epoch_count
    _epoch_count += 1


def memory_changed() -> None:
    """Host code that grows a wasm memory itself (not through wasm) calls
    this, so cached views of memories are taken again."""
    bump_epoch()


# Set by the runtime: called as on_block(host_call, yielded_value) when a host
# function's generator blocks.
on_block: Callable[[HostCall, Any], None] = lambda call, value: None


@ffi.wasmtime_func_async_continuation_callback_t
def _continuation(env):
    bump_epoch()
    call = _HOST_CALLS.get(env or 0)
    if call is None:
        return True
    if not call.resumed:
        return False
    call.resumed = False
    value, call.value = call.value, None
    try:
        blocked_on = call.gen.send(value)
    except StopIteration as stop:
        del _HOST_CALLS[call.slot]
        try:
            if call.nresults:
                call.result_codec.write(call.results, stop.value)
        except BaseException as exc:  # pragma: no cover - defensive
            _set_trap(call.trap_ret, exc)
        return True
    except BaseException as exc:
        del _HOST_CALLS[call.slot]
        _set_trap(call.trap_ret, exc)
        return True
    try:
        on_block(call, blocked_on)
    except BaseException as exc:
        del _HOST_CALLS[call.slot]
        _set_trap(call.trap_ret, exc)
        return True
    return False


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _no_finalizer(env):
    pass


@ffi.wasmtime_func_async_continuation_callback_t
def _ready(env):
    return True


# A continuation that says "done" (the host call returned at once), copied
# into wasmtime's continuation slot as bytes.
_READY_CONT = ffi.wasmtime_async_continuation_t(_ready, None, _no_finalizer)
_READY_CONT_AT = ctypes.addressof(_READY_CONT)
_CONT_SIZE = ctypes.sizeof(ffi.wasmtime_async_continuation_t)

# ``wasmtime_func_async_callback_t`` with every pointer a plain address: ctypes
# then makes no pointer objects on each call.
_ASYNC_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                   ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)


@_ASYNC_CALLBACK
def _async_trampoline(env, caller, args, nargs, results, nresults, trap_ret, cont):
    global _call_seq
    bump_epoch()
    hf = _HOST_FUNCS[env or 0]
    _memmove(cont, _READY_CONT_AT, _CONT_SIZE)
    try:
        r = hf.impl(hf.param_codec.read(args) if nargs else [])
        if r.__class__ is list:
            if nresults:
                hf.result_codec.write(results, r)
            return
        try:
            blocked_on = r.send(None)
        except StopIteration as stop:
            if nresults:
                hf.result_codec.write(results, stop.value)
            return
        _call_seq += 1
        call = HostCall(r, results, nresults, hf.result_codec, trap_ret)
        call.slot = _call_seq
        _HOST_CALLS[_call_seq] = call
        c = ffi.wasmtime_async_continuation_t.from_address(cont)
        c.callback = _continuation
        c.env = _call_seq
        on_block(call, blocked_on)
    except BaseException as exc:
        _set_trap(trap_ret, exc)


_async_trampoline_c = ctypes.cast(_async_trampoline, ffi.wasmtime_func_async_callback_t)


def _register(hf: HostFunc) -> int:
    if not hf.slot:
        _HOST_FUNCS.append(hf)
        hf.slot = len(_HOST_FUNCS) - 1
        # (a driver's ``next`` is done in C entirely: its impl None)
        _ENTRIES.append((None if hf.impl is _next_impl else hf.impl, bytes(_KIND[t] for t in hf.results),
                         hf.spread))
    return hf.slot


# The C trampoline (callscope/runtime/_fiber.c): the same callback and
# continuation as ``_async_trampoline``/``_continuation``, without ctypes.
# It finds a host function's (impl, result kinds) in ``_ENTRIES`` by slot.
# ``define_host`` uses it when it is built and ``C_TRAMPOLINE`` is set
# (tests set it to None to run the Python one).
_ENTRIES: list = [None]
try:
    from . import _fiber as _cfiber
except ImportError:  # not built (no compiler when installed): the ctypes trampoline
    _cfiber = None
    C_TRAMPOLINE = None
else:
    _cfiber.init(_ENTRIES, globals(), _VAL_SIZE, _VAL_OF,
                 ctypes.cast(_bindings.dll.wasmtime_call_future_poll, ctypes.c_void_p).value)
    C_TRAMPOLINE = ctypes.cast(_cfiber.TRAMPOLINE, ffi.wasmtime_func_async_callback_t)
    epoch = _cfiber.epoch  # noqa: F811  (one counter: the C one)
    bump_epoch = _cfiber.bump_epoch  # noqa: F811


def unregister(slots) -> None:
    """Forget the host functions in these registry slots (their store is
    gone): the registry held them, and through their closures the store, its
    instances and its observer, for the life of the process."""
    for slot in slots:
        hf = _HOST_FUNCS[slot]
        if hf is not None:
            hf.slot = 0
            _HOST_FUNCS[slot] = None
            _ENTRIES[slot] = None


def define_host(linker: wasmtime.Linker, module: str, name: str, hf: HostFunc) -> int:
    slot = _register(hf)
    m = module.encode("utf-8")
    n = name.encode("utf-8")
    err = ffi.wasmtime_linker_define_async_func(
        linker.ptr(), ctypes.create_string_buffer(m), len(m), ctypes.create_string_buffer(n), len(n),
        hf.wasm_type().ptr(), C_TRAMPOLINE or _async_trampoline_c, slot, _no_finalizer)
    if err:
        raise _message_of(err, None)
    return slot


# --------------------------------------------------------------------------
# Calls into wasm


# Futures still alive, by store: they must be deleted before their store is
# (a suspended fiber outliving its store crashes wasmtime). ``release(store)``
# deletes them; ``atexit`` does it for every store left.
_LIVE: dict = {}


def release(store) -> None:
    futs = _LIVE.pop(id(store), None)
    parked = release_drivers(store)
    try:
        del store._callscope_live
    except AttributeError:
        pass
    if futs:
        for f in list(futs.values()):
            f._delete()
    for call in parked:  # (their futures are gone: their continuations never run again)
        call.release()


def release_all() -> None:
    for key in list(_LIVE):
        futs = _LIVE.pop(key, {})
        for f in list(futs.values()):
            f._delete()


import atexit  # noqa: E402

atexit.register(release_all)


_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_val_t)
_VAL_OF = ffi.wasmtime_val_t.of.offset
_SCALAR = {"i32": (ctypes.c_int32, 0xFFFFFFFF), "i64": (ctypes.c_int64, 0xFFFFFFFFFFFFFFFF),
           "f32": (ctypes.c_float, 0), "f64": (ctypes.c_double, 0)}


class CallBuffers:
    """The ctypes argument and result arrays of a call into wasm, and its
    trap/error out-pointers, for one signature. Each value's kind is written
    once; ``arg_slots``/``result_slots`` view the payloads directly. One call
    uses a set at a time: taken from ``_BUFFERS`` when a call starts, given
    back once its results have been read (nested and concurrent calls take
    sets of their own)."""

    __slots__ = ("key", "args", "results", "nargs", "nresults", "arg_slots", "result_slots", "trap", "error",
                 "args_at", "results_at", "trap_at", "error_at")

    def __init__(self, key):
        params, results = key
        self.key = key
        self.nargs = len(params)
        self.nresults = len(results)
        self.args = (ffi.wasmtime_val_t * max(self.nargs, 1))()
        self.results = (ffi.wasmtime_val_t * max(self.nresults, 1))()
        self.arg_slots = self._slots(self.args, params)
        self.result_slots = tuple((v, _SCALAR[t][1]) for v, t in zip(self._slots(self.results, results), results))
        self.trap = POINTER(ffi.wasm_trap_t)()
        self.error = POINTER(ffi.wasmtime_error_t)()
        self.args_at = ctypes.addressof(self.args)
        self.results_at = ctypes.addressof(self.results)
        self.trap_at = ctypes.addressof(self.trap)
        self.error_at = ctypes.addressof(self.error)

    @staticmethod
    def _slots(arr, types) -> tuple:
        out = []
        for i, t in enumerate(types):
            arr[i].kind = _KIND[t]
            out.append(_SCALAR[t][0].from_buffer(arr, i * _VAL_SIZE + _VAL_OF))
        return tuple(out)


# free CallBuffers by (param types, result types)
_BUFFERS: dict[tuple, list] = {}


def _raw(name: str, restype, *argtypes):
    """A function of wasmtime's C API as a ctypes function of its own, taking
    plain addresses (``c_void_p``): no wasmtime-py wrapper and no pointer
    type checks on the hot paths."""
    f = _bindings.dll[name]  # a new function object, not wasmtime-py's
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_VOID_P = ctypes.c_void_p
_call_async = _raw("wasmtime_func_call_async", _VOID_P, _VOID_P, _VOID_P, _VOID_P, ctypes.c_size_t, _VOID_P,
                   ctypes.c_size_t, _VOID_P, _VOID_P)
_future_poll = _raw("wasmtime_call_future_poll", ctypes.c_bool, _VOID_P)
_future_delete = _raw("wasmtime_call_future_delete", None, _VOID_P)


def _poll_ctypes(ptr) -> bool:
    """``wasmtime_call_future_poll`` of the future at ``ptr``, the return
    from wasm counted. ``_fiber.poll`` is this in C, without ctypes' argument
    and result conversions; ctypes releases the GIL around the call, the C
    one only when another thread could take it (``_fiber.c``)."""
    done = _future_poll(ptr)
    bump_epoch()
    return done


_poll = _cfiber.poll if _cfiber is not None else _poll_ctypes


class CallFuture:
    """One ``wasmtime_func_call_async`` in flight."""

    __slots__ = ("store", "func", "bufs", "ptr", "done", "live")

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, args: Sequence, param_types: Sequence[str],
                 result_types: Sequence[str]):
        self.store = store
        key = (param_types, result_types)
        try:
            free = _BUFFERS[key]
        except (KeyError, TypeError):  # a new signature, or types given as lists
            key = (tuple(param_types), tuple(result_types))
            free = _BUFFERS.setdefault(key, [])
        bufs = free.pop() if free else CallBuffers(key)
        self.bufs = bufs
        for slot, v in zip(bufs.arg_slots, args):
            slot.value = v
        self.func = func._func
        self.done = False
        try:
            ctx = store._callscope_ctx_at
        except AttributeError:  # wasmtime-py computes the context anew on every call
            ctx = store._callscope_ctx_at = ctypes.cast(store._context(), _VOID_P).value
        try:
            live = store._callscope_live
        except AttributeError:
            live = store._callscope_live = _LIVE.setdefault(id(store), {})
        self.live = live
        self.ptr = _call_async(ctx, ctypes.addressof(self.func), bufs.args_at, bufs.nargs, bufs.results_at,
                               bufs.nresults, bufs.trap_at, bufs.error_at)
        live[id(self)] = self

    def _delete(self):
        if self.ptr is not None:
            _future_delete(self.ptr)
            self.ptr = None
        self.live.pop(id(self), None)

    def poll(self) -> bool:
        """Run the call until it finishes (True) or blocks (False)."""
        if _poll(self.ptr):
            self.done = True
            return True
        return False

    def outcome(self) -> list:
        """The results of a finished call; raises the trap it ended with."""
        assert self.done
        self._delete()
        bufs = self.bufs
        if bufs.error or bufs.trap:
            # (these buffers' out-pointers are spent: not reused)
            raise _message_of(bufs.error, bufs.trap)
        out = [v.value & m if m else v.value for v, m in bufs.result_slots]
        _BUFFERS[bufs.key].append(bufs)
        return out


def call_to_completion(store, func: wasmtime.Func, args, param_types, result_types) -> list:
    """Call core ``func`` and poll it until it returns. For calls that cannot
    block (realloc, post-return, a callback inside a sync context...)."""
    fut, driver = start_call(store, func, args, param_types, result_types)
    if driver is None:
        if not fut.poll():
            raise Trap("cannot block a synchronous task before returning")
        return fut.outcome()
    # On a driver (realloc and post-return run with may_leave cleared, so
    # nothing inside can block or resume another thread): the driver's
    # ``next`` parking on the results is caught here, not by the thread.
    global on_block
    saved = on_block
    parked = []

    def catch(call, value):
        if value.__class__ is list and not parked:
            parked.append((call, value))
        else:
            saved(call, value)

    on_block = catch
    try:
        done = fut.poll()
    finally:
        on_block = saved
    if done:
        return fut.outcome()  # (a driver's call ends only by a trap: this raises it)
    if not parked:
        raise Trap("cannot block a synchronous task before returning")
    call, results = parked[0]
    driver.park(call)
    return results


def instantiate(store: wasmtime.Store, linker: wasmtime.Linker, module: wasmtime.Module) -> wasmtime.Instance:
    inst = ffi.wasmtime_instance_t()
    trap = POINTER(ffi.wasm_trap_t)()
    error = POINTER(ffi.wasmtime_error_t)()
    fut = ffi.wasmtime_linker_instantiate_async(linker.ptr(), store._context(), module.ptr(), byref(inst),
                                                byref(trap), byref(error))
    try:
        done = ffi.wasmtime_call_future_poll(fut)
        bump_epoch()
        if not done:
            raise Trap("cannot block a synchronous task before returning")
    finally:
        ffi.wasmtime_call_future_delete(fut)
    if error or trap:
        raise _message_of(error, trap)
    return wasmtime.Instance._from_raw(inst)


# --------------------------------------------------------------------------
# Drivers: long-lived fibers that run one core call after another

# A call into wasm through ``CallFuture`` is a new ``wasmtime_func_call_async``:
# a new future and a new fiber, whose stack wasmtime maps afresh when the
# store's one spare stack is taken (an async lower starts the callee while
# the caller's call holds it), then unmaps. A *driver* is one such call that
# never ends: a small core module per signature whose ``drive`` export calls
# the function it is given through a table (``call_indirect``), hands the
# results to the host import ``next`` and, blocked inside it, waits for the
# next function and arguments. A thread whose core call has returned gives
# its driver back to its store's pool, parked in ``next``; the next core call
# of that signature, by any thread, resumes it there. So a callback costs one
# poll of a suspended fiber instead of a future, a fiber stack and a
# ``call_future_delete``.
#
# Exactness: the callee runs on a fiber as before, blocks in built-ins as
# before, and a trap ends the driver's call as it would have ended the
# callee's (the driver is dropped, not reused). ``next`` yields the list of
# the callee's results where a built-in yields a ``Block``: the thread then
# knows its core call has returned.


def _next_impl(results):
    req = yield results
    return req


_TYPE_NAMES = ("i32", "i64", "f32", "f64")


def _driver_wat(params: tuple, results: tuple) -> str:
    P = " ".join(params)
    R = " ".join(results)
    ps = " ".join(f"(param $p{i} {t})" for i, t in enumerate(params))
    rs = " ".join(f"(local $r{i} {t})" for i, t in enumerate(results))
    get_p = " ".join(f"(local.get $p{i})" for i in range(len(params)))
    get_r = " ".join(f"(local.get $r{i})" for i in range(len(results)))
    set_r = " ".join(f"(local.set $r{i})" for i in reversed(range(len(results))))
    set_p = " ".join(f"(local.set $p{i})" for i in reversed(range(len(params))))
    return f"""(module
  (type $sig (func (param {P}) (result {R})))
  (import "" "next" (func $next (param {R}) (result i32 {P})))
  (import "" "t" (table 0 funcref))
  (func (export "drive") {ps} (param $idx i32) {rs}
    (loop $l
      (call_indirect (type $sig) {get_p} (local.get $idx))
      {set_r}
      (call $next {get_r})
      {set_p}
      (local.set $idx)
      (br $l))))"""


_DRIVER_MODULES: dict = {}
# parked drivers kept per signature; more are let go (their calls deleted)
MAX_PARKED = 64
# Set to False to run every core call as a call of its own (tests compare).
USE_DRIVERS = True


class Driver:
    """One ``drive`` call in flight: its future and, while parked, the
    blocked ``next`` call that resumes it."""

    __slots__ = ("future", "call", "pool")

    def __init__(self, future, pool):
        self.future = future
        self.call = None
        self.pool = pool

    def park(self, call) -> None:
        """The core call it ran has returned; ``call`` is the blocked ``next``."""
        self.call = call
        pool = self.pool
        if len(pool) < MAX_PARKED:
            pool.append(self)
        else:
            self.future._delete()
            self.call = None
            call.release()


class _Drivers:
    """A store's drivers: the table of functions they call, one instance of
    each signature's driver module, the parked drivers by signature."""

    __slots__ = ("store", "table", "index", "funcs", "kinds", "slots", "sites")

    def __init__(self, store):
        self.store = store
        self.table = wasmtime.Table(store, wasmtime.TableType(wasmtime.ValType.funcref(), wasmtime.Limits(0, None)),
                                    None)
        self.index: dict = {}  # wasmtime.Func -> table index
        self.funcs: list = []  # (keeps the Funcs alive)
        self.kinds: dict = {}  # (params, results) -> (drive Func, parked list) or None
        self.slots: list = []
        # wasmtime.Func (and its raw bytes) -> (drive, parked drivers, table
        # index), or None when no driver takes its signature
        self.sites: dict = {}

    def site(self, func, key):
        # The same function may come as a new wasmtime.Func object each time
        # (a table's element, e.g. for thread.new-indirect): known by its
        # (store id, index) bytes, it takes one table slot for good, and only
        # the first Func object seen is kept in ``sites``.
        raw = bytes(func._func)
        site = self.sites.get(raw, False)
        if site is False:
            k = self.kind(key)
            site = self.sites[raw] = self.sites[func] = (
                (k[0], k[1], self.func_index(func)) if k is not None else None)
        return site

    def kind(self, key):
        k = self.kinds.get(key, False)
        if k is not False:
            return k
        params, results = key
        k = None
        if all(t in _TYPE_NAMES for t in params + results):
            store = self.store
            mkey = (id(store.engine), key)
            module = _DRIVER_MODULES.get(mkey)
            if module is None:
                module = _DRIVER_MODULES[mkey] = wasmtime.Module(store.engine, _driver_wat(params, results))
            linker = wasmtime.Linker(store.engine)
            linker.define(store, "", "t", self.table)
            hf = HostFunc(results, ("i32",) + params, _next_impl, "next")
            self.slots.append(define_host(linker, "", "next", hf))
            inst = instantiate(store, linker, module)
            k = (inst.exports(store)["drive"], [])
        self.kinds[key] = k
        return k

    def func_index(self, func) -> int:
        i = self.index.get(func)
        if i is None:
            i = self.table.grow(self.store, 1, func)
            self.index[func] = i
            self.funcs.append(func)
        return i


def start_call(store, func, args, param_types, result_types):
    """Start a core call: on a parked driver of its signature, a new driver,
    or (a signature no driver takes) a call of its own. Returns the future
    to poll and the driver (None for a call of its own). A driver's poll
    returning False with a list yielded means the call returned."""
    try:
        drivers = store._callscope_drivers
    except AttributeError:
        drivers = store._callscope_drivers = _Drivers(store) if USE_DRIVERS else None
    if drivers is not None:
        try:
            site = drivers.sites[func]
        except KeyError:
            site = drivers.site(func, (param_types, result_types))
        if site is not None:
            drive, pool, idx = site
            if pool:
                d = pool.pop()
                call, d.call = d.call, None
                call.resume([idx, *args])
                return d.future, d
            d = Driver(None, pool)
            d.future = CallFuture(store, drive, [*args, idx], param_types + ("i32",), ())
            return d.future, d
    return CallFuture(store, func, args, param_types, result_types), None


def release_drivers(store) -> list:
    """Forget a store's drivers; returns the blocked ``next`` calls of the
    parked ones, to ``release`` once their futures are deleted."""
    d = getattr(store, "_callscope_drivers", None)
    parked = []
    if d is not None:
        del store._callscope_drivers
        unregister(d.slots)
        for k in d.kinds.values():
            if k is not None:
                parked.extend(drv.call for drv in k[1] if drv.call is not None)
                k[1].clear()
        d.kinds.clear()
        d.sites.clear()
    return parked
