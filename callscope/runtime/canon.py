"""The canonical definitions (CanonicalABI.md "Canonical Definitions"):
``canon lift``, ``canon lower`` and every built-in, each a short function
named after the ``canon`` it defines.

Each built-in becomes a core function for wasm through the linker's table
(``callscope.component.linker._BUILTINS``): called with its immediates and
the core arguments, it returns the results list, or a generator when it may
block.
"""

from __future__ import annotations

from enum import IntEnum
from functools import partial
from typing import Callable, Optional

from callscope.component import abi
from callscope.component.abi import CoreValueIter, LiftLowerContext
from callscope.component.types import (FuncType, OwnType, U32Type, MAX_FLAT_PARAMS, MAX_FLAT_RESULTS,
                                       MAX_FLAT_ASYNC_PARAMS)
from . import fiber
from .enums import MemberEnumType
from .errors import Trap, host_failure, trap_if
from .handles import ResourceHandle, ErrorContext, Table
from .instance import DEADLOCK, ComponentInstance, Store
from .thread import (STACK, Cancelled, CoreFunc, Task, Thread, call_core, call_core_now, current_thread,
                     current_task, current_instance, realloc_thread, _always)
from .waitables import (BufferGuestImpl, CopyResult, CopyState, EventCode, ReadableBufferGuestImpl,
                        ReadableFutureEnd, ReadableStreamEnd, SharedFutureImpl, SharedStreamImpl, Subtask,
                        Waitable, WaitableSet, WritableBufferGuestImpl, WritableFutureEnd, WritableStreamEnd)

BLOCKED = 0xFFFF_FFFF

CANNOT_LEAVE = "cannot leave component instance"
CANNOT_ENTER = "wasm trap: cannot enter component instance"
CANNOT_BLOCK = "cannot block a synchronous task before returning"
SYNC_IN_SET = "waitable cannot be used synchronously while added to a waitable set"


class CallbackCode(IntEnum, metaclass=MemberEnumType):
    EXIT = 0
    YIELD = 1
    WAIT = 2
    MAX = 2


class FuncInst:
    """A component-level function value: ``f(on_start, on_resolve, caller)``
    returns the ``on_cancel`` of the call (the spec's ``FuncInst``)."""

    __slots__ = ("ft", "name", "call", "host", "inst", "fast")

    def __init__(self, ft: FuncType, call: Callable, name: str = "", host: bool = False, inst=None):
        self.ft = ft
        self.call = call
        self.name = name
        self.host = host
        self.inst = inst
        # a host function a sync lower may call directly, bypassing the
        # subtask machinery (set by hostfunc for functions without borrows)
        self.fast = None

    def __call__(self, on_start, on_resolve, caller):
        return self.call(on_start, on_resolve, caller)


def _handle(inst, i, cls):
    """The handle at index ``i`` of ``inst``'s table, which must be a ``cls``."""
    h = inst.handles.get(i)
    if not isinstance(h, cls):
        raise Trap("unknown handle index %d" % i)
    return h


def _take_handle(inst, i, cls):
    """Remove the handle at ``i`` (it must be a ``cls``) from the table."""
    h = inst.handles.remove(i)
    if not isinstance(h, cls):
        raise Trap("unknown handle index %d" % i)
    return h


def check_may_leave(inst) -> None:
    if not inst.may_leave:
        raise Trap(CANNOT_LEAVE)


def may_run_during_sync_call(t, inst) -> bool:
    """Whether ready thread ``t`` may be resumed while a non-``async``-typed
    call into ``inst`` is in progress (test/async/during-sync-call-*.wast,
    component-model #691): only a thread of that call's own component
    instance (never a sibling's: no unexpected reentrance) that can use the
    stack, i.e. not the implicit thread of an ``async``-typed task that needs
    exclusive use of it (sync-lifted, or lifted with a callback)."""
    if t.task.inst is not inst or t.index is None or not t.ready():
        return False
    task = t.task
    return not (t is task.implicit_thread and task.ft.async_ and task.needs_exclusive())


def check_may_block(task) -> None:
    """A non-``async``-typed task that has not returned may block only when,
    at the point of blocking, another thread is ready to run that may run
    during its call (``may_run_during_sync_call``): whether a thread may
    block depends on the threads there are to switch to, not on the task's
    function type alone (async/during-sync-call-may-block-if-other-ready-
    threads.wast)."""
    if not task.ft.async_ and task.state is not Task.State.RESOLVED:
        inst = task.inst
        for t in inst.store.waiting:
            if may_run_during_sync_call(t, inst):
                return
        raise Trap(CANNOT_BLOCK)


def make_realloc(f: Optional[CoreFunc], inst: Optional[ComponentInstance] = None):
    """The ``realloc`` option as the ABI calls it. Each call runs as the spec's
    ``LiftLowerContext.reallocate`` runs it: ``canon_lift``ed as a sync
    function of ``inst``, on a new task and thread whose context slots start
    at 0 (component-model #680), never on the thread that lowers the value."""
    if f is None:
        return None

    def realloc(old, old_size, align, new_size):
        caller = STACK[-1].task if STACK else None
        STACK.append(realloc_thread(inst if inst is not None else caller.inst, caller))
        try:
            return call_core_now(f, [old, old_size, align, new_size])[0]
        finally:
            STACK.pop()

    return realloc


