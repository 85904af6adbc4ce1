"""Threads and tasks (CanonicalABI.md, "Concurrency": "Threads", "Tasks").

The spec models each component-model thread as a continuation and switches
with ``resume``/``block``. callscope realizes a thread as

* a Python generator (its *body*: the spec's ``thread_func``) that yields
  ``Block`` to block and ``CoreCall`` to call core wasm, and
* while core wasm runs, a wasmtime ``call_async`` future: wasm that calls a
  blocking built-in suspends on its own wasmtime fiber (see :mod:`fiber`), the
  built-in's own generator parked in a ``HostCall`` until the thread resumes.

Blocking code is written as generators, composed with ``yield from`` so that
each spec function keeps its shape: ``cancelled = yield from
thread.wait_until(ready)``.  ``Thread.resume`` drives a thread until it
blocks and then, exactly as the spec's ``resume`` loop, goes on with the
thread it asked to switch to, if any.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import Callable, Optional

from . import fiber
from .enums import MemberEnumType
from .errors import Trap, one_line, trap_if


# A task left with no threads before it resolved (wasmtime's words).
ASYNC_NO_RESULT = "wasm trap: async-lifted export failed to produce a result"


class Cancelled(IntEnum, metaclass=MemberEnumType):
    FALSE = 0
    TRUE = 1


class Block:
    """Yielded by a blocking generator: suspend the current thread and, if
    ``switch_to`` is a thread, resume that one instead (the spec's
    ``block(switch_to)``)."""

    __slots__ = ("switch_to",)

    def __init__(self, switch_to: Optional["Thread"] = None):
        self.switch_to = switch_to


# Block(None), shared: a Block is only read (its switch_to), never changed
_BLOCK = Block(None)


class CoreCall:
    """Yielded by a thread body to call a core wasm function on the thread's
    own fiber: ``results = yield CoreCall(func, args, params, results)``."""

    __slots__ = ("func", "args", "params", "results")

    def __init__(self, func, args, params, results):
        self.func = func
        self.args = args
        self.params = params
        self.results = results


class CoreFunc:
    """A core function as the component layer sees it: a wasmtime ``Func`` of
    some core instance, or a ``fiber.HostFunc`` implemented in Python."""

    __slots__ = ("store", "func", "params", "results", "name")

    def __init__(self, store, func, params, results, name=""):
        self.store = store
        self.func = func
        self.params = tuple(params)
        self.results = tuple(results)
        self.name = name

    def is_host(self) -> bool:
        return isinstance(self.func, fiber.HostFunc)


def call_core(f: CoreFunc, args: list):
    """Generator: call core function ``f`` on the current thread."""
    if f.func.__class__ is fiber.HostFunc:
        r = f.func.impl(args)
        if r.__class__ is list:
            return r
        return (yield from r)
    return (yield CoreCall(f.func, args, f.params, f.results))


if fiber._cfiber is not None:
    # The same in C: a CoreCall type that is also the one-shot iterator
    # ``call_core`` returns for a function of wasm (it yields itself once and
    # returns the results sent back: no generator a core call); a HostFunc
    # still goes through the function above.
    _call_core_py = call_core
    CoreCall = fiber._cfiber.CoreCall  # noqa: F811
    fiber._cfiber.init_call_core(fiber.HostFunc, _call_core_py)
    call_core = fiber._cfiber.call_core  # noqa: F811
else:
    _call_core_py = call_core


def call_core_now(f: CoreFunc, args: list) -> list:
    """Call a core function that may not block (realloc, post-return): poll it
    to completion right here."""
    if f.func.__class__ is fiber.HostFunc:
        r = f.func.impl(args)
        if r.__class__ is list:
            return r
        try:
            r.send(None)
        except StopIteration as stop:
            return stop.value
        raise Trap("cannot block a synchronous task before returning")
    return fiber.call_to_completion(f.store, f.func, args, f.params, f.results)


# The stack of threads being run by nested ``Thread.resume`` calls; the top is
# the spec's ``current_thread()``.
STACK: list["Thread"] = []


def current_thread() -> "Thread":
    return STACK[-1]


def current_task() -> "Task":
    return STACK[-1].task


def current_instance():
    return STACK[-1].task.inst


def _on_host_block(call: fiber.HostCall, blocked) -> None:
    # (the C trampoline does this itself while fiber.on_block is this function)
    thread = STACK[-1]
    thread.host_call = call
    # a Block from a built-in, or the results (a list) of a driver's core call
    thread.block_arg = blocked.switch_to if blocked.__class__ is Block else blocked


fiber.on_block = _on_host_block
_start_call = fiber.start_call


class Thread:
    """A component-model thread (CanonicalABI.md "Threads")."""

    __slots__ = ("gen", "future", "driver", "host_call", "block_arg", "is_running", "ready_func", "task",
                 "cancellable", "index", "storage", "done", "tid", "started", "__weakref__")

    def __init__(self, task: "Task", body: Callable):
        self.gen = body()
        self.future = None
        self.driver = None
        self.host_call = None
        self.block_arg = None
        self.is_running = False
        self.ready_func = None
        self.task = task
        self.cancellable = False
        self.index = None
        self.storage = [0, 0]
        self.done = False
        self.started = False
        self.tid = task.inst.store.new_id("thread")
        obs = task.inst.store.observer
        if obs is not None:
            obs.thread_new(self.tid, task.id)

    def __repr__(self):
        return f"<Thread {self.tid} of task {self.task.id}>"

    # state predicates, as the spec names them
    def running(self) -> bool:
        return self.is_running

    def suspended(self) -> bool:
        return not self.is_running and self.ready_func is None and not self.done

    def waiting(self) -> bool:
        return not self.is_running and self.ready_func is not None

    def ready(self) -> bool:
        return self.ready_func is not None and not self.is_running and self.ready_func()

    def explicit(self) -> bool:
        """Created by ``thread.new-indirect`` (not a task's implicit thread)."""
        return self is not self.task.implicit_thread

    def start_waiting_internal(self, ready_func) -> None:
        assert self.ready_func is None
        self.ready_func = ready_func
        self.task.inst.store.waiting.append(self)

    def stop_waiting_internal(self, cancelled) -> None:
        self.ready_func = None
        self.task.inst.store.waiting.remove(self)

    def resume_later(self) -> None:
        assert self.suspended()
        self.start_waiting_internal(_always)

    def resume(self, cancelled=Cancelled.FALSE) -> None:
        assert not self.is_running and (self.cancellable or not cancelled)
        if self.ready_func is not None:
            self.stop_waiting_internal(cancelled)
        thread = self
        store = self.task.inst.store
        prev = STACK[-1] if STACK else None
        while thread is not None:
            obs = store.observer
            if obs is not None:
                obs.thread_switch(prev.tid if prev is not None else None, thread.tid)
            nxt = DRIVE(thread, cancelled)
            if obs is not None:
                obs.thread_switch(thread.tid, prev.tid if prev is not None else None)
            thread = nxt
            cancelled = Cancelled.FALSE

    def _drive(self, value) -> Optional["Thread"]:
        """Run this thread until it blocks or ends; return the thread it asked
        to switch to."""
        self.is_running = True
        STACK.append(self)
        throw = None
        if not self.started:
            self.started = True
            value = None
        try:
            if self.host_call is not None:
                call, self.host_call = self.host_call, None
                call.resume(value)
                value = None
            while True:
                fut = self.future
                if fut is not None:
                    if not fut.poll():
                        nxt = self.block_arg
                        if nxt.__class__ is not list:
                            return nxt  # blocked in a built-in (None, or the thread to switch to)
                        # the driver's core call returned: park the driver
                        self.block_arg = None
                        self.future = None
                        self.driver.park(self.host_call)
                        self.driver = self.host_call = None
                        value = nxt
                    else:
                        self.future = None
                        self.driver = None  # (a driver ends only by a trap: not reused)
                        try:
                            value = fut.outcome()
                        except BaseException as exc:  # a trap in wasm: raise it into the body
                            throw = exc
                try:
                    if throw is not None:
                        exc, throw = throw, None
                        req = self.gen.throw(exc)
                    else:
                        req = self.gen.send(value)
                except StopIteration:
                    self.done = True
                    return None
                if req.__class__ is CoreCall:
                    self.future, self.driver = _start_call(self.task.inst.store.wasm_store, req.func, req.args,
                                                           req.params, req.results)
                    value = None
                    continue
                return req.switch_to
        except Trap as exc:
            _trap_seen(self, exc)
            raise
        finally:
            self.is_running = False
            STACK.pop()

    # blocking operations (generators)
    def block_internal(self, cancellable):
        self.cancellable = cancellable
        cancelled = yield _BLOCK
        return cancelled

    def switch_to_internal(self, cancellable, other):
        self.cancellable = cancellable
        cancelled = yield Block(other)
        return cancelled

    def suspend(self, cancellable):
        if self.task.deliver_pending_cancel(cancellable):
            return Cancelled.TRUE
        return (yield from self.block_internal(cancellable))

    def wait_until(self, ready_func, cancellable=False, always_block=False):
        if self.task.deliver_pending_cancel(cancellable):
            return Cancelled.TRUE
        # The spec lets an implementation return at once when the condition
        # already holds, or not. Like wasmtime (and so the conformance tests),
        # a wait whose condition holds returns at once; ``always_block`` (a
        # yield; a call queued behind others for backpressure) lets the
        # threads already waiting go first.
        if not always_block and ready_func():
            return Cancelled.FALSE
        self.start_waiting_internal(ready_func)
        # (block_internal inline: one generator, not two, a wait)
        self.cancellable = cancellable
        cancelled = yield _BLOCK
        return cancelled

    def yield_(self, cancellable):
        return (yield from self.wait_until(_always, cancellable, always_block=True))

    def suspend_then_resume(self, cancellable, other):
        if self.task.deliver_pending_cancel(cancellable):
            return Cancelled.TRUE
        return (yield from self.switch_to_internal(cancellable, other))

    def yield_then_resume(self, cancellable, other):
        if self.task.deliver_pending_cancel(cancellable):
            return Cancelled.TRUE
        self.start_waiting_internal(_always)
        return (yield from self.switch_to_internal(cancellable, other))

    def suspend_then_promote(self, cancellable, other):
        if self.task.deliver_pending_cancel(cancellable):
            return Cancelled.TRUE
        if other.ready():
            other.stop_waiting_internal(False)
            return (yield from self.suspend_then_resume(cancellable, other))
        return (yield from self.suspend(cancellable))

    def yield_then_promote(self, cancellable, other):
        if self.task.deliver_pending_cancel(cancellable):
            return Cancelled.TRUE
        if other.ready():
            other.stop_waiting_internal(False)
            return (yield from self.yield_then_resume(cancellable, other))
        return (yield from self.yield_(cancellable))


def _always() -> bool:
    return True


def _trap_seen(thread: Thread, exc: Trap) -> None:
    """A trap came out of ``thread``'s ``_drive``: the innermost thread the
    trap came through is where it happened, and the observer is told so once."""
    if not exc.recorded:
        exc.recorded = True
        obs = thread.task.inst.store.observer
        if obs is not None:
            obs.trap(thread.task, one_line(exc.message))


# What ``Thread.resume`` drives a thread with: ``Thread._drive``, or the same
# in C (``_fiber.drive``) when it is built. Tests set it to ``Thread._drive``
# to compare the two.
DRIVE = Thread._drive
if fiber._cfiber is not None:
    fiber._cfiber.init_drive(Thread, fiber.CallFuture, fiber.Driver, CoreCall, Block, Trap, STACK, _start_call,
                             _trap_seen, Thread._drive, _on_host_block)
    DRIVE = fiber._cfiber.drive

# Thread.resume and Store.tick: the Python methods (the definitions, kept as
# ``_resume_py`` and ``instance._tick_py``), or the same in C as method
# descriptors of the two classes when ``_fiber`` is built (the C resume drives
# with whatever DRIVE is; tests put the Python methods back to compare).
_resume_py = Thread.resume
if fiber._cfiber is not None:
    from . import instance as _instance
    Thread.resume, _instance.Store.tick = fiber._cfiber.init_resume_tick(Thread, _instance.Store, globals(),
                                                                        Cancelled.FALSE, _instance._tick_py)


class ReallocTask:
    """The task a ``realloc`` call runs as. CanonicalABI.md
    ``LiftLowerContext.reallocate`` calls realloc through ``canon_lift`` as a
    sync function: every call is a new task with a new thread, whose context
    slots start at 0 (component-model #680), in the instance the realloc
    belongs to. It runs with ``may_leave`` cleared, so it can neither call an
    import nor block: it has only what the built-ins allowed then read, and it
    is not observed (no trace events, no ids)."""

    __slots__ = ("inst", "ft", "opts", "state", "caller", "root", "num_borrows", "id", "name", "implicit_thread",
                 "threads")

    def __init__(self, inst, caller):
        self.inst = inst
        self.ft = REALLOC_FT
        self.opts = None
        self.state = Task.State.STARTED
        self.caller = caller
        self.root = caller.root if caller is not None else self
        self.num_borrows = 0
        self.id = None
        self.name = "[realloc]"
        self.implicit_thread = None
        self.threads = []


def realloc_thread(inst, caller) -> Thread:
    """The fresh thread (of a fresh ``ReallocTask``) a realloc call runs on."""
    t = Thread.__new__(Thread)
    t.gen = t.future = t.host_call = t.block_arg = t.ready_func = t.driver = None
    t.is_running = True
    t.started = True
    t.done = False
    t.cancellable = False
    t.index = None
    t.storage = [0, 0]
    t.tid = None
    t.task = task = ReallocTask(inst, caller)
    task.implicit_thread = t
    task.threads.append(t)
    return t


class _ReallocFT:
    """The sync type a realloc is lifted with (only ``async_`` is read)."""
    async_ = False
    result = ()


REALLOC_FT = _ReallocFT()


class Task:
    """A call of a lifted function (CanonicalABI.md "Tasks")."""

    class State(Enum, metaclass=MemberEnumType):
        INITIAL = 1
        STARTED = 2
        PENDING_CANCEL = 3
        CANCEL_DELIVERED = 4
        RESOLVED = 5

    __slots__ = ("ft", "opts", "inst", "on_start", "on_resolve", "state", "num_borrows", "implicit_thread",
                 "threads", "id", "caller", "root", "name", "label", "tokens")

    def __init__(self, ft, opts, inst, on_start, on_resolve, caller=None, name=""):
        self.ft = ft
        self.opts = opts
        self.inst = inst
        self.on_start = on_start
        self.on_resolve = on_resolve
        self.state = Task.State.INITIAL
        self.num_borrows = 0
        self.implicit_thread = None
        self.threads = []
        self.id = inst.store.new_id("task")
        self.caller = caller  # the calling Task, None for a call from the host
        self.root = caller.root if caller is not None else self
        self.name = name
        self.label = None
        self.tokens = None
        if caller is None:
            # a root export task: the host may have named the request
            nxt = inst.store.next_root
            if nxt is not None:
                self.label, self.tokens = nxt
                inst.store.next_root = None
        obs = inst.store.observer
        if obs is not None:
            obs.task_new(self)

    def __repr__(self):
        return f"<Task {self.id} {self.name}>"

    def async_call_stack(self) -> list["Task"]:
        """Current task first, root export task last (wasmtime's order)."""
        out = []
        t = self
        while t is not None:
            out.append(t)
            t = t.caller
        return out

    def needs_exclusive(self) -> bool:
        return not self.opts.async_ or self.opts.callback is not None

    def enter_implicit_thread(self):
        self.implicit_thread = thread = current_thread()
        inst = self.inst
        if self.ft.async_:
            # (has_backpressure() inline first: the closure is made only when
            # the call may have to wait)
            if (inst.backpressure > 0 or inst.num_waiting_to_enter > 0
                    or (inst.exclusive_thread is not None and self.needs_exclusive())):
                def has_backpressure():
                    return inst.backpressure > 0 or (self.needs_exclusive() and inst.exclusive_thread is not None)

                inst.num_waiting_to_enter += 1
                obs = inst.store.observer
                if obs is not None:
                    obs.call_queued(self)
                # always queue behind the calls already waiting (FIFO admission):
                # returning at once when backpressure happens to be off would
                # let a new call barge past them, starving the queue
                cancelled = yield from thread.wait_until(lambda: not has_backpressure(), cancellable=True,
                                                         always_block=True)
                inst.num_waiting_to_enter -= 1
                if obs is not None:
                    obs.call_admitted(self, bool(cancelled))
                if cancelled:
                    self.cancel()
                    return False
            if self.needs_exclusive():
                assert inst.exclusive_thread is None
                inst.exclusive_thread = thread
        self.register_thread(thread)
        return True

    def register_thread(self, thread) -> None:
        self.threads.append(thread)
        thread.index = self.inst.threads.add(thread)

    def exit_implicit_thread(self) -> None:
        self.unregister_thread(self.implicit_thread)
        if self.ft.async_ and self.needs_exclusive() and self.inst.exclusive_thread is self.implicit_thread:
            self.inst.exclusive_thread = None
        if not self.threads:
            # The task is over (resolved, no thread left: unregister_thread
            # traps otherwise), so nothing asks for its implicit thread again;
            # letting go of it breaks the task <-> thread cycle, and the pair
            # is freed by reference counting, not left to the cyclic GC.
            self.implicit_thread = None

    def unregister_thread(self, thread) -> None:
        self.threads.remove(thread)
        if not self.threads:
            if self.state != Task.State.RESOLVED:
                raise Trap(ASYNC_NO_RESULT)
            if self.num_borrows:
                raise Trap("borrow handles still remain at the end of the call")
            obs = self.inst.store.observer
            if obs is not None:
                obs.task_exit(self)
        self.inst.threads.remove(thread.index)

    def change_thread_registration(self, thread, new_task) -> None:
        """``thread.set-task`` (the spec's ``task-switch`` branch): move the
        explicit ``thread`` from this task to ``new_task``. Like
        ``unregister_thread``, it traps if this task would be left unresolved
        with no threads."""
        assert thread in self.threads and thread.task is self
        assert thread.explicit()
        self.threads.remove(thread)
        new_task.threads.append(thread)
        thread.task = new_task
        obs = self.inst.store.observer
        if obs is not None:
            obs.thread_set_task(thread, self, new_task)
        if not self.threads:
            trap_if(self.state != Task.State.RESOLVED, ASYNC_NO_RESULT)
            assert self.num_borrows == 0
            if obs is not None:
                obs.task_exit(self)

    def request_cancellation(self, caller) -> None:
        obs = self.inst.store.observer
        if obs is not None:
            obs.task_cancel_requested(self)
        if self.state == Task.State.INITIAL:
            self.state = Task.State.CANCEL_DELIVERED
            self.implicit_thread.resume(Cancelled.TRUE)
        else:
            candidates = [t for t in self.threads if t.cancellable]
            if self.needs_exclusive() and self.inst.exclusive_thread not in (None, self.implicit_thread):
                if self.implicit_thread in candidates:
                    candidates.remove(self.implicit_thread)
            if candidates and self.inst.may_enter_from(caller):
                self.state = Task.State.CANCEL_DELIVERED
                self.inst.enter_from(caller)
                self.inst.store.choose(candidates).resume(Cancelled.TRUE)
                self.inst.leave_to(caller)
            else:
                self.state = Task.State.PENDING_CANCEL

    def deliver_pending_cancel(self, cancellable) -> bool:
        if cancellable and self.state == Task.State.PENDING_CANCEL:
            self.state = Task.State.CANCEL_DELIVERED
            return True
        return False

    def start(self) -> list:
        self.state = Task.State.STARTED
        obs = self.inst.store.observer
        if obs is not None:
            obs.task_start(self)
        return self.on_start()

    def return_(self, result) -> None:
        if self.state == Task.State.RESOLVED:
            raise Trap("wasm trap: task.return called more than once")
        if self.num_borrows > 0:
            raise Trap("borrow handles still remain at the end of the call")
        self.on_resolve(result)
        self.state = Task.State.RESOLVED
        # A task that has returned its value no longer holds its instance's
        # exclusive lock (wasmtime lets the next call in at that point; the
        # conformance tests rely on it).
        inst = self.inst
        if self.ft.async_ and inst.exclusive_thread is not None and inst.exclusive_thread is self.implicit_thread:
            inst.exclusive_thread = None
        obs = inst.store.observer
        if obs is not None:
            obs.task_return(self, result)

    def cancel(self) -> None:
        trap_if(self.state != Task.State.CANCEL_DELIVERED,
                "wasm trap: `task.cancel` called by task which has not been cancelled")
        trap_if(self.num_borrows > 0, "borrow handles still remain at the end of the call")
        self.on_resolve(None)
        self.state = Task.State.RESOLVED
        obs = self.inst.store.observer
        if obs is not None:
            obs.task_cancel(self)


# Thread.wait_until: the generator above (the definition, kept as
# ``_wait_until_py``), or the same in C when ``_fiber`` is built (a method
# descriptor whose generator-like object does the same steps; tests put the
# Python one back to compare). waitables.py does the same for
# WaitableSet.wait_for_event_and.
_wait_until_py = Thread.wait_until
if fiber._cfiber is not None:
    Thread.wait_until = fiber._cfiber.init_wait_until(Task, _BLOCK, Cancelled.TRUE, Cancelled.FALSE,
                                                      Task.State.PENDING_CANCEL, Task.State.CANCEL_DELIVERED)
    # Task's steps the C callback loop and task.return take (enter_implicit_thread
    # when it need not wait, register_thread, needs_exclusive, start,
    # exit_implicit_thread, unregister_thread, return_): done in C while the
    # class has these methods (the definitions), each replaced one called
    fiber._cfiber.init_task_methods(Task, Task.State.STARTED, Task.State.RESOLVED, ASYNC_NO_RESULT, Trap)
