/* callscope.runtime._fiber: the host-function trampoline of fiber.py, in C.
 *
 * Every core function a `canon` definition makes is an async host function
 * of wasmtime's C API (`wasmtime_linker_define_async_func`). Each call from
 * wasm enters its callback; fiber.py's `_async_trampoline` is that callback
 * as a ctypes CFUNCTYPE, which costs ~2 us a call here (ctypes makes eight
 * Python ints of the pointers, the values go through `struct`). This module
 * is the same callback, and the same continuation for a call that blocks, in
 * C: the arguments become Python ints (or floats) straight from wasmtime's
 * value array, the Python implementation is called, its results written
 * back. What the Python twin does, this does, in the same order:
 *
 *   - count the entry in fiber.epoch() (memory views are taken again);
 *   - fill in a continuation that says "done";
 *   - call impl(args); a list is the results; anything else is a generator
 *     driven with send(None): its return value is the results, a value it
 *     yields means the call blocks: a HostCall is made, the continuation
 *     points at it, fiber.on_block(call, value) is told;
 *   - at each poll of a blocked call the continuation answers "not yet"
 *     until HostCall.resume(value) was called, then sends the value in;
 *   - an exception becomes the call's trap through fiber._set_trap (the
 *     exception is raised again where the trap surfaces);
 *   - a driver's `next` (its entry's impl is None) is fiber._next_impl
 *     without a generator: it blocks at once on the list of its arguments
 *     (the results of the core call the driver ran) and, resumed, returns
 *     the value it was resumed with.
 *
 * Nothing of wasmtime is linked: the layout of `wasmtime_val_t` is checked
 * against ctypes' (fiber.py passes its size and payload offset) and the
 * module only hands wasmtime the address of `trampoline`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum { K_I32 = 0, K_I64 = 1, K_F32 = 2, K_F64 = 3 };

typedef bool (*cont_fn)(void *env);
typedef void (*fin_fn)(void *env);
typedef struct {
    cont_fn callback;
    void *env;
    fin_fn finalizer;
} Continuation;

static Py_ssize_t VAL_SIZE = 32, VAL_OF = 8;

/* fiber.py's objects */
static PyObject *entries = NULL;    /* list: slot -> (impl, result kinds as bytes) or None */
static PyObject *fiber_dict = NULL; /* fiber's module dict: on_block, _set_trap */
static PyObject *s_on_block, *s_set_trap;
static PyObject *py_on_host_block = NULL; /* thread._on_host_block, when init_drive has run */

/* fiber.epoch(): every entry into and return from wasm counts one (memory
 * views taken at one count stay valid until it changes). Read far less often
 * than it changes (a dozen entries a subtask, one view), so it is a C
 * counter, not fiber's module global, and a read is a call. */
static unsigned long long wasm_epoch = 0;

static inline void bump_epoch(void) { wasm_epoch++; }

/* wasmtime_call_future_poll, its address given to init */
typedef bool (*poll_fn)(void *future);
static poll_fn future_poll = NULL;