class CallPlan:
    """What every call through one ``canon lift`` or ``canon lower``
    definition would otherwise work out again, worked out once when it is
    linked: its options' pointer type and mask, and the ValuesPlans of its
    parameters and results (the flat types' counts, the max-flat limits of
    its direction and sync/async, the spill decisions, the lifters and
    lowerers, whether memory is touched at all)."""

    __slots__ = ("ptr_type", "mask", "params", "results")

    def __init__(self, ft: FuncType, opts, max_flat_params: int, max_flat_results: int):
        self.ptr_type, self.mask = abi.opts_shape(opts)
        self.params = abi.values_plan(ft.param_types(), self.ptr_type, max_flat_params)
        self.results = abi.values_plan(ft.result_type(), self.ptr_type, max_flat_results)


def lift_plan(ft: FuncType, opts) -> CallPlan:
    """The callee lowers its arguments (at most MAX_FLAT_PARAMS flat) and,
    if sync, lifts its results (at most MAX_FLAT_RESULTS)."""
    return CallPlan(ft, opts, MAX_FLAT_PARAMS, MAX_FLAT_RESULTS)


def lower_plan(ft: FuncType, opts) -> CallPlan:
    """The caller lifts the arguments and lowers the results: a sync lower
    within MAX_FLAT_PARAMS/MAX_FLAT_RESULTS, an async one within
    MAX_FLAT_ASYNC_PARAMS, its results (if any) stored through a pointer."""
    if not opts.async_:
        return CallPlan(ft, opts, MAX_FLAT_PARAMS, MAX_FLAT_RESULTS)
    return CallPlan(ft, opts, MAX_FLAT_ASYNC_PARAMS, 0)


# ---------------------------------------------------------------------------
# canon lift


def lift(store, callee: CoreFunc, ft: FuncType, opts, inst: ComponentInstance, name: str = "",
         ancestry_check: bool = True) -> FuncInst:
    """The spec's ``Store.lift``: a function value that enters ``inst``."""
    plan = lift_plan(ft, opts)
    if LIFT_CALL is not None:
        # func_inst below in C (_fiber.LiftCall: the same checks, traps and
        # marks around the call of canon_lift), its fi set as the cell is
        call = LIFT_CALL(inst, callee, ft, opts, plan, ancestry_check)
        fi = FuncInst(ft, call, name, inst=inst)
        call.fi = fi
        return fi
    related: dict = {}  # caller -> whether it is inst, an ancestor or a descendant (parent chains never change)

    def func_inst(on_start, on_resolve, caller):
        if inst.poisoned:
            raise Trap(CANNOT_ENTER)
        # inst.may_enter_from / enter_from / leave_to, over the entering set
        # looked up once
        entering = inst.entering_set(caller)
        for i in entering:
            if not i.may_enter:
                raise Trap(CANNOT_ENTER)
        if ancestry_check and caller is not None:
            rel = related.get(caller)
            if rel is None:
                rel = related[caller] = (caller in inst.self_and_ancestors()
                                         or inst in caller.self_and_ancestors())
        else:
            rel = False
        if rel:
            # The reference tests (async/trap-on-reenter.wast: "for now, trap
            # on parent-to-child" and child-to-parent) refuse calls between a
            # component instance and its own ancestors, though the spec's
            # definitions.py and wasmtime 50 allow them; the tests are our bar.
            raise Trap(CANNOT_ENTER)
        for i in entering:
            i.may_enter = False
        try:
            return canon_lift(callee, ft, opts, plan, inst, on_start, on_resolve, fi.name)
        finally:
            for i in entering:
                i.may_enter = True

    fi = FuncInst(ft, func_inst, name, inst=inst)
    return fi