/* The pending exception becomes the call's trap (fiber._set_trap). */
static void set_trap(void *trap_ret) {
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    if (type != NULL) {
        PyErr_NormalizeException(&type, &exc, &tb);
        if (exc != NULL && tb != NULL) PyException_SetTraceback(exc, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (exc == NULL) exc = PyObject_CallFunction(PyExc_RuntimeError, "s", "host call failed");
    PyObject *fn = PyDict_GetItemWithError(fiber_dict, s_set_trap);
    if (fn != NULL && exc != NULL) {
        PyObject *r = PyObject_CallFunction(fn, "KO", (unsigned long long)(uintptr_t)trap_ret, exc);
        if (r == NULL) PyErr_WriteUnraisable(fn);
        Py_XDECREF(r);
    } else {
        PyErr_WriteUnraisable(NULL);
    }
    Py_XDECREF(exc);
}

static PyObject *read_args(const char *args, size_t nargs) {
    PyObject *l = PyList_New((Py_ssize_t)nargs);
    if (l == NULL) return NULL;
    for (size_t i = 0; i < nargs; i++) {
        const char *v = args + i * VAL_SIZE;
        const char *p = v + VAL_OF;
        PyObject *o;
        switch ((uint8_t)v[0]) {
        case K_I32: { uint32_t x; memcpy(&x, p, 4); o = PyLong_FromUnsignedLong(x); break; }
        case K_I64: { uint64_t x; memcpy(&x, p, 8); o = PyLong_FromUnsignedLongLong(x); break; }
        case K_F32: { float x; memcpy(&x, p, 4); o = PyFloat_FromDouble(x); break; }
        case K_F64: { double x; memcpy(&x, p, 8); o = PyFloat_FromDouble(x); break; }
        default:
            o = NULL;
            PyErr_Format(PyExc_RuntimeError, "unsupported core value kind %d", (int)(uint8_t)v[0]);
        }
        if (o == NULL) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, (Py_ssize_t)i, o);
    }
    return l;
}

/* Write `values` (a sequence) into wasmtime's result array: as many as both
 * have, as write_vals does; integers masked to their width. */
static int write_results(char *results, size_t nresults, PyObject *kinds, PyObject *values) {
    if (nresults == 0) return 0;
    PyObject *seq = PySequence_Fast(values, "host function results must be a list");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t nk = PyBytes_GET_SIZE(kinds);
    const char *k = PyBytes_AS_STRING(kinds);
    if ((Py_ssize_t)nresults < n) n = (Py_ssize_t)nresults;
    if (nk < n) n = nk;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        char *v = results + i * VAL_SIZE;
        char *p = v + VAL_OF;
        PyObject *o = items[i];
        switch (k[i]) {
        case K_I32: {
            unsigned long long x = PyLong_AsUnsignedLongLongMask(o);
            if (x == (unsigned long long)-1 && PyErr_Occurred()) goto fail;
            uint32_t y = (uint32_t)x;
            v[0] = K_I32;
            memcpy(p, &y, 4);
            break;
        }
        case K_I64: {
            unsigned long long x = PyLong_AsUnsignedLongLongMask(o);
            if (x == (unsigned long long)-1 && PyErr_Occurred()) goto fail;
            uint64_t y = (uint64_t)x;
            v[0] = K_I64;
            memcpy(p, &y, 8);
            break;
        }
        case K_F32: {
            double d = PyFloat_AsDouble(o);
            if (d == -1.0 && PyErr_Occurred()) goto fail;
            float f = (float)d;
            v[0] = K_F32;
            memcpy(p, &f, 4);
            break;
        }
        default: {
            double d = PyFloat_AsDouble(o);
            if (d == -1.0 && PyErr_Occurred()) goto fail;
            v[0] = K_F64;
            memcpy(p, &d, 8);
        }
        }
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* ---------------------------------------------------------------- HostCall */

typedef struct {
    PyObject_HEAD
    PyObject *gen;
    PyObject *kinds; /* result kinds, bytes */
    PyObject *value;
    char *results;
    void *trap_ret;
    Py_ssize_t nresults;
    int resumed;
    int released; /* the continuation's reference dropped */
} HostCall;

static void HostCall_dealloc(HostCall *self) {
    Py_XDECREF(self->gen);
    Py_XDECREF(self->kinds);
    Py_XDECREF(self->value);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *HostCall_resume(HostCall *self, PyObject *value) {
    self->resumed = 1;
    Py_INCREF(value);
    Py_XSETREF(self->value, value);
    Py_RETURN_NONE;
}

/* The future this call is blocked in was deleted (a driver let go): the
 * continuation will never run again, so its reference goes now. */
static PyObject *HostCall_release(HostCall *self, PyObject *unused) {
    (void)unused;
    if (!self->released) {
        self->released = 1;
        Py_DECREF(self); /* (the caller holds another) */
    }
    Py_RETURN_NONE;
}

static PyMethodDef HostCall_methods[] = {
    {"resume", (PyCFunction)HostCall_resume, METH_O, "Mark this call to go on with value at the next poll."},
    {"release", (PyCFunction)HostCall_release, METH_NOARGS,
     "Its future was deleted while it was blocked: drop the continuation's reference."},
    {NULL}};

static PyMemberDef HostCall_members[] = {
    {"gen", T_OBJECT, offsetof(HostCall, gen), READONLY, NULL},
    {"resumed", T_INT, offsetof(HostCall, resumed), READONLY, NULL},
    {"nresults", T_PYSSIZET, offsetof(HostCall, nresults), READONLY, NULL},
    {NULL}};

static PyTypeObject HostCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.HostCall",
    .tp_basicsize = sizeof(HostCall),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One call of an async host function that is blocked (its generator suspended at a yield).",
    .tp_dealloc = (destructor)HostCall_dealloc,
    .tp_methods = HostCall_methods,
    .tp_members = HostCall_members,
};

/* A HostCall for a call that blocks: `gen` its suspended generator (NULL: a
 * driver's `next` parking), the rest where its results go. New reference, or
 * NULL with an exception set. */
static HostCall *new_host_call(PyObject *gen, PyObject *kinds, char *results, void *trap_ret, size_t nresults) {
    HostCall *call = PyObject_New(HostCall, &HostCallType);
    if (call == NULL) return NULL;
    Py_XINCREF(gen);
    call->gen = gen;
    Py_INCREF(kinds);
    call->kinds = kinds;
    call->value = NULL;
    call->results = results;
    call->trap_ret = trap_ret;
    call->nresults = (Py_ssize_t)nresults;
    call->resumed = 0;
    call->released = 0;
    return call;
}

/* ------------------------------------------------------------ callbacks */

static bool ready(void *env) { (void)env; return true; }
static void no_finalizer(void *env) { (void)env; }
static bool continuation(void *env);

/* The call blocked on `yielded`: tell fiber.on_block. 0, or -1 with an
 * exception set. */
static int host_block(PyObject *call, PyObject *yielded);

static int blocked(HostCall *call, PyObject *yielded) {
    PyObject *fn = PyDict_GetItemWithError(fiber_dict, s_on_block);
    if (fn == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "fiber.on_block is not set");
        return -1;
    }
    if (fn == py_on_host_block && fn != NULL) {
        int rc = host_block((PyObject *)call, yielded);
        if (rc <= 0) return rc;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(fn, (PyObject *)call, yielded, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static void trampoline(void *env, void *caller, const char *args, size_t nargs, char *results, size_t nresults,
                       void *trap_ret, Continuation *cont) {
    (void)caller;
    PyGILState_STATE g = PyGILState_Ensure();
    bump_epoch();
    cont->callback = ready;
    cont->env = NULL;
    cont->finalizer = no_finalizer;
    Py_ssize_t slot = (Py_ssize_t)(uintptr_t)env;
    PyObject *entry = NULL, *impl, *kinds, *argl, *r = NULL, *val = NULL;
    if (slot <= 0 || slot >= PyList_GET_SIZE(entries) ||
        !PyTuple_Check(entry = PyList_GET_ITEM(entries, slot))) {
        PyErr_SetString(PyExc_RuntimeError, "host function called after its store was closed");
        set_trap(trap_ret);
        goto out;
    }
    Py_INCREF(entry);
    impl = PyTuple_GET_ITEM(entry, 0);
    kinds = PyTuple_GET_ITEM(entry, 1);
    if (PyTuple_GET_SIZE(entry) > 2 && PyTuple_GET_ITEM(entry, 2) != Py_None && nargs <= 16) {
        /* impl(args) is spread(*args): no list */
        PyObject *argv[16];
        PyObject *l = read_args(args, nargs);
        if (l == NULL) { set_trap(trap_ret); goto out; }
        for (size_t i = 0; i < nargs; i++) argv[i] = PyList_GET_ITEM(l, (Py_ssize_t)i);
        r = PyObject_Vectorcall(PyTuple_GET_ITEM(entry, 2), argv, nargs, NULL);
        Py_DECREF(l);
        goto called;
    }
    argl = read_args(args, nargs);
    if (argl == NULL) { set_trap(trap_ret); goto out; }
    if (impl == Py_None) {
        /* a driver's `next` (fiber._next_impl): the core call it ran has
         * returned `argl`; park until resumed with [index, *arguments] */
        HostCall *call = new_host_call(NULL, kinds, results, trap_ret, nresults);
        if (call == NULL) { Py_DECREF(argl); set_trap(trap_ret); goto out; }
        cont->callback = continuation;
        cont->env = call;
        if (blocked(call, argl) < 0) {
            cont->callback = ready;
            cont->env = NULL;
            set_trap(trap_ret);
            Py_DECREF(call);
        }
        Py_DECREF(argl);
        goto out;
    }
    r = PyObject_CallOneArg(impl, argl);
    Py_DECREF(argl);
called:
    if (r == NULL) { set_trap(trap_ret); goto out; }
    if (PyList_CheckExact(r)) {
        if (write_results(results, nresults, kinds, r) < 0) set_trap(trap_ret);
        goto out;
    }
    switch (PyIter_Send(r, Py_None, &val)) {
    case PYGEN_RETURN:
        if (write_results(results, nresults, kinds, val) < 0) set_trap(trap_ret);
        break;
    case PYGEN_ERROR:
        set_trap(trap_ret);
        break;
    default: { /* PYGEN_NEXT: the call blocks */
        HostCall *call = new_host_call(r, kinds, results, trap_ret, nresults);
        if (call == NULL) { set_trap(trap_ret); break; }
        /* the continuation holds this reference until it answers "done" */
        cont->callback = continuation;
        cont->env = call;
        if (blocked(call, val) < 0) {
            cont->callback = ready;
            cont->env = NULL;
            set_trap(trap_ret);
            Py_DECREF(call);
        }
    }
    }
out:
    Py_XDECREF(val);
    Py_XDECREF(r);
    Py_XDECREF(entry);
    PyGILState_Release(g);
}

static bool continuation(void *env) {
    HostCall *call = (HostCall *)env;
    if (call == NULL) return true;
    PyGILState_STATE g = PyGILState_Ensure();
    bump_epoch();
    bool done = false;
    if (!call->resumed) goto out;
    call->resumed = 0;
    PyObject *value = call->value ? call->value : Py_NewRef(Py_None);
    call->value = NULL;
    PyObject *res = NULL;
    if (call->gen == NULL) { /* a parked driver: `value` is what its `next` returns */
        if (write_results(call->results, (size_t)call->nresults, call->kinds, value) < 0)
            set_trap(call->trap_ret);
        Py_DECREF(value);
        call->released = 1;
        Py_DECREF(call);
        PyGILState_Release(g);
        return true;
    }
    PySendResult s = PyIter_Send(call->gen, value, &res);
    Py_DECREF(value);
    if (s == PYGEN_RETURN) {
        if (call->nresults && write_results(call->results, (size_t)call->nresults, call->kinds, res) < 0)
            set_trap(call->trap_ret);
        done = true;
    } else if (s == PYGEN_ERROR) {
        set_trap(call->trap_ret);
        done = true;
    } else if (blocked(call, res) < 0) {
        set_trap(call->trap_ret);
        done = true;
    }
    Py_XDECREF(res);
    if (done) {
        call->released = 1;
        Py_DECREF(call);
    }
out:
    PyGILState_Release(g);
    return done;
}

/* --------------------------------------------------------------- module */

static PyObject *init(PyObject *self, PyObject *a) {
    PyObject *ents, *dict;
    Py_ssize_t size, of;
    PyObject *poll_at;
    if (!PyArg_ParseTuple(a, "O!O!nnO", &PyList_Type, &ents, &PyDict_Type, &dict, &size, &of, &poll_at))
        return NULL;
    void *pf = PyLong_AsVoidPtr(poll_at);
    if (pf == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "no wasmtime_call_future_poll address");
        return NULL;
    }
    if (size < of + 16 || of < 1) {
        PyErr_SetString(PyExc_ValueError, "unexpected wasmtime_val_t layout");
        return NULL;
    }
    Py_INCREF(ents);
    Py_XSETREF(entries, ents);
    Py_INCREF(dict);
    Py_XSETREF(fiber_dict, dict);
    VAL_SIZE = size;
    VAL_OF = of;
    future_poll = (poll_fn)pf;
    Py_RETURN_NONE;
}

/* (the int last handed out, kept while the count stays: a memory view asks
 * again and again between two entries into wasm) */
static PyObject *epoch_obj = NULL;
static unsigned long long epoch_obj_count = 0;

static PyObject *epoch_get(PyObject *self, PyObject *unused) {
    (void)self; (void)unused;
    if (epoch_obj == NULL || epoch_obj_count != wasm_epoch) {
        PyObject *v = PyLong_FromUnsignedLongLong(wasm_epoch);
        if (v == NULL) return NULL;
        Py_XSETREF(epoch_obj, v);
        epoch_obj_count = wasm_epoch;
    }
    return Py_NewRef(epoch_obj);
}

static PyObject *epoch_bump(PyObject *self, PyObject *unused) {
    (void)self; (void)unused;
    wasm_epoch++;
    Py_RETURN_NONE;
}

/* Whether the calling thread is the interpreter's only one. (Python threads
 * get their thread state from the thread that starts them, which holds the
 * GIL: none can appear during a poll but through Python code that runs in a
 * host call, with the GIL.) */
static int only_thread(void) {
    PyThreadState *ts = PyThreadState_Get();
    PyThreadState *head = PyInterpreterState_ThreadHead(PyThreadState_GetInterpreter(ts));
    return head == ts && PyThreadState_Next(ts) == NULL;
}

/* poll(future): CallFuture.poll's C call (ctypes' would make and check a
 * c_void_p argument and a c_bool result), the return from wasm counted.
 * ctypes releases the GIL around every call, so each host call the wasm
 * makes took it back (PyGILState_Ensure) and released it again: ~600
 * instructions a crossing, a dozen crossings a subtask. Here the GIL is
 * released only when another thread could want it: a run's watchdog or
 * signal thread, a server's threads, an I/O worker. With the interpreter's
 * only thread there is no one to give it to, and the host calls find it held
 * (PyGILState_Ensure then only counts). A thread started by a host call
 * during the poll gets the GIL when Python code next runs (the interpreter's
 * switch interval), and from the next poll on it is released again. */
static bool do_poll(void *fut) {
    bool done;
    if (only_thread()) {
        done = future_poll(fut);
    } else {
        Py_BEGIN_ALLOW_THREADS
        done = future_poll(fut);
        Py_END_ALLOW_THREADS
    }
    wasm_epoch++;
    return done;
}

static PyObject *poll(PyObject *self, PyObject *arg) {
    (void)self;
    void *fut = PyLong_AsVoidPtr(arg);
    if (fut == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "poll of a deleted future");
        return NULL;
    }
    if (future_poll == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init was not given wasmtime_call_future_poll");
        return NULL;
    }
    return PyBool_FromLong(do_poll(fut));
}




/* ------------------------------------------------------------ enum reads */

/* enums.MemberEnumType's tp_getattro: what CPython's hook for a class with a
 * Python __getattr__ does (slot_tp_getattr_hook), in the same order, without
 * calling type.__getattribute__ as a method: type's own lookup, then, on an
 * AttributeError, the metaclass's __getattr__ (EnumType.__getattr__), looked
 * up as the hook looks it up. */
static PyObject *s_getattr_name = NULL;

static PyObject *member_getattro_fn(PyObject *self, PyObject *name) {
    PyObject *r = PyType_Type.tp_getattro(self, name);
    if (r != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
    PyObject *t, *e, *tb;
    PyErr_Fetch(&t, &e, &tb); /* (a type lookup with an exception set would clear it) */
    PyObject *ga = _PyType_Lookup(Py_TYPE(self), s_getattr_name);
    if (ga == NULL) { /* no __getattr__: the AttributeError stands */
        PyErr_Restore(t, e, tb);
        return NULL;
    }
    Py_XDECREF(t);
    Py_XDECREF(e);
    Py_XDECREF(tb);
    Py_INCREF(ga);
    descrgetfunc f = Py_TYPE(ga)->tp_descr_get;
    if (f != NULL) {
        PyObject *bound = f(ga, self, (PyObject *)Py_TYPE(self));
        Py_DECREF(ga);
        if (bound == NULL) return NULL;
        r = PyObject_CallOneArg(bound, name);
        Py_DECREF(bound);
        return r;
    }
    r = PyObject_CallOneArg(ga, name);
    Py_DECREF(ga);
    return r;
}

static PyObject *member_getattro(PyObject *self, PyObject *meta) {
    (void)self;
    if (!PyType_Check(meta) || !PyType_IsSubtype((PyTypeObject *)meta, &PyType_Type) ||
        !(((PyTypeObject *)meta)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyErr_SetString(PyExc_TypeError, "member_getattro(metaclass): a metaclass defined in Python");
        return NULL;
    }
    if (s_getattr_name == NULL) s_getattr_name = PyUnicode_InternFromString("__getattr__");
    ((PyTypeObject *)meta)->tp_getattro = member_getattro_fn;
    PyType_Modified((PyTypeObject *)meta);
    Py_RETURN_NONE;
}

/* --------------------------------------------------------------- CoreCall */

/* thread.CoreCall in C, and what thread.call_core returns for a core
 * function of wasm: the request itself, as a one-shot iterator. `yield from`
 * it yields the request once (to Thread._drive, which starts the call) and
 * returns the value sent back (the results), as thread.call_core's
 * `return (yield CoreCall(...))` does, without a generator. A throw into the
 * delegating generator is raised there (PEP 380: no throw method), where the
 * generator's would have come out of call_core. */

typedef struct {
    PyObject_HEAD
    PyObject *func, *args, *params, *results;
    int state; /* 0 not yielded yet, 1 yielded (waiting for the results), 2 returned */
} CoreCallObj;

static void CoreCall_dealloc(CoreCallObj *self) {
    Py_XDECREF(self->func);
    Py_XDECREF(self->args);
    Py_XDECREF(self->params);
    Py_XDECREF(self->results);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *CoreCall_new(PyTypeObject *type, PyObject *a, PyObject *kw) {
    static char *names[] = {"func", "args", "params", "results", NULL};
    PyObject *f, *ar, *p, *r;
    if (!PyArg_ParseTupleAndKeywords(a, kw, "OOOO", names, &f, &ar, &p, &r)) return NULL;
    CoreCallObj *self = (CoreCallObj *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->func = Py_NewRef(f);
    self->args = Py_NewRef(ar);
    self->params = Py_NewRef(p);
    self->results = Py_NewRef(r);
    self->state = 0;
    return (PyObject *)self;
}

static PyTypeObject CoreCallType;

static CoreCallObj *new_core_call(PyObject *f, PyObject *ar, PyObject *p, PyObject *r) {
    CoreCallObj *self = PyObject_New(CoreCallObj, &CoreCallType);
    if (self == NULL) return NULL;
    self->func = Py_NewRef(f);
    self->args = Py_NewRef(ar);
    self->params = Py_NewRef(p);
    self->results = Py_NewRef(r);
    self->state = 0;
    return self;
}

static PySendResult CoreCall_am_send(CoreCallObj *self, PyObject *arg, PyObject **result) {
    if (self->state == 0) {
        self->state = 1;
        *result = Py_NewRef((PyObject *)self);
        return PYGEN_NEXT;
    }
    PyObject *v = self->state == 1 ? arg : Py_None;
    self->state = 2;
    *result = Py_NewRef(v);
    return PYGEN_RETURN;
}

static PyObject *CoreCall_iternext(CoreCallObj *self) {
    PyObject *r;
    if (CoreCall_am_send(self, Py_None, &r) == PYGEN_NEXT) return r;
    Py_DECREF(r); /* (None: a plain StopIteration) */
    return NULL;
}

static PyObject *CoreCall_send(CoreCallObj *self, PyObject *arg) {
    PyObject *r;
    if (CoreCall_am_send(self, arg, &r) == PYGEN_NEXT) return r;
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, r);
    Py_DECREF(r);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyMethodDef CoreCall_methods[] = {
    {"send", (PyCFunction)CoreCall_send, METH_O, "Send the results in (the first send yields the request)."},
    {NULL}};

static PyMemberDef CoreCall_members[] = {
    {"func", T_OBJECT_EX, offsetof(CoreCallObj, func), 0, NULL},
    {"args", T_OBJECT_EX, offsetof(CoreCallObj, args), 0, NULL},
    {"params", T_OBJECT_EX, offsetof(CoreCallObj, params), 0, NULL},
    {"results", T_OBJECT_EX, offsetof(CoreCallObj, results), 0, NULL},
    {NULL}};

static PyAsyncMethods CoreCall_async = {.am_send = (sendfunc)CoreCall_am_send};

static PyTypeObject CoreCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.CoreCall",
    .tp_basicsize = sizeof(CoreCallObj),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "CoreCall(func, args, params, results): a core call a thread body asks for (thread.CoreCall); "
              "iterated, it yields itself once and returns what is sent back.",
    .tp_dealloc = (destructor)CoreCall_dealloc,
    .tp_new = CoreCall_new,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)CoreCall_iternext,
    .tp_as_async = &CoreCall_async,
    .tp_methods = CoreCall_methods,
    .tp_members = CoreCall_members,
};

/* thread.call_core(f, args): f.func a HostFunc goes to the Python function;
 * a function of wasm gets its request (a CoreCall to `yield from`). */
static PyObject *HostFuncT = NULL, *py_call_core = NULL;
static PyObject *s_func, *s_params, *s_results;

static PyObject *call_core(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "call_core(f, args)");
        return NULL;
    }
    if (py_call_core == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_call_core was not called");
        return NULL;
    }
    PyObject *func = PyObject_GetAttr(argv[0], s_func);
    if (func == NULL) return NULL;
    if ((PyObject *)Py_TYPE(func) == HostFuncT) {
        Py_DECREF(func);
        return PyObject_Vectorcall(py_call_core, argv, 2, NULL);
    }
    PyObject *params = PyObject_GetAttr(argv[0], s_params), *results = NULL, *r = NULL;
    if (params != NULL) results = PyObject_GetAttr(argv[0], s_results);
    if (results != NULL) r = (PyObject *)new_core_call(func, argv[1], params, results);
    Py_DECREF(func);
    Py_XDECREF(params);
    Py_XDECREF(results);
    return r;
}

static PyObject *init_call_core(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *hf, *pc;
    if (!PyArg_ParseTuple(a, "O!O", &PyType_Type, &hf, &pc)) return NULL;
    Py_INCREF(hf);
    Py_XSETREF(HostFuncT, hf);
    Py_INCREF(pc);
    Py_XSETREF(py_call_core, pc);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ drive */

/* thread.Thread._drive in C: run a thread until it blocks or ends and return
 * the thread it asked to switch to. The Python method is the definition (and
 * what runs when this is not built, or thread.C_DRIVE is off); this does the
 * same steps in the same order, reading and writing the objects' __slots__
 * at the offsets their member descriptors give. The hot steps are done here
 * for the exact types they are made for (a CallFuture's poll, a Driver's
 * park, start_call's parked driver, a HostCall's resume); anything else goes
 * through the Python method of the same name. A Trap on the way out goes to
 * thread._trap_seen, which the Python method calls too. */

typedef struct { PyObject *type; const char *name; Py_ssize_t *off; } SlotSpec;

static Py_ssize_t T_gen, T_future, T_driver, T_host_call, T_block_arg, T_is_running, T_task, T_done, T_started;
static Py_ssize_t F_ptr, F_done, D_future, D_call, D_pool, C_func, C_args, C_params, C_results, B_switch_to;
static PyObject *ThreadT, *CallFutureT, *DriverT, *CoreCallT, *BlockT, *TrapT;
static PyObject *thread_stack, *py_start_call, *py_trap_seen, *py_drive;
static PyObject *s_poll, *s_park, *s_outcome, *s_throw, *s_resume, *s_inst, *s_store, *s_wasm_store,
    *s_drivers, *s_sites, *s_switch_to, *s_max_parked;
static int drive_ready = 0;

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

static int slot_offset(PyObject *type, const char *name, Py_ssize_t *out) {
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d == NULL) return -1;
    if (!Py_IS_TYPE(d, &PyMemberDescr_Type) || ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not a __slots__ member", type, name);
        Py_DECREF(d);
        return -1;
    }
    *out = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    return 0;
}

/* A slot's value (borrowed), or NULL with AttributeError, as Python reads it. */
static inline PyObject *get_slot(PyObject *o, Py_ssize_t off, const char *name) {
    PyObject *v = SLOT(o, off);
    if (v == NULL) PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'", Py_TYPE(o)->tp_name,
                                name);
    return v;
}

static inline void set_slot(PyObject *o, Py_ssize_t off, PyObject *v) {
    PyObject *old = SLOT(o, off);
    Py_INCREF(v);
    SLOT(o, off) = v;
    Py_XDECREF(old);
}

/* thread._on_host_block(call, blocked) for the thread on top of STACK: its
 * host_call and block_arg set. 0 done, 1 not done here (the Python function
 * is to be called), -1 error. */
static int host_block(PyObject *call, PyObject *yielded) {
    if (!drive_ready || !PyList_CheckExact(thread_stack) || PyList_GET_SIZE(thread_stack) == 0) return 1;
    PyObject *th = PyList_GET_ITEM(thread_stack, PyList_GET_SIZE(thread_stack) - 1);
    if (!Py_IS_TYPE(th, (PyTypeObject *)ThreadT)) return 1;
    Py_INCREF(th);
    set_slot(th, T_host_call, call);
    if (Py_IS_TYPE(yielded, (PyTypeObject *)BlockT)) {
        PyObject *to = get_slot(yielded, B_switch_to, "switch_to");
        if (to == NULL) { Py_DECREF(th); return -1; }
        set_slot(th, T_block_arg, to);
    } else {
        set_slot(th, T_block_arg, yielded);
    }
    Py_DECREF(th);
    return 0;
}

/* The methods the C paths stand for, as init_drive found them: a class
 * whose method was replaced since (a test's monkeypatch) goes through it. */
static PyObject *orig_poll = NULL, *orig_park = NULL;

static inline int is_method(PyObject *type, PyObject *name, PyObject *orig) {
    return orig != NULL && _PyType_Lookup((PyTypeObject *)type, name) == orig;
}

/* fut.poll(): 1 done, 0 blocked, -1 error */
static int poll_future(PyObject *fut) {
    if (Py_IS_TYPE(fut, (PyTypeObject *)CallFutureT) && is_method(CallFutureT, s_poll, orig_poll)) {
        PyObject *ptr = get_slot(fut, F_ptr, "ptr");
        if (ptr == NULL) return -1;
        void *p = PyLong_AsVoidPtr(ptr);
        if (p == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "poll of a deleted future");
            return -1;
        }
        if (!do_poll(p)) return 0;
        set_slot(fut, F_done, Py_True);
        return 1;
    }
    PyObject *r = PyObject_CallMethodNoArgs(fut, s_poll);
    if (r == NULL) return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* call.resume(value) */
static int resume_call(PyObject *call, PyObject *value) {
    if (Py_IS_TYPE(call, &HostCallType)) {
        HostCall *c = (HostCall *)call;
        c->resumed = 1;
        Py_INCREF(value);
        Py_XSETREF(c->value, value);
        return 0;
    }
    PyObject *r = PyObject_CallMethodOneArg(call, s_resume, value);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* driver.park(call): Driver.park while its pool has room, else the method */
static int park_driver(PyObject *drv, PyObject *call) {
    if (Py_IS_TYPE(drv, (PyTypeObject *)DriverT) && is_method(DriverT, s_park, orig_park)) {
        PyObject *pool = get_slot(drv, D_pool, "pool");
        if (pool == NULL) return -1;
        if (PyList_CheckExact(pool)) {
            PyObject *mp = PyDict_GetItemWithError(fiber_dict, s_max_parked);
            if (mp == NULL && PyErr_Occurred()) return -1;
            if (mp != NULL && PyLong_CheckExact(mp)) {
                Py_ssize_t max = PyLong_AsSsize_t(mp);
                if (max == -1 && PyErr_Occurred()) return -1;
                if (PyList_GET_SIZE(pool) < max) {
                    set_slot(drv, D_call, call);
                    return PyList_Append(pool, drv);
                }
            }
        }
    }
    PyObject *r = PyObject_CallMethodOneArg(drv, s_park, call);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* fiber.start_call(store, func, args, params, results) for a CoreCall: on a
 * parked driver here (its site known, its pool not empty), else the Python
 * function. New reference to the (future, driver) pair, or NULL. */
static PyObject *start_call(PyObject *wasm_store, PyObject *req) {
    PyObject *func = get_slot(req, C_func, "func"), *args = get_slot(req, C_args, "args");
    PyObject *params = get_slot(req, C_params, "params"), *results = get_slot(req, C_results, "results");
    if (func == NULL || args == NULL || params == NULL || results == NULL) return NULL;
    PyObject *drivers = PyObject_GetAttr(wasm_store, s_drivers);
    if (drivers == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return NULL;
        PyErr_Clear();
    } else if (drivers != Py_None) {
        PyObject *sites = PyObject_GetAttr(drivers, s_sites);
        Py_DECREF(drivers);
        if (sites == NULL) return NULL;
        PyObject *site = PyDict_CheckExact(sites) ? PyDict_GetItemWithError(sites, func) : NULL;
        Py_DECREF(sites);
        if (site == NULL && PyErr_Occurred()) return NULL;
        if (site != NULL && PyTuple_CheckExact(site) && PyTuple_GET_SIZE(site) == 3 && PyList_CheckExact(args)) {
            PyObject *pool = PyTuple_GET_ITEM(site, 1), *idx = PyTuple_GET_ITEM(site, 2);
            if (PyList_CheckExact(pool) && PyList_GET_SIZE(pool) > 0) {
                Py_ssize_t n = PyList_GET_SIZE(pool);
                PyObject *d = PyList_GET_ITEM(pool, n - 1);
                if (Py_IS_TYPE(d, (PyTypeObject *)DriverT) && SLOT(d, D_call) != NULL && SLOT(d, D_future) != NULL) {
                    Py_INCREF(d);
                    if (PyList_SetSlice(pool, n - 1, n, NULL) < 0) { Py_DECREF(d); return NULL; }
                    PyObject *call = SLOT(d, D_call);
                    Py_INCREF(call);
                    set_slot(d, D_call, Py_None);
                    Py_ssize_t na = PyList_GET_SIZE(args);
                    PyObject *l = PyList_New(na + 1);
                    if (l == NULL) { Py_DECREF(call); Py_DECREF(d); return NULL; }
                    Py_INCREF(idx);
                    PyList_SET_ITEM(l, 0, idx);
                    for (Py_ssize_t i = 0; i < na; i++) {
                        PyObject *a = PyList_GET_ITEM(args, i);
                        Py_INCREF(a);
                        PyList_SET_ITEM(l, i + 1, a);
                    }
                    int rc = resume_call(call, l);
                    Py_DECREF(l);
                    Py_DECREF(call);
                    if (rc < 0) { Py_DECREF(d); return NULL; }
                    PyObject *pair = PyTuple_Pack(2, SLOT(d, D_future), d);
                    Py_DECREF(d);
                    return pair;
                }
            }
        }
    } else {
        Py_DECREF(drivers);
    }
    PyObject *argv[5] = {wasm_store, func, args, params, results};
    return PyObject_Vectorcall(py_start_call, argv, 5, NULL);
}

/* thread.task.inst.store.wasm_store, new reference */
static PyObject *wasm_store_of(PyObject *th) {
    PyObject *task = get_slot(th, T_task, "task");
    if (task == NULL) return NULL;
    PyObject *inst = PyObject_GetAttr(task, s_inst);
    if (inst == NULL) return NULL;
    PyObject *store = PyObject_GetAttr(inst, s_store);
    Py_DECREF(inst);
    if (store == NULL) return NULL;
    PyObject *ws = PyObject_GetAttr(store, s_wasm_store);
    Py_DECREF(store);
    return ws;
}

static PyObject *exc_with_tb(void) {
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc != NULL && tb != NULL) PyException_SetTraceback(exc, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return exc;
}

static PyObject *drive(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "drive(thread, value)");
        return NULL;
    }
    PyObject *th = argv[0];
    if (!drive_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_drive was not called");
        return NULL;
    }
    if (!Py_IS_TYPE(th, (PyTypeObject *)ThreadT) || !PyList_CheckExact(thread_stack))
        return PyObject_Vectorcall(py_drive, argv, 2, NULL);
    PyObject *value = argv[1], *thr = NULL, *result = NULL, *fut = NULL;
    Py_INCREF(value);
    set_slot(th, T_is_running, Py_True);
    if (PyList_Append(thread_stack, th) < 0) { Py_DECREF(value); return NULL; }
    /* (from here on: the try of _drive) */
    PyObject *started = get_slot(th, T_started, "started");
    if (started == NULL) goto except;
    int st = PyObject_IsTrue(started);
    if (st < 0) goto except;
    if (!st) {
        set_slot(th, T_started, Py_True);
        Py_SETREF(value, Py_NewRef(Py_None));
    }
    PyObject *hc = get_slot(th, T_host_call, "host_call");
    if (hc == NULL) goto except;
    if (hc != Py_None) {
        Py_INCREF(hc);
        set_slot(th, T_host_call, Py_None);
        int rc = resume_call(hc, value);
        Py_DECREF(hc);
        if (rc < 0) goto except;
        Py_SETREF(value, Py_NewRef(Py_None));
    }
    for (;;) {
        PyObject *f = get_slot(th, T_future, "future");
        if (f == NULL) goto except;
        if (f != Py_None) {
            fut = Py_NewRef(f); /* (owned while set: every way out drops it) */
            int done = poll_future(fut);
            if (done < 0) goto except;
            if (!done) {
                PyObject *nxt = get_slot(th, T_block_arg, "block_arg");
                if (nxt == NULL) goto except;
                if (!PyList_CheckExact(nxt)) { /* blocked in a built-in */
                    result = Py_NewRef(nxt);
                    goto finally;
                }
                Py_INCREF(nxt);
                /* the driver's core call returned: park the driver */
                set_slot(th, T_block_arg, Py_None);
                set_slot(th, T_future, Py_None);
                PyObject *drv = get_slot(th, T_driver, "driver"), *call = NULL;
                if (drv != NULL) call = get_slot(th, T_host_call, "host_call");
                if (call == NULL) { Py_DECREF(nxt); goto except; }
                Py_INCREF(drv);
                Py_INCREF(call);
                int rc = park_driver(drv, call);
                Py_DECREF(drv);
                Py_DECREF(call);
                if (rc < 0) { Py_DECREF(nxt); goto except; }
                set_slot(th, T_driver, Py_None);
                set_slot(th, T_host_call, Py_None);
                Py_SETREF(value, nxt);
            } else {
                set_slot(th, T_future, Py_None);
                set_slot(th, T_driver, Py_None); /* (a driver ends only by a trap: not reused) */
                PyObject *out = PyObject_CallMethodNoArgs(fut, s_outcome);
                if (out != NULL) {
                    Py_SETREF(value, out);
                } else { /* a trap in wasm: raise it into the body */
                    thr = exc_with_tb();
                    if (thr == NULL) goto except;
                }
            }
            Py_CLEAR(fut);
        }
        PyObject *gen = get_slot(th, T_gen, "gen");
        if (gen == NULL) goto except;
        Py_INCREF(gen);
        PyObject *req = NULL;
        int ended = 0;
        if (thr != NULL) {
            PyObject *exc = thr;
            thr = NULL;
            req = PyObject_CallMethodOneArg(gen, s_throw, exc);
            Py_DECREF(exc);
            if (req == NULL && PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyErr_Clear();
                ended = 1;
            }
        } else {
            PyObject *ret = NULL;
            PySendResult sr = PyIter_Send(gen, value, &ret);
            if (sr == PYGEN_RETURN) {
                Py_DECREF(ret);
                ended = 1;
            } else if (sr == PYGEN_NEXT) {
                req = ret;
            }
        }
        Py_DECREF(gen);
        if (ended) {
            set_slot(th, T_done, Py_True);
            result = Py_NewRef(Py_None);
            goto finally;
        }
        if (req == NULL) goto except;
        if (Py_IS_TYPE(req, (PyTypeObject *)CoreCallT)) {
            PyObject *ws = wasm_store_of(th);
            if (ws == NULL) { Py_DECREF(req); goto except; }
            PyObject *pair = start_call(ws, req);
            Py_DECREF(ws);
            Py_DECREF(req);
            if (pair == NULL) goto except;
            if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
                Py_DECREF(pair);
                PyErr_SetString(PyExc_TypeError, "start_call must return (future, driver)");
                goto except;
            }
            set_slot(th, T_future, PyTuple_GET_ITEM(pair, 0));
            set_slot(th, T_driver, PyTuple_GET_ITEM(pair, 1));
            Py_DECREF(pair);
            Py_SETREF(value, Py_NewRef(Py_None));
            continue;
        }
        if (Py_IS_TYPE(req, (PyTypeObject *)BlockT)) {
            result = get_slot(req, B_switch_to, "switch_to");
            Py_XINCREF(result);
        } else {
            result = PyObject_GetAttr(req, s_switch_to);
        }
        Py_DECREF(req);
        if (result == NULL) goto except;
        goto finally;
    }
except:
    Py_CLEAR(fut);
    Py_CLEAR(thr);
    if (PyErr_ExceptionMatches(TrapT)) {
        PyObject *exc = exc_with_tb();
        PyObject *r = exc != NULL ? PyObject_CallFunctionObjArgs(py_trap_seen, th, exc, NULL) : NULL;
        if (r != NULL) {
            Py_DECREF(r);
            /* raise (the same exception, its traceback kept) */
            PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
            exc = NULL;
        } else if (exc != NULL) {
            /* the handler itself failed: its exception, chained as Python's would be */
            PyObject *t2, *e2, *tb2;
            PyErr_Fetch(&t2, &e2, &tb2);
            PyErr_NormalizeException(&t2, &e2, &tb2);
            if (e2 != NULL) PyException_SetContext(e2, Py_NewRef(exc));
            PyErr_Restore(t2, e2, tb2);
        }
        Py_XDECREF(exc);
    }
    result = NULL;
finally:
    Py_XDECREF(fut);
    Py_DECREF(value);
    {
        PyObject *t, *e, *tb;
        PyErr_Fetch(&t, &e, &tb);
        set_slot(th, T_is_running, Py_False);
        Py_ssize_t n = PyList_GET_SIZE(thread_stack);
        if (n > 0 && PyList_SetSlice(thread_stack, n - 1, n, NULL) < 0) PyErr_Clear();
        PyErr_Restore(t, e, tb);
    }
    return result;
}