def canon_lift(callee: CoreFunc, ft: FuncType, opts, plan: CallPlan, inst, on_start, on_resolve,
               name: str = ""):
    caller_task = STACK[-1].task if STACK else None
    task = Task(ft, opts, inst, on_start, on_resolve, caller=caller_task, name=name)

    def thread_func():
        if not (yield from task.enter_implicit_thread()):
            return
        cx = LiftLowerContext(opts, inst, task, caller_task is None, plan.ptr_type, plan.mask)
        args = task.start()
        flat_args = abi.lower_values(cx, plan.params, args)

        if not opts.async_:
            flat_results = yield from call_core(callee, flat_args)
            result = abi.lift_values(cx, plan.results, CoreValueIter(flat_results))
            task.return_(result)
            if opts.post_return is not None:
                inst.may_leave = False
                call_core_now(opts.post_return, flat_results)
                inst.may_leave = True
            task.exit_implicit_thread()
            return

        if opts.callback is None:
            yield from call_core(callee, flat_args)
            task.exit_implicit_thread()
            return

        [packed] = yield from call_core(callee, flat_args)
        code, si = unpack_callback_result(packed)

        def not_exclusive():
            return inst.exclusive_thread is None

        callback = opts.callback
        while code != CallbackCode.EXIT:
            if inst.exclusive_thread is thread:
                inst.exclusive_thread = None
            returned = task.state is Task.State.RESOLVED
            # (the spec's ``returned or inst.exclusive_thread is None``, with
            # ``returned`` as it is now: a wait drops its condition when it ends)
            may_run = _always if returned else not_exclusive

            if code == CallbackCode.YIELD:
                cancelled = yield from thread.wait_until(may_run, cancellable=True, always_block=True)
                event = (EventCode.TASK_CANCELLED, 0, 0) if cancelled else (EventCode.NONE, 0, 0)
            else:  # WAIT
                wset = inst.handles.get(si)
                if not isinstance(wset, WaitableSet):
                    raise Trap("wasm trap: unknown handle index %d" % si)
                obs = inst.store.observer
                if obs is not None:
                    obs.waitable_set_wait(thread, si)
                event = yield from wset.wait_for_event_and(may_run, cancellable=True)
            if not returned:
                inst.exclusive_thread = thread
            event_code, p1, p2 = event
            obs = inst.store.observer
            if obs is not None:
                obs.event_delivered(thread, int(event_code), p1, p2)
            [packed] = yield from call_core(callback, [int(event_code), p1, p2])
            code = packed & 0xF
            if code > 2:  # (unpack_callback_result inline)
                raise Trap("unsupported callback code: %d" % code)
            si = packed >> 4
        task.exit_implicit_thread()

    if CALLBACK_THREAD is not None and opts.async_ and opts.callback is not None:
        # thread_func's callback path in C (the same steps: see CALLBACK_THREAD)
        body = CALLBACK_THREAD(task, inst, opts, plan, callee, caller_task is None)
        thread = Thread(task, body)
        body.thread = thread
    else:
        thread = Thread(task, thread_func)
    thread.resume()
    if not ft.async_:
        store = inst.store
        while task.state is not Task.State.RESOLVED:
            # the spec's inst.threads: registered threads only (a call still
            # held back by backpressure has not registered its thread yet)
            candidates = [t for t in store.waiting if may_run_during_sync_call(t, inst)]
            if not candidates:
                # Ready threads the call may not resume (another instance's;
                # an implicit thread needing the stack exclusively) leave the
                # loop nothing to do: a deadlock (wasmtime's words, as the
                # during-sync-call tests expect). With none ready at all, the
                # task simply may not block.
                if any(t.ready() for t in store.waiting):
                    raise Trap(DEADLOCK)
                raise Trap(CANNOT_BLOCK)
            store.choose(candidates).resume()
    return task.request_cancellation


# canon_lift's ``thread_func`` for a function lifted ``async`` with a
# ``callback`` (the callback ABI's event loop), in C: ``_fiber.CallbackThread``
# does the generator's steps in the same order, calling the same functions and
# methods, and raises the same traps; each ``yield from`` forwards to the same
# Python generator (``wait_until``, ``wait_for_event_and``) or core call.
# ``thread_func`` above stays the definition and is what runs when
# ``_fiber`` is not built, or with this set to None (as tests do to compare).
CALLBACK_THREAD = None
if fiber._cfiber is not None:
    fiber._cfiber.init_callback_thread(LiftLowerContext, abi.lower_values, call_core, WaitableSet, EventCode.NONE,
                                       EventCode.TASK_CANCELLED, Task.State.RESOLVED, _always, Trap)
    CALLBACK_THREAD = fiber._cfiber.CallbackThread

# canon_lift and lift's func_inst in C (_fiber.canon_lift for an async-typed
# function lifted async with a callback while CALLBACK_THREAD is the C one,
# anything else the Python function; _fiber.LiftCall for func_inst); the
# Python ones stay the definitions and the fallbacks (tests put them back:
# canon_lift = _canon_lift_py, LIFT_CALL = None).
_canon_lift_py = canon_lift
LIFT_CALL = None
if fiber._cfiber is not None:
    fiber._cfiber.init_canon_lift(globals(), Task, Task.State.INITIAL, Store.new_id, CANNOT_ENTER, Trap,
                                  _canon_lift_py, FuncInst)
    canon_lift = fiber._cfiber.canon_lift  # noqa: F811
    LIFT_CALL = fiber._cfiber.LiftCall


def unpack_callback_result(packed):
    code = packed & 0xF
    if code > 2:  # CallbackCode.MAX
        raise Trap("unsupported callback code: %d" % code)
    return code, packed >> 4


# ---------------------------------------------------------------------------
# canon lower


def canon_lower(callee: FuncInst, ft: FuncType, opts, plan: CallPlan, flat_args):
    """The core function a ``canon lower`` defines (``plan``: its
    ``lower_plan``). Returns the results, or, when the call must wait (a
    sync lower of a call that has not returned), a generator that blocks
    until it has and then returns them."""
    thread = STACK[-1]
    task = thread.task
    inst = task.inst
    if not inst.may_leave:
        raise Trap(CANNOT_LEAVE)
    async_ = opts.async_
    if not async_ and ft.async_:
        check_may_block(task)
    if not async_ and callee.fast is not None:
        return _call_host_sync(callee, opts, plan, thread, task, inst, flat_args)
    flat_args = CoreValueIter(flat_args)
    params, results = plan.params, plan.results

    subtask = Subtask()
    cx = LiftLowerContext(opts, inst, subtask, callee.host, plan.ptr_type, plan.mask)
    progress = None
    obs = inst.store.observer
    record = obs is not None and callee.host
    call_id = 0

    def on_start():
        nonlocal call_id
        if progress is not None:
            progress()
        subtask.state = Subtask.State.STARTED
        args = abi.lift_values(cx, params, flat_args)
        if record:
            call_id = obs.import_call(task, callee, args)
        return args

    def on_resolve(result):
        nonlocal call_id
        if progress is not None:
            progress()
        if result is None:
            if subtask.state == Subtask.State.STARTING:
                subtask.resolve(Subtask.State.CANCELLED_BEFORE_STARTED, [])
            else:
                subtask.resolve(Subtask.State.CANCELLED_BEFORE_RETURNED, [])
        else:
            try:
                flat_results = abi.lower_values(cx, results, result, flat_args)
            except Trap:
                raise
            except Exception as e:  # the host returned what its type cannot hold
                raise host_failure(callee.name, e, "returned a value its result type cannot hold:") from None
            subtask.resolve(Subtask.State.RETURNED, flat_results)
        if record:
            if not call_id:  # (cancelled before it started: an id of its own)
                call_id = obs.next_call_id()
            obs.import_return(call_id, result)

    subtask.on_cancel = callee(on_start, on_resolve, inst)

    if not async_:
        if subtask.state < Subtask.State.RETURNED:
            return _await_sync_lower(thread, subtask)
        subtask.deliver_resolve()
        return subtask.flat_results
    if subtask.state >= Subtask.State.RETURNED:
        subtask.deliver_resolve()
        return [int(Subtask.State.RETURNED)]
    subtaski = inst.handles.add(subtask)

    def subtask_event():
        if subtask.resolved():
            subtask.deliver_resolve()
        return (EventCode.SUBTASK, subtaski, int(subtask.state))

    def on_progress():
        subtask.pending_event = subtask_event  # (set_pending_event)

    progress = on_progress
    if obs is not None:
        obs.subtask_new(task, subtaski, callee.name, int(subtask.state))
    return [int(subtask.state) | (subtaski << 4)]


# canon_lower of an ``async`` lower in C (_fiber.canon_lower: the same steps,
# its closures as small C callables sharing their cells), and of a sync lower
# of a host function with a fast path (_call_host_sync's steps, below); the
# function above stays the definition, the fallback, and what runs every
# other sync lower. The linker takes whichever is canon_lower when it links a
# definition.
_canon_lower_py = canon_lower
if fiber._cfiber is not None:
    fiber._cfiber.init_canon_lower(_canon_lower_py, abi, Subtask, CoreValueIter, LiftLowerContext, host_failure, Trap,
                                   CANNOT_LEAVE, EventCode.SUBTASK)
    canon_lower = fiber._cfiber.canon_lower  # noqa: F811
    # (Subtask() and subtask.resolve for it, and cx.refresh for lift/lower_values,
    # by those methods' steps while the classes have them)
    fiber._cfiber.init_small_steps(Subtask, LiftLowerContext)


def _call_host_sync(callee, opts, plan, thread, task, inst, flat_args):
    """A sync ``canon lower`` of a host function: the spec's subtask is never
    visible to the guest here (the call returns before the caller goes on and
    no borrow is lent), so the host function is called directly."""
    HostCall, Pending = _HOSTFUNC_TYPES or _hostfunc_types()
    cx = LiftLowerContext(opts, inst, None, True, plan.ptr_type, plan.mask)
    vi = CoreValueIter(flat_args)
    args = abi.lift_values(cx, plan.params, vi)
    obs = inst.store.observer
    call_id = obs.import_call(task, callee, args) if obs is not None else 0
    box = []
    hc = HostCall(inst.store, callee.fast, args, task, inst, box.append)
    try:
        r = callee.fast.impl(hc, args)
    except Trap:
        raise
    except Exception as e:  # host code failed: a trap of this import call
        raise host_failure(callee.name, e) from None
    if r.__class__ is not Pending:
        if not hc.done:
            hc.done = True
            box.append([] if r is None else r)
        return _host_results(cx, plan, vi, box[0], obs, call_id, callee.name)
    return _await_host(thread, hc, box, cx, plan, vi, obs, call_id, callee.name)


_HOSTFUNC_TYPES = None


def _hostfunc_types():
    global _HOSTFUNC_TYPES
    if _HOSTFUNC_TYPES is None:  # hostfunc imports this module: bind late, once
        from .hostfunc import HostCall, Pending
        _HOSTFUNC_TYPES = (HostCall, Pending)
        if fiber._cfiber is not None:  # (_fiber.canon_lower's sync lowers of these: _call_host_sync in C)
            fiber._cfiber.init_host_sync(HostCall, Pending, _await_host)
    return _HOSTFUNC_TYPES


def _host_results(cx, plan, vi, result, obs, call_id, name="?"):
    try:
        flat = abi.lower_values(cx, plan.results, result, vi)
        for v in flat:  # (core values are numbers: a str or None here is a host's wrong result)
            if v.__class__ is not int and v.__class__ is not float:
                raise TypeError(f"{v!r:.60} for a core {'value' if v is None else type(v).__name__}")
    except Trap:
        raise
    except Exception as e:  # the host returned what its type cannot hold
        raise host_failure(name, e, "returned a value its result type cannot hold:") from None
    if obs is not None:
        obs.import_return(call_id, result)
    return flat


def _await_host(thread, hc, box, cx, plan, vi, obs, call_id, name="?"):
    yield from thread.wait_until(lambda: bool(box))
    return _host_results(cx, plan, vi, box[0], obs, call_id, name)


def _await_sync_lower(thread, subtask):
    yield from thread.wait_until(subtask.resolved)
    subtask.deliver_resolve()
    return subtask.flat_results


# ---------------------------------------------------------------------------
# resources


def canon_resource_new(rt, rep):
    thread = STACK[-1]
    inst = thread.task.inst
    check_may_leave(inst)
    if inst.store.observer is not None:
        # lineage: the root under which this resource came to be
        inst.store.resource_roots[(rt, rep)] = thread.task.root
    return [inst.handles.add(ResourceHandle(rt, rep, own=True))]