/* init_drive(Thread, CallFuture, Driver, CoreCall, Block, Trap, STACK, start_call, trap_seen, Thread._drive,
 *            on_host_block) */
static PyObject *init_drive(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *o[11];
    if (!PyArg_ParseTuple(a, "OOOOOOO!OOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &PyList_Type, &o[6], &o[7],
                          &o[8], &o[9], &o[10]))
        return NULL;
    for (int i = 0; i < 5; i++)
        if (!PyType_Check(o[i])) {
            PyErr_SetString(PyExc_TypeError, "init_drive: the first five arguments are types");
            return NULL;
        }
    SlotSpec specs[] = {
        {o[0], "gen", &T_gen}, {o[0], "future", &T_future}, {o[0], "driver", &T_driver},
        {o[0], "host_call", &T_host_call}, {o[0], "block_arg", &T_block_arg}, {o[0], "is_running", &T_is_running},
        {o[0], "task", &T_task}, {o[0], "done", &T_done}, {o[0], "started", &T_started},
        {o[1], "ptr", &F_ptr}, {o[1], "done", &F_done},
        {o[2], "future", &D_future}, {o[2], "call", &D_call}, {o[2], "pool", &D_pool},
        {o[3], "func", &C_func}, {o[3], "args", &C_args}, {o[3], "params", &C_params}, {o[3], "results", &C_results},
        {o[4], "switch_to", &B_switch_to},
    };
    drive_ready = 0;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (slot_offset(specs[i].type, specs[i].name, specs[i].off) < 0) return NULL;
    PyObject **dst[] = {&ThreadT, &CallFutureT, &DriverT, &CoreCallT, &BlockT, &TrapT, &thread_stack,
                        &py_start_call, &py_trap_seen, &py_drive, &py_on_host_block};
    for (int i = 0; i < 11; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*dst[i], o[i]);
    }
    PyObject *op = _PyType_Lookup((PyTypeObject *)CallFutureT, s_poll);
    PyObject *ok = _PyType_Lookup((PyTypeObject *)DriverT, s_park);
    Py_XINCREF(op);
    Py_XSETREF(orig_poll, op);
    Py_XINCREF(ok);
    Py_XSETREF(orig_park, ok);
    drive_ready = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"init", init, METH_VARARGS,
     "init(entries, fiber_globals, val_size, val_payload_offset, future_poll_address): where the trampoline "
     "finds its functions, and wasmtime_call_future_poll"},
    {"epoch", epoch_get, METH_NOARGS, "The count of entries into and returns from wasm."},
    {"bump_epoch", epoch_bump, METH_NOARGS, "Count one (host code grew a memory itself)."},
    {"drive", (PyCFunction)(void (*)(void))drive, METH_FASTCALL,
     "drive(thread, value): thread.Thread._drive in C; returns the thread to switch to, or None."},
    {"init_drive", init_drive, METH_VARARGS, "init_drive(Thread, CallFuture, Driver, CoreCall, Block, Trap, "
     "STACK, start_call, trap_seen, Thread._drive, on_host_block): the types and objects drive works with"},
    {"call_core", (PyCFunction)(void (*)(void))call_core, METH_FASTCALL,
     "call_core(f, args): thread.call_core; a CoreCall to `yield from` for a function of wasm."},
    {"init_call_core", init_call_core, METH_VARARGS, "init_call_core(HostFunc, thread.call_core)"},
    {"member_getattro", member_getattro, METH_O,
     "member_getattro(metaclass): its classes' attributes read by type's lookup, then its __getattr__"},
    {"poll", poll, METH_O, "poll(future address) -> bool: wasmtime_call_future_poll (the GIL released if other threads exist)."},
    {NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_fiber", "fiber.py's trampoline in C", -1, methods};

PyMODINIT_FUNC PyInit__fiber(void) {
    if (PyType_Ready(&HostCallType) < 0) return NULL;
    if (PyType_Ready(&CoreCallType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (m == NULL) return NULL;
    s_on_block = PyUnicode_InternFromString("on_block");
    s_set_trap = PyUnicode_InternFromString("_set_trap");
    s_poll = PyUnicode_InternFromString("poll");
    s_park = PyUnicode_InternFromString("park");
    s_outcome = PyUnicode_InternFromString("outcome");
    s_throw = PyUnicode_InternFromString("throw");
    s_resume = PyUnicode_InternFromString("resume");
    s_inst = PyUnicode_InternFromString("inst");
    s_store = PyUnicode_InternFromString("store");
    s_wasm_store = PyUnicode_InternFromString("wasm_store");
    s_drivers = PyUnicode_InternFromString("_callscope_drivers");
    s_sites = PyUnicode_InternFromString("sites");
    s_switch_to = PyUnicode_InternFromString("switch_to");
    s_max_parked = PyUnicode_InternFromString("MAX_PARKED");
    s_func = PyUnicode_InternFromString("func");
    s_params = PyUnicode_InternFromString("params");
    s_results = PyUnicode_InternFromString("results");
    Py_INCREF(&CoreCallType);
    PyModule_AddObject(m, "CoreCall", (PyObject *)&CoreCallType);
    Py_INCREF(&HostCallType);
    PyModule_AddObject(m, "HostCall", (PyObject *)&HostCallType);
    PyModule_AddObject(m, "TRAMPOLINE", PyLong_FromVoidPtr((void *)trampoline));
    PyModule_AddObject(m, "NO_FINALIZER", PyLong_FromVoidPtr((void *)no_finalizer));
    return m;
}