DTOR_FT = FuncType((("rep", U32Type()),), ())
DTOR_OPTS = abi.CanonicalOptions()
DTOR_LOWER_PLAN = lower_plan(DTOR_FT, DTOR_OPTS)


def canon_resource_drop(rt, async_, i):
    inst = current_instance()
    check_may_leave(inst)
    h = inst.handles.get(i)
    abi._check_resource(h, i, OwnType(rt))
    trap_if(h.num_lends != 0, "cannot remove owned resource while borrowed")
    inst.handles.remove(i)
    if h.own:
        if inst.store.observer is not None:
            inst.store.resource_roots.pop((rt, h.rep), None)
        if rt.dtor is not None:
            f = getattr(rt, "dtor_func", None)
            if f is None:
                f = lift(inst.store, rt.dtor, DTOR_FT, abi.CanonicalOptions(), rt.impl, name="[dtor]",
                         ancestry_check=False)
                rt.dtor_func = f
            r = canon_lower(f, DTOR_FT, DTOR_OPTS, DTOR_LOWER_PLAN, [h.rep])
            if r.__class__ is not list:
                yield from r
    else:
        h.borrow_scope.num_borrows -= 1
    return []


def canon_resource_rep(rt, i):
    h = current_instance().handles.get(i)
    abi._check_resource(h, i, OwnType(rt))
    return [h.rep]


# ---------------------------------------------------------------------------
# context, backpressure, task.return / task.cancel


def canon_context_get(i):
    return [current_thread().storage[i]]


def canon_context_set(i, v):
    current_thread().storage[i] = v
    return []


def canon_backpressure_inc():
    inst = current_instance()
    inst.backpressure += 1
    trap_if(inst.backpressure == 2 ** 16, "backpressure counter overflow")
    if inst.store.observer is not None:
        inst.store.observer.backpressure(inst, "inc")
    return []


def canon_backpressure_dec():
    inst = current_instance()
    inst.backpressure -= 1
    trap_if(inst.backpressure < 0, "backpressure counter underflow")
    if inst.store.observer is not None:
        inst.store.observer.backpressure(inst, "dec")
    return []


def canon_backpressure_set(flag):
    inst = current_instance()
    inst.backpressure = 1 if flag else 0
    if inst.store.observer is not None:
        inst.store.observer.backpressure(inst, "set")
    return []


_TASK_RETURN_PLANS = abi.TASK_RETURN_PLANS


def canon_task_return(result_type, opts, shape, flat_args):
    """``shape``: ``abi.opts_shape(opts)``, worked out when linked."""
    task = STACK[-1].task
    check_may_leave(task.inst)
    if not task.opts.async_:
        raise Trap("wasm trap: invalid task.return signature or options for current task")
    # (whether the types agree, and the plan to lift them: worked out once per
    # definition and function type; abi.clear_caches empties it)
    ft = task.ft
    ptr_type, mask = shape
    key = (id(result_type), id(ft), ptr_type)
    hit = _TASK_RETURN_PLANS.get(key)
    if hit is None or hit[0] is not result_type or hit[1] is not ft:
        same = tuple(result_type) == tuple(ft.result)
        hit = _TASK_RETURN_PLANS[key] = (
            result_type, ft, same, abi.values_plan(ft.result_type(), ptr_type, MAX_FLAT_PARAMS) if same else None)
    if not hit[2]:
        raise Trap("wasm trap: invalid `task.return` signature and/or options for current task")
    # LiftOptions.equal, whether or not there is a value to lift: the
    # string-encoding always, the memory when `task.return` names one (the
    # reference test async/big-interleaving-test.wast returns from an export
    # lifted with a memory through a `task.return` without one, as wasmtime
    # allows; docs/runtime.md).
    if (opts.string_encoding != task.opts.string_encoding
            or (opts.memory is not None and opts.memory is not task.opts.memory)):
        raise Trap("wasm trap: invalid `task.return` signature and/or options for current task")
    if task.state is Task.State.RESOLVED:
        raise Trap("wasm trap: `task.return` called after the task already returned")
    cx = LiftLowerContext(opts, task.inst, task, False, ptr_type, mask)
    result = abi.lift_values(cx, hit[3], CoreValueIter(flat_args))
    task.return_(result)
    return []


# canon_task_return in C (_fiber.task_return: the same steps and traps); the
# function above stays the definition and the fallback. The linker's table
# takes whichever is canon_task_return when it is imported.
_canon_task_return_py = canon_task_return
if fiber._cfiber is not None:
    fiber._cfiber.init_task_return(_TASK_RETURN_PLANS, abi.values_plan, MAX_FLAT_PARAMS, CoreValueIter,
                                   abi.lift_values, LiftLowerContext, Trap, Task.State.RESOLVED, CANNOT_LEAVE)
    canon_task_return = fiber._cfiber.task_return  # noqa: F811


def canon_task_cancel():
    task = current_task()
    check_may_leave(task.inst)
    trap_if(not task.opts.async_, "wasm trap: `task.cancel` called by a synchronous task")
    task.cancel()
    return []


# ---------------------------------------------------------------------------
# waitable sets


def canon_waitable_set_new():
    inst = current_instance()
    check_may_leave(inst)
    return [inst.handles.add(WaitableSet())]


def canon_waitable_set_wait(cancellable, mem, si, ptr):
    thread = current_thread()
    inst = thread.task.inst
    check_may_leave(inst)
    check_may_block(thread.task)
    wset = _handle(inst, si, WaitableSet)
    obs = inst.store.observer
    if obs is not None:
        obs.waitable_set_wait(thread, si)
    event = yield from wset.wait_for_event(cancellable)
    if obs is not None:
        obs.event_delivered(thread, int(event[0]), event[1], event[2])
    return unpack_event(mem, inst, ptr, event)


def unpack_event(mem, inst, ptr, e):
    event, p1, p2 = e
    trap_if(ptr % 4 != 0, "unaligned pointer")
    trap_if(ptr + 8 > len(mem), "pointer out of bounds of memory")
    mem.write(ptr, (p1 & 0xFFFFFFFF).to_bytes(4, "little") + (p2 & 0xFFFFFFFF).to_bytes(4, "little"))
    return [int(event)]


def canon_waitable_set_poll(cancellable, mem, si, ptr):
    thread = current_thread()
    inst = thread.task.inst
    check_may_leave(inst)
    wset = _handle(inst, si, WaitableSet)
    event = wset.poll(cancellable)
    return unpack_event(mem, inst, ptr, event)


def canon_waitable_set_drop(i):
    inst = current_instance()
    check_may_leave(inst)
    wset = _take_handle(inst, i, WaitableSet)
    wset.drop()
    return []


def canon_waitable_join(wi, si):
    inst = STACK[-1].task.inst
    check_may_leave(inst)
    w = _handle(inst, wi, Waitable)
    if w.has_sync_waiter:
        raise Trap(SYNC_IN_SET)
    if si == 0:
        w.join(None)
    else:
        w.join(_handle(inst, si, WaitableSet))
    return []


# ---------------------------------------------------------------------------
# subtasks


def canon_subtask_cancel(async_, i):
    thread = current_thread()
    inst = thread.task.inst
    check_may_leave(inst)
    if not async_:
        check_may_block(thread.task)
    subtask = _handle(inst, i, Subtask)
    trap_if(subtask.resolve_delivered(), "wasm trap: `subtask.cancel` called after terminal status delivered")
    trap_if(subtask.cancellation_requested, "wasm trap: `subtask.cancel` called more than once")
    trap_if(subtask.in_waitable_set() and not async_, SYNC_IN_SET)
    obs = inst.store.observer
    if obs is not None:
        obs.subtask_cancel(thread.task, i)
    if not subtask.resolved():
        subtask.cancellation_requested = True
        subtask.on_cancel(inst)
        if not subtask.resolved():
            if not async_:
                yield from subtask.wait_for_pending_event()
            else:
                return [BLOCKED]
    code, index, payload = subtask.get_pending_event()
    return [int(subtask.state)]


def canon_subtask_drop(i):
    inst = STACK[-1].task.inst
    check_may_leave(inst)
    s = _take_handle(inst, i, Subtask)
    s.drop()
    # (dropped: out of the table, never cancelled now; its callee's
    # request_cancellation, a bound method of the callee's task, is let go of,
    # which breaks the subtask <-> task cycle)
    s.on_cancel = None
    return []


# canon_waitable_join and canon_subtask_drop in C (_fiber.waitable_join,
# _fiber.subtask_drop: the same steps and traps); the functions above stay the
# definitions and the fallbacks. The linker's table takes whichever they are
# when it is imported.
_canon_waitable_join_py = canon_waitable_join
_canon_subtask_drop_py = canon_subtask_drop
if fiber._cfiber is not None:
    fiber._cfiber.init_waitable_join(Waitable, WaitableSet, Subtask, SYNC_IN_SET, CANNOT_LEAVE, Trap)
    canon_waitable_join = fiber._cfiber.waitable_join  # noqa: F811
    canon_subtask_drop = fiber._cfiber.subtask_drop  # noqa: F811


# ---------------------------------------------------------------------------
# streams and futures


def _copy_new(kind, SharedT, ReadableT, WritableT, t):
    """stream.new / future.new: one shared object, its two ends in the
    current instance's table, packed as ``readable | writable << 32``."""
    thread = STACK[-1]
    inst = thread.task.inst
    check_may_leave(inst)
    shared = SharedT(t.t)
    shared.id = inst.store.new_id(kind)
    shared.root = thread.task.root
    ri = inst.handles.add(ReadableT(shared))
    wi = inst.handles.add(WritableT(shared))
    if inst.store.observer is not None:
        inst.store.observer.copy_op(inst, kind, "new", ri, wi, 0)
    return [ri | (wi << 32)]


def canon_stream_new(stream_t):
    return _copy_new("stream", SharedStreamImpl, ReadableStreamEnd, WritableStreamEnd, stream_t)


def canon_future_new(future_t):
    return _copy_new("future", SharedFutureImpl, ReadableFutureEnd, WritableFutureEnd, future_t)


_DONE_MSG = {
    ReadableStreamEnd: "cannot read from stream after being notified that the writable end dropped",
    WritableStreamEnd: "cannot write to stream after being notified that the readable end dropped",
    ReadableFutureEnd: "cannot read from future after previous read succeeded",
    WritableFutureEnd: "cannot write to future after previous write succeeded or readable end dropped",
}


def _get_end(inst, i, EndT, t):
    e = _handle(inst, i, EndT)
    trap_if(e.shared.t != t, "wasm trap: stream or future type mismatch")
    return e


def _begin_copy(EndT, t, opts, i):
    """The checks stream.{read,write} and future.{read,write} share; the end
    to copy through, with the instance."""
    thread = STACK[-1]
    inst = thread.task.inst
    check_may_leave(inst)
    if not opts.async_:
        check_may_block(thread.task)
    e = _get_end(inst, i, EndT, t.t)
    if e.state is CopyState.DONE:
        raise Trap(_DONE_MSG[EndT])
    trap_if(e.state is not CopyState.IDLE, "cannot have concurrent operations active on a future/stream")
    trap_if(e.in_waitable_set() and not opts.async_, SYNC_IN_SET)
    return inst, e


def _end_copy(e, opts):
    """After the copy started: its event now, or (sync) once it comes, or
    (async) BLOCKED."""
    if not e.has_pending_event():
        if not opts.async_:
            yield from e.wait_for_pending_event()
        else:
            return [BLOCKED]
    code, index, payload = e.get_pending_event()
    return [payload]


def stream_copy(EndT, BufferT, event_code, stream_t, opts, i, ptr, n):
    inst, e = _begin_copy(EndT, stream_t, opts, i)
    cx = LiftLowerContext(opts, inst, None)
    buffer = BufferT(stream_t.t, cx, ptr, n)
    obs = inst.store.observer

    def stream_event(result, reclaim_buffer):
        reclaim_buffer()
        if result == CopyResult.DROPPED:
            e.state = CopyState.DONE
        else:
            e.state = CopyState.IDLE
        if obs is not None:
            obs.copy_op(inst, "stream", "read" if event_code == EventCode.STREAM_READ else "write", i,
                        int(result), buffer.progress)
        return (event_code, i, int(result) | (buffer.progress << 4))

    def on_copy(reclaim_buffer):
        e.set_pending_event(partial(stream_event, CopyResult.COMPLETED, reclaim_buffer))

    def on_copy_done(result):
        e.set_pending_event(partial(stream_event, result, _noop))

    e.state = CopyState.COPYING
    e.buffer = buffer
    e.copy(inst, buffer, on_copy, on_copy_done)
    return (yield from _end_copy(e, opts))


def _noop():
    pass


def future_copy(EndT, BufferT, event_code, future_t, opts, i, ptr):
    inst, e = _begin_copy(EndT, future_t, opts, i)
    cx = LiftLowerContext(opts, inst, None)
    buffer = BufferT(future_t.t, cx, ptr, 1)
    obs = inst.store.observer

    def future_event(result):
        if result == CopyResult.DROPPED or result == CopyResult.COMPLETED:
            e.state = CopyState.DONE
        else:
            e.state = CopyState.IDLE
        if obs is not None:
            obs.copy_op(inst, "future", "read" if event_code == EventCode.FUTURE_READ else "write", i,
                        int(result), 1 if result == CopyResult.COMPLETED else 0)
        return (event_code, i, int(result))

    def on_copy_done(result):
        e.set_pending_event(partial(future_event, result))

    e.state = CopyState.COPYING
    e.copy(inst, buffer, on_copy_done)
    return (yield from _end_copy(e, opts))


def canon_stream_read(stream_t, opts, i, ptr, n):
    return stream_copy(ReadableStreamEnd, WritableBufferGuestImpl, EventCode.STREAM_READ, stream_t, opts, i, ptr, n)


def canon_stream_write(stream_t, opts, i, ptr, n):
    return stream_copy(WritableStreamEnd, ReadableBufferGuestImpl, EventCode.STREAM_WRITE, stream_t, opts, i, ptr,
                       n)


def canon_future_read(future_t, opts, i, ptr):
    return future_copy(ReadableFutureEnd, WritableBufferGuestImpl, EventCode.FUTURE_READ, future_t, opts, i, ptr)


def canon_future_write(future_t, opts, i, ptr):
    return future_copy(WritableFutureEnd, ReadableBufferGuestImpl, EventCode.FUTURE_WRITE, future_t, opts, i, ptr)


def cancel_copy(EndT, event_code, t, async_, i):
    thread = current_thread()
    inst = thread.task.inst
    check_may_leave(inst)
    if not async_:
        check_may_block(thread.task)
    e = _get_end(inst, i, EndT, t.t)
    trap_if(e.state is not CopyState.COPYING or e.has_sync_waiter, "wasm trap: no copy in progress to cancel")
    trap_if(e.in_waitable_set() and not async_, SYNC_IN_SET)
    e.state = CopyState.CANCELLING_COPY
    # A stream copy that has made progress but whose buffer is still lent to
    # the other end is cancelled too, reporting CANCELLED with that progress
    # (wasmtime's behaviour, which the conformance tests check).
    # A future's copy that finished (its event pending, not delivered) is
    # never cancelled: its pending payload is the answer (the spec's
    # cancel_copy; a future end keeps no buffer, so this is a stream's case).
    if not e.has_pending_event() or (e.buffer is not None and e.shared.pending_buffer is e.buffer):
        e.shared.cancel()
        if not e.has_pending_event():
            if not async_:
                yield from e.wait_for_pending_event()
            else:
                return [BLOCKED]
    code, index, payload = e.get_pending_event()
    return [payload]


def canon_stream_cancel_read(t, async_, i):
    return cancel_copy(ReadableStreamEnd, EventCode.STREAM_READ, t, async_, i)


def canon_stream_cancel_write(t, async_, i):
    return cancel_copy(WritableStreamEnd, EventCode.STREAM_WRITE, t, async_, i)


def canon_future_cancel_read(t, async_, i):
    return cancel_copy(ReadableFutureEnd, EventCode.FUTURE_READ, t, async_, i)


def canon_future_cancel_write(t, async_, i):
    return cancel_copy(WritableFutureEnd, EventCode.FUTURE_WRITE, t, async_, i)


def drop_end(EndT, t, i):
    inst = current_instance()
    check_may_leave(inst)
    e = _get_end(inst, i, EndT, t.t)
    if EndT is WritableFutureEnd and e.state is not CopyState.DONE:
        raise Trap("cannot drop future write end without first writing a value")
    if e.copying():
        raise Trap(f"cannot {'remove' if EndT.readable else 'drop'} busy {EndT.kind}")
    inst.handles.remove(i)
    e.drop()
    if inst.store.observer is not None:
        inst.store.observer.copy_op(inst, EndT.kind, "drop-readable" if EndT.readable else "drop-writable", i, 0, 0)
    return []


# ---------------------------------------------------------------------------
# threads


def canon_thread_index():
    thread = current_thread()
    check_may_leave(thread.task.inst)
    return [thread.index]


def canon_thread_new_indirect(ftbl_get, fi, c):
    task = current_task()
    check_may_leave(task.inst)
    f = ftbl_get(fi)

    def thread_func():
        yield from call_core(f, [c])
        # its task may have changed since (thread.set-task): not ``task``
        new_thread.task.unregister_thread(new_thread)

    new_thread = Thread(task, thread_func)
    task.register_thread(new_thread)
    return [new_thread.index]


NOT_SUSPENDED = "wasm trap: thread is not suspended"


def _other_thread(inst, i, must_be_suspended: bool):
    other = inst.threads.get(i)
    trap_if(must_be_suspended and not other.suspended(), NOT_SUSPENDED)
    return other


def canon_thread_resume_later(i):
    inst = current_instance()
    check_may_leave(inst)
    _other_thread(inst, i, True).resume_later()
    return []


def canon_thread_suspend(cancellable):
    thread = current_thread()
    check_may_leave(thread.task.inst)
    cancelled = yield from thread.suspend(cancellable)
    return [int(cancelled)]


def canon_thread_yield(cancellable):
    thread = current_thread()
    check_may_leave(thread.task.inst)
    cancelled = yield from thread.yield_(cancellable)
    return [int(cancelled)]


def _switch(how, must_be_suspended: bool, cancellable, i):
    """thread.{suspend,yield}-then-{resume,promote}: ``how`` is the Thread
    method of the same name; ``-resume`` requires the other thread to be
    suspended, ``-promote`` takes it as it is."""
    thread = current_thread()
    inst = thread.task.inst
    check_may_leave(inst)
    other = _other_thread(inst, i, must_be_suspended)
    cancelled = yield from how(thread, cancellable, other)
    return [int(cancelled)]


def canon_thread_suspend_then_resume(cancellable, i):
    return _switch(Thread.suspend_then_resume, True, cancellable, i)


def canon_thread_yield_then_resume(cancellable, i):
    return _switch(Thread.yield_then_resume, True, cancellable, i)


def canon_thread_suspend_then_promote(cancellable, i):
    return _switch(Thread.suspend_then_promote, False, cancellable, i)


def canon_thread_yield_then_promote(cancellable, i):
    return _switch(Thread.yield_then_promote, False, cancellable, i)


def canon_thread_set_task(i):
    """``canon thread.set-task`` (the spec's ``task-switch`` branch,
    CanonicalABI.md "canon thread.set-task"): the current thread, which must
    be explicit, joins the task of thread ``i``. From then on ``task.return``,
    ``task.cancel``, cancellation and the async call stack of its imports are
    the new task's."""
    thread = current_thread()
    trap_if(not thread.task.inst.may_leave, CANNOT_LEAVE)
    trap_if(not thread.explicit(), "wasm trap: `thread.set-task` called by an implicit thread")
    other_thread = thread.task.inst.threads.get(i)
    thread.task.change_thread_registration(thread, other_thread.task)
    return []


# ---------------------------------------------------------------------------
# error contexts


def canon_error_context_new(opts, ptr, tagged_code_units):
    inst = current_instance()
    check_may_leave(inst)
    cx = LiftLowerContext(opts, inst)
    s = abi.load_string_from_range(cx, ptr, tagged_code_units)
    return [inst.handles.add(ErrorContext(s))]


def canon_error_context_debug_message(opts, i, ptr):
    inst = current_instance()
    check_may_leave(inst)
    errctx = _handle(inst, i, ErrorContext)
    cx = LiftLowerContext(opts, inst)
    # The (ptr, len) pair stored at ``ptr`` must lie in memory: a store out of
    # bounds traps (the spec's store_int), in wasmtime's words, before the
    # string itself is lowered.
    ptr &= cx._mask
    trap_if(cx.mv is None or ptr + 2 * abi.ptr_size(cx.ptr_type) > len(cx.mv),
            "invalid debug message pointer: out of bounds")
    abi.store_string(cx, errctx.debug_message, ptr)
    return []


def canon_error_context_drop(i):
    inst = current_instance()
    check_may_leave(inst)
    errctx = _take_handle(inst, i, ErrorContext)
    return []
