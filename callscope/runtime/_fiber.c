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

/* attributes of __slots__: fast_attr, fast_setattr, attr_truth */
#include "../_slots.h"

/* ------------------------------------------------------- observer calls
 * obs.<name>(*args), the runtime's observer calls made here. When the
 * recording observer's C core (trace/_sink.c's Core, _sinkapi.h) is loaded
 * and the observer's type still finds Core's own method of that name, the
 * call goes straight to Core's code (no method lookup, no Python-level
 * call); Core itself calls the method after all for an instance with an
 * attribute of that name. Anything else (no _sink, another observer class,
 * a subclass's override) is the method call as before. The type is asked
 * about once per type version. */
#include "../_sinkapi.h"

static const CallscopeSinkAPI *sink_api;  /* NULL: not found (yet) */
static int sink_api_absent;               /* _sink was loaded without a usable API */
static PyObject *obs_names[CS_N_CALLS];   /* the methods' names (init_obs_names) */
static struct {
    PyTypeObject *tp;  /* (not a reference: only compared, with its version tag) */
    unsigned int ver;
    unsigned mask;
} obs_tc;

static unsigned obs_mask_fill(PyTypeObject *tp) {
    if (sink_api == NULL && !sink_api_absent) {
        /* (found in sys.modules, not imported: without _sink loaded no
           observer is a Core) */
        PyObject *name = PyUnicode_FromString(CS_SINK_MODULE);
        PyObject *m = name != NULL ? PyImport_GetModule(name) : NULL;
        Py_XDECREF(name);
        if (m != NULL) {
            PyObject *cap = PyObject_GetAttrString(m, "_C_API");
            const CallscopeSinkAPI *api = cap != NULL ? PyCapsule_GetPointer(cap, CS_SINK_API_NAME) : NULL;
            Py_XDECREF(cap);
            Py_DECREF(m);
            if (api != NULL && api->version == CS_SINK_API_VERSION) sink_api = api;
            else sink_api_absent = 1;
        }
        PyErr_Clear();
    }
    unsigned mask = sink_api != NULL ? sink_api->type_mask(tp) : 0;
    obs_tc.tp = NULL;
    if (sink_api != NULL && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {  /* (type_mask's lookups gave it one) */
        obs_tc.tp = tp;
        obs_tc.ver = tp->tp_version_tag;
        obs_tc.mask = mask;
    }
    return mask;
}

/* obs.<obs_names[h]>(*args): 1 with *result (a new reference) when result
   is not NULL, or -1 with an error */
static int obs_call_method(PyObject *obs, int h, PyObject *const *args, Py_ssize_t n, PyObject **result);

/* which of Core's methods obs's type finds as Core's own (sink_api's bits) */
static inline __attribute__((always_inline)) unsigned obs_mask(PyObject *obs) {
    PyTypeObject *tp = Py_TYPE(obs);
    return tp == obs_tc.tp && tp->tp_version_tag == obs_tc.ver && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
               ? obs_tc.mask : obs_mask_fill(tp);
}

static inline __attribute__((always_inline)) int obs_call_r(PyObject *obs, int h, PyObject *const *args, Py_ssize_t n,
                                                            PyObject **result) {
    unsigned mask = obs_mask(obs);
    if (mask >> h & 1) {
        int rc = sink_api->call[h](obs, args, n, result);
        if (rc != 0) return rc;
    }
    return obs_call_method(obs, h, args, n, result);
}

/* (obs_call_r's method call) */
static int obs_call_method(PyObject *obs, int h, PyObject *const *args, Py_ssize_t n, PyObject **result) {
    PyObject *buf[8];
    if (n > 6) {
        PyErr_SetString(PyExc_SystemError, "obs_call: too many arguments");
        return -1;
    }
    buf[1] = obs;
    for (Py_ssize_t i = 0; i < n; i++) buf[2 + i] = args[i];
    PyObject *r = PyObject_VectorcallMethod(obs_names[h], buf + 1, (size_t)(n + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                            NULL);
    if (r == NULL) return -1;
    if (result != NULL) *result = r;
    else Py_DECREF(r);
    return 1;
}

/* obs.<name>(*args), the result dropped: 0, or -1 with an error */
static inline __attribute__((always_inline)) int obs_tell(PyObject *obs, int h, PyObject *const *args, Py_ssize_t n) {
    return obs_call_r(obs, h, args, n, NULL) < 0 ? -1 : 0;
}

/* obs.<name>(*args): the result, or NULL with an error */
static inline PyObject *obs_call(PyObject *obs, int h, PyObject *const *args, Py_ssize_t n) {
    PyObject *r = NULL;
    return obs_call_r(obs, h, args, n, &r) < 0 ? NULL : r;
}

static int init_obs_names(void) {
    static const char *const names[CS_N_CALLS] = {
        "task_new", "thread_new", "thread_switch", "task_start", "task_exit", "subtask_new", "waitable_set_wait",
        "event_delivered", "import_call", "import_return", "task_return", "next_call_id",
    };
    for (int h = 0; h < CS_N_CALLS; h++)
        if ((obs_names[h] = PyUnicode_InternFromString(names[h])) == NULL) return -1;
    return 0;
}


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

/* a CoreCall's fields set (self fresh from its allocator; NULL passes through) */
static CoreCallObj *core_call_init(CoreCallObj *self, PyObject *f, PyObject *ar, PyObject *p, PyObject *r) {
    if (self == NULL) return NULL;
    self->func = Py_NewRef(f);
    self->args = Py_NewRef(ar);
    self->params = Py_NewRef(p);
    self->results = Py_NewRef(r);
    self->state = 0;
    return self;
}

static PyObject *CoreCall_new(PyTypeObject *type, PyObject *a, PyObject *kw) {
    static char *names[] = {"func", "args", "params", "results", NULL};
    PyObject *f, *ar, *p, *r;
    if (!PyArg_ParseTupleAndKeywords(a, kw, "OOOO", names, &f, &ar, &p, &r)) return NULL;
    return (PyObject *)core_call_init((CoreCallObj *)type->tp_alloc(type, 0), f, ar, p, r);
}

static PyTypeObject CoreCallType;

static CoreCallObj *new_core_call(PyObject *f, PyObject *ar, PyObject *p, PyObject *r) {
    return core_call_init(PyObject_New(CoreCallObj, &CoreCallType), f, ar, p, r);
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
    PyObject *func = fast_attr(argv[0], s_func);
    if (func == NULL) return NULL;
    if ((PyObject *)Py_TYPE(func) == HostFuncT) {
        Py_DECREF(func);
        return PyObject_Vectorcall(py_call_core, argv, 2, NULL);
    }
    PyObject *params = fast_attr(argv[0], s_params), *results = NULL, *r = NULL;
    if (params != NULL) results = fast_attr(argv[0], s_results);
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
    PyObject *drivers = fast_attr(wasm_store, s_drivers);
    if (drivers == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return NULL;
        PyErr_Clear();
    } else if (drivers != Py_None) {
        PyObject *sites = fast_attr(drivers, s_sites);
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
    PyObject *inst = fast_attr(task, s_inst);
    if (inst == NULL) return NULL;
    PyObject *store = fast_attr(inst, s_store);
    Py_DECREF(inst);
    if (store == NULL) return NULL;
    PyObject *ws = fast_attr(store, s_wasm_store);
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
            result = fast_attr(req, s_switch_to);
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

static PyObject *make_cx(PyObject *cls, PyObject *const *a);

/* ------------------------------------------------------- the Task's steps */

/* thread.Task's enter_implicit_thread (its path that does not wait),
 * register_thread, needs_exclusive, start, exit_implicit_thread,
 * unregister_thread and return_, done here for the C callback loop and
 * task.return while the task's class has the method init_task_methods found
 * (the Python methods are the definitions; a replaced one is called). */

static PyObject *tm_started, *tm_resolved, *tm_no_result, *tm_trap;
static PyObject *orig_enter, *orig_register, *orig_needs_excl, *orig_start, *orig_exit, *orig_unregister, *orig_return;
static int tm_ready = 0;
static PyObject *s_register_thread, *s_needs_exclusive, *s_unregister_thread, *s_backpressure, *s_num_waiting_to_enter,
    *s_implicit_thread_t, *s_threads_t, *s_index_t, *s_num_borrows_t, *s_on_start_t, *s_on_resolve_t, *s_task_start,
    *s_task_exit, *s_task_return, *s_add_t, *s_remove_t;
static PyObject *trap_with(PyObject *T, PyObject *msg);
static PyObject *s_observer, *s_opts, *s_async_, *s_callback, *cb_zero, *s_append, *s_enter_implicit_thread, *s_ft,
    *s_exclusive_thread, *s_start, *s_state, *s_exit_implicit_thread, *s_return_; /* (the other sections' too) */

static inline int tm_is(PyObject *o, PyObject *name, PyObject *orig) {
    return tm_ready && is_method((PyObject *)Py_TYPE(o), name, orig);
}

/* list.remove(x) of an exact list (any other: its remove method). 0 or -1. */
static int list_remove(PyObject *l, PyObject *x) {
    if (!PyList_CheckExact(l)) {
        PyObject *r = PyObject_CallMethodOneArg(l, s_remove_t, x);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l); i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(l, i));
        int eq = PyObject_RichCompareBool(item, x, Py_EQ);
        Py_DECREF(item);
        if (eq < 0) return -1;
        if (eq > 0) return PyList_SetSlice(l, i, i + 1, NULL);
    }
    PyErr_SetString(PyExc_ValueError, "list.remove(x): x not in list");
    return -1;
}

/* the observer of task.inst.store (new reference) */
static PyObject *task_observer(PyObject *task) {
    PyObject *inst = fast_attr(task, s_inst), *store = NULL, *obs = NULL;
    if (inst != NULL) store = fast_attr(inst, s_store);
    if (store != NULL) obs = fast_attr(store, s_observer);
    Py_XDECREF(inst);
    Py_XDECREF(store);
    return obs;
}

/* obs.<names[h]>(task) where obs is task's observer, if any */
static int task_tell(PyObject *task, int h) {
    PyObject *obs = task_observer(task);
    if (obs == NULL) return -1;
    int rc = obs != Py_None ? obs_tell(obs, h, &task, 1) : 0;
    Py_DECREF(obs);
    return rc;
}

/* task.needs_exclusive(): 1, 0, -1 */
static int task_needs_exclusive(PyObject *task) {
    if (tm_is(task, s_needs_exclusive, orig_needs_excl)) {
        /* not self.opts.async_ or self.opts.callback is not None */
        PyObject *opts = fast_attr(task, s_opts);
        if (opts == NULL) return -1;
        int a = attr_truth(opts, s_async_);
        if (a <= 0) { Py_DECREF(opts); return a < 0 ? -1 : 1; }
        PyObject *cb = fast_attr(opts, s_callback);
        Py_DECREF(opts);
        if (cb == NULL) return -1;
        Py_DECREF(cb);
        return cb != Py_None;
    }
    PyObject *r = PyObject_CallMethodNoArgs(task, s_needs_exclusive);
    if (r == NULL) return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* o.name > 0: 1, 0, -1 (a macro: each use its own attribute cache, as fast_attr's sites need) */
#define attr_positive(o, name) __extension__({ PyObject *_pv = fast_attr((o), (name)); \
    int _pr = _pv != NULL ? PyObject_RichCompareBool(_pv, cb_zero, Py_GT) : -1; Py_XDECREF(_pv); _pr; })

/* task.register_thread(thread) */
static int task_register_thread(PyObject *task, PyObject *thread) {
    if (!tm_is(task, s_register_thread, orig_register)) {
        PyObject *r = PyObject_CallMethodOneArg(task, s_register_thread, thread);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    }
    /* self.threads.append(thread); thread.index = self.inst.threads.add(thread) */
    PyObject *threads = fast_attr(task, s_threads_t);
    if (threads == NULL) return -1;
    int rc = PyList_CheckExact(threads) ? PyList_Append(threads, thread) : -2;
    if (rc == -2) {
        PyObject *r = PyObject_CallMethodOneArg(threads, s_append, thread);
        rc = r != NULL ? 0 : -1;
        Py_XDECREF(r);
    }
    Py_DECREF(threads);
    if (rc < 0) return -1;
    PyObject *inst = fast_attr(task, s_inst), *tt = NULL, *i = NULL;
    if (inst != NULL) tt = fast_attr(inst, s_threads_t);
    if (tt != NULL) i = PyObject_CallMethodOneArg(tt, s_add_t, thread);
    Py_XDECREF(inst);
    Py_XDECREF(tt);
    if (i == NULL) return -1;
    rc = fast_setattr(thread, s_index_t, i);
    Py_DECREF(i);
    return rc;
}

/* task.enter_implicit_thread() when it would not wait: 1 done (it returned
 * True), 0 not done here (the method is to be called: a replaced one, or a
 * call that may have to wait for backpressure), -1 error */
static int task_enter_fast(PyObject *task) {
    if (!tm_is(task, s_enter_implicit_thread, orig_enter)) return 0;
    if (!PyList_Check(thread_stack) || PyList_GET_SIZE(thread_stack) == 0) return 0;
    PyObject *thread = PyList_GET_ITEM(thread_stack, PyList_GET_SIZE(thread_stack) - 1); /* current_thread() */
    Py_INCREF(thread);
    PyObject *inst = fast_attr(task, s_inst), *ft = NULL;
    int rc = -1, fa = -1;
    if (inst == NULL) goto out;
    ft = fast_attr(task, s_ft);
    if (ft == NULL) goto out;
    fa = attr_truth(ft, s_async_);
    if (fa < 0) goto out;
    if (fa) {
        /* (the reads of the wait's condition: any true, the method does it all) */
        int w = attr_positive(inst, s_backpressure);
        if (w == 0) w = attr_positive(inst, s_num_waiting_to_enter);
        if (w == 0) {
            PyObject *x = fast_attr(inst, s_exclusive_thread);
            if (x == NULL) goto out;
            Py_DECREF(x);
            if (x != Py_None) w = task_needs_exclusive(task);
        }
        if (w != 0) { rc = w < 0 ? -1 : 0; goto out; }
    }
    if (fast_setattr(task, s_implicit_thread_t, thread) < 0) goto out;
    if (fa) {
        int ne = task_needs_exclusive(task);
        if (ne < 0) goto out;
        if (ne) {
            if (!Py_OptimizeFlag) { /* assert inst.exclusive_thread is None */
                PyObject *x = fast_attr(inst, s_exclusive_thread);
                if (x == NULL) goto out;
                Py_DECREF(x);
                if (x != Py_None) { PyErr_SetNone(PyExc_AssertionError); goto out; }
            }
            if (fast_setattr(inst, s_exclusive_thread, thread) < 0) goto out;
        }
    }
    if (task_register_thread(task, thread) < 0) goto out;
    rc = 1;
out:
    Py_DECREF(thread);
    Py_XDECREF(inst);
    Py_XDECREF(ft);
    return rc;
}

/* task.start() (new reference) */
static PyObject *task_start(PyObject *task) {
    if (!tm_is(task, s_start, orig_start)) return PyObject_CallMethodNoArgs(task, s_start);
    if (fast_setattr(task, s_state, tm_started) < 0) return NULL;
    if (task_tell(task, CS_TASK_START) < 0) return NULL;
    PyObject *f = fast_attr(task, s_on_start_t);
    if (f == NULL) return NULL;
    PyObject *r = PyObject_CallNoArgs(f);
    Py_DECREF(f);
    return r;
}

/* task.unregister_thread(thread) */
static int task_unregister_thread(PyObject *task, PyObject *thread) {
    if (!tm_is(task, s_unregister_thread, orig_unregister)) {
        PyObject *r = PyObject_CallMethodOneArg(task, s_unregister_thread, thread);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    }
    PyObject *threads = fast_attr(task, s_threads_t);
    if (threads == NULL) return -1;
    int rc = list_remove(threads, thread);
    Py_DECREF(threads);
    if (rc < 0) return -1;
    threads = fast_attr(task, s_threads_t);
    if (threads == NULL) return -1;
    int any = PyObject_IsTrue(threads);
    Py_DECREF(threads);
    if (any < 0) return -1;
    if (!any) {
        PyObject *st = fast_attr(task, s_state);
        if (st == NULL) return -1;
        int ne = PyObject_RichCompareBool(st, tm_resolved, Py_NE);
        Py_DECREF(st);
        if (ne < 0) return -1;
        if (ne) { trap_with(tm_trap, Py_NewRef(tm_no_result)); return -1; }
        int nb = attr_truth(task, s_num_borrows_t);
        if (nb < 0) return -1;
        if (nb) {
            trap_with(tm_trap, PyUnicode_FromString("borrow handles still remain at the end of the call"));
            return -1;
        }
        if (task_tell(task, CS_TASK_EXIT) < 0) return -1;
    }
    /* self.inst.threads.remove(thread.index) */
    PyObject *inst = fast_attr(task, s_inst), *tt = NULL, *idx = NULL, *r = NULL;
    if (inst != NULL) tt = fast_attr(inst, s_threads_t);
    if (tt != NULL) idx = fast_attr(thread, s_index_t);
    if (idx != NULL) r = PyObject_CallMethodOneArg(tt, s_remove_t, idx);
    Py_XDECREF(inst);
    Py_XDECREF(tt);
    Py_XDECREF(idx);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* task.exit_implicit_thread() */
static int task_exit_implicit_thread(PyObject *task) {
    if (!tm_is(task, s_exit_implicit_thread, orig_exit)) {
        PyObject *r = PyObject_CallMethodNoArgs(task, s_exit_implicit_thread);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    }
    PyObject *it = fast_attr(task, s_implicit_thread_t);
    if (it == NULL) return -1;
    int rc = task_unregister_thread(task, it);
    Py_DECREF(it);
    if (rc < 0) return -1;
    /* if self.ft.async_ and self.needs_exclusive() and self.inst.exclusive_thread is self.implicit_thread */
    PyObject *ft = fast_attr(task, s_ft);
    if (ft == NULL) return -1;
    int c = attr_truth(ft, s_async_);
    Py_DECREF(ft);
    if (c > 0) c = task_needs_exclusive(task);
    if (c < 0) return -1;
    if (c) {
        PyObject *inst = fast_attr(task, s_inst), *x = NULL, *cur = NULL;
        if (inst != NULL) x = fast_attr(inst, s_exclusive_thread);
        if (x != NULL) cur = fast_attr(task, s_implicit_thread_t);
        rc = cur != NULL ? 0 : -1;
        if (cur != NULL && x == cur) rc = fast_setattr(inst, s_exclusive_thread, Py_None);
        Py_XDECREF(inst);
        Py_XDECREF(x);
        Py_XDECREF(cur);
        if (rc < 0) return -1;
    }
    PyObject *threads = fast_attr(task, s_threads_t);
    if (threads == NULL) return -1;
    int any = PyObject_IsTrue(threads);
    Py_DECREF(threads);
    if (any < 0) return -1;
    if (!any && fast_setattr(task, s_implicit_thread_t, Py_None) < 0) return -1;
    return 0;
}

/* task.return_(result) */
static int task_return_(PyObject *task, PyObject *result) {
    if (!tm_is(task, s_return_, orig_return)) {
        PyObject *r = PyObject_CallMethodOneArg(task, s_return_, result);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    }
    PyObject *st = fast_attr(task, s_state);
    if (st == NULL) return -1;
    int eq = PyObject_RichCompareBool(st, tm_resolved, Py_EQ);
    Py_DECREF(st);
    if (eq < 0) return -1;
    if (eq) {
        trap_with(tm_trap, PyUnicode_FromString("wasm trap: task.return called more than once"));
        return -1;
    }
    int nb = attr_positive(task, s_num_borrows_t);
    if (nb < 0) return -1;
    if (nb) {
        trap_with(tm_trap, PyUnicode_FromString("borrow handles still remain at the end of the call"));
        return -1;
    }
    PyObject *f = fast_attr(task, s_on_resolve_t);
    if (f == NULL) return -1;
    PyObject *r = PyObject_CallOneArg(f, result);
    Py_DECREF(f);
    if (r == NULL) return -1;
    Py_DECREF(r);
    if (fast_setattr(task, s_state, tm_resolved) < 0) return -1;
    PyObject *inst = fast_attr(task, s_inst);
    if (inst == NULL) return -1;
    PyObject *ft = fast_attr(task, s_ft);
    int c = ft != NULL ? attr_truth(ft, s_async_) : -1;
    Py_XDECREF(ft);
    int rc = c < 0 ? -1 : 0;
    if (c > 0) {
        PyObject *x = fast_attr(inst, s_exclusive_thread), *cur = NULL;
        if (x != NULL && x != Py_None) cur = fast_attr(task, s_implicit_thread_t);
        if (x == NULL || (x != Py_None && cur == NULL)) rc = -1;
        else if (x != Py_None && x == cur) rc = fast_setattr(inst, s_exclusive_thread, Py_None);
        Py_XDECREF(x);
        Py_XDECREF(cur);
    }
    if (rc == 0) {
        PyObject *store = fast_attr(inst, s_store), *obs = store != NULL ? fast_attr(store, s_observer) : NULL;
        Py_XDECREF(store);
        if (obs == NULL) rc = -1;
        else {
            if (obs != Py_None) {
                if (obs_tell(obs, CS_TASK_RETURN, (PyObject *[]){task, result}, 2) < 0) rc = -1;
            }
            Py_DECREF(obs);
        }
    }
    Py_DECREF(inst);
    return rc;
}

/* init_task_methods(Task, Task.State.STARTED, Task.State.RESOLVED, ASYNC_NO_RESULT, Trap) */
static PyObject *init_task_methods(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *tt, *o[4];
    if (!PyArg_ParseTuple(a, "O!OOOO", &PyType_Type, &tt, &o[0], &o[1], &o[2], &o[3])) return NULL;
    PyObject *names[] = {s_enter_implicit_thread, s_register_thread, s_needs_exclusive, s_start, s_exit_implicit_thread,
                         s_unregister_thread, s_return_};
    PyObject **mdst[] = {&orig_enter, &orig_register, &orig_needs_excl, &orig_start, &orig_exit, &orig_unregister,
                         &orig_return};
    for (int i = 0; i < 7; i++) {
        PyObject *m = _PyType_Lookup((PyTypeObject *)tt, names[i]);
        if (m == NULL) {
            PyErr_Format(PyExc_TypeError, "init_task_methods: Task.%U is missing", names[i]);
            return NULL;
        }
        Py_XSETREF(*mdst[i], Py_NewRef(m));
    }
    PyObject **dst[] = {&tm_started, &tm_resolved, &tm_no_result, &tm_trap};
    for (int i = 0; i < 4; i++) Py_XSETREF(*dst[i], Py_NewRef(o[i]));
    tm_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------- the callback loop */

/* canon.py canon_lift's thread_func for a function lifted `async` with a
 * `callback` (the stackless ABI), in C. The Python generator is the
 * definition (and what runs when this is not built, or canon.CALLBACK_THREAD
 * is None); this is the same body as a generator-like object that
 * Thread._drive (or _fiber.drive) sends values into and throws traps into:
 * it does the same steps in the same order, calls the same Python functions
 * and methods (task.enter_implicit_thread, LiftLowerContext, task.start,
 * abi.lower_values, call_core, thread.wait_until, inst.handles.get,
 * wset.wait_for_event_and, the observer's waitable_set_wait and
 * event_delivered, task.exit_implicit_thread) and raises the same traps with
 * the same messages. Where the generator says `yield from g`, this keeps g
 * and forwards each send and throw to it (PEP 380), so every blocking helper
 * is still the Python one. Once it ends (returned or raised) it lets go of
 * everything it held, as a finished generator's frame does, so a finished
 * task's objects are freed by reference counting.
 *
 * CallbackThread(task, inst, opts, plan, callee, host_caller): `thread` is
 * set right after the Thread is made (Thread(task, body) calls body(): this
 * object called returns itself). */

typedef struct {
    PyObject_HEAD
    PyObject *task, *inst, *opts, *plan, *callee, *thread, *callback, *not_exclusive;
    PyObject *sub;   /* what is being delegated to (`yield from`) */
    PyObject *code, *si;
    int host_caller, state, returned, running;
} CBThread;

enum { CB_INIT, CB_ENTER, CB_FIRST, CB_YIELD, CB_WAIT, CB_CALLBACK, CB_DONE };

static PyObject *cb_lift_lower_context, *cb_lower_values, *cb_call_core, *cb_waitable_set, *cb_ev_none,
    *cb_ev_cancelled, *cb_resolved, *cb_always, *cb_trap;
static int cb_ready = 0;
static PyObject *s_enter_implicit_thread, *s_exit_implicit_thread, *s_start, *s_ptr_type, *s_mask,
    *s_params_p, *s_callback, *s_exclusive_thread, *s_state, *s_wait_until, *s_handles, *s_get,
    *s_observer, *s_waitable_set_wait, *s_wait_for_event_and, *s_event_delivered, *s_close;
static PyObject *cb_zero;

/* not_exclusive(): inst.exclusive_thread is None (the closure thread_func makes) */
typedef struct {
    PyObject_HEAD
    PyObject *inst;
    vectorcallfunc vectorcall;
} NotExclusive;

static PyObject *NotExclusive_vc(NotExclusive *self, PyObject *const *a, size_t nargsf, PyObject *kw) {
    (void)a;
    if (PyVectorcall_NARGS(nargsf) != 0 || (kw != NULL && PyTuple_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "not_exclusive() takes no arguments");
        return NULL;
    }
    PyObject *x = fast_attr(self->inst, s_exclusive_thread);
    if (x == NULL) return NULL;
    PyObject *r = x == Py_None ? Py_True : Py_False;
    Py_DECREF(x);
    return Py_NewRef(r);
}

static int NotExclusive_traverse(NotExclusive *self, visitproc visit, void *arg) {
    Py_VISIT(self->inst);
    return 0;
}

static int NotExclusive_clear(NotExclusive *self) {
    Py_CLEAR(self->inst);
    return 0;
}

static void NotExclusive_dealloc(NotExclusive *self) {
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->inst);
    PyObject_GC_Del(self);
}

static PyTypeObject NotExclusiveType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.not_exclusive",
    .tp_basicsize = sizeof(NotExclusive),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "not_exclusive(): whether the instance's exclusive_thread is None (canon_lift's closure).",
    .tp_dealloc = (destructor)NotExclusive_dealloc,
    .tp_traverse = (traverseproc)NotExclusive_traverse,
    .tp_clear = (inquiry)NotExclusive_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(NotExclusive, vectorcall),
};

static void cb_release(CBThread *self) {
    self->state = CB_DONE;
    Py_CLEAR(self->sub);
    Py_CLEAR(self->task);
    Py_CLEAR(self->inst);
    Py_CLEAR(self->opts);
    Py_CLEAR(self->plan);
    Py_CLEAR(self->callee);
    Py_CLEAR(self->thread);
    Py_CLEAR(self->callback);
    Py_CLEAR(self->not_exclusive);
    Py_CLEAR(self->code);
    Py_CLEAR(self->si);
}

static int CBThread_traverse(CBThread *self, visitproc visit, void *arg) {
    Py_VISIT(self->task);
    Py_VISIT(self->inst);
    Py_VISIT(self->opts);
    Py_VISIT(self->plan);
    Py_VISIT(self->callee);
    Py_VISIT(self->thread);
    Py_VISIT(self->callback);
    Py_VISIT(self->not_exclusive);
    Py_VISIT(self->sub);
    Py_VISIT(self->code);
    Py_VISIT(self->si);
    return 0;
}

static int CBThread_clear(CBThread *self) {
    cb_release(self);
    return 0;
}

static void CBThread_dealloc(CBThread *self) {
    PyObject_GC_UnTrack(self);
    cb_release(self);
    PyObject_GC_Del(self);
}

/* A CallbackThread of (task, inst, opts, plan, callee) in `a5` and host_caller */
static PyObject *cb_thread_make(PyTypeObject *type, PyObject *const *a5, int host) {
    if (!cb_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_callback_thread was not called");
        return NULL;
    }
    CBThread *self = PyObject_GC_New(CBThread, type);
    if (self == NULL) return NULL;
    self->task = Py_NewRef(a5[0]);
    self->inst = Py_NewRef(a5[1]);
    self->opts = Py_NewRef(a5[2]);
    self->plan = Py_NewRef(a5[3]);
    self->callee = Py_NewRef(a5[4]);
    self->thread = Py_NewRef(Py_None);
    self->callback = self->not_exclusive = self->sub = self->code = self->si = NULL;
    self->host_caller = host;
    self->state = CB_INIT;
    self->returned = 0;
    self->running = 0;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *CBThread_new(PyTypeObject *type, PyObject *a, PyObject *kw) {
    static char *names[] = {"task", "inst", "opts", "plan", "callee", "host_caller", NULL};
    PyObject *a5[5];
    int host;
    if (!PyArg_ParseTupleAndKeywords(a, kw, "OOOOOp", names, &a5[0], &a5[1], &a5[2], &a5[3], &a5[4], &host))
        return NULL;
    return cb_thread_make(type, a5, host);
}

/* CallbackThread(task, inst, opts, plan, callee, host_caller) as canon_lift
 * calls it (positional): the arguments taken as they come, no tuple */
static PyObject *CBThread_vectorcall(PyObject *type, PyObject *const *argv, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (n != 6 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        /* (anything else: the tp_new way, its argument errors) */
        PyObject *args = PyTuple_New(n), *kw = NULL, *r;
        if (args == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(args, i, Py_NewRef(argv[i]));
        if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
            kw = PyDict_New();
            for (Py_ssize_t i = 0; kw != NULL && i < PyTuple_GET_SIZE(kwnames); i++)
                if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), argv[n + i]) < 0) Py_CLEAR(kw);
            if (kw == NULL) { Py_DECREF(args); return NULL; }
        }
        r = ((PyTypeObject *)type)->tp_new((PyTypeObject *)type, args, kw);
        Py_DECREF(args);
        Py_XDECREF(kw);
        return r;
    }
    int host = PyObject_IsTrue(argv[5]);
    if (host < 0) return NULL;
    return cb_thread_make((PyTypeObject *)type, argv, host);
}

/* Thread(task, body) calls body(): this object is its own body's generator */
static PyObject *CBThread_call(PyObject *self, PyObject *a, PyObject *kw) {
    if (PyTuple_GET_SIZE(a) != 0 || (kw != NULL && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "CallbackThread() takes no arguments");
        return NULL;
    }
    return Py_NewRef(self);
}

/* raise T(msg) (msg a new reference, or NULL with an error set) */
static PyObject *trap_with(PyObject *T, PyObject *msg) {
    if (msg == NULL) return NULL;
    PyObject *exc = PyObject_CallOneArg(T, msg);
    Py_DECREF(msg);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *cb_trap_msg(PyObject *msg) {
    return trap_with(cb_trap, msg);
}

/* `[x] = value` (one element), new reference */
static PyObject *unpack_one(PyObject *value) {
    PyObject *fast = PySequence_Fast(value, "cannot unpack non-iterable object");
    if (fast == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject *r = NULL;
    if (n == 1)
        r = Py_NewRef(PySequence_Fast_GET_ITEM(fast, 0));
    else if (n > 1)
        PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 1)");
    else
        PyErr_SetString(PyExc_ValueError, "not enough values to unpack (expected 1, got 0)");
    Py_DECREF(fast);
    return r;
}

/* [packed] = ret (the callback's results); code = packed & 0xF; trap past
 * CallbackCode.MAX; si = packed >> 4 (unpack_callback_result) */
static int cb_unpack(CBThread *self, PyObject *ret) {
    static PyObject *fifteen = NULL, *four = NULL;
    if (fifteen == NULL) {
        fifteen = PyLong_FromLong(15);
        four = PyLong_FromLong(4);
        if (fifteen == NULL || four == NULL) return -1;
    }
    PyObject *packed = unpack_one(ret);
    if (packed == NULL) return -1;
    PyObject *code = PyNumber_And(packed, fifteen);
    if (code == NULL) { Py_DECREF(packed); return -1; }
    long c = PyLong_AsLong(code);
    if (c == -1 && PyErr_Occurred()) { Py_DECREF(code); Py_DECREF(packed); return -1; }
    if (c > 2) {
        cb_trap_msg(PyUnicode_FromFormat("unsupported callback code: %S", code));
        Py_DECREF(code);
        Py_DECREF(packed);
        return -1;
    }
    PyObject *si = PyNumber_Rshift(packed, four);
    Py_DECREF(packed);
    if (si == NULL) { Py_DECREF(code); return -1; }
    Py_XSETREF(self->code, code);
    Py_XSETREF(self->si, si);
    return 0;
}

/* The loop's head: `while code != CallbackCode.EXIT:` up to the wait it
 * delegates to (self->sub set); or, past the loop, task.exit_implicit_thread()
 * and the end (returns 1). -1 on an exception. */
static int cb_loop_head(CBThread *self) {
    long code = PyLong_AsLong(self->code);
    if (code == -1 && PyErr_Occurred()) return -1;
    if (code == 0) { /* EXIT */
        if (task_exit_implicit_thread(self->task) < 0) return -1;
        return 1;
    }
    PyObject *x = fast_attr(self->inst, s_exclusive_thread);
    if (x == NULL) return -1;
    Py_DECREF(x);
    if (x == self->thread && fast_setattr(self->inst, s_exclusive_thread, Py_None) < 0) return -1;
    PyObject *st = fast_attr(self->task, s_state);
    if (st == NULL) return -1;
    Py_DECREF(st);
    self->returned = st == cb_resolved;
    PyObject *may_run = self->returned ? cb_always : self->not_exclusive;
    if (code == 1) { /* YIELD */
        PyObject *args[] = {self->thread, may_run, Py_True, Py_True};
        PyObject *g = PyObject_VectorcallMethod(s_wait_until, args, 4, NULL);
        if (g == NULL) return -1;
        self->sub = g;
        self->state = CB_YIELD;
        return 0;
    }
    /* WAIT */
    PyObject *handles = fast_attr(self->inst, s_handles);
    if (handles == NULL) return -1;
    PyObject *wset = PyObject_CallMethodOneArg(handles, s_get, self->si);
    Py_DECREF(handles);
    if (wset == NULL) return -1;
    int ok = PyObject_IsInstance(wset, cb_waitable_set);
    if (ok <= 0) {
        Py_DECREF(wset);
        if (ok == 0) cb_trap_msg(PyUnicode_FromFormat("wasm trap: unknown handle index %S", self->si));
        return -1;
    }
    PyObject *store = fast_attr(self->inst, s_store), *obs = NULL;
    if (store != NULL) {
        obs = fast_attr(store, s_observer);
        Py_DECREF(store);
    }
    if (obs == NULL) { Py_DECREF(wset); return -1; }
    if (obs != Py_None) {
        PyObject *a[] = {self->thread, self->si};
        if (obs_tell(obs, CS_WAITABLE_SET_WAIT, a, 2) < 0) { Py_DECREF(obs); Py_DECREF(wset); return -1; }
    }
    Py_DECREF(obs);
    PyObject *g = PyObject_CallMethodObjArgs(wset, s_wait_for_event_and, may_run, Py_True, NULL);
    Py_DECREF(wset);
    if (g == NULL) return -1;
    self->sub = g;
    self->state = CB_WAIT;
    return 0;
}

/* After the wait, with its event: the exclusive lock taken again, the event
 * told and given to the callback (self->sub the callback's call). */
static int cb_after_wait(CBThread *self, PyObject *event) {
    if (!self->returned && fast_setattr(self->inst, s_exclusive_thread, self->thread) < 0) return -1;
    PyObject *fast = PySequence_Fast(event, "cannot unpack non-iterable object");
    if (fast == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n != 3) {
        if (n > 3)
            PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 3)");
        else
            PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 3, got %zd)", n);
        Py_DECREF(fast);
        return -1;
    }
    PyObject *ec = PyNumber_Long(PySequence_Fast_GET_ITEM(fast, 0));
    PyObject *p1 = Py_NewRef(PySequence_Fast_GET_ITEM(fast, 1)), *p2 = Py_NewRef(PySequence_Fast_GET_ITEM(fast, 2));
    Py_DECREF(fast);
    PyObject *store = NULL, *obs = NULL, *lst = NULL;
    if (ec == NULL) goto fail;
    store = fast_attr(self->inst, s_store);
    if (store == NULL) goto fail;
    obs = fast_attr(store, s_observer);
    if (obs == NULL) goto fail;
    if (obs != Py_None) {
        PyObject *a[] = {self->thread, ec, p1, p2};
        if (obs_tell(obs, CS_EVENT_DELIVERED, a, 4) < 0) goto fail;
    }
    lst = PyList_New(3);
    if (lst == NULL) goto fail;
    PyList_SET_ITEM(lst, 0, ec);
    PyList_SET_ITEM(lst, 1, p1);
    PyList_SET_ITEM(lst, 2, p2);
    ec = p1 = p2 = NULL;
    {
        PyObject *args[] = {self->callback, lst};
        PyObject *g = PyObject_Vectorcall(cb_call_core, args, 2, NULL);
        if (g == NULL) goto fail;
        self->sub = g;
        self->state = CB_CALLBACK;
    }
    Py_DECREF(lst);
    Py_DECREF(store);
    Py_DECREF(obs);
    return 0;
fail:
    Py_XDECREF(ec);
    Py_XDECREF(p1);
    Py_XDECREF(p2);
    Py_XDECREF(store);
    Py_XDECREF(obs);
    Py_XDECREF(lst);
    return -1;
}

/* The body goes on with what its `yield from` returned (ret, borrowed).
 * 0: self->sub set (go on delegating), 1: the body ended, -1: it raised. */
static int cb_advance(CBThread *self, PyObject *ret) {
    switch (self->state) {
    case CB_ENTER: {
        int ok = PyObject_IsTrue(ret);
        if (ok <= 0) return ok < 0 ? -1 : 1; /* (backpressure's wait was cancelled) */
        PyObject *ptr_type = fast_attr(self->plan, s_ptr_type), *mask = NULL, *cx = NULL, *args = NULL,
                 *params = NULL, *flat = NULL;
        int rc = -1;
        if (ptr_type == NULL) return -1;
        mask = fast_attr(self->plan, s_mask);
        if (mask == NULL) goto enter_out;
        {
            PyObject *a[] = {self->opts, self->inst, self->task, self->host_caller ? Py_True : Py_False, ptr_type,
                             mask};
            cx = make_cx(cb_lift_lower_context, a);
        }
        if (cx == NULL) goto enter_out;
        args = task_start(self->task);
        if (args == NULL) goto enter_out;
        params = fast_attr(self->plan, s_params_p);
        if (params == NULL) goto enter_out;
        {
            PyObject *a[] = {cx, params, args};
            flat = PyObject_Vectorcall(cb_lower_values, a, 3, NULL);
        }
        if (flat == NULL) goto enter_out;
        {
            PyObject *a[] = {self->callee, flat};
            self->sub = PyObject_Vectorcall(cb_call_core, a, 2, NULL);
        }
        if (self->sub == NULL) goto enter_out;
        self->state = CB_FIRST;
        rc = 0;
    enter_out:
        Py_DECREF(ptr_type);
        Py_XDECREF(mask);
        Py_XDECREF(cx);
        Py_XDECREF(args);
        Py_XDECREF(params);
        Py_XDECREF(flat);
        return rc;
    }
    case CB_FIRST: {
        if (cb_unpack(self, ret) < 0) return -1;
        NotExclusive *ne = PyObject_GC_New(NotExclusive, &NotExclusiveType);
        if (ne == NULL) return -1;
        ne->inst = Py_NewRef(self->inst);
        ne->vectorcall = (vectorcallfunc)NotExclusive_vc;
        PyObject_GC_Track(ne);
        self->not_exclusive = (PyObject *)ne;
        self->callback = fast_attr(self->opts, s_callback);
        if (self->callback == NULL) return -1;
        return cb_loop_head(self);
    }
    case CB_YIELD: {
        int c = PyObject_IsTrue(ret);
        if (c < 0) return -1;
        PyObject *event = PyTuple_Pack(3, c ? cb_ev_cancelled : cb_ev_none, cb_zero, cb_zero);
        if (event == NULL) return -1;
        int rc = cb_after_wait(self, event);
        Py_DECREF(event);
        return rc;
    }
    case CB_WAIT:
        return cb_after_wait(self, ret);
    case CB_CALLBACK: {
        if (cb_unpack(self, ret) < 0) return -1;
        return cb_loop_head(self);
    }
    }
    PyErr_SetString(PyExc_SystemError, "CallbackThread: bad state");
    return -1;
}

/* One send (exc NULL) or throw (exc set) into the body. */
static PySendResult cb_step(CBThread *self, PyObject *value, PyObject *exc, PyObject **result) {
    *result = NULL;
    if (self->state == CB_DONE) {
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            return PYGEN_ERROR;
        }
        *result = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    if (self->running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return PYGEN_ERROR;
    }
    if (self->state == CB_INIT) {
        if (exc != NULL) { /* (thrown in before it started: raised at its first line) */
            cb_release(self);
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            return PYGEN_ERROR;
        }
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started generator");
            return PYGEN_ERROR;
        }
    }
    self->running = 1;
    PySendResult sr;
    PyObject *v = NULL;
    Py_INCREF(value);
    if (self->state == CB_INIT) {
        int f = task_enter_fast(self->task);
        if (f < 0) goto error;
        if (f == 0) {
            self->sub = PyObject_CallMethodNoArgs(self->task, s_enter_implicit_thread);
            if (self->sub == NULL) goto error;
            self->state = CB_ENTER;
        } else { /* (it returned True without waiting: the body goes on) */
            self->state = CB_ENTER;
            int rc = cb_advance(self, Py_True);
            if (rc < 0) goto error;
            if (rc > 0) goto ended;
        }
    }
    for (;;) {
        if (exc != NULL) {
            /* PEP 380: thrown into the iterator delegated to, if it has throw */
            PyObject *thr;
            if (_PyObject_LookupAttr(self->sub, s_throw, &thr) < 0) goto error;
            if (thr == NULL) {
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                exc = NULL;
                goto error;
            }
            v = PyObject_CallOneArg(thr, exc);
            Py_DECREF(thr);
            exc = NULL;
            if (v != NULL) {
                sr = PYGEN_NEXT;
            } else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyObject *t, *e, *tb;
                PyErr_Fetch(&t, &e, &tb);
                PyErr_NormalizeException(&t, &e, &tb);
                v = e != NULL ? Py_NewRef(((PyStopIterationObject *)e)->value) : Py_NewRef(Py_None);
                Py_XDECREF(t);
                Py_XDECREF(e);
                Py_XDECREF(tb);
                sr = PYGEN_RETURN;
            } else {
                goto error;
            }
        } else {
            sr = PyIter_Send(self->sub, value, &v);
        }
        if (sr == PYGEN_ERROR) goto error;
        if (sr == PYGEN_NEXT) {
            Py_DECREF(value);
            self->running = 0;
            *result = v;
            return PYGEN_NEXT;
        }
        Py_CLEAR(self->sub);
        int rc = cb_advance(self, v);
        Py_CLEAR(v);
        if (rc < 0) goto error;
        if (rc > 0) break;
        Py_SETREF(value, Py_NewRef(Py_None));
    }
ended:
    Py_DECREF(value);
    self->running = 0;
    cb_release(self);
    *result = Py_NewRef(Py_None);
    return PYGEN_RETURN;
error:
    Py_XDECREF(v);
    Py_DECREF(value);
    self->running = 0;
    {
        PyObject *t, *e, *tb;
        PyErr_Fetch(&t, &e, &tb);
        cb_release(self);
        PyErr_Restore(t, e, tb);
    }
    return PYGEN_ERROR;
}

static PySendResult CBThread_am_send(CBThread *self, PyObject *arg, PyObject **result) {
    return cb_step(self, arg, NULL, result);
}

static PyObject *cb_result(PySendResult sr, PyObject *r) {
    if (sr == PYGEN_NEXT) return r;
    if (sr == PYGEN_RETURN) {
        if (r == Py_None)
            PyErr_SetNone(PyExc_StopIteration);
        else
            _PyGen_SetStopIterationValue(r);
        Py_DECREF(r);
    }
    return NULL;
}

static PyObject *CBThread_iternext(CBThread *self) {
    PyObject *r;
    PySendResult sr = cb_step(self, Py_None, NULL, &r);
    if (sr == PYGEN_RETURN) { /* (a plain end: no StopIteration set) */
        Py_DECREF(r);
        return NULL;
    }
    return sr == PYGEN_NEXT ? r : NULL;
}

static PyObject *CBThread_send(CBThread *self, PyObject *arg) {
    PyObject *r;
    PySendResult sr = cb_step(self, arg, NULL, &r);
    return cb_result(sr, r);
}

static PyObject *CBThread_throw(CBThread *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw(exception)");
        return NULL;
    }
    PyObject *exc = argv[0];
    if (PyExceptionClass_Check(exc)) {
        exc = PyObject_CallNoArgs(exc);
        if (exc == NULL) return NULL;
    } else if (PyExceptionInstance_Check(exc)) {
        Py_INCREF(exc);
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
        return NULL;
    }
    PyObject *r;
    PySendResult sr = cb_step(self, Py_None, exc, &r);
    Py_DECREF(exc);
    return cb_result(sr, r);
}

/* close(): what a generator's close does to a body suspended in a `yield
 * from`: the iterator delegated to is closed, and the body ends */
static PyObject *CBThread_close(CBThread *self, PyObject *unused) {
    (void)unused;
    if (self->running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return NULL;
    }
    PyObject *sub = self->sub;
    self->sub = NULL;
    int rc = 0;
    if (sub != NULL) {
        PyObject *cl;
        rc = _PyObject_LookupAttr(sub, s_close, &cl);
        if (rc > 0) {
            PyObject *r = PyObject_CallNoArgs(cl);
            Py_DECREF(cl);
            if (r == NULL) rc = -1; else Py_DECREF(r);
        }
        Py_DECREF(sub);
    }
    PyObject *t, *e, *tb;
    PyErr_Fetch(&t, &e, &tb);
    cb_release(self);
    PyErr_Restore(t, e, tb);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *CBThread_get_thread(CBThread *self, void *c) {
    (void)c;
    return Py_NewRef(self->thread != NULL ? self->thread : Py_None);
}

static int CBThread_set_thread(CBThread *self, PyObject *v, void *c) {
    (void)c;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete thread");
        return -1;
    }
    Py_INCREF(v);
    Py_XSETREF(self->thread, v);
    return 0;
}

static PyGetSetDef CBThread_getset[] = {
    {"thread", (getter)CBThread_get_thread, (setter)CBThread_set_thread, "the Thread this body runs on", NULL},
    {NULL}};

static PyMethodDef CBThread_methods[] = {
    {"send", (PyCFunction)CBThread_send, METH_O, "Send a value in (as into the generator)."},
    {"throw", (PyCFunction)(void (*)(void))CBThread_throw, METH_FASTCALL, "Raise an exception in the body."},
    {"close", (PyCFunction)CBThread_close, METH_NOARGS, "End the body (the wait it is in closed)."},
    {NULL}};

static PyAsyncMethods CBThread_async = {.am_send = (sendfunc)CBThread_am_send};

static PyTypeObject CBThreadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.CallbackThread",
    .tp_basicsize = sizeof(CBThread),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "CallbackThread(task, inst, opts, plan, callee, host_caller): canon_lift's thread_func of a "
              "callback-lifted function, in C (called, it returns itself: the body's generator).",
    .tp_dealloc = (destructor)CBThread_dealloc,
    .tp_traverse = (traverseproc)CBThread_traverse,
    .tp_clear = (inquiry)CBThread_clear,
    .tp_new = CBThread_new,
    .tp_vectorcall = CBThread_vectorcall,
    .tp_call = CBThread_call,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)CBThread_iternext,
    .tp_as_async = &CBThread_async,
    .tp_methods = CBThread_methods,
    .tp_getset = CBThread_getset,
};

/* init_callback_thread(LiftLowerContext, lower_values, call_core, WaitableSet, EventCode.NONE,
 *                      EventCode.TASK_CANCELLED, Task.State.RESOLVED, _always, Trap) */
static PyObject *init_callback_thread(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *o[9];
    if (!PyArg_ParseTuple(a, "OOOOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &o[8]))
        return NULL;
    PyObject **dst[] = {&cb_lift_lower_context, &cb_lower_values, &cb_call_core, &cb_waitable_set, &cb_ev_none,
                        &cb_ev_cancelled, &cb_resolved, &cb_always, &cb_trap};
    for (int i = 0; i < 9; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*dst[i], o[i]);
    }
    cb_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------- Thread.resume, Store.tick */

/* thread.Thread.resume and instance.Store.tick in C, as method descriptors
 * of those classes (init_resume_tick puts them there). The Python methods are
 * the definitions (thread._resume_py, instance._tick_py: what runs when this
 * is not built, and what tests put back to compare); these do the same steps
 * in the same order. resume drives with whatever thread.DRIVE is (this
 * module's drive called directly when it is that); tick does its scan of the
 * waiting threads and the resume of the one it picks here, and leaves the
 * rest (posted events, timers, the outside world) to Store._tick_outside,
 * and a policy other than "fifo" (a seeded draw among the ready) to the
 * Python method. */

static PyObject *thread_globals = NULL, *cancelled_false = NULL, *py_tick = NULL, *resume_descr = NULL;
static Py_ssize_t T_tid, T_ready_func, T_cancellable;
static PyObject *s_DRIVE, *s_thread_switch, *s_stop_waiting_internal, *s_policy, *s_fifo, *s_waiting,
    *s_nesting_depth, *s_entering, *s_is_running_n, *s_cancellable_n, *s_ready_func_n, *s_task_n, *one_obj, *s_entering_set, *s_may_enter, *s_tick_outside, *s_tid, *s_resume_m;

static inline PyObject *th_attr(PyObject *th, Py_ssize_t off, PyObject *name) { /* new reference */
    if (Py_IS_TYPE(th, (PyTypeObject *)ThreadT)) {
        PyObject *v = SLOT(th, off);
        if (v == NULL)  /* (the name made UTF-8 only for the message) */
            PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%U'", Py_TYPE(th)->tp_name, name);
        Py_XINCREF(v);
        return v;
    }
    /* (not fast_attr: its cache is per site, and this one site reads several names) */
    return PyObject_GetAttr(th, name);
}

static PyObject *tid_of(PyObject *th) { /* prev.tid if prev is not None else None */
    if (th == Py_None) return Py_NewRef(Py_None);
    return th_attr(th, T_tid, s_tid);
}

static int wt_stop_waiting(PyObject *th, PyObject *cancelled);

static int c_resume(PyObject *self, PyObject *cancelled) {
    PyObject *store = NULL, *prev = NULL, *thread = NULL;
    Py_INCREF(cancelled);
    if (!Py_OptimizeFlag) { /* assert not self.is_running and (self.cancellable or not cancelled) */
        PyObject *r = th_attr(self, T_is_running, s_is_running_n);
        if (r == NULL) goto fail;
        int running = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (running < 0) goto fail;
        int ok = !running;
        if (ok) {
            PyObject *c = th_attr(self, T_cancellable, s_cancellable_n);
            if (c == NULL) goto fail;
            int cb = PyObject_IsTrue(c);
            Py_DECREF(c);
            if (cb < 0) goto fail;
            if (!cb) {
                int cv = PyObject_IsTrue(cancelled);
                if (cv < 0) goto fail;
                ok = !cv;
            }
        }
        if (!ok) {
            PyErr_SetNone(PyExc_AssertionError);
            goto fail;
        }
    }
    {
        PyObject *rf = th_attr(self, T_ready_func, s_ready_func_n);
        if (rf == NULL) goto fail;
        Py_DECREF(rf);
        if (rf != Py_None && wt_stop_waiting(self, cancelled) < 0) goto fail;
    }
    thread = Py_NewRef(self);
    {
        PyObject *task = th_attr(self, T_task, s_task_n), *inst = NULL;
        if (task == NULL) goto fail;
        inst = fast_attr(task, s_inst);
        Py_DECREF(task);
        if (inst == NULL) goto fail;
        store = fast_attr(inst, s_store);
        Py_DECREF(inst);
        if (store == NULL) goto fail;
    }
    if (!PyList_Check(thread_stack)) {
        PyErr_SetString(PyExc_TypeError, "thread.STACK is not a list");
        goto fail;
    }
    {
        Py_ssize_t n = PyList_GET_SIZE(thread_stack);
        prev = Py_NewRef(n > 0 ? PyList_GET_ITEM(thread_stack, n - 1) : Py_None);
    }
    while (thread != Py_None) {
        PyObject *obs = fast_attr(store, s_observer);
        if (obs == NULL) goto fail;
        if (obs != Py_None) {
            PyObject *a = tid_of(prev), *b = a != NULL ? tid_of(thread) : NULL;
            int rc = b != NULL ? obs_tell(obs, CS_THREAD_SWITCH, (PyObject *[]){a, b}, 2) : -1;
            Py_XDECREF(a);
            Py_XDECREF(b);
            if (rc < 0) { Py_DECREF(obs); goto fail; }
        }
        PyObject *d = PyDict_GetItemWithError(thread_globals, s_DRIVE), *nxt;
        if (d == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_NameError, "name 'DRIVE' is not defined");
            Py_DECREF(obs);
            goto fail;
        }
        PyObject *args[] = {thread, cancelled};
        if (PyCFunction_Check(d) && PyCFunction_GET_FUNCTION(d) == (PyCFunction)(void (*)(void))drive)
            nxt = drive(NULL, args, 2);
        else
            nxt = PyObject_Vectorcall(d, args, 2, NULL);
        if (nxt == NULL) { Py_DECREF(obs); goto fail; }
        if (obs != Py_None) {
            PyObject *a = tid_of(thread), *b = a != NULL ? tid_of(prev) : NULL;
            int rc = b != NULL ? obs_tell(obs, CS_THREAD_SWITCH, (PyObject *[]){a, b}, 2) : -1;
            Py_XDECREF(a);
            Py_XDECREF(b);
            if (rc < 0) { Py_DECREF(obs); Py_DECREF(nxt); goto fail; }
        }
        Py_DECREF(obs);
        Py_SETREF(thread, nxt);
        Py_SETREF(cancelled, Py_NewRef(cancelled_false));
    }
    Py_DECREF(thread);
    Py_DECREF(store);
    Py_DECREF(prev);
    Py_DECREF(cancelled);
    return 0;
fail:
    Py_XDECREF(thread);
    Py_XDECREF(store);
    Py_XDECREF(prev);
    Py_DECREF(cancelled);
    return -1;
}

static PyObject *resume_m(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "resume(cancelled=Cancelled.FALSE)");
        return NULL;
    }
    if (c_resume(self, nargs == 1 ? argv[0] : cancelled_false) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *tick_m(PyObject *store, PyObject *unused) {
    (void)unused;
    PyObject *policy = fast_attr(store, s_policy);
    if (policy == NULL) return NULL;
    int fifo = PyObject_RichCompareBool(policy, s_fifo, Py_EQ);
    Py_DECREF(policy);
    if (fifo < 0) return NULL;
    if (!fifo) return PyObject_CallOneArg(py_tick, store);
    PyObject *waiting = fast_attr(store, s_waiting), *thread = NULL;
    if (waiting == NULL) return NULL;
    if (!PyList_Check(waiting)) {
        Py_DECREF(waiting);
        return PyObject_CallOneArg(py_tick, store);
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiting); i++) {
        PyObject *t = Py_NewRef(PyList_GET_ITEM(waiting, i));
        PyObject *f = th_attr(t, T_ready_func, s_ready_func_n);
        if (f == NULL) { Py_DECREF(t); Py_DECREF(waiting); return NULL; }
        int go = 0;
        if (f != Py_None) {
            PyObject *r = th_attr(t, T_is_running, s_is_running_n);
            int running = r != NULL ? PyObject_IsTrue(r) : -1;
            Py_XDECREF(r);
            if (running == 0) {
                PyObject *v = PyObject_CallNoArgs(f);
                go = v != NULL ? PyObject_IsTrue(v) : -1;
                Py_XDECREF(v);
            } else if (running < 0) {
                go = -1;
            }
        }
        Py_DECREF(f);
        if (go < 0) { Py_DECREF(t); Py_DECREF(waiting); return NULL; }
        if (go) { thread = t; break; }
        Py_DECREF(t);
    }
    Py_DECREF(waiting);
    if (thread == NULL) return PyObject_CallMethodNoArgs(store, s_tick_outside);
    PyObject *inst = NULL, *entering = NULL, *depth = NULL, *nd = NULL;
    {
        PyObject *task = th_attr(thread, T_task, s_task_n);
        if (task == NULL) goto fail;
        inst = fast_attr(task, s_inst);
        Py_DECREF(task);
        if (inst == NULL) goto fail;
    }
    /* self.nesting_depth += 1 */
    depth = fast_attr(store, s_nesting_depth);
    if (depth == NULL) goto fail;
    nd = PyNumber_Add(depth, one_obj);
    Py_CLEAR(depth);
    if (nd == NULL) goto fail;
    if (fast_setattr(store, s_nesting_depth, nd) < 0) { Py_CLEAR(nd); goto fail; }
    Py_CLEAR(nd);
    {   /* (the try of tick) */
        int ok = -1;
        /* inst.entering_set(None): its cache read first, the method on a miss */
        PyObject *cache = fast_attr(inst, s_entering);
        if (cache != NULL && PyDict_CheckExact(cache)) {
            entering = PyDict_GetItemWithError(cache, Py_None);
            Py_XINCREF(entering);
        } else {
            PyErr_Clear();
        }
        Py_XDECREF(cache);
        if (entering == NULL && !PyErr_Occurred()) entering = PyObject_CallMethodOneArg(inst, s_entering_set, Py_None);
        if (entering != NULL && PyTuple_CheckExact(entering)) {
            Py_ssize_t n = PyTuple_GET_SIZE(entering), k;
            for (k = 0; k < n; k++)
                if (fast_setattr(PyTuple_GET_ITEM(entering, k), s_may_enter, Py_False) < 0) break;
            if (k == n) {
                int rc;
                if (Py_IS_TYPE(thread, (PyTypeObject *)ThreadT) &&
                    _PyType_Lookup((PyTypeObject *)ThreadT, s_resume_m) == resume_descr) {
                    rc = c_resume(thread, cancelled_false);
                } else {
                    PyObject *r = PyObject_CallMethodNoArgs(thread, s_resume_m);
                    rc = r != NULL ? 0 : -1;
                    Py_XDECREF(r);
                }
                if (rc == 0) {
                    for (k = 0; k < n; k++)
                        if (fast_setattr(PyTuple_GET_ITEM(entering, k), s_may_enter, Py_True) < 0) break;
                    if (k == n) ok = 0;
                }
            }
        } else if (entering != NULL) {
            PyErr_SetString(PyExc_TypeError, "entering_set must be a tuple");
        }
        /* finally: self.nesting_depth -= 1 */
        PyObject *t, *e, *tb;
        PyErr_Fetch(&t, &e, &tb);
        int fin = -1;
        depth = fast_attr(store, s_nesting_depth);
        if (depth != NULL) nd = PyNumber_Subtract(depth, one_obj);
        if (nd != NULL) fin = fast_setattr(store, s_nesting_depth, nd);
        Py_CLEAR(depth);
        Py_CLEAR(nd);
        if (fin < 0) {
            Py_XDECREF(t);
            Py_XDECREF(e);
            Py_XDECREF(tb);
            goto fail;
        }
        PyErr_Restore(t, e, tb);
        if (ok < 0) goto fail;
    }
    Py_DECREF(thread);
    Py_DECREF(inst);
    Py_DECREF(entering);
    Py_RETURN_TRUE;
fail:
    Py_XDECREF(thread);
    Py_XDECREF(inst);
    Py_XDECREF(entering);
    return NULL;
}

static PyMethodDef resume_def = {"resume", (PyCFunction)(void (*)(void))resume_m, METH_FASTCALL,
                                 "Thread.resume(cancelled=Cancelled.FALSE), in C (thread._resume_py is the definition)."};
static PyMethodDef tick_def = {"tick", (PyCFunction)tick_m, METH_NOARGS,
                               "Store.tick(), in C (instance._tick_py is the definition)."};

/* init_resume_tick(Thread, Store, thread module globals, Cancelled.FALSE, Store.tick) -> (resume, tick):
 * the method descriptors to put on the classes (init_drive first) */
static PyObject *init_resume_tick(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *tt, *st, *g, *cf, *pt;
    if (!PyArg_ParseTuple(a, "O!O!O!OO", &PyType_Type, &tt, &PyType_Type, &st, &PyDict_Type, &g, &cf, &pt))
        return NULL;
    if (!drive_ready || tt != ThreadT) {
        PyErr_SetString(PyExc_RuntimeError, "init_resume_tick: init_drive(Thread, ...) first");
        return NULL;
    }
    SlotSpec specs[] = {{tt, "tid", &T_tid}, {tt, "ready_func", &T_ready_func}, {tt, "cancellable", &T_cancellable}};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (slot_offset(specs[i].type, specs[i].name, specs[i].off) < 0) return NULL;
    Py_INCREF(g);
    Py_XSETREF(thread_globals, g);
    Py_INCREF(cf);
    Py_XSETREF(cancelled_false, cf);
    Py_INCREF(pt);
    Py_XSETREF(py_tick, pt);
    PyObject *r = PyDescr_NewMethod((PyTypeObject *)tt, &resume_def);
    if (r == NULL) return NULL;
    PyObject *t = PyDescr_NewMethod((PyTypeObject *)st, &tick_def);
    if (t == NULL) { Py_DECREF(r); return NULL; }
    Py_XSETREF(resume_descr, Py_NewRef(r));
    return Py_BuildValue("(NN)", r, t);
}

/* ------------------------------------------------------ the waiting helpers */

/* thread.Thread.wait_until and waitables.WaitableSet.wait_for_event_and in C,
 * as method descriptors of those classes (init_wait_until and
 * init_wait_for_event put them there). The Python generators are the
 * definitions (thread._wait_until_py, waitables._wait_for_event_and_py:
 * what runs when this is not built, and what tests put back to compare).
 * Each call returns a generator-like object that does the generator's steps
 * in the same order when first sent None, yields what it yields, returns what
 * it returns, and takes throw() and close() as a generator suspended there
 * does (wait_for_event_and's `finally` run on every way out). The small
 * methods these steps call (Task.deliver_pending_cancel,
 * Thread.start_waiting_internal / stop_waiting_internal,
 * WaitableSet.has_pending_event / get_pending_event,
 * Waitable.get_pending_event, Subtask.resolved / deliver_resolve) are done
 * here while the object's class has the method init found; a class whose
 * method was replaced since goes through that method. */

static PyObject *wt_block, *wt_true, *wt_false, *wt_pending_cancel, *wt_cancel_delivered, *wt_ev_cancelled,
    *wt_sub_returned;
static PyObject *orig_dpc, *orig_swi, *orig_stwi, *orig_hpe, *orig_wset_gpe, *orig_w_gpe, *orig_resolved,
    *orig_deliver_resolve, *wait_until_descr;
static int wt_ready = 0, we_ready = 0;
static PyObject *s_deliver_pending_cancel, *s_start_waiting_internal, *s_has_pending_event, *s_get_pending_event,
    *s_num_waiting, *s_elems, *s_rng, *s_shuffle, *s_lenders, *s_num_lends, *s_remove, *s_ready_func_kw,
    *s_always_block_kw, *s_append;
static PyObject *s_pending_event, *s_resolved, *s_deliver_resolve; /* (also the canon lower section's) */

/* raise exc (borrowed) as the current exception */
static void raise_exc(PyObject *exc) {
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
}

/* task.deliver_pending_cancel(cancellable): 1, 0, -1 */
static int wt_deliver_pending_cancel(PyObject *task, PyObject *cancellable) {
    if (is_method((PyObject *)Py_TYPE(task), s_deliver_pending_cancel, orig_dpc)) {
        int c = PyObject_IsTrue(cancellable);
        if (c <= 0) return c;
        PyObject *st = fast_attr(task, s_state);
        if (st == NULL) return -1;
        int eq = PyObject_RichCompareBool(st, wt_pending_cancel, Py_EQ);
        Py_DECREF(st);
        if (eq <= 0) return eq;
        return fast_setattr(task, s_state, wt_cancel_delivered) < 0 ? -1 : 1;
    }
    PyObject *r = PyObject_CallMethodOneArg(task, s_deliver_pending_cancel, cancellable);
    if (r == NULL) return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* thread.task.inst.store.waiting, new reference */
static PyObject *waiting_of(PyObject *th) {
    PyObject *task = th_attr(th, T_task, s_task_n), *inst = NULL, *store = NULL, *w = NULL;
    if (task != NULL) inst = fast_attr(task, s_inst);
    if (inst != NULL) store = fast_attr(inst, s_store);
    if (store != NULL) w = fast_attr(store, s_waiting);
    Py_XDECREF(task);
    Py_XDECREF(inst);
    Py_XDECREF(store);
    return w;
}

/* thread.start_waiting_internal(ready_func) */
static int wt_start_waiting(PyObject *th, PyObject *rf) {
    if (Py_IS_TYPE(th, (PyTypeObject *)ThreadT) && is_method(ThreadT, s_start_waiting_internal, orig_swi)) {
        if (!Py_OptimizeFlag) { /* assert self.ready_func is None */
            PyObject *cur = get_slot(th, T_ready_func, "ready_func");
            if (cur == NULL) return -1;
            if (cur != Py_None) {
                PyErr_SetNone(PyExc_AssertionError);
                return -1;
            }
        }
        set_slot(th, T_ready_func, rf);
        PyObject *w = waiting_of(th);
        if (w == NULL) return -1;
        int rc;
        if (PyList_CheckExact(w)) {
            rc = PyList_Append(w, th);
        } else {
            PyObject *r = PyObject_CallMethodOneArg(w, s_append, th);
            rc = r != NULL ? 0 : -1;
            Py_XDECREF(r);
        }
        Py_DECREF(w);
        return rc;
    }
    PyObject *r = PyObject_CallMethodOneArg(th, s_start_waiting_internal, rf);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* thread.stop_waiting_internal(cancelled) */
static int wt_stop_waiting(PyObject *th, PyObject *cancelled) {
    if (wt_ready && Py_IS_TYPE(th, (PyTypeObject *)ThreadT) && is_method(ThreadT, s_stop_waiting_internal, orig_stwi)) {
        set_slot(th, T_ready_func, Py_None);
        PyObject *w = waiting_of(th);
        if (w == NULL) return -1;
        int rc = -1;
        if (PyList_CheckExact(w)) { /* list.remove(self) */
            int found = 0;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(w); i++) {
                PyObject *item = Py_NewRef(PyList_GET_ITEM(w, i));
                int eq = PyObject_RichCompareBool(item, th, Py_EQ);
                Py_DECREF(item);
                if (eq < 0) { found = -1; break; }
                if (eq > 0) {
                    found = 1;
                    rc = PyList_SetSlice(w, i, i + 1, NULL);
                    break;
                }
            }
            if (found == 0) PyErr_SetString(PyExc_ValueError, "list.remove(x): x not in list");
        } else {
            PyObject *r = PyObject_CallMethodOneArg(w, s_remove, th);
            rc = r != NULL ? 0 : -1;
            Py_XDECREF(r);
        }
        Py_DECREF(w);
        return rc;
    }
    PyObject *r = PyObject_CallMethodOneArg(th, s_stop_waiting_internal, cancelled);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* -- wait_until */

typedef struct {
    PyObject_HEAD
    PyObject *thread, *ready_func, *cancellable, *always_block;
    int state, running;
} WaitUntil;

enum { WU_INIT, WU_BLOCKED, WU_DONE };

static void wu_release(WaitUntil *self) {
    self->state = WU_DONE;
    Py_CLEAR(self->thread);
    Py_CLEAR(self->ready_func);
    Py_CLEAR(self->cancellable);
    Py_CLEAR(self->always_block);
}

static int WaitUntil_traverse(WaitUntil *self, visitproc visit, void *arg) {
    Py_VISIT(self->thread);
    Py_VISIT(self->ready_func);
    Py_VISIT(self->cancellable);
    Py_VISIT(self->always_block);
    return 0;
}

static int WaitUntil_clear(WaitUntil *self) {
    wu_release(self);
    return 0;
}

static void WaitUntil_dealloc(WaitUntil *self) {
    PyObject_GC_UnTrack(self);
    wu_release(self);
    PyObject_GC_Del(self);
}

static PyTypeObject WaitUntilType;

static PyObject *new_wait_until(PyObject *th, PyObject *rf, PyObject *cancellable, PyObject *always_block) {
    WaitUntil *w = PyObject_GC_New(WaitUntil, &WaitUntilType);
    if (w == NULL) return NULL;
    w->thread = Py_NewRef(th);
    w->ready_func = Py_NewRef(rf);
    w->cancellable = Py_NewRef(cancellable);
    w->always_block = Py_NewRef(always_block);
    w->state = WU_INIT;
    w->running = 0;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

/* One send (exc NULL) or throw (exc set) into wait_until's body. */
static PySendResult wu_step(WaitUntil *self, PyObject *value, PyObject *exc, PyObject **result) {
    *result = NULL;
    if (self->state == WU_DONE) {
        if (exc != NULL) {
            raise_exc(exc);
            return PYGEN_ERROR;
        }
        *result = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    if (self->running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return PYGEN_ERROR;
    }
    if (self->state == WU_BLOCKED) { /* cancelled = yield _BLOCK; return cancelled */
        wu_release(self);
        if (exc != NULL) {
            raise_exc(exc);
            return PYGEN_ERROR;
        }
        *result = Py_NewRef(value);
        return PYGEN_RETURN;
    }
    if (exc != NULL) {
        wu_release(self);
        raise_exc(exc);
        return PYGEN_ERROR;
    }
    if (value != Py_None) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started generator");
        return PYGEN_ERROR;
    }
    self->running = 1;
    PyObject *th = self->thread;
    PyObject *task = th_attr(th, T_task, s_task_n);
    if (task == NULL) goto error;
    int d = wt_deliver_pending_cancel(task, self->cancellable);
    Py_DECREF(task);
    if (d < 0) goto error;
    if (d) {
        *result = Py_NewRef(wt_true);
        goto returned;
    }
    int ab = PyObject_IsTrue(self->always_block);
    if (ab < 0) goto error;
    if (!ab) {
        PyObject *r = PyObject_CallNoArgs(self->ready_func);
        if (r == NULL) goto error;
        int t = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (t < 0) goto error;
        if (t) {
            *result = Py_NewRef(wt_false);
            goto returned;
        }
    }
    if (wt_start_waiting(th, self->ready_func) < 0) goto error;
    if (Py_IS_TYPE(th, (PyTypeObject *)ThreadT))
        set_slot(th, T_cancellable, self->cancellable);
    else if (PyObject_SetAttr(th, s_cancellable_n, self->cancellable) < 0)
        goto error;
    self->running = 0;
    self->state = WU_BLOCKED;
    *result = Py_NewRef(wt_block);
    return PYGEN_NEXT;
returned:
    self->running = 0;
    wu_release(self);
    return PYGEN_RETURN;
error:
    self->running = 0;
    {
        PyObject *t, *e, *tb;
        PyErr_Fetch(&t, &e, &tb);
        wu_release(self);
        PyErr_Restore(t, e, tb);
    }
    return PYGEN_ERROR;
}

/* send/next/throw as a generator's: the return value as StopIteration */
static PyObject *gen_like_result(PySendResult sr, PyObject *r) {
    return cb_result(sr, r);
}

/* throw(exc) arguments as a generator takes them: the exception instance, new reference */
static PyObject *throw_arg(PyObject *const *argv, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw(exception)");
        return NULL;
    }
    PyObject *exc = argv[0];
    if (PyExceptionClass_Check(exc)) return PyObject_CallNoArgs(exc);
    if (PyExceptionInstance_Check(exc)) return Py_NewRef(exc);
    PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
    return NULL;
}

static PySendResult WaitUntil_am_send(WaitUntil *self, PyObject *arg, PyObject **result) {
    return wu_step(self, arg, NULL, result);
}

static PyObject *WaitUntil_iternext(WaitUntil *self) {
    PyObject *r;
    PySendResult sr = wu_step(self, Py_None, NULL, &r);
    if (sr == PYGEN_RETURN) {
        if (r == Py_None) {
            Py_DECREF(r);
            return NULL;
        }
        _PyGen_SetStopIterationValue(r);
        Py_DECREF(r);
        return NULL;
    }
    return sr == PYGEN_NEXT ? r : NULL;
}

static PyObject *WaitUntil_send(WaitUntil *self, PyObject *arg) {
    PyObject *r;
    PySendResult sr = wu_step(self, arg, NULL, &r);
    return gen_like_result(sr, r);
}

static PyObject *WaitUntil_throw(WaitUntil *self, PyObject *const *argv, Py_ssize_t nargs) {
    PyObject *exc = throw_arg(argv, nargs), *r;
    if (exc == NULL) return NULL;
    PySendResult sr = wu_step(self, Py_None, exc, &r);
    Py_DECREF(exc);
    return gen_like_result(sr, r);
}

static PyObject *WaitUntil_close(WaitUntil *self, PyObject *unused) {
    (void)unused;
    if (self->running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return NULL;
    }
    wu_release(self);
    Py_RETURN_NONE;
}

static PyMethodDef WaitUntil_methods[] = {
    {"send", (PyCFunction)WaitUntil_send, METH_O, "Send a value in (as into the generator)."},
    {"throw", (PyCFunction)(void (*)(void))WaitUntil_throw, METH_FASTCALL, "Raise an exception at the wait."},
    {"close", (PyCFunction)WaitUntil_close, METH_NOARGS, "End the wait."},
    {NULL}};

static PyAsyncMethods WaitUntil_async = {.am_send = (sendfunc)WaitUntil_am_send};

static PyTypeObject WaitUntilType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.wait_until",
    .tp_basicsize = sizeof(WaitUntil),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Thread.wait_until's generator, in C (thread._wait_until_py is the definition).",
    .tp_dealloc = (destructor)WaitUntil_dealloc,
    .tp_traverse = (traverseproc)WaitUntil_traverse,
    .tp_clear = (inquiry)WaitUntil_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)WaitUntil_iternext,
    .tp_as_async = &WaitUntil_async,
    .tp_methods = WaitUntil_methods,
};

/* Arguments (positional, then keywords) into out[0..n-1] by the names given;
 * defaults left as they are. Python's errors for a bad call. */
static int bind_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                     PyObject **names, int n, int required, PyObject **out) {
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s() takes from %d to %d positional arguments but %zd were given", fname,
                     required + 1, n + 1, nargs + 1);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
    Py_ssize_t nk = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nk; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int j;
        for (j = 0; j < n; j++) {
            int eq = key == names[j] ? 1 : PyUnicode_Compare(key, names[j]) == 0;
            if (eq) break;
        }
        if (j == n) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", fname, key);
            return -1;
        }
        if (j < nargs) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%S'", fname, key);
            return -1;
        }
        out[j] = args[nargs + k];
    }
    for (int j = 0; j < required; j++)
        if (out[j] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: '%S'", fname, names[j]);
            return -1;
        }
    return 0;
}

/* Thread.wait_until(self, ready_func, cancellable=False, always_block=False) */
static PyObject *wait_until_m(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames) {
    PyObject *names[] = {s_ready_func_kw, s_cancellable_n, s_always_block_kw};
    PyObject *a[3] = {NULL, Py_False, Py_False};
    if (bind_args("wait_until", args, PyVectorcall_NARGS(nargsf), kwnames, names, 3, 1, a) < 0) return NULL;
    return new_wait_until(self, a[0], a[1], a[2]);
}

static PyMethodDef wait_until_def = {"wait_until", (PyCFunction)(void (*)(void))wait_until_m,
                                     METH_FASTCALL | METH_KEYWORDS,
                                     "Thread.wait_until(ready_func, cancellable=False, always_block=False), in C "
                                     "(thread._wait_until_py is the definition)."};

/* init_wait_until(Task, _BLOCK, Cancelled.TRUE, Cancelled.FALSE, Task.State.PENDING_CANCEL,
 *                 Task.State.CANCEL_DELIVERED) -> the wait_until descriptor (init_drive first) */
static PyObject *init_wait_until(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *task_t, *o[5];
    if (!PyArg_ParseTuple(a, "O!OOOOO", &PyType_Type, &task_t, &o[0], &o[1], &o[2], &o[3], &o[4])) return NULL;
    if (!drive_ready) {
        PyErr_SetString(PyExc_RuntimeError, "init_wait_until: init_drive(Thread, ...) first");
        return NULL;
    }
    PyObject **dst[] = {&wt_block, &wt_true, &wt_false, &wt_pending_cancel, &wt_cancel_delivered};
    for (int i = 0; i < 5; i++) Py_XSETREF(*dst[i], Py_NewRef(o[i]));
    PyObject *m1 = _PyType_Lookup((PyTypeObject *)task_t, s_deliver_pending_cancel);
    PyObject *m2 = _PyType_Lookup((PyTypeObject *)ThreadT, s_start_waiting_internal);
    PyObject *m3 = _PyType_Lookup((PyTypeObject *)ThreadT, s_stop_waiting_internal);
    if (m1 == NULL || m2 == NULL || m3 == NULL) {
        PyErr_SetString(PyExc_TypeError, "init_wait_until: a method is missing");
        return NULL;
    }
    Py_XSETREF(orig_dpc, Py_NewRef(m1));
    Py_XSETREF(orig_swi, Py_NewRef(m2));
    Py_XSETREF(orig_stwi, Py_NewRef(m3));
    if (PyType_Ready(&WaitUntilType) < 0) return NULL;
    PyObject *d = PyDescr_NewMethod((PyTypeObject *)ThreadT, &wait_until_def);
    if (d == NULL) return NULL;
    Py_XSETREF(wait_until_descr, Py_NewRef(d));
    wt_ready = 1;
    return d;
}

/* STACK[-1].wait_until(ready_func, cancellable) (new reference) */
static PyObject *top_wait_until(PyObject *rf, PyObject *cancellable) {
    if (!PyList_Check(thread_stack) || PyList_GET_SIZE(thread_stack) == 0) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    PyObject *th = Py_NewRef(PyList_GET_ITEM(thread_stack, PyList_GET_SIZE(thread_stack) - 1)), *r;
    if (wt_ready && Py_IS_TYPE(th, (PyTypeObject *)ThreadT) && is_method(ThreadT, s_wait_until, wait_until_descr)) {
        r = new_wait_until(th, rf, cancellable, Py_False);
    } else {
        PyObject *args[] = {th, rf, cancellable};
        r = PyObject_VectorcallMethod(s_wait_until, args, 3, NULL);
    }
    Py_DECREF(th);
    return r;
}

/* -- wait_for_event_and */

/* wset.has_pending_event(): new reference to its result */
static PyObject *wset_has_pending_event(PyObject *wset) {
    if (is_method((PyObject *)Py_TYPE(wset), s_has_pending_event, orig_hpe)) {
        PyObject *elems = fast_attr(wset, s_elems);
        if (elems == NULL) return NULL;
        if (PyList_CheckExact(elems)) {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(elems); i++) {
                PyObject *w = Py_NewRef(PyList_GET_ITEM(elems, i));
                PyObject *pe = fast_attr(w, s_pending_event);
                Py_DECREF(w);
                if (pe == NULL) { Py_DECREF(elems); return NULL; }
                Py_DECREF(pe);
                if (pe != Py_None) { Py_DECREF(elems); Py_RETURN_TRUE; }
            }
            Py_DECREF(elems);
            Py_RETURN_FALSE;
        }
        Py_DECREF(elems);
    }
    return PyObject_CallMethodNoArgs(wset, s_has_pending_event);
}

/* ready_and_has_event(): ready_func() and self.has_pending_event() (the closure wait_for_event_and makes) */
typedef struct {
    PyObject_HEAD
    PyObject *ready_func, *wset;
    vectorcallfunc vectorcall;
} ReadyAndHasEvent;

static PyObject *RAHE_vc(ReadyAndHasEvent *self, PyObject *const *a, size_t nargsf, PyObject *kw) {
    (void)a;
    if (PyVectorcall_NARGS(nargsf) != 0 || (kw != NULL && PyTuple_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "ready_and_has_event() takes no arguments");
        return NULL;
    }
    PyObject *rf = Py_NewRef(self->ready_func), *wset = Py_NewRef(self->wset);
    PyObject *r = PyObject_CallNoArgs(rf);
    Py_DECREF(rf);
    if (r != NULL) {
        int t = PyObject_IsTrue(r);
        if (t != 0) {
            Py_SETREF(r, t > 0 ? wset_has_pending_event(wset) : NULL);
        }
    }
    Py_DECREF(wset);
    return r;
}

static int RAHE_traverse(ReadyAndHasEvent *self, visitproc visit, void *arg) {
    Py_VISIT(self->ready_func);
    Py_VISIT(self->wset);
    return 0;
}

static int RAHE_clear(ReadyAndHasEvent *self) {
    Py_CLEAR(self->ready_func);
    Py_CLEAR(self->wset);
    return 0;
}

static void RAHE_dealloc(ReadyAndHasEvent *self) {
    PyObject_GC_UnTrack(self);
    RAHE_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject RAHEType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.ready_and_has_event",
    .tp_basicsize = sizeof(ReadyAndHasEvent),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "ready_and_has_event(): wait_for_event_and's closure, in C.",
    .tp_dealloc = (destructor)RAHE_dealloc,
    .tp_traverse = (traverseproc)RAHE_traverse,
    .tp_clear = (inquiry)RAHE_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(ReadyAndHasEvent, vectorcall),
};

/* w.get_pending_event() of a Waitable (new reference) */
static PyObject *waitable_get_pending_event(PyObject *w) {
    if (is_method((PyObject *)Py_TYPE(w), s_get_pending_event, orig_w_gpe)) {
        /* pending_event, self.pending_event = self.pending_event, None; return pending_event() */
        PyObject *pe = fast_attr(w, s_pending_event);
        if (pe == NULL) return NULL;
        if (fast_setattr(w, s_pending_event, Py_None) < 0) { Py_DECREF(pe); return NULL; }
        PyObject *r = PyObject_CallNoArgs(pe);
        Py_DECREF(pe);
        return r;
    }
    return PyObject_CallMethodNoArgs(w, s_get_pending_event);
}

/* wset.get_pending_event() (new reference) */
static PyObject *wset_get_pending_event(PyObject *wset) {
    if (!is_method((PyObject *)Py_TYPE(wset), s_get_pending_event, orig_wset_gpe))
        return PyObject_CallMethodNoArgs(wset, s_get_pending_event);
    PyObject *elems = fast_attr(wset, s_elems);
    if (elems == NULL) return NULL;
    Py_ssize_t n = PyObject_Size(elems);
    if (n < 0) { Py_DECREF(elems); return NULL; }
    if (n > 1) { /* current_task().inst.store.rng.shuffle(self.elems) */
        if (!PyList_Check(thread_stack) || PyList_GET_SIZE(thread_stack) == 0) {
            Py_DECREF(elems);
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            return NULL;
        }
        PyObject *th = PyList_GET_ITEM(thread_stack, PyList_GET_SIZE(thread_stack) - 1);
        PyObject *task = fast_attr(th, s_task_n), *inst = NULL, *store = NULL, *rng = NULL, *r = NULL, *el2 = NULL;
        if (task != NULL) inst = fast_attr(task, s_inst);
        if (inst != NULL) store = fast_attr(inst, s_store);
        if (store != NULL) rng = fast_attr(store, s_rng);
        if (rng != NULL) el2 = fast_attr(wset, s_elems);
        if (el2 != NULL) r = PyObject_CallMethodOneArg(rng, s_shuffle, el2);
        Py_XDECREF(task);
        Py_XDECREF(inst);
        Py_XDECREF(store);
        Py_XDECREF(rng);
        Py_XDECREF(el2);
        if (r == NULL) { Py_DECREF(elems); return NULL; }
        Py_DECREF(r);
        Py_SETREF(elems, fast_attr(wset, s_elems));
        if (elems == NULL) return NULL;
    }
    PyObject *it = PyObject_GetIter(elems), *w;
    Py_DECREF(elems);
    if (it == NULL) return NULL;
    while ((w = PyIter_Next(it)) != NULL) {
        PyObject *pe = fast_attr(w, s_pending_event);
        if (pe == NULL) { Py_DECREF(w); Py_DECREF(it); return NULL; }
        Py_DECREF(pe);
        if (pe != Py_None) {
            Py_DECREF(it);
            PyObject *r = waitable_get_pending_event(w);
            Py_DECREF(w);
            return r;
        }
        Py_DECREF(w);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    PyErr_SetString(PyExc_AssertionError, "no pending event");
    return NULL;
}

/* self.num_waiting += d */
static int add_num_waiting(PyObject *wset, long d) {
    PyObject *n = fast_attr(wset, s_num_waiting);
    if (n == NULL) return -1;
    PyObject *dd = PyLong_FromLong(d), *n2 = NULL;
    if (dd != NULL) n2 = PyNumber_InPlaceAdd(n, dd);
    Py_DECREF(n);
    Py_XDECREF(dd);
    if (n2 == NULL) return -1;
    int rc = fast_setattr(wset, s_num_waiting, n2);
    Py_DECREF(n2);
    return rc;
}

typedef struct {
    PyObject_HEAD
    PyObject *wset, *ready_func, *cancellable, *sub;
    int state, running;
} WaitForEvent;

enum { WE_INIT, WE_WAITING, WE_DONE };

static void we_release(WaitForEvent *self) {
    self->state = WE_DONE;
    Py_CLEAR(self->wset);
    Py_CLEAR(self->ready_func);
    Py_CLEAR(self->cancellable);
    Py_CLEAR(self->sub);
}

static int WaitForEvent_traverse(WaitForEvent *self, visitproc visit, void *arg) {
    Py_VISIT(self->wset);
    Py_VISIT(self->ready_func);
    Py_VISIT(self->cancellable);
    Py_VISIT(self->sub);
    return 0;
}

static int WaitForEvent_clear(WaitForEvent *self) {
    we_release(self);
    return 0;
}

/* The `finally` (self.num_waiting -= 1) on the way out, then the end: with
 * *result (returned) or the exception set (result NULL). */
static PySendResult we_finish(WaitForEvent *self, PyObject *result, PyObject **out) {
    PyObject *t = NULL, *e = NULL, *tb = NULL;
    if (result == NULL) PyErr_Fetch(&t, &e, &tb);
    int rc = add_num_waiting(self->wset, -1);
    if (rc < 0) { /* the finally's own exception, in the context of the one it replaces */
        Py_XDECREF(result);
        result = NULL;
        if (e != NULL) {
            PyObject *t2, *e2, *tb2;
            PyErr_NormalizeException(&t, &e, &tb);
            if (tb != NULL) PyException_SetTraceback(e, tb);
            PyErr_Fetch(&t2, &e2, &tb2);
            PyErr_NormalizeException(&t2, &e2, &tb2);
            if (e2 != NULL) PyException_SetContext(e2, Py_NewRef(e));
            PyErr_Restore(t2, e2, tb2);
            Py_XDECREF(t);
            Py_XDECREF(e);
            Py_XDECREF(tb);
        }
    } else if (result == NULL) {
        PyErr_Restore(t, e, tb);
    }
    self->running = 0;
    {
        PyObject *t3, *e3, *tb3;
        PyErr_Fetch(&t3, &e3, &tb3);
        we_release(self);
        PyErr_Restore(t3, e3, tb3);
    }
    *out = result;
    return result != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

/* The body goes on after its `yield from` returned `cancelled` (borrowed) */
static PySendResult we_after(WaitForEvent *self, PyObject *cancelled, PyObject **out) {
    PyObject *r;
    int c = PyObject_IsTrue(cancelled);
    if (c < 0)
        r = NULL;
    else if (c)
        r = PyTuple_Pack(3, wt_ev_cancelled, cb_zero, cb_zero);
    else
        r = wset_get_pending_event(self->wset);
    return we_finish(self, r, out);
}

/* close the iterator delegated to (PEP 380's way for GeneratorExit): 0 or -1 */
static int close_sub(PyObject *sub) {
    PyObject *cl;
    int rc = _PyObject_LookupAttr(sub, s_close, &cl);
    if (rc <= 0) return rc;
    PyObject *r = PyObject_CallNoArgs(cl);
    Py_DECREF(cl);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static PySendResult we_step(WaitForEvent *self, PyObject *value, PyObject *exc, PyObject **result) {
    *result = NULL;
    if (self->state == WE_DONE) {
        if (exc != NULL) {
            raise_exc(exc);
            return PYGEN_ERROR;
        }
        *result = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    if (self->running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return PYGEN_ERROR;
    }
    PyObject *v = NULL;
    PySendResult sr;
    if (self->state == WE_INIT) {
        if (exc != NULL) {
            we_release(self);
            raise_exc(exc);
            return PYGEN_ERROR;
        }
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started generator");
            return PYGEN_ERROR;
        }
        self->running = 1;
        ReadyAndHasEvent *rahe = PyObject_GC_New(ReadyAndHasEvent, &RAHEType);
        if (rahe == NULL) goto error_before_try;
        rahe->ready_func = Py_NewRef(self->ready_func);
        rahe->wset = Py_NewRef(self->wset);
        rahe->vectorcall = (vectorcallfunc)RAHE_vc;
        PyObject_GC_Track(rahe);
        if (add_num_waiting(self->wset, 1) < 0) {
            Py_DECREF(rahe);
            goto error_before_try;
        }
        self->state = WE_WAITING; /* (the try) */
        self->sub = top_wait_until((PyObject *)rahe, self->cancellable);
        Py_DECREF(rahe);
        if (self->sub == NULL) return we_finish(self, NULL, result);
        sr = PyIter_Send(self->sub, Py_None, &v);
    } else {
        self->running = 1;
        if (exc != NULL) {
            if (PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit)) {
                /* the iterator closed, then GeneratorExit raised here */
                PyObject *sub = self->sub;
                self->sub = NULL;
                int rc = close_sub(sub);
                Py_DECREF(sub);
                if (rc == 0) raise_exc(exc);
                return we_finish(self, NULL, result);
            }
            PyObject *thr;
            if (_PyObject_LookupAttr(self->sub, s_throw, &thr) < 0) return we_finish(self, NULL, result);
            if (thr == NULL) {
                raise_exc(exc);
                return we_finish(self, NULL, result);
            }
            v = PyObject_CallOneArg(thr, exc);
            Py_DECREF(thr);
            if (v != NULL) {
                sr = PYGEN_NEXT;
            } else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyObject *t, *e, *tb;
                PyErr_Fetch(&t, &e, &tb);
                PyErr_NormalizeException(&t, &e, &tb);
                v = e != NULL ? Py_NewRef(((PyStopIterationObject *)e)->value) : Py_NewRef(Py_None);
                Py_XDECREF(t);
                Py_XDECREF(e);
                Py_XDECREF(tb);
                sr = PYGEN_RETURN;
            } else {
                return we_finish(self, NULL, result);
            }
        } else {
            sr = PyIter_Send(self->sub, value, &v);
        }
    }
    if (sr == PYGEN_NEXT) {
        self->running = 0;
        *result = v;
        return PYGEN_NEXT;
    }
    if (sr == PYGEN_ERROR) return we_finish(self, NULL, result);
    Py_CLEAR(self->sub);
    PySendResult r = we_after(self, v, result);
    Py_DECREF(v);
    return r;
error_before_try:
    self->running = 0;
    {
        PyObject *t, *e, *tb;
        PyErr_Fetch(&t, &e, &tb);
        we_release(self);
        PyErr_Restore(t, e, tb);
    }
    return PYGEN_ERROR;
}

static PySendResult WaitForEvent_am_send(WaitForEvent *self, PyObject *arg, PyObject **result) {
    return we_step(self, arg, NULL, result);
}

static PyObject *WaitForEvent_iternext(WaitForEvent *self) {
    PyObject *r;
    PySendResult sr = we_step(self, Py_None, NULL, &r);
    if (sr == PYGEN_RETURN) {
        if (r != Py_None) _PyGen_SetStopIterationValue(r);
        Py_DECREF(r);
        return NULL;
    }
    return sr == PYGEN_NEXT ? r : NULL;
}

static PyObject *WaitForEvent_send(WaitForEvent *self, PyObject *arg) {
    PyObject *r;
    PySendResult sr = we_step(self, arg, NULL, &r);
    return gen_like_result(sr, r);
}

static PyObject *WaitForEvent_throw(WaitForEvent *self, PyObject *const *argv, Py_ssize_t nargs) {
    PyObject *exc = throw_arg(argv, nargs), *r;
    if (exc == NULL) return NULL;
    PySendResult sr = we_step(self, Py_None, exc, &r);
    Py_DECREF(exc);
    return gen_like_result(sr, r);
}

/* close(): a generator suspended in `yield from`: the iterator closed, then
 * GeneratorExit raised in the body (its finally runs); that GeneratorExit is
 * swallowed, anything else raised */
static PyObject *WaitForEvent_close(WaitForEvent *self, PyObject *unused) {
    (void)unused;
    if (self->running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return NULL;
    }
    if (self->state != WE_WAITING) {
        we_release(self);
        Py_RETURN_NONE;
    }
    PyObject *r, *ge = PyObject_CallNoArgs(PyExc_GeneratorExit);
    if (ge == NULL) return NULL;
    PySendResult sr = we_step(self, Py_None, ge, &r);
    Py_DECREF(ge);
    if (sr == PYGEN_ERROR && PyErr_ExceptionMatches(PyExc_GeneratorExit)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (sr == PYGEN_ERROR) return NULL;
    Py_DECREF(r);
    PyErr_SetString(PyExc_RuntimeError, "generator ignored GeneratorExit");
    return NULL;
}

/* a generator's finalizer: one suspended in its wait is closed */
static void WaitForEvent_finalize(WaitForEvent *self) {
    if (self->state != WE_WAITING || self->running) return;
    PyObject *t, *e, *tb;
    PyErr_Fetch(&t, &e, &tb);
    PyObject *r = WaitForEvent_close(self, NULL);
    if (r == NULL)
        PyErr_WriteUnraisable((PyObject *)self);
    else
        Py_DECREF(r);
    PyErr_Restore(t, e, tb);
}

static void WaitForEvent_dealloc(WaitForEvent *self) {
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) return; /* (resurrected) */
    PyObject_GC_UnTrack(self);
    we_release(self);
    PyObject_GC_Del(self);
}

static PyMethodDef WaitForEvent_methods[] = {
    {"send", (PyCFunction)WaitForEvent_send, METH_O, "Send a value in (as into the generator)."},
    {"throw", (PyCFunction)(void (*)(void))WaitForEvent_throw, METH_FASTCALL, "Raise an exception at the wait."},
    {"close", (PyCFunction)WaitForEvent_close, METH_NOARGS, "End the wait (its finally run)."},
    {NULL}};

static PyAsyncMethods WaitForEvent_async = {.am_send = (sendfunc)WaitForEvent_am_send};

static PyTypeObject WaitForEventType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.wait_for_event_and",
    .tp_basicsize = sizeof(WaitForEvent),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "WaitableSet.wait_for_event_and's generator, in C (waitables._wait_for_event_and_py is the definition).",
    .tp_dealloc = (destructor)WaitForEvent_dealloc,
    .tp_traverse = (traverseproc)WaitForEvent_traverse,
    .tp_clear = (inquiry)WaitForEvent_clear,
    .tp_finalize = (destructor)WaitForEvent_finalize,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)WaitForEvent_iternext,
    .tp_as_async = &WaitForEvent_async,
    .tp_methods = WaitForEvent_methods,
};

/* WaitableSet.wait_for_event_and(self, ready_func, cancellable) */
static PyObject *wait_for_event_m(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames) {
    static PyObject *names[2];
    names[0] = s_ready_func_kw;
    names[1] = s_cancellable_n;
    PyObject *a[2] = {NULL, NULL};
    if (bind_args("wait_for_event_and", args, PyVectorcall_NARGS(nargsf), kwnames, names, 2, 2, a) < 0) return NULL;
    WaitForEvent *w = PyObject_GC_New(WaitForEvent, &WaitForEventType);
    if (w == NULL) return NULL;
    w->wset = Py_NewRef(self);
    w->ready_func = Py_NewRef(a[0]);
    w->cancellable = Py_NewRef(a[1]);
    w->sub = NULL;
    w->state = WE_INIT;
    w->running = 0;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

static PyMethodDef wait_for_event_def = {"wait_for_event_and", (PyCFunction)(void (*)(void))wait_for_event_m,
                                         METH_FASTCALL | METH_KEYWORDS,
                                         "WaitableSet.wait_for_event_and(ready_func, cancellable), in C "
                                         "(waitables._wait_for_event_and_py is the definition)."};

/* init_wait_for_event(WaitableSet, Waitable, Subtask, EventCode.TASK_CANCELLED) -> the wait_for_event_and
 * descriptor (init_wait_until first) */
static PyObject *init_wait_for_event(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *ws_t, *w_t, *st_t, *evc;
    if (!PyArg_ParseTuple(a, "O!O!O!O", &PyType_Type, &ws_t, &PyType_Type, &w_t, &PyType_Type, &st_t, &evc))
        return NULL;
    if (!wt_ready) {
        PyErr_SetString(PyExc_RuntimeError, "init_wait_for_event: init_wait_until first");
        return NULL;
    }
    PyObject *m[5] = {_PyType_Lookup((PyTypeObject *)ws_t, s_has_pending_event),
                      _PyType_Lookup((PyTypeObject *)ws_t, s_get_pending_event),
                      _PyType_Lookup((PyTypeObject *)w_t, s_get_pending_event),
                      _PyType_Lookup((PyTypeObject *)st_t, s_resolved),
                      _PyType_Lookup((PyTypeObject *)st_t, s_deliver_resolve)};
    for (int i = 0; i < 5; i++)
        if (m[i] == NULL) {
            PyErr_SetString(PyExc_TypeError, "init_wait_for_event: a method is missing");
            return NULL;
        }
    PyObject *states = PyObject_GetAttrString(st_t, "State"), *ret = NULL;
    if (states != NULL) ret = PyObject_GetAttrString(states, "RETURNED");
    Py_XDECREF(states);
    if (ret == NULL) return NULL;
    Py_XSETREF(wt_sub_returned, ret);
    PyObject **dst[] = {&orig_hpe, &orig_wset_gpe, &orig_w_gpe, &orig_resolved, &orig_deliver_resolve};
    for (int i = 0; i < 5; i++) Py_XSETREF(*dst[i], Py_NewRef(m[i]));
    Py_XSETREF(wt_ev_cancelled, Py_NewRef(evc));
    if (PyType_Ready(&WaitForEventType) < 0 || PyType_Ready(&RAHEType) < 0) return NULL;
    we_ready = 1;
    return PyDescr_NewMethod((PyTypeObject *)ws_t, &wait_for_event_def);
}

/* subtask.resolved(): 1, 0, -1 */
static int subtask_resolved(PyObject *subtask) {
    PyObject *r;
    if (we_ready && is_method((PyObject *)Py_TYPE(subtask), s_resolved, orig_resolved)) {
        PyObject *st = fast_attr(subtask, s_state);
        if (st == NULL) return -1;
        r = PyObject_RichCompare(st, wt_sub_returned, Py_GE);
        Py_DECREF(st);
    } else {
        r = PyObject_CallMethodNoArgs(subtask, s_resolved);
    }
    if (r == NULL) return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* subtask.deliver_resolve(): 0, -1 */
static int subtask_deliver_resolve(PyObject *subtask) {
    if (we_ready && is_method((PyObject *)Py_TYPE(subtask), s_deliver_resolve, orig_deliver_resolve)) {
        /* for h in self.lenders: h.num_lends -= 1; self.lenders = None */
        PyObject *lenders = fast_attr(subtask, s_lenders);
        if (lenders == NULL) return -1;
        PyObject *it = PyObject_GetIter(lenders), *h;
        Py_DECREF(lenders);
        if (it == NULL) return -1;
        while ((h = PyIter_Next(it)) != NULL) {
            PyObject *n = fast_attr(h, s_num_lends), *n2 = NULL;
            if (n != NULL) n2 = PyNumber_InPlaceSubtract(n, one_obj);
            Py_XDECREF(n);
            int rc = n2 != NULL ? fast_setattr(h, s_num_lends, n2) : -1;
            Py_XDECREF(n2);
            Py_DECREF(h);
            if (rc < 0) { Py_DECREF(it); return -1; }
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) return -1;
        return fast_setattr(subtask, s_lenders, Py_None);
    }
    PyObject *r = PyObject_CallMethodNoArgs(subtask, s_deliver_resolve);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ Table */

/* handles.Table's get, add and remove in C, as method descriptors of the
 * class (init_table puts them there). The Python methods are the definitions
 * (handles._table_py: what runs when this is not built, and what tests put
 * back to compare); these do the same steps on the same __slots__ (array, a
 * list with None at 0 and at freed indices; free, the LIFO list of freed
 * indices) with the same traps. An index that is not an int goes to the
 * Python method. */

static PyObject *TableT = NULL, *table_trap = NULL, *table_get_descr = NULL, *py_table_get = NULL, *py_table_add = NULL, *py_table_remove = NULL;
static Py_ssize_t TB_array, TB_free;
static PyObject *s_MAX_LENGTH;

static int table_lists(PyObject *self, PyObject **array, PyObject **free_) { /* borrowed */
    *array = get_slot(self, TB_array, "array");
    if (*array == NULL) return -1;
    if (free_ != NULL) {
        *free_ = get_slot(self, TB_free, "free");
        if (*free_ == NULL) return -1;
    }
    return 0;
}

/* array[i], borrowed; NULL with the trap set */
static PyObject *table_get_c(PyObject *array, PyObject *i) {
    int overflow = 0;
    long long k = PyLong_AsLongLongAndOverflow(i, &overflow);
    if (k == -1 && PyErr_Occurred()) return NULL;
    PyObject *e = NULL;
    if (!overflow && k >= 0 && k < PyList_GET_SIZE(array)) e = PyList_GET_ITEM(array, k);
    if (e == NULL || e == Py_None) {
        trap_with(table_trap, PyUnicode_FromFormat("unknown handle index %S", i));
        return NULL;
    }
    return e;
}

static PyObject *table_get_m(PyObject *self, PyObject *i) {
    PyObject *array;
    if (!PyLong_CheckExact(i)) return PyObject_CallFunctionObjArgs(py_table_get, self, i, NULL);
    if (table_lists(self, &array, NULL) < 0) return NULL;
    if (!PyList_CheckExact(array)) return PyObject_CallFunctionObjArgs(py_table_get, self, i, NULL);
    PyObject *e = table_get_c(array, i);
    return Py_XNewRef(e);
}

static PyObject *table_add_m(PyObject *self, PyObject *e) {
    PyObject *array, *free_;
    if (table_lists(self, &array, &free_) < 0) return NULL;
    if (!PyList_CheckExact(array) || !PyList_CheckExact(free_))
        return PyObject_CallFunctionObjArgs(py_table_add, self, e, NULL);
    if (!Py_OptimizeFlag && e == Py_None) {
        PyErr_SetNone(PyExc_AssertionError);
        return NULL;
    }
    Py_ssize_t nf = PyList_GET_SIZE(free_);
    if (nf > 0) {
        PyObject *i = Py_NewRef(PyList_GET_ITEM(free_, nf - 1));
        if (PyList_SetSlice(free_, nf - 1, nf, NULL) < 0) { Py_DECREF(i); return NULL; }
        Py_ssize_t k = PyLong_AsSsize_t(i);
        if (k == -1 && PyErr_Occurred()) { Py_DECREF(i); return NULL; }
        if (k < 0 || k >= PyList_GET_SIZE(array)) { /* (self.array[i]: out of range) */
            Py_DECREF(i);
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            return NULL;
        }
        if (!Py_OptimizeFlag && PyList_GET_ITEM(array, k) != Py_None) {
            Py_DECREF(i);
            PyErr_SetNone(PyExc_AssertionError);
            return NULL;
        }
        if (PyList_SetItem(array, k, Py_NewRef(e)) < 0) { Py_DECREF(i); return NULL; }
        return i;
    }
    Py_ssize_t n = PyList_GET_SIZE(array);
    PyObject *i = PyLong_FromSsize_t(n);
    if (i == NULL) return NULL;
    PyObject *max = fast_attr(TableT, s_MAX_LENGTH);
    if (max == NULL) { Py_DECREF(i); return NULL; }
    int full = PyObject_RichCompareBool(i, max, Py_GT);
    Py_DECREF(max);
    if (full != 0) {
        Py_DECREF(i);
        if (full > 0) trap_with(table_trap, PyUnicode_FromString("handle table is full"));
        return NULL;
    }
    if (PyList_Append(array, e) < 0) { Py_DECREF(i); return NULL; }
    return i;
}

static PyObject *table_remove_m(PyObject *self, PyObject *i) {
    PyObject *array, *free_;
    if (!PyLong_CheckExact(i) || !Py_IS_TYPE(self, (PyTypeObject *)TableT) ||
        _PyType_Lookup((PyTypeObject *)TableT, s_get) != table_get_descr)
        return PyObject_CallFunctionObjArgs(py_table_remove, self, i, NULL);
    if (table_lists(self, &array, &free_) < 0) return NULL;
    if (!PyList_CheckExact(array) || !PyList_CheckExact(free_))
        return PyObject_CallFunctionObjArgs(py_table_remove, self, i, NULL);
    /* e = self.get(i) */
    PyObject *e = table_get_c(array, i);
    if (e == NULL) return NULL;
    Py_INCREF(e);
    Py_ssize_t k = PyLong_AsSsize_t(i);
    if (PyList_SetItem(array, k, Py_NewRef(Py_None)) < 0 || PyList_Append(free_, i) < 0) {
        Py_DECREF(e);
        return NULL;
    }
    return e;
}

static PyMethodDef table_defs[] = {
    {"get", (PyCFunction)table_get_m, METH_O, "Table.get(i), in C (handles._table_py has the definition)."},
    {"add", (PyCFunction)table_add_m, METH_O, "Table.add(e), in C (handles._table_py has the definition)."},
    {"remove", (PyCFunction)table_remove_m, METH_O, "Table.remove(i), in C (handles._table_py has the definition)."},
};

/* init_table(Table, get, add, remove, Trap) -> (get, add, remove) descriptors */
static PyObject *init_table(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *tt, *g, *ad, *rm, *tr;
    if (!PyArg_ParseTuple(a, "O!OOOO", &PyType_Type, &tt, &g, &ad, &rm, &tr)) return NULL;
    Py_INCREF(tr);
    Py_XSETREF(table_trap, tr);
    if (slot_offset(tt, "array", &TB_array) < 0 || slot_offset(tt, "free", &TB_free) < 0) return NULL;
    PyObject **dst[] = {&TableT, &py_table_get, &py_table_add, &py_table_remove};
    PyObject *src[] = {tt, g, ad, rm};
    for (int k = 0; k < 4; k++) {
        Py_INCREF(src[k]);
        Py_XSETREF(*dst[k], src[k]);
    }
    PyObject *d[3];
    for (int k = 0; k < 3; k++) {
        d[k] = PyDescr_NewMethod((PyTypeObject *)tt, &table_defs[k]);
        if (d[k] == NULL) {
            for (int j = 0; j < k; j++) Py_DECREF(d[j]);
            return NULL;
        }
    }
    Py_XSETREF(table_get_descr, Py_NewRef(d[0]));
    return Py_BuildValue("(NNN)", d[0], d[1], d[2]);
}

/* ----------------------------------------------------------- task.return */

/* canon.canon_task_return(result_type, opts, shape, flat_args) in C: the
 * Python function is the definition (canon._canon_task_return_py: what runs
 * when this is not built, and what tests put back in the linker's table to
 * compare); this does the same steps in the same order with the same traps:
 * the current task, may_leave, the task's async option, the plan (from
 * abi.TASK_RETURN_PLANS, made on a miss as the Python function makes it),
 * the signature and options checks, the resolved check, then
 * LiftLowerContext, abi.lift_values over a CoreValueIter, task.return_. */

static PyObject *tr_plans, *tr_values_plan, *tr_max_flat, *tr_core_value_iter, *tr_lift_values, *tr_llc, *tr_trap,
    *tr_resolved, *tr_cannot_leave;
static int tr_ready = 0;
static PyObject *s_opts, *s_async_, *s_may_leave, *s_ft, *s_result, *s_result_type, *s_string_encoding, *s_memory, *s_return_;


/* STACK[-1].task, the running thread's task (new reference; IndexError as
 * the Python's when no thread runs), and its instance in *inst (new
 * reference) once check_may_leave(inst) passed; else NULL, *inst NULL, with
 * the error or trap(msg) raised. The built-ins' first steps. */
static PyObject *running_task_may_leave(PyObject *trap, PyObject *msg, PyObject **inst) {
    *inst = NULL;
    if (!PyList_Check(thread_stack) || PyList_GET_SIZE(thread_stack) == 0) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    PyObject *task = fast_attr(PyList_GET_ITEM(thread_stack, PyList_GET_SIZE(thread_stack) - 1), s_task_n);
    if (task == NULL) return NULL;
    PyObject *in = fast_attr(task, s_inst);
    int ml = in != NULL ? attr_truth(in, s_may_leave) : -1;
    if (ml <= 0) {
        if (ml == 0) trap_with(trap, Py_NewRef(msg));
        Py_XDECREF(in);
        Py_DECREF(task);
        return NULL;
    }
    *inst = in;
    return task;
}

static PyObject *make_cvi(PyObject *cvi_t, PyObject *vs);
static PyObject *lift_values_c(PyObject *self, PyObject *const *argv, Py_ssize_t nargs);

static PyObject *task_return(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "canon_task_return(result_type, opts, shape, flat_args)");
        return NULL;
    }
    if (!tr_ready || !drive_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_task_return was not called");
        return NULL;
    }
    PyObject *result_type = argv[0], *opts = argv[1], *shape = argv[2], *flat_args = argv[3];
    PyObject *task = NULL, *inst = NULL, *topts = NULL, *ft = NULL, *key = NULL, *hit = NULL, *cx = NULL,
             *vi = NULL, *result = NULL, *r = NULL, *tmp = NULL, *tmp2 = NULL, *ret = NULL;
    /* task = STACK[-1].task; check_may_leave(task.inst) */
    task = running_task_may_leave(tr_trap, tr_cannot_leave, &inst);
    if (task == NULL) return NULL;
    topts = fast_attr(task, s_opts);
    if (topts == NULL) goto out;
    int t = attr_truth(topts, s_async_);
    if (t < 0) goto out;
    if (!t) {
        trap_with(tr_trap, PyUnicode_FromString("wasm trap: invalid task.return signature or options for current task"));
        goto out;
    }
    ft = fast_attr(task, s_ft);
    if (ft == NULL) goto out;
    if (!PyTuple_CheckExact(shape) || PyTuple_GET_SIZE(shape) != 2) {
        PyErr_SetString(PyExc_ValueError, "shape must be (ptr_type, mask)");
        goto out;
    }
    PyObject *ptr_type = PyTuple_GET_ITEM(shape, 0), *mask = PyTuple_GET_ITEM(shape, 1);
    {
        PyObject *a = PyLong_FromVoidPtr(result_type), *b = PyLong_FromVoidPtr(ft);
        if (a != NULL && b != NULL) key = PyTuple_Pack(3, a, b, ptr_type);
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (key == NULL) goto out;
    }
    hit = PyDict_GetItemWithError(tr_plans, key);
    if (hit == NULL && PyErr_Occurred()) goto out;
    Py_XINCREF(hit);
    if (hit == NULL || !PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) < 4 || PyTuple_GET_ITEM(hit, 0) != result_type ||
        PyTuple_GET_ITEM(hit, 1) != ft) {
        Py_CLEAR(hit);
        /* same = tuple(result_type) == tuple(ft.result) */
        tmp = PySequence_Tuple(result_type);
        if (tmp == NULL) goto out;
        PyObject *fr = fast_attr(ft, s_result);
        if (fr == NULL) goto out;
        tmp2 = PySequence_Tuple(fr);
        Py_DECREF(fr);
        if (tmp2 == NULL) goto out;
        int same = PyObject_RichCompareBool(tmp, tmp2, Py_EQ);
        Py_CLEAR(tmp);
        Py_CLEAR(tmp2);
        if (same < 0) goto out;
        PyObject *plan = Py_None;
        Py_INCREF(plan);
        if (same) {
            Py_DECREF(plan);
            PyObject *rt = PyObject_CallMethodNoArgs(ft, s_result_type);
            if (rt == NULL) goto out;
            PyObject *a[] = {rt, ptr_type, tr_max_flat};
            plan = PyObject_Vectorcall(tr_values_plan, a, 3, NULL);
            Py_DECREF(rt);
            if (plan == NULL) goto out;
        }
        hit = PyTuple_Pack(4, result_type, ft, same ? Py_True : Py_False, plan);
        Py_DECREF(plan);
        if (hit == NULL || PyDict_SetItem(tr_plans, key, hit) < 0) goto out;
    }
    t = PyObject_IsTrue(PyTuple_GET_ITEM(hit, 2));
    if (t < 0) goto out;
    if (!t) goto bad_signature;
    /* opts.string_encoding != task.opts.string_encoding or (opts.memory is not None and opts.memory is not
     * task.opts.memory) */
    tmp = fast_attr(opts, s_string_encoding);
    if (tmp == NULL) goto out;
    tmp2 = fast_attr(topts, s_string_encoding);
    if (tmp2 == NULL) goto out;
    t = PyObject_RichCompareBool(tmp, tmp2, Py_NE);
    Py_CLEAR(tmp);
    Py_CLEAR(tmp2);
    if (t < 0) goto out;
    if (t) goto bad_signature;
    tmp = fast_attr(opts, s_memory);
    if (tmp == NULL) goto out;
    if (tmp != Py_None) {
        tmp2 = fast_attr(topts, s_memory);
        if (tmp2 == NULL) goto out;
        if (tmp != tmp2) goto bad_signature;
        Py_CLEAR(tmp2);
    }
    Py_CLEAR(tmp);
    tmp = fast_attr(task, s_state);
    if (tmp == NULL) goto out;
    if (tmp == tr_resolved) {
        trap_with(tr_trap, PyUnicode_FromString("wasm trap: `task.return` called after the task already returned"));
        goto out;
    }
    Py_CLEAR(tmp);
    {
        PyObject *a[] = {opts, inst, task, Py_False, ptr_type, mask};
        cx = make_cx(tr_llc, a);
        if (cx == NULL) goto out;
    }
    vi = make_cvi(tr_core_value_iter, flat_args);
    if (vi == NULL) goto out;
    {
        PyObject *a[] = {cx, PyTuple_GET_ITEM(hit, 3), vi};
        result = PyObject_Vectorcall(tr_lift_values, a, 3, NULL);
        if (result == NULL) goto out;
    }
    if (task_return_(task, result) < 0) goto out;
    ret = PyList_New(0);
    goto out;
bad_signature:
    trap_with(tr_trap, PyUnicode_FromString("wasm trap: invalid `task.return` signature and/or options for current task"));
out:
    Py_XDECREF(task);
    Py_XDECREF(inst);
    Py_XDECREF(topts);
    Py_XDECREF(ft);
    Py_XDECREF(key);
    Py_XDECREF(hit);
    Py_XDECREF(cx);
    Py_XDECREF(vi);
    Py_XDECREF(result);
    Py_XDECREF(r);
    Py_XDECREF(tmp);
    Py_XDECREF(tmp2);
    return ret;
}

/* init_task_return(TASK_RETURN_PLANS, values_plan, MAX_FLAT_PARAMS, CoreValueIter, lift_values,
 *                  LiftLowerContext, Trap, Task.State.RESOLVED, CANNOT_LEAVE) */
static PyObject *init_task_return(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *o[9];
    if (!PyArg_ParseTuple(a, "O!OOOOOOOO", &PyDict_Type, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &o[8]))
        return NULL;
    PyObject **dst[] = {&tr_plans, &tr_values_plan, &tr_max_flat, &tr_core_value_iter, &tr_lift_values, &tr_llc,
                        &tr_trap, &tr_resolved, &tr_cannot_leave};
    for (int i = 0; i < 9; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*dst[i], o[i]);
    }
    tr_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------- waitable.join, subtask.drop */

/* canon.canon_waitable_join(wi, si) and canon.canon_subtask_drop(i) in C:
 * the Python functions are the definitions (canon._canon_waitable_join_py,
 * canon._canon_subtask_drop_py: what runs when this is not built, and what
 * tests put back in the linker's table to compare); these do the same steps
 * in the same order with the same traps: the running task's instance,
 * may_leave, the handle (its class checked), then Waitable.join /
 * Subtask.drop, done here while the class has the method init found (a
 * replaced one is called). */

static PyObject *wj_waitable_t, *wj_wset_t, *wj_subtask_t, *wj_sync_in_set, *wj_cannot_leave, *wj_trap;
static PyObject *orig_join, *orig_subtask_drop;
static int wj_ready = 0;
static PyObject *s_join, *s_drop, *s_has_sync_waiter, *s_wset, *s_elems_j, *s_remove_j, *s_handles_j;
static PyObject *s_on_cancel; /* (also the canon lower section's) */

/* inst.handles.<get or remove>(i) (new reference) */
static PyObject *handles_call(PyObject *inst, PyObject *name, PyObject *i) {
    PyObject *handles = fast_attr(inst, s_handles_j);
    if (handles == NULL) return NULL;
    PyObject *r = PyObject_CallMethodOneArg(handles, name, i);
    Py_DECREF(handles);
    return r;
}

/* h must be a cls: else Trap("unknown handle index %d" % i). 0 or -1. */
static int check_handle(PyObject *h, PyObject *cls, PyObject *i) {
    int ok = PyObject_IsInstance(h, cls);
    if (ok < 0) return -1;
    if (!ok) {
        trap_with(wj_trap, PyUnicode_FromFormat("unknown handle index %S", i));
        return -1;
    }
    return 0;
}

/* w.join(wset) */
static int waitable_join(PyObject *w, PyObject *wset) {
    if (!is_method((PyObject *)Py_TYPE(w), s_join, orig_join)) {
        PyObject *r = PyObject_CallMethodOneArg(w, s_join, wset);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    }
    /* if self.wset is not None: self.wset.elems.remove(self) */
    PyObject *old = fast_attr(w, s_wset);
    if (old == NULL) return -1;
    if (old != Py_None) {
        PyObject *elems = fast_attr(old, s_elems_j), *r = NULL;
        if (elems != NULL) r = PyObject_CallMethodOneArg(elems, s_remove_j, w);
        Py_XDECREF(elems);
        Py_DECREF(old);
        if (r == NULL) return -1;
        Py_DECREF(r);
    } else {
        Py_DECREF(old);
    }
    if (fast_setattr(w, s_wset, wset) < 0) return -1;
    if (wset != Py_None) {
        PyObject *elems = fast_attr(wset, s_elems_j);
        if (elems == NULL) return -1;
        int rc;
        if (PyList_CheckExact(elems)) {
            rc = PyList_Append(elems, w);
        } else {
            PyObject *r = PyObject_CallMethodOneArg(elems, s_append, w);
            rc = r != NULL ? 0 : -1;
            Py_XDECREF(r);
        }
        Py_DECREF(elems);
        return rc;
    }
    return 0;
}

static PyObject *waitable_join_c(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "canon_waitable_join(wi, si)");
        return NULL;
    }
    if (!wj_ready || !drive_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_waitable_join was not called");
        return NULL;
    }
    PyObject *wi = argv[0], *si = argv[1], *inst, *w = NULL, *ws = NULL, *ret = NULL;
    PyObject *task = running_task_may_leave(wj_trap, wj_cannot_leave, &inst);
    if (task == NULL) return NULL;
    Py_DECREF(task);
    w = handles_call(inst, s_get, wi);
    if (w == NULL || check_handle(w, wj_waitable_t, wi) < 0) goto out;
    int sw = attr_truth(w, s_has_sync_waiter);
    if (sw < 0) goto out;
    if (sw) {
        trap_with(wj_trap, Py_NewRef(wj_sync_in_set));
        goto out;
    }
    int zero = PyObject_RichCompareBool(si, cb_zero, Py_EQ);
    if (zero < 0) goto out;
    if (zero) {
        if (waitable_join(w, Py_None) < 0) goto out;
    } else {
        ws = handles_call(inst, s_get, si);
        if (ws == NULL || check_handle(ws, wj_wset_t, si) < 0) goto out;
        if (waitable_join(w, ws) < 0) goto out;
    }
    ret = PyList_New(0);
out:
    Py_DECREF(inst);
    Py_XDECREF(w);
    Py_XDECREF(ws);
    return ret;
}

static PyObject *subtask_drop_c(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "canon_subtask_drop(i)");
        return NULL;
    }
    if (!wj_ready || !drive_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_waitable_join was not called");
        return NULL;
    }
    PyObject *i = argv[0], *inst, *s = NULL, *ret = NULL;
    PyObject *task = running_task_may_leave(wj_trap, wj_cannot_leave, &inst);
    if (task == NULL) return NULL;
    Py_DECREF(task);
    s = handles_call(inst, s_remove_j, i);
    if (s == NULL || check_handle(s, wj_subtask_t, i) < 0) goto out;
    if (is_method((PyObject *)Py_TYPE(s), s_drop, orig_subtask_drop)) {
        /* if self.lenders is not None: raise Trap(...); Waitable.drop(self) (= self.join(None)) */
        PyObject *l = fast_attr(s, s_lenders);
        if (l == NULL) goto out;
        Py_DECREF(l);
        if (l != Py_None) {
            trap_with(wj_trap, PyUnicode_FromString("cannot drop a subtask which has not yet resolved"));
            goto out;
        }
        if (waitable_join(s, Py_None) < 0) goto out;
    } else {
        PyObject *r = PyObject_CallMethodNoArgs(s, s_drop);
        if (r == NULL) goto out;
        Py_DECREF(r);
    }
    if (fast_setattr(s, s_on_cancel, Py_None) < 0) goto out;
    ret = PyList_New(0);
out:
    Py_DECREF(inst);
    Py_XDECREF(s);
    return ret;
}

/* init_waitable_join(Waitable, WaitableSet, Subtask, SYNC_IN_SET, CANNOT_LEAVE, Trap) */
static PyObject *init_waitable_join(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *o[6];
    if (!PyArg_ParseTuple(a, "O!O!O!OOO", &PyType_Type, &o[0], &PyType_Type, &o[1], &PyType_Type, &o[2], &o[3], &o[4],
                          &o[5]))
        return NULL;
    PyObject *j = _PyType_Lookup((PyTypeObject *)o[0], s_join), *d = _PyType_Lookup((PyTypeObject *)o[2], s_drop);
    if (j == NULL || d == NULL) {
        PyErr_SetString(PyExc_TypeError, "init_waitable_join: Waitable.join or Subtask.drop is missing");
        return NULL;
    }
    PyObject **dst[] = {&wj_waitable_t, &wj_wset_t, &wj_subtask_t, &wj_sync_in_set, &wj_cannot_leave, &wj_trap};
    for (int k = 0; k < 6; k++) Py_XSETREF(*dst[k], Py_NewRef(o[k]));
    Py_XSETREF(orig_join, Py_NewRef(j));
    Py_XSETREF(orig_subtask_drop, Py_NewRef(d));
    wj_ready = 1;
    Py_RETURN_NONE;
}

/* ----------------------------------------------------------- lower_values */

/* abi.lower_values(cx, plan, vs, out_param=None) in C: the Python function is
 * the definition (abi._lower_values_py: what runs when this is not built, and
 * what tests put back to compare). This does its steps for the two shapes a
 * call's values take on the hot path: flat (each lowerer called as
 * f(cx, v, out), zip's way) and spilled through out_param with the plan's
 * struct packer (the pointer from out_param.next, the same two traps, then
 * fpack(mv, ptr, *vs)); any other spilled case goes to the Python function
 * before anything is done (what decides it is only read). A CoreValueIter's
 * next is its method's two steps, done here. */

static PyObject *lv_py, *lv_trap, *lv_cvi_type, *lv_cvi_next;
static int lv_ready = 0;
static PyObject *s_spills, *s_fpack, *s_ts, *s_uses_memory, *s_refresh, *s_align, *s_size, *s_next, *s_mv,
    *s_mask_, *s_words, *s_ptr_align, *s_ptr_bounds, *s_lowerers, *s_values, *s_i;

/* out_param.next(cx.ptr_type), new reference */
static PyObject *cvi_next(PyObject *vi, PyObject *cx) {
    PyObject *pt = fast_attr(cx, s_ptr_type);
    if (pt == NULL) return NULL;
    if (Py_IS_TYPE(vi, (PyTypeObject *)lv_cvi_type) && _PyType_Lookup((PyTypeObject *)lv_cvi_type, s_next) == lv_cvi_next) {
        Py_DECREF(pt);
        PyObject *values = fast_attr(vi, s_values), *i = NULL, *v = NULL, *i2 = NULL;
        if (values != NULL) i = fast_attr(vi, s_i);
        if (i != NULL) v = PyObject_GetItem(values, i);
        if (v != NULL) i2 = PyNumber_Add(i, one_obj);
        if (i2 == NULL || fast_setattr(vi, s_i, i2) < 0) Py_CLEAR(v);
        Py_XDECREF(values);
        Py_XDECREF(i);
        Py_XDECREF(i2);
        return v;
    }
    PyObject *r = PyObject_CallMethodOneArg(vi, s_next, pt);
    Py_DECREF(pt);
    return r;
}

static PyObject *lv_trap_word(PyObject *cx, PyObject *which) {
    PyObject *words = fast_attr(cx, s_words);
    if (words == NULL) return NULL;
    PyObject *msg = PyObject_GetAttr(words, which);
    Py_DECREF(words);
    return trap_with(lv_trap, msg);
}

static int call_lowerer(PyObject *f, PyObject *cx, PyObject *v, PyObject *out);
static int cx_refresh(PyObject *cx);

static PyObject *lower_values_c(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "lower_values(cx, plan, vs, out_param=None)");
        return NULL;
    }
    if (!lv_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_lower_values was not called");
        return NULL;
    }
    PyObject *cx = argv[0], *plan = argv[1], *vs = argv[2], *out_param = nargs == 4 ? argv[3] : Py_None;
    int spills = attr_truth(plan, s_spills);
    if (spills < 0) return NULL;
    PyObject *fpack = NULL;
    if (spills) {
        int fast = 0;
        if (out_param != Py_None) {
            fpack = fast_attr(plan, s_fpack);
            if (fpack == NULL) return NULL;
            if (fpack != Py_None && PyList_CheckExact(vs)) {
                PyObject *ts = fast_attr(plan, s_ts);
                if (ts == NULL) { Py_DECREF(fpack); return NULL; }
                Py_ssize_t n = PyObject_Size(ts);
                Py_DECREF(ts);
                if (n < 0) { Py_DECREF(fpack); return NULL; }
                fast = PyList_GET_SIZE(vs) == n;
            }
        }
        if (!fast) {
            Py_XDECREF(fpack);
            return PyObject_Vectorcall(lv_py, argv, nargs, NULL);
        }
    }
    /* if plan.uses_memory: cx.refresh() */
    int um = attr_truth(plan, s_uses_memory);
    if (um < 0) goto fail;
    if (um && cx_refresh(cx) < 0) goto fail;
    if (spills) {
        PyObject *align = fast_attr(plan, s_align), *size = NULL, *raw = NULL, *mask = NULL, *ptr = NULL, *rem = NULL,
                 *end = NULL, *mv = NULL, *ret = NULL;
        if (align == NULL) goto fail;
        size = fast_attr(plan, s_size);
        if (size == NULL) goto sp_out;
        raw = cvi_next(out_param, cx);
        if (raw == NULL) goto sp_out;
        mask = fast_attr(cx, s_mask_);
        if (mask == NULL) goto sp_out;
        ptr = PyNumber_And(raw, mask);
        if (ptr == NULL) goto sp_out;
        rem = PyNumber_Remainder(ptr, align);
        if (rem == NULL) goto sp_out;
        int t = PyObject_RichCompareBool(rem, cb_zero, Py_NE);
        if (t < 0) goto sp_out;
        if (t) { lv_trap_word(cx, s_ptr_align); goto sp_out; }
        end = PyNumber_Add(ptr, size);
        if (end == NULL) goto sp_out;
        mv = fast_attr(cx, s_mv);
        if (mv == NULL) goto sp_out;
        {
            Py_ssize_t n = PyObject_Size(mv);
            if (n < 0) goto sp_out;
            PyObject *len = PyLong_FromSsize_t(n);
            if (len == NULL) goto sp_out;
            t = PyObject_RichCompareBool(end, len, Py_GT);
            Py_DECREF(len);
        }
        if (t < 0) goto sp_out;
        if (t) { lv_trap_word(cx, s_ptr_bounds); goto sp_out; }
        {
            /* plan.fpack(cx.mv, ptr, *vs) (cx.mv read again, as the call's argument) */
            Py_ssize_t n = PyList_GET_SIZE(vs);
            PyObject *stack_args[16], **a = n + 2 <= 16 ? stack_args : PyMem_New(PyObject *, n + 2);
            if (a == NULL) { PyErr_NoMemory(); goto sp_out; }
            Py_CLEAR(mv);
            mv = fast_attr(cx, s_mv);
            if (mv == NULL) { if (a != stack_args) PyMem_Free(a); goto sp_out; }
            a[0] = mv;
            a[1] = ptr;
            PyObject *items = PyList_GetSlice(vs, 0, n); /* (a copy: *vs is taken before the call) */
            if (items == NULL) { if (a != stack_args) PyMem_Free(a); goto sp_out; }
            for (Py_ssize_t k = 0; k < PyList_GET_SIZE(items) && k < n; k++) a[2 + k] = PyList_GET_ITEM(items, k);
            PyObject *r = PyObject_Vectorcall(fpack, a, 2 + PyList_GET_SIZE(items), NULL);
            Py_DECREF(items);
            if (a != stack_args) PyMem_Free(a);
            if (r == NULL) goto sp_out;
            Py_DECREF(r);
        }
        ret = PyList_New(0);
    sp_out:
        Py_XDECREF(align);
        Py_XDECREF(size);
        Py_XDECREF(raw);
        Py_XDECREF(mask);
        Py_XDECREF(ptr);
        Py_XDECREF(rem);
        Py_XDECREF(end);
        Py_XDECREF(mv);
        Py_XDECREF(fpack);
        return ret;
    }
    {
        /* out = []; for f, v in zip(plan.lowerers, vs): f(cx, v, out) */
        PyObject *out = PyList_New(0), *lowerers = NULL, *il = NULL, *iv = NULL;
        if (out == NULL) goto fail;
        lowerers = fast_attr(plan, s_lowerers);
        if (lowerers != NULL) il = PyObject_GetIter(lowerers);
        if (il != NULL) iv = PyObject_GetIter(vs);
        if (iv == NULL) goto flat_fail;
        for (;;) {
            PyObject *f = PyIter_Next(il);
            if (f == NULL) {
                if (PyErr_Occurred()) goto flat_fail;
                break;
            }
            PyObject *v = PyIter_Next(iv);
            if (v == NULL) {
                Py_DECREF(f);
                if (PyErr_Occurred()) goto flat_fail;
                break;
            }
            int rc = call_lowerer(f, cx, v, out);
            Py_DECREF(f);
            Py_DECREF(v);
            if (rc < 0) goto flat_fail;
        }
        Py_DECREF(lowerers);
        Py_DECREF(il);
        Py_DECREF(iv);
        return out;
    flat_fail:
        Py_DECREF(out);
        Py_XDECREF(lowerers);
        Py_XDECREF(il);
        Py_XDECREF(iv);
        return NULL;
    }
fail:
    Py_XDECREF(fpack);
    return NULL;
}

/* init_lower_values(abi.lower_values, Trap, CoreValueIter) */
static PyObject *init_lower_values(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *py, *tr, *cvi;
    if (!PyArg_ParseTuple(a, "OOO!", &py, &tr, &PyType_Type, &cvi)) return NULL;
    PyObject *nx = _PyType_Lookup((PyTypeObject *)cvi, s_next);
    if (nx == NULL) {
        PyErr_SetString(PyExc_TypeError, "init_lower_values: CoreValueIter has no next");
        return NULL;
    }
    PyObject **dst[] = {&lv_py, &lv_trap, &lv_cvi_type, &lv_cvi_next};
    PyObject *src[] = {py, tr, cvi, nx};
    for (int k = 0; k < 4; k++) {
        Py_INCREF(src[k]);
        Py_XSETREF(*dst[k], src[k]);
    }
    lv_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------- Subtask(), subtask.resolve, cx.refresh */

/* waitables.Subtask's __init__ and resolve, abi.LiftLowerContext.refresh:
 * their steps done here for canon_lower and lift/lower_values while the
 * classes have the methods init_small_steps found (else the class or the
 * method called). */

static PyObject *ss_subtask_t, *ss_subtask_init, *ss_subtask_resolve, *ss_refresh, *ss_starting;
static int ss_ready = 0;
static PyObject *s_pending_event, *s_wset, *s_on_cancel, *s_lenders, *s_flat_results, *s_resolve, *s_refresh, *s_mv, *s_memory,
    *s_init_m, *s_opts, *s_state;
static PyObject *s_has_sync_waiter_s, *s_cancellation_requested, *s_callee, *s_view;

/* Subtask() (new reference) */
static PyObject *make_subtask(PyObject *subtask_t) {
    PyTypeObject *tp = (PyTypeObject *)subtask_t;
    if (!ss_ready || subtask_t != ss_subtask_t || tp->tp_new != PyBaseObject_Type.tp_new ||
        _PyType_Lookup(tp, s_init_m) != ss_subtask_init)
        return PyObject_CallNoArgs(subtask_t);
    PyObject *o = tp->tp_alloc(tp, 0), *l = NULL;
    if (o == NULL) return NULL;
    if (fast_setattr(o, s_pending_event, Py_None) < 0 || fast_setattr(o, s_wset, Py_None) < 0 ||
        fast_setattr(o, s_has_sync_waiter_s, Py_False) < 0 || fast_setattr(o, s_state, ss_starting) < 0 ||
        fast_setattr(o, s_on_cancel, Py_None) < 0)
        goto fail;
    l = PyList_New(0);
    if (l == NULL || fast_setattr(o, s_lenders, l) < 0) goto fail;
    Py_CLEAR(l);
    if (fast_setattr(o, s_cancellation_requested, Py_False) < 0) goto fail;
    l = PyList_New(0);
    if (l == NULL || fast_setattr(o, s_flat_results, l) < 0) goto fail;
    Py_CLEAR(l);
    if (fast_setattr(o, s_callee, Py_None) < 0) goto fail;
    return o;
fail:
    Py_XDECREF(l);
    Py_DECREF(o);
    return NULL;
}

/* subtask.resolve(state, flat_results): 0 or -1 */
static int subtask_resolve(PyObject *subtask, PyObject *state, PyObject *flat) {
    if (ss_ready && is_method((PyObject *)Py_TYPE(subtask), s_resolve, ss_subtask_resolve))
        return fast_setattr(subtask, s_state, state) < 0 || fast_setattr(subtask, s_flat_results, flat) < 0 ? -1 : 0;
    PyObject *r = PyObject_CallMethodObjArgs(subtask, s_resolve, state, flat, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* cx.refresh(): 0 or -1 */
static int cx_refresh(PyObject *cx) {
    if (ss_ready && is_method((PyObject *)Py_TYPE(cx), s_refresh, ss_refresh)) {
        /* mem = self.opts.memory; self.mv = mem.view() if mem is not None else None */
        PyObject *opts = fast_attr(cx, s_opts), *mem = NULL, *mv = NULL;
        if (opts != NULL) mem = fast_attr(opts, s_memory);
        Py_XDECREF(opts);
        if (mem == NULL) return -1;
        mv = mem != Py_None ? PyObject_CallMethodNoArgs(mem, s_view) : Py_NewRef(Py_None);
        Py_DECREF(mem);
        if (mv == NULL) return -1;
        int rc = fast_setattr(cx, s_mv, mv);
        Py_DECREF(mv);
        return rc;
    }
    PyObject *r = PyObject_CallMethodNoArgs(cx, s_refresh);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* init_small_steps(Subtask, LiftLowerContext) */
static PyObject *init_small_steps(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *st, *llc;
    if (!PyArg_ParseTuple(a, "O!O!", &PyType_Type, &st, &PyType_Type, &llc)) return NULL;
    PyObject *i = _PyType_Lookup((PyTypeObject *)st, s_init_m), *r = _PyType_Lookup((PyTypeObject *)st, s_resolve);
    PyObject *f = _PyType_Lookup((PyTypeObject *)llc, s_refresh);
    PyObject *states = PyObject_GetAttrString(st, "State"), *starting = NULL;
    if (states != NULL) starting = PyObject_GetAttrString(states, "STARTING");
    Py_XDECREF(states);
    if (starting == NULL) return NULL;
    if (i == NULL || r == NULL || f == NULL) {
        Py_DECREF(starting);
        PyErr_SetString(PyExc_TypeError, "init_small_steps: a method is missing");
        return NULL;
    }
    Py_XSETREF(ss_starting, starting);
    PyObject *src[] = {st, i, r, f};
    PyObject **dst[] = {&ss_subtask_t, &ss_subtask_init, &ss_subtask_resolve, &ss_refresh};
    for (int k = 0; k < 4; k++) Py_XSETREF(*dst[k], Py_NewRef(src[k]));
    ss_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ lift_values */

/* abi.lift_values(cx, plan, vi) in C for a plan that does not spill (a
 * spilled one is the Python function, abi._lift_values_py, called before
 * anything is done): cx.refresh() if the plan uses memory, then each lifter
 * called as f(cx, vi). Two kinds of function are done here rather than
 * called, being recognized by their code: abi's unsigned lifter
 * (`vi.next() & mask`) and its u8..u64 lowerer (`out.append(v)`); and a
 * CoreValueIter is made, and its next taken, by their own steps while the
 * class has the __init__ and next init found. */

static PyObject *lv2_py, *lv2_ulift_code, *lv2_ulower_code, *lv2_cvi_init;
static int lv2_ready = 0;
static PyObject *s_init_m;
static PyObject *s_lifters;

/* CoreValueIter(vs) (new reference) */
static PyObject *make_cvi(PyObject *cvi_t, PyObject *vs) {
    PyTypeObject *tp = (PyTypeObject *)cvi_t;
    if (lv2_ready && tp->tp_new == PyBaseObject_Type.tp_new && _PyType_Lookup(tp, s_init_m) == lv2_cvi_init) {
        PyObject *o = tp->tp_alloc(tp, 0);
        if (o == NULL) return NULL;
        if (fast_setattr(o, s_values, vs) < 0 || fast_setattr(o, s_i, cb_zero) < 0) {
            Py_DECREF(o);
            return NULL;
        }
        return o;
    }
    return PyObject_CallOneArg(cvi_t, vs);
}

/* vi.next() (new reference) */
static PyObject *cvi_next0(PyObject *vi) {
    if (lv_ready && Py_IS_TYPE(vi, (PyTypeObject *)lv_cvi_type) &&
        _PyType_Lookup((PyTypeObject *)lv_cvi_type, s_next) == lv_cvi_next) {
        PyObject *values = fast_attr(vi, s_values), *i = NULL, *v = NULL, *i2 = NULL;
        if (values != NULL) i = fast_attr(vi, s_i);
        if (i != NULL) v = PyObject_GetItem(values, i);
        if (v != NULL) i2 = PyNumber_Add(i, one_obj);
        if (i2 == NULL || fast_setattr(vi, s_i, i2) < 0) Py_CLEAR(v);
        Py_XDECREF(values);
        Py_XDECREF(i);
        Py_XDECREF(i2);
        return v;
    }
    return PyObject_CallMethodNoArgs(vi, s_next);
}

/* f is a function with this code and one free variable: that variable's value (borrowed), else NULL */
static PyObject *lambda_cell(PyObject *f, PyObject *code) {
    if (code == NULL || !PyFunction_Check(f) || PyFunction_GET_CODE(f) != code) return NULL;
    PyObject *cl = PyFunction_GET_CLOSURE(f);
    if (cl == NULL || !PyTuple_Check(cl) || PyTuple_GET_SIZE(cl) != 1) return NULL;
    return PyCell_GET(PyTuple_GET_ITEM(cl, 0));
}

/* f(cx, vi), a lifter (new reference) */
static PyObject *call_lifter(PyObject *f, PyObject *cx, PyObject *vi) {
    PyObject *mask = lambda_cell(f, lv2_ulift_code);
    if (mask != NULL) { /* vi.next() & mask */
        Py_INCREF(mask);
        PyObject *v = cvi_next0(vi), *r = NULL;
        if (v != NULL) r = PyNumber_And(v, mask);
        Py_XDECREF(v);
        Py_DECREF(mask);
        return r;
    }
    PyObject *a[] = {cx, vi};
    return PyObject_Vectorcall(f, a, 2, NULL);
}

/* f(cx, v, out), a lowerer: 0 or -1 */
static int call_lowerer(PyObject *f, PyObject *cx, PyObject *v, PyObject *out) {
    if (lv2_ready && PyFunction_Check(f) && PyFunction_GET_CODE(f) == lv2_ulower_code && PyList_CheckExact(out) &&
        PyFunction_GET_CLOSURE(f) == NULL)
        return PyList_Append(out, v); /* out.append(v) */
    PyObject *a[] = {cx, v, out};
    PyObject *r = PyObject_Vectorcall(f, a, 3, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *lift_values_c(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "lift_values(cx, plan, vi)");
        return NULL;
    }
    if (!lv2_ready || !lv_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_lift_values was not called");
        return NULL;
    }
    PyObject *cx = argv[0], *plan = argv[1], *vi = argv[2];
    int spills = attr_truth(plan, s_spills);
    if (spills < 0) return NULL;
    if (spills) return PyObject_Vectorcall(lv2_py, argv, 3, NULL);
    int um = attr_truth(plan, s_uses_memory);
    if (um < 0) return NULL;
    if (um && cx_refresh(cx) < 0) return NULL;
    /* [f(cx, vi) for f in plan.lifters] */
    PyObject *lifters = fast_attr(plan, s_lifters);
    if (lifters == NULL) return NULL;
    PyObject *it = PyObject_GetIter(lifters), *out = NULL, *f;
    Py_DECREF(lifters);
    if (it == NULL) return NULL;
    out = PyList_New(0);
    if (out == NULL) { Py_DECREF(it); return NULL; }
    while ((f = PyIter_Next(it)) != NULL) {
        PyObject *v = call_lifter(f, cx, vi);
        Py_DECREF(f);
        if (v == NULL || PyList_Append(out, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(it);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(v);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) { Py_DECREF(out); return NULL; }
    return out;
}

/* init_lift_values(abi.lift_values, the unsigned lifter's code, the u32 lowerer's code) (init_lower_values first) */
static PyObject *init_lift_values(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *py, *c1, *c2;
    if (!PyArg_ParseTuple(a, "OO!O!", &py, &PyCode_Type, &c1, &PyCode_Type, &c2)) return NULL;
    if (!lv_ready) {
        PyErr_SetString(PyExc_RuntimeError, "init_lift_values: init_lower_values first");
        return NULL;
    }
    PyObject *ci = _PyType_Lookup((PyTypeObject *)lv_cvi_type, s_init_m);
    if (ci == NULL) {
        PyErr_SetString(PyExc_TypeError, "init_lift_values: CoreValueIter has no __init__");
        return NULL;
    }
    Py_XSETREF(lv2_py, Py_NewRef(py));
    Py_XSETREF(lv2_ulift_code, Py_NewRef(c1));
    Py_XSETREF(lv2_ulower_code, Py_NewRef(c2));
    Py_XSETREF(lv2_cvi_init, Py_NewRef(ci));
    lv2_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ canon lower */

/* canon.canon_lower for an `async` lower, in C: the Python function is the
 * definition (canon._canon_lower_py: what runs when this is not built, for
 * every sync lower, and what tests put back in the linker to compare). This
 * does its steps in the same order: the current thread, task and instance,
 * may_leave, the CoreValueIter, Subtask and LiftLowerContext, the callee
 * called with on_start and on_resolve, the resolved-at-once case, the
 * handle, subtask_new, the packed result. Its four closures (on_start,
 * on_resolve, subtask_event, on_progress) are LowerFn objects sharing one
 * LowerState (the closures' cells): the same steps as theirs; abi.lift_values
 * and abi.lower_values looked up on the module at each call, as they are. */

typedef struct {
    PyObject_HEAD
    PyObject *subtask, *cx, *params, *results, *flat_args, *obs, *callee, *task, *call_id, *progress;
    int record;
} LowerState;

typedef struct {
    PyObject_HEAD
    LowerState *st;   /* on_start, on_resolve: the shared cells */
    PyObject *a, *b;  /* subtask_event: subtask, subtaski; on_progress: subtask, subtask_event */
    int kind;
    vectorcallfunc vectorcall;
} LowerFn;

enum { LF_ON_START, LF_ON_RESOLVE, LF_SUBTASK_EVENT, LF_ON_PROGRESS };

static PyObject *cl_py, *cl_abi, *cl_subtask_t, *cl_cvi, *cl_llc, *cl_host_failure, *cl_trap, *cl_cannot_leave,
    *cl_st_starting, *cl_st_started, *cl_st_returned, *cl_st_cbs, *cl_st_cbr, *cl_ev_subtask, *cl_returned_int;
static int cl_ready = 0;
static PyObject *s_lift_values, *s_lower_values, *s_import_call, *s_import_return, *s_next_call_id, *s_resolve,
    *s_resolved, *s_deliver_resolve, *s_pending_event, *s_on_cancel, *s_host, *s_results_p, *s_subtask_new,
    *s_flat_results, *s_returned_words, *s_add_m, *s_name_a;

static int LowerState_traverse(LowerState *s, visitproc visit, void *arg) {
    Py_VISIT(s->subtask); Py_VISIT(s->cx); Py_VISIT(s->params); Py_VISIT(s->results); Py_VISIT(s->flat_args);
    Py_VISIT(s->obs); Py_VISIT(s->callee); Py_VISIT(s->task); Py_VISIT(s->call_id); Py_VISIT(s->progress);
    return 0;
}

static int LowerState_clear(LowerState *s) {
    Py_CLEAR(s->subtask); Py_CLEAR(s->cx); Py_CLEAR(s->params); Py_CLEAR(s->results); Py_CLEAR(s->flat_args);
    Py_CLEAR(s->obs); Py_CLEAR(s->callee); Py_CLEAR(s->task); Py_CLEAR(s->call_id); Py_CLEAR(s->progress);
    return 0;
}

static void LowerState_dealloc(LowerState *s) {
    PyObject_GC_UnTrack(s);
    LowerState_clear(s);
    PyObject_GC_Del(s);
}

static PyTypeObject LowerStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.LowerState",
    .tp_basicsize = sizeof(LowerState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The cells canon_lower's closures share (C).",
    .tp_dealloc = (destructor)LowerState_dealloc,
    .tp_traverse = (traverseproc)LowerState_traverse,
    .tp_clear = (inquiry)LowerState_clear,
};

static PyObject *lf_call0(PyObject *f) { return PyObject_CallNoArgs(f); }

static int lf_progress(LowerState *s) { /* if progress is not None: progress() */
    if (s->progress == NULL || s->progress == Py_None) return 0;
    PyObject *p = Py_NewRef(s->progress), *r = lf_call0(p);
    Py_DECREF(p);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *lf_on_start(LowerState *s) {
    if (lf_progress(s) < 0) return NULL;
    if (fast_setattr(s->subtask, s_state, cl_st_started) < 0) return NULL;
    PyObject *fn = PyObject_GetAttr(cl_abi, s_lift_values);
    if (fn == NULL) return NULL;
    PyObject *a[] = {s->cx, s->params, s->flat_args};
    PyObject *args = PyObject_Vectorcall(fn, a, 3, NULL);
    Py_DECREF(fn);
    if (args == NULL) return NULL;
    if (s->record) {
        PyObject *id = obs_call(s->obs, CS_IMPORT_CALL, (PyObject *[]){s->task, s->callee, args}, 3);
        if (id == NULL) { Py_DECREF(args); return NULL; }
        Py_XSETREF(s->call_id, id);
    }
    return args;
}

static void hs_raise_host_failure(PyObject *callee, PyObject *extra);

static PyObject *lf_on_resolve(LowerState *s, PyObject *result) {
    if (lf_progress(s) < 0) return NULL;
    if (result == Py_None) {
        PyObject *st = fast_attr(s->subtask, s_state);
        if (st == NULL) return NULL;
        int starting = PyObject_RichCompareBool(st, cl_st_starting, Py_EQ);
        Py_DECREF(st);
        if (starting < 0) return NULL;
        PyObject *empty = PyList_New(0);
        if (empty == NULL) return NULL;
        int rc = subtask_resolve(s->subtask, starting ? cl_st_cbs : cl_st_cbr, empty);
        Py_DECREF(empty);
        if (rc < 0) return NULL;
    } else {
        PyObject *fn = PyObject_GetAttr(cl_abi, s_lower_values), *flat = NULL;
        if (fn == NULL) return NULL;
        PyObject *a[] = {s->cx, s->results, result, s->flat_args};
        flat = PyObject_Vectorcall(fn, a, 4, NULL);
        Py_DECREF(fn);
        if (flat == NULL) {
            hs_raise_host_failure(s->callee, s_returned_words); /* raise host_failure(callee.name, e, "...") from None */
            return NULL;
        }
        int rc = subtask_resolve(s->subtask, cl_st_returned, flat);
        Py_DECREF(flat);
        if (rc < 0) return NULL;
    }
    if (s->record) {
        int has = PyObject_IsTrue(s->call_id);
        if (has < 0) return NULL;
        if (!has) {
            PyObject *id = obs_call(s->obs, CS_NEXT_CALL_ID, NULL, 0);
            if (id == NULL) return NULL;
            Py_XSETREF(s->call_id, id);
        }
        PyObject *r = obs_call(s->obs, CS_IMPORT_RETURN, (PyObject *[]){s->call_id, result}, 2);
        if (r == NULL) return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *lf_subtask_event(PyObject *subtask, PyObject *subtaski) {
    int t = subtask_resolved(subtask);
    if (t < 0) return NULL;
    if (t && subtask_deliver_resolve(subtask) < 0) return NULL;
    PyObject *st = fast_attr(subtask, s_state);
    if (st == NULL) return NULL;
    PyObject *si = PyNumber_Long(st);
    Py_DECREF(st);
    if (si == NULL) return NULL;
    PyObject *ev = PyTuple_Pack(3, cl_ev_subtask, subtaski, si);
    Py_DECREF(si);
    return ev;
}

static PyTypeObject LowerFnType;
static PyObject *LowerFn_vc(LowerFn *self, PyObject *const *a, size_t nargsf, PyObject *kw);
static PyObject *new_lower_fn(int kind, LowerState *st, PyObject *a, PyObject *b) {
    LowerFn *f = PyObject_GC_New(LowerFn, &LowerFnType);
    if (f == NULL) return NULL;
    f->st = (LowerState *)Py_XNewRef((PyObject *)st);
    f->a = Py_XNewRef(a);
    f->b = Py_XNewRef(b);
    f->kind = kind;
    f->vectorcall = (vectorcallfunc)LowerFn_vc;
    PyObject_GC_Track(f);
    return (PyObject *)f;
}

static PyObject *LowerFn_vc(LowerFn *self, PyObject *const *a, size_t nargsf, PyObject *kw) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    int want = self->kind == LF_ON_RESOLVE ? 1 : 0;
    if (n != want || (kw != NULL && PyTuple_GET_SIZE(kw) != 0)) {
        PyErr_Format(PyExc_TypeError, "canon_lower closure takes %d positional argument(s)", want);
        return NULL;
    }
    PyObject *r = NULL;
    if (self->kind == LF_ON_START || self->kind == LF_ON_RESOLVE) {
        LowerState *s = self->st;
        Py_INCREF(s);
        r = self->kind == LF_ON_START ? lf_on_start(s) : lf_on_resolve(s, a[0]);
        Py_DECREF(s);
    } else if (self->kind == LF_SUBTASK_EVENT) {
        PyObject *x = Py_NewRef(self->a), *y = Py_NewRef(self->b);
        r = lf_subtask_event(x, y);
        Py_DECREF(x);
        Py_DECREF(y);
    } else { /* on_progress: subtask.pending_event = subtask_event (set_pending_event) */
        if (fast_setattr(self->a, s_pending_event, self->b) == 0) r = Py_NewRef(Py_None);
    }
    return r;
}

static int LowerFn_traverse(LowerFn *f, visitproc visit, void *arg) {
    Py_VISIT(f->st);
    Py_VISIT(f->a);
    Py_VISIT(f->b);
    return 0;
}

static int LowerFn_clear(LowerFn *f) {
    Py_CLEAR(f->st);
    Py_CLEAR(f->a);
    Py_CLEAR(f->b);
    return 0;
}

static void LowerFn_dealloc(LowerFn *f) {
    PyObject_GC_UnTrack(f);
    LowerFn_clear(f);
    PyObject_GC_Del(f);
}


static PyTypeObject LowerFnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.canon_lower_closure",
    .tp_basicsize = sizeof(LowerFn),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "One of canon_lower's closures (on_start, on_resolve, subtask_event, on_progress), in C.",
    .tp_dealloc = (destructor)LowerFn_dealloc,
    .tp_traverse = (traverseproc)LowerFn_traverse,
    .tp_clear = (inquiry)LowerFn_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(LowerFn, vectorcall),
};


static PyObject *call_func_inst(PyObject *callee, PyObject *const *a);

/* canon._call_host_sync in C (with canon_lower's steps before it for a sync
 * lower): a sync `canon lower` of a host function whose callee.fast is set,
 * in the Python function's order: the running thread, task and instance,
 * may_leave, LiftLowerContext(opts, inst, None, True, ptr_type, mask),
 * abi.lift_values over a CoreValueIter, obs.import_call(task, callee, args),
 * HostCall(store, fast, args, task, inst, box.append), fast.impl(hc, args)
 * (an exception other than a Trap: host_failure(name, e) from None), then
 * _host_results' steps (abi.lower_values, the core values' check,
 * obs.import_return(call_id, result)); a Pending is canon._await_host's
 * generator, returned as the Python function returns it. The observer's two
 * calls go through obs_call (Core's own methods reached directly: no Python
 * frame between the guest's call and its two events). What is not that case
 * (an async-typed callee, no fast host function, init_host_sync not called
 * yet) is the Python function, called before anything is done. */
static PyObject *hs_hostcall, *hs_pending, *hs_await_host;
static PyObject *s_fast, *s_impl, *s_done_hs;

/* raise host_failure(name, e[, extra]) from None for the pending exception
   e when it is an Exception and no Trap (anything else stays raised) */
static void hs_raise_host_failure(PyObject *callee, PyObject *extra) {
    if (PyErr_ExceptionMatches(cl_trap) || !PyErr_ExceptionMatches(PyExc_Exception)) return;
    PyObject *e = exc_with_tb(), *name = e != NULL ? fast_attr(callee, s_name_a) : NULL, *t = NULL;
    if (name != NULL) t = PyObject_CallFunctionObjArgs(cl_host_failure, name, e, extra, NULL);
    Py_XDECREF(name);
    if (t != NULL) {
        PyException_SetCause(t, NULL);
        PyException_SetContext(t, Py_NewRef(e)); /* (what `raise ... from None` keeps: the context, suppressed) */
        ((PyBaseExceptionObject *)t)->suppress_context = 1;
        PyErr_SetObject((PyObject *)Py_TYPE(t), t);
        Py_DECREF(t);
    }
    Py_XDECREF(e);
}

/* _host_results(cx, plan, vi, result, obs, call_id, name) */
static PyObject *hs_results(PyObject *cx, PyObject *plan, PyObject *vi, PyObject *result, PyObject *obs,
                            PyObject *call_id, long long nid, PyObject *callee) {
    PyObject *flat = NULL, *fn = NULL, *results = fast_attr(plan, s_results_p);
    if (results == NULL) return NULL;
    fn = PyObject_GetAttr(cl_abi, s_lower_values);
    if (fn != NULL) {
        PyObject *a[] = {cx, results, result, vi};
        flat = PyObject_Vectorcall(fn, a, 4, NULL);
        Py_DECREF(fn);
    }
    Py_DECREF(results);
    if (flat != NULL) {
        /* for v in flat: a core value is an int or a float */
        PyObject *it = PyObject_GetIter(flat), *v = NULL;
        int bad = it == NULL;
        while (!bad && (v = PyIter_Next(it)) != NULL) {
            if (!Py_IS_TYPE(v, &PyLong_Type) && !Py_IS_TYPE(v, &PyFloat_Type)) {
                PyObject *r = PyObject_Repr(v), *r60 = r != NULL ? PyUnicode_Substring(r, 0, 60) : NULL;
                if (r60 != NULL)
                    PyErr_Format(PyExc_TypeError, "%U for a core %s", r60,
                                 v == Py_None ? "value" : _PyType_Name(Py_TYPE(v)));
                Py_XDECREF(r);
                Py_XDECREF(r60);
                bad = 1;
            }
            Py_DECREF(v);
        }
        if (!bad && PyErr_Occurred()) bad = 1;
        Py_XDECREF(it);
        if (bad) Py_CLEAR(flat);
    }
    if (flat == NULL) {
        hs_raise_host_failure(callee, s_returned_words);
        return NULL;
    }
    if (obs == Py_None) return flat;
    int rc = 0;
    if (call_id == NULL) { /* (import_call_n's call: its id a number) */
        rc = obs_mask(obs) >> CS_IMPORT_RETURN & 1 ? sink_api->import_return_n(obs, nid, result) : 0;
        if (rc == 0) rc = (call_id = PyLong_FromLongLong(nid)) != NULL ? 0 : -1;
        else call_id = NULL;
    } else {
        Py_INCREF(call_id);
    }
    if (rc == 0) rc = obs_tell(obs, CS_IMPORT_RETURN, (PyObject *[]){call_id, result}, 2);
    Py_XDECREF(call_id);
    if (rc < 0) {
        Py_DECREF(flat);
        return NULL;
    }
    return flat;
}

static PyObject *host_sync_c(PyObject *const *argv, PyObject *fast) {
    PyObject *callee = argv[0], *opts = argv[2], *plan = argv[3];
    PyObject *task = NULL, *inst = NULL, *cx = NULL, *vi = NULL, *args = NULL, *store = NULL, *obs = NULL,
             *call_id = NULL, *box = NULL, *append = NULL, *hc = NULL, *impl = NULL, *r = NULL, *ret = NULL;
    PyObject *thread = PyList_GET_ITEM(thread_stack, PyList_GET_SIZE(thread_stack) - 1);
    Py_INCREF(thread);
    task = running_task_may_leave(cl_trap, cl_cannot_leave, &inst);
    if (task == NULL) goto out;
    {
        PyObject *pt = fast_attr(plan, s_ptr_type), *mask = pt != NULL ? fast_attr(plan, s_mask) : NULL;
        if (mask != NULL) {
            PyObject *a[] = {opts, inst, Py_None, Py_True, pt, mask};
            cx = make_cx(cl_llc, a);
        }
        Py_XDECREF(pt);
        Py_XDECREF(mask);
        if (cx == NULL) goto out;
    }
    vi = make_cvi(cl_cvi, argv[4]);
    if (vi == NULL) goto out;
    {
        PyObject *fn = PyObject_GetAttr(cl_abi, s_lift_values), *params = fn != NULL ? fast_attr(plan, s_params_p) : NULL;
        if (params != NULL) {
            PyObject *a[] = {cx, params, vi};
            args = PyObject_Vectorcall(fn, a, 3, NULL);
        }
        Py_XDECREF(fn);
        Py_XDECREF(params);
        if (args == NULL) goto out;
    }
    store = fast_attr(inst, s_store);
    if (store == NULL) goto out;
    obs = fast_attr(store, s_observer);
    if (obs == NULL) goto out;
    long long nid = 0;
    if (obs != Py_None) {
        int rc = obs_mask(obs) >> CS_IMPORT_CALL & 1 ? sink_api->import_call_n(obs, task, callee, args, &nid) : 0;
        if (rc < 0) goto out;
        /* (rc 1: the call's id is nid, no int made; call_id stays NULL) */
        if (rc == 0 && (call_id = obs_call(obs, CS_IMPORT_CALL, (PyObject *[]){task, callee, args}, 3)) == NULL)
            goto out;
    } else {
        call_id = Py_NewRef(cb_zero);
    }
    box = PyList_New(0);
    if (box == NULL) goto out;
    append = PyObject_GetAttr(box, s_append);
    if (append == NULL) goto out;
    {
        PyObject *a[] = {store, fast, args, task, inst, append};
        hc = PyObject_Vectorcall(hs_hostcall, a, 6, NULL);
        if (hc == NULL) goto out;
    }
    impl = fast_attr(fast, s_impl);
    if (impl == NULL) goto out;
    {
        PyObject *a[] = {hc, args};
        r = PyObject_Vectorcall(impl, a, 2, NULL);
    }
    if (r == NULL) {
        hs_raise_host_failure(callee, NULL);
        goto out;
    }
    if ((PyObject *)Py_TYPE(r) != hs_pending) {
        int done = attr_truth(hc, s_done_hs);
        if (done < 0) goto out;
        if (!done) {
            if (fast_setattr(hc, s_done_hs, Py_True) < 0) goto out;
            PyObject *res = r == Py_None ? PyList_New(0) : Py_NewRef(r);
            int rc = res != NULL ? PyList_Append(box, res) : -1;
            Py_XDECREF(res);
            if (rc < 0) goto out;
        }
        if (PyList_GET_SIZE(box) == 0) {
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            goto out;
        }
        PyObject *result = Py_NewRef(PyList_GET_ITEM(box, 0));
        ret = hs_results(cx, plan, vi, result, obs, call_id, nid, callee);
        Py_DECREF(result);
        goto out;
    }
    {
        PyObject *name = fast_attr(callee, s_name_a);
        if (name == NULL) goto out;
        if (call_id == NULL && (call_id = PyLong_FromLongLong(nid)) == NULL) { Py_DECREF(name); goto out; }
        PyObject *a[] = {thread, hc, box, cx, plan, vi, obs, call_id, name};
        ret = PyObject_Vectorcall(hs_await_host, a, 9, NULL);
        Py_DECREF(name);
    }
out:
    Py_DECREF(thread); Py_XDECREF(task); Py_XDECREF(inst); Py_XDECREF(cx); Py_XDECREF(vi); Py_XDECREF(args);
    Py_XDECREF(store); Py_XDECREF(obs); Py_XDECREF(call_id); Py_XDECREF(box); Py_XDECREF(append);
    Py_XDECREF(hc); Py_XDECREF(impl); Py_XDECREF(r);
    return ret;
}

/* init_host_sync(HostCall, Pending, _await_host): canon._call_host_sync's
   names bound late (hostfunc imports canon), when canon binds them */
static PyObject *init_host_sync(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *o[3];
    if (!PyArg_ParseTuple(a, "OOO", &o[0], &o[1], &o[2])) return NULL;
    PyObject **dst[] = {&hs_hostcall, &hs_pending, &hs_await_host};
    for (int i = 0; i < 3; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*dst[i], o[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *canon_lower_c(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "canon_lower(callee, ft, opts, plan, flat_args)");
        return NULL;
    }
    if (!cl_ready || !drive_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_canon_lower was not called");
        return NULL;
    }
    PyObject *callee = argv[0], *opts = argv[2], *plan = argv[3];
    int async_ = attr_truth(opts, s_async_);
    if (async_ < 0) return NULL;
    if (!async_) {
        /* (a sync lower: of a fast host function here, else all of it in Python) */
        PyObject *fast = hs_hostcall != NULL && PyList_Check(thread_stack) && PyList_GET_SIZE(thread_stack) > 0
                             ? fast_attr(callee, s_fast) : NULL;
        if (fast == NULL && PyErr_Occurred()) return NULL;
        int fa_ = fast != NULL && fast != Py_None ? attr_truth(argv[1], s_async_) : 1;
        PyObject *r = fa_ < 0 ? NULL : fa_ == 0 ? host_sync_c(argv, fast) : PyObject_Vectorcall(cl_py, argv, 5, NULL);
        Py_XDECREF(fast);
        return r;
    }
    PyObject *task = NULL, *inst = NULL, *fa = NULL, *subtask = NULL, *host = NULL, *cx = NULL, *store = NULL,
             *obs = NULL, *on_start = NULL, *on_resolve = NULL, *oc = NULL, *subtaski = NULL, *ev = NULL,
             *prog = NULL, *ret = NULL, *st = NULL;
    LowerState *ls = NULL;
    task = running_task_may_leave(cl_trap, cl_cannot_leave, &inst);
    if (task == NULL) goto out;
    fa = make_cvi(cl_cvi, argv[4]);
    if (fa == NULL) goto out;
    ls = PyObject_GC_New(LowerState, &LowerStateType);
    if (ls == NULL) goto out;
    ls->subtask = ls->cx = ls->params = ls->results = ls->flat_args = ls->obs = ls->callee = ls->task = NULL;
    ls->call_id = ls->progress = NULL;
    ls->record = 0;
    PyObject_GC_Track(ls);
    ls->params = fast_attr(plan, s_params_p);
    if (ls->params == NULL) goto out;
    ls->results = fast_attr(plan, s_results_p);
    if (ls->results == NULL) goto out;
    subtask = make_subtask(cl_subtask_t);
    if (subtask == NULL) goto out;
    host = fast_attr(callee, s_host);
    if (host == NULL) goto out;
    {
        PyObject *pt = fast_attr(plan, s_ptr_type), *mask = pt != NULL ? fast_attr(plan, s_mask) : NULL;
        if (mask != NULL) {
            PyObject *a[] = {opts, inst, subtask, host, pt, mask};
            cx = make_cx(cl_llc, a);
        }
        Py_XDECREF(pt);
        Py_XDECREF(mask);
        if (cx == NULL) goto out;
    }
    store = fast_attr(inst, s_store);
    if (store == NULL) goto out;
    obs = fast_attr(store, s_observer);
    if (obs == NULL) goto out;
    if (obs != Py_None) {
        Py_CLEAR(host);
        host = fast_attr(callee, s_host);
        if (host == NULL) goto out;
        int h = PyObject_IsTrue(host);
        if (h < 0) goto out;
        ls->record = h;
    }
    ls->subtask = Py_NewRef(subtask);
    ls->cx = Py_NewRef(cx);
    ls->flat_args = Py_NewRef(fa);
    ls->obs = Py_NewRef(obs);
    ls->callee = Py_NewRef(callee);
    ls->task = Py_NewRef(task);
    ls->call_id = Py_NewRef(cb_zero);
    ls->progress = Py_NewRef(Py_None);
    on_start = new_lower_fn(LF_ON_START, ls, NULL, NULL);
    if (on_start == NULL) goto out;
    on_resolve = new_lower_fn(LF_ON_RESOLVE, ls, NULL, NULL);
    if (on_resolve == NULL) goto out;
    {
        PyObject *a[] = {on_start, on_resolve, inst};
        oc = call_func_inst(callee, a);
        if (oc == NULL) goto out;
    }
    if (fast_setattr(subtask, s_on_cancel, oc) < 0) goto out;
    st = fast_attr(subtask, s_state);
    if (st == NULL) goto out;
    int done = PyObject_RichCompareBool(st, cl_st_returned, Py_GE);
    Py_CLEAR(st);
    if (done < 0) goto out;
    if (done) {
        if (subtask_deliver_resolve(subtask) < 0) goto out;
        ret = PyList_New(1);
        if (ret != NULL) PyList_SET_ITEM(ret, 0, Py_NewRef(cl_returned_int));
        goto out;
    }
    {
        PyObject *handles = fast_attr(inst, s_handles);
        if (handles == NULL) goto out;
        subtaski = PyObject_CallMethodOneArg(handles, s_add_m, subtask);
        Py_DECREF(handles);
        if (subtaski == NULL) goto out;
    }
    ev = new_lower_fn(LF_SUBTASK_EVENT, NULL, subtask, subtaski);
    if (ev == NULL) goto out;
    prog = new_lower_fn(LF_ON_PROGRESS, NULL, subtask, ev);
    if (prog == NULL) goto out;
    Py_SETREF(ls->progress, Py_NewRef(prog));
    if (obs != Py_None) {
        PyObject *name = fast_attr(callee, s_name_a), *si = NULL;
        if (name == NULL) goto out;
        st = fast_attr(subtask, s_state);
        if (st != NULL) si = PyNumber_Long(st);
        Py_CLEAR(st);
        int rc = si != NULL ? obs_tell(obs, CS_SUBTASK_NEW, (PyObject *[]){task, subtaski, name, si}, 4) : -1;
        Py_DECREF(name);
        Py_XDECREF(si);
        if (rc < 0) goto out;
    }
    {
        /* [int(subtask.state) | (subtaski << 4)] */
        static PyObject *four = NULL;
        if (four == NULL && (four = PyLong_FromLong(4)) == NULL) goto out;
        st = fast_attr(subtask, s_state);
        if (st == NULL) goto out;
        PyObject *si = PyNumber_Long(st), *sh = NULL, *v = NULL;
        Py_CLEAR(st);
        if (si != NULL) sh = PyNumber_Lshift(subtaski, four);
        if (sh != NULL) v = PyNumber_Or(si, sh);
        Py_XDECREF(si);
        Py_XDECREF(sh);
        if (v == NULL) goto out;
        ret = PyList_New(1);
        if (ret == NULL) { Py_DECREF(v); goto out; }
        PyList_SET_ITEM(ret, 0, v);
    }
out:
    Py_XDECREF(task); Py_XDECREF(inst); Py_XDECREF(fa); Py_XDECREF(subtask); Py_XDECREF(host); Py_XDECREF(cx);
    Py_XDECREF(store); Py_XDECREF(obs); Py_XDECREF(on_start); Py_XDECREF(on_resolve); Py_XDECREF(oc);
    Py_XDECREF(subtaski); Py_XDECREF(ev); Py_XDECREF(prog); Py_XDECREF(st); Py_XDECREF((PyObject *)ls);
    return ret;
}

/* init_canon_lower(canon_lower, abi, Subtask, CoreValueIter, LiftLowerContext, host_failure, Trap, CANNOT_LEAVE,
 *                  EventCode.SUBTASK) */
static PyObject *init_canon_lower(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *o[9];
    if (!PyArg_ParseTuple(a, "OOO!OOOOOO", &o[0], &o[1], &PyType_Type, &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &o[8]))
        return NULL;
    PyObject **dst[] = {&cl_py, &cl_abi, &cl_subtask_t, &cl_cvi, &cl_llc, &cl_host_failure, &cl_trap, &cl_cannot_leave,
                        &cl_ev_subtask};
    for (int i = 0; i < 9; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*dst[i], o[i]);
    }
    /* Subtask.State's members */
    PyObject *states = PyObject_GetAttrString(o[2], "State");
    if (states == NULL) return NULL;
    PyObject **sd[] = {&cl_st_starting, &cl_st_started, &cl_st_returned, &cl_st_cbs, &cl_st_cbr};
    const char *sn[] = {"STARTING", "STARTED", "RETURNED", "CANCELLED_BEFORE_STARTED", "CANCELLED_BEFORE_RETURNED"};
    for (int i = 0; i < 5; i++) {
        PyObject *v = PyObject_GetAttrString(states, sn[i]);
        if (v == NULL) { Py_DECREF(states); return NULL; }
        Py_XSETREF(*sd[i], v);
    }
    Py_DECREF(states);
    PyObject *ri = PyNumber_Long(cl_st_returned);
    if (ri == NULL) return NULL;
    Py_XSETREF(cl_returned_int, ri);
    if (PyType_Ready(&LowerStateType) < 0 || PyType_Ready(&LowerFnType) < 0) return NULL;
    cl_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------- canon lift */

/* canon.lift's func_inst closure and canon.canon_lift in C. The Python ones
 * are the definitions (what runs when this is not built, and what tests put
 * back: canon.LIFT_CALL = None, canon.canon_lift = canon._canon_lift_py).
 * LiftCall(inst, callee, ft, opts, plan, ancestry_check) is the function a
 * FuncInst calls (its fi set right after, as the closure's cell is): the
 * same entry checks and traps, the same may_enter marks around the call of
 * whatever canon.canon_lift is. _fiber.canon_lift does canon_lift's steps
 * for an async-typed function lifted async with a callback while
 * canon.CALLBACK_THREAD is this module's CallbackThread (anything else is
 * the Python function, called before anything is done): the Task and Thread
 * made as the classes' __init__ make them while those are the methods init
 * found (the classes called otherwise), the body, thread.resume(), and
 * task.request_cancellation returned. */

static PyObject *lc_globals, *lc_task_t, *lc_task_init, *lc_task_initial, *lc_thread_init, *lc_store_new_id,
    *lc_cannot_enter, *lc_trap, *lc_canon_lift_py, *lc_funcinst_t, *lc_funcinst_call, *lc_s_task, *lc_s_thread;
static int lc_ready = 0;
static PyObject *s_init_m; /* (also make_cx's) */
static PyObject *s_canon_lift, *s_CALLBACK_THREAD, *s_Task, *s_Thread, *s_poisoned, *s_num_borrows, *s_implicit_thread,
    *s_threads, *s_id, *s_caller, *s_root, *s_label, *s_tokens, *s_next_root, *s_task_new, *s_thread_new,
    *s_new_id, *s_ids, *s_on_start, *s_on_resolve, *s_request_cancellation, *s_self_and_ancestors, *s_call_a,
    *s_future_n, *s_driver_n, *s_host_call_n, *s_block_arg_n, *s_index, *s_storage, *s_done_n, *s_started_n,
    *s_gen_n, *s_fi_name, *s_empty_str, *s_call_dunder;

/* store.new_id(kind) (new reference) */
static PyObject *store_new_id(PyObject *store, PyObject *kind) {
    if (!is_method((PyObject *)Py_TYPE(store), s_new_id, lc_store_new_id))
        return PyObject_CallMethodOneArg(store, s_new_id, kind);
    /* n = self._ids.get(kind, 0) + 1; self._ids[kind] = n */
    PyObject *ids = PyObject_GetAttr(store, s_ids);
    if (ids == NULL) return NULL;
    PyObject *n = NULL;
    if (PyDict_CheckExact(ids)) {
        PyObject *v = PyDict_GetItemWithError(ids, kind);
        if (v == NULL && PyErr_Occurred()) { Py_DECREF(ids); return NULL; }
        n = PyNumber_Add(v != NULL ? v : cb_zero, one_obj);
        if (n != NULL && PyDict_SetItem(ids, kind, n) < 0) Py_CLEAR(n);
    } else {
        PyObject *v = PyObject_CallMethodObjArgs(ids, s_get, kind, cb_zero, NULL);
        if (v != NULL) n = PyNumber_Add(v, one_obj);
        Py_XDECREF(v);
        if (n != NULL && PyObject_SetItem(ids, kind, n) < 0) Py_CLEAR(n);
    }
    Py_DECREF(ids);
    return n;
}

/* Task(ft, opts, inst, on_start, on_resolve, caller=caller, name=name) */
static PyObject *make_task(PyObject *task_t, PyObject *ft, PyObject *opts, PyObject *inst, PyObject *on_start,
                           PyObject *on_resolve, PyObject *caller, PyObject *name) {
    PyTypeObject *tp = (PyTypeObject *)task_t;
    if (task_t != lc_task_t || tp->tp_new != PyBaseObject_Type.tp_new ||
        _PyType_Lookup(tp, s_init_m) != lc_task_init) {
        PyObject *a[] = {ft, opts, inst, on_start, on_resolve, caller, name};
        PyObject *kw = PyTuple_Pack(2, s_caller, s_name_a);
        if (kw == NULL) return NULL;
        PyObject *r = PyObject_Vectorcall(task_t, a, 5, kw);
        Py_DECREF(kw);
        return r;
    }
    PyObject *self = tp->tp_alloc(tp, 0), *store = NULL, *v = NULL;
    if (self == NULL) return NULL;
    if (fast_setattr(self, s_ft, ft) < 0 || fast_setattr(self, s_opts, opts) < 0 || fast_setattr(self, s_inst, inst) < 0 ||
        fast_setattr(self, s_on_start, on_start) < 0 || fast_setattr(self, s_on_resolve, on_resolve) < 0 ||
        fast_setattr(self, s_state, lc_task_initial) < 0 || fast_setattr(self, s_num_borrows, cb_zero) < 0 ||
        fast_setattr(self, s_implicit_thread, Py_None) < 0)
        goto fail;
    v = PyList_New(0);
    if (v == NULL || fast_setattr(self, s_threads, v) < 0) goto fail;
    Py_CLEAR(v);
    store = fast_attr(inst, s_store);
    if (store == NULL) goto fail;
    v = store_new_id(store, lc_s_task);
    if (v == NULL || fast_setattr(self, s_id, v) < 0) goto fail;
    Py_CLEAR(v);
    Py_CLEAR(store);
    if (fast_setattr(self, s_caller, caller) < 0) goto fail;
    v = caller != Py_None ? fast_attr(caller, s_root) : Py_NewRef(self);
    if (v == NULL || fast_setattr(self, s_root, v) < 0) goto fail;
    Py_CLEAR(v);
    if (fast_setattr(self, s_name_a, name) < 0 || fast_setattr(self, s_label, Py_None) < 0 ||
        fast_setattr(self, s_tokens, Py_None) < 0)
        goto fail;
    if (caller == Py_None) { /* a root export task: the host may have named the request */
        store = fast_attr(inst, s_store);
        if (store == NULL) goto fail;
        PyObject *nxt = PyObject_GetAttr(store, s_next_root);
        Py_CLEAR(store);
        if (nxt == NULL) goto fail;
        if (nxt != Py_None) {
            PyObject *fast = PySequence_Fast(nxt, "cannot unpack non-iterable object");
            Py_DECREF(nxt);
            if (fast == NULL) goto fail;
            if (PySequence_Fast_GET_SIZE(fast) != 2) {
                PyErr_Format(PyExc_ValueError, PySequence_Fast_GET_SIZE(fast) > 2 ? "too many values to unpack (expected 2)"
                                                                                  : "not enough values to unpack (expected 2, got %zd)",
                             PySequence_Fast_GET_SIZE(fast));
                Py_DECREF(fast);
                goto fail;
            }
            int rc = fast_setattr(self, s_label, PySequence_Fast_GET_ITEM(fast, 0)) < 0 ||
                     fast_setattr(self, s_tokens, PySequence_Fast_GET_ITEM(fast, 1)) < 0;
            Py_DECREF(fast);
            if (rc) goto fail;
            store = fast_attr(inst, s_store);
            if (store == NULL || PyObject_SetAttr(store, s_next_root, Py_None) < 0) goto fail;
            Py_CLEAR(store);
        } else {
            Py_DECREF(nxt);
        }
    }
    store = fast_attr(inst, s_store);
    if (store == NULL) goto fail;
    v = fast_attr(store, s_observer);
    Py_CLEAR(store);
    if (v == NULL) goto fail;
    if (v != Py_None && obs_tell(v, CS_TASK_NEW, &self, 1) < 0) goto fail;
    Py_DECREF(v);
    return self;
fail:
    Py_XDECREF(v);
    Py_XDECREF(store);
    Py_DECREF(self);
    return NULL;
}

/* Thread(task, body) */
static PyObject *make_thread(PyObject *thread_t, PyObject *task, PyObject *body) {
    PyTypeObject *tp = (PyTypeObject *)thread_t;
    if (thread_t != ThreadT || tp->tp_new != PyBaseObject_Type.tp_new || _PyType_Lookup(tp, s_init_m) != lc_thread_init) {
        PyObject *a[] = {task, body};
        return PyObject_Vectorcall(thread_t, a, 2, NULL);
    }
    PyObject *self = tp->tp_alloc(tp, 0), *v = NULL, *inst = NULL, *store = NULL, *obs = NULL;
    if (self == NULL) return NULL;
    v = Py_IS_TYPE(body, &CBThreadType) ? Py_NewRef(body) : PyObject_CallNoArgs(body); /* self.gen = body() */
    if (v == NULL) goto fail;
    set_slot(self, T_gen, v);
    Py_CLEAR(v);
    set_slot(self, T_future, Py_None);
    set_slot(self, T_driver, Py_None);
    set_slot(self, T_host_call, Py_None);
    set_slot(self, T_block_arg, Py_None);
    set_slot(self, T_is_running, Py_False);
    set_slot(self, T_ready_func, Py_None);
    set_slot(self, T_task, task);
    set_slot(self, T_cancellable, Py_False);
    if (fast_setattr(self, s_index, Py_None) < 0) goto fail;
    v = PyList_New(2);
    if (v == NULL) goto fail;
    PyList_SET_ITEM(v, 0, Py_NewRef(cb_zero));
    PyList_SET_ITEM(v, 1, Py_NewRef(cb_zero));
    if (fast_setattr(self, s_storage, v) < 0) goto fail;
    Py_CLEAR(v);
    set_slot(self, T_done, Py_False);
    set_slot(self, T_started, Py_False);
    inst = fast_attr(task, s_inst);
    if (inst != NULL) store = fast_attr(inst, s_store);
    if (store == NULL) goto fail;
    v = store_new_id(store, lc_s_thread);
    if (v == NULL) goto fail;
    set_slot(self, T_tid, v);
    Py_CLEAR(v);
    Py_CLEAR(store);
    Py_CLEAR(inst);
    inst = fast_attr(task, s_inst);
    if (inst != NULL) store = fast_attr(inst, s_store);
    if (store != NULL) obs = fast_attr(store, s_observer);
    if (obs == NULL) goto fail;
    if (obs != Py_None) {
        PyObject *tid = fast_attr(self, s_tid), *id = tid != NULL ? fast_attr(task, s_id) : NULL;
        int rc = id != NULL ? obs_tell(obs, CS_THREAD_NEW, (PyObject *[]){tid, id}, 2) : -1;
        Py_XDECREF(tid);
        Py_XDECREF(id);
        if (rc < 0) goto fail;
    }
    Py_DECREF(obs);
    Py_DECREF(store);
    Py_DECREF(inst);
    return self;
fail:
    Py_XDECREF(v);
    Py_XDECREF(obs);
    Py_XDECREF(store);
    Py_XDECREF(inst);
    Py_DECREF(self);
    return NULL;
}

/* a canon-module global, borrowed */
static PyObject *lc_global(PyObject *name) {
    PyObject *v = PyDict_GetItemWithError(lc_globals, name);
    if (v == NULL && !PyErr_Occurred()) PyErr_Format(PyExc_NameError, "name '%U' is not defined", name);
    return v;
}

static PyObject *canon_lift_c(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs < 7 || nargs > 8) {
        PyErr_SetString(PyExc_TypeError, "canon_lift(callee, ft, opts, plan, inst, on_start, on_resolve, name='')");
        return NULL;
    }
    if (!lc_ready || !cb_ready || !drive_ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fiber.init_canon_lift was not called");
        return NULL;
    }
    PyObject *callee = argv[0], *ft = argv[1], *opts = argv[2], *plan = argv[3], *inst = argv[4];
    PyObject *name = nargs == 8 ? argv[7] : s_empty_str;
    /* the case done here: CALLBACK_THREAD is ours, opts.async_, opts.callback, ft.async_ */
    PyObject *cbt = lc_global(s_CALLBACK_THREAD);
    if (cbt == NULL) return NULL;
    int here = cbt == (PyObject *)&CBThreadType;
    if (here) here = attr_truth(opts, s_async_);
    if (here > 0) {
        PyObject *cb = fast_attr(opts, s_callback);
        if (cb == NULL) return NULL;
        Py_DECREF(cb);
        here = cb != Py_None;
    }
    if (here > 0) here = attr_truth(ft, s_async_);
    if (here < 0) return NULL;
    if (!here) return PyObject_Vectorcall(lc_canon_lift_py, argv, nargs, NULL);
    PyObject *caller_task = NULL, *task = NULL, *body = NULL, *thread = NULL, *ret = NULL;
    /* caller_task = STACK[-1].task if STACK else None */
    if (!PyList_Check(thread_stack)) {
        PyErr_SetString(PyExc_TypeError, "thread.STACK is not a list");
        return NULL;
    }
    if (PyList_GET_SIZE(thread_stack) > 0) {
        caller_task = fast_attr(PyList_GET_ITEM(thread_stack, PyList_GET_SIZE(thread_stack) - 1), s_task_n);
        if (caller_task == NULL) return NULL;
    } else {
        caller_task = Py_NewRef(Py_None);
    }
    PyObject *task_t = lc_global(s_Task);
    if (task_t == NULL) goto out;
    task = make_task(task_t, ft, opts, inst, argv[5], argv[6], caller_task, name);
    if (task == NULL) goto out;
    {
        PyObject *a5[] = {task, inst, opts, plan, callee};
        body = cb_thread_make(&CBThreadType, a5, caller_task == Py_None);
    }
    if (body == NULL) goto out;
    PyObject *thread_t = lc_global(s_Thread);
    if (thread_t == NULL) goto out;
    thread = make_thread(thread_t, task, body);
    if (thread == NULL) goto out;
    Py_INCREF(thread);
    Py_XSETREF(((CBThread *)body)->thread, thread); /* body.thread = thread */
    /* thread.resume() */
    if (Py_IS_TYPE(thread, (PyTypeObject *)ThreadT) && resume_descr != NULL &&
        _PyType_Lookup((PyTypeObject *)ThreadT, s_resume_m) == resume_descr) {
        if (c_resume(thread, cancelled_false) < 0) goto out;
    } else {
        PyObject *r = PyObject_CallMethodNoArgs(thread, s_resume_m);
        if (r == NULL) goto out;
        Py_DECREF(r);
    }
    ret = PyObject_GetAttr(task, s_request_cancellation);
out:
    Py_XDECREF(caller_task);
    Py_XDECREF(task);
    Py_XDECREF(body);
    Py_XDECREF(thread);
    return ret;
}

/* -- LiftCall: lift's func_inst */

typedef struct {
    PyObject_HEAD
    PyObject *inst, *callee, *ft, *opts, *plan, *related, *fi;
    int ancestry_check;
    vectorcallfunc vectorcall;
} LiftCall;

static int LiftCall_traverse(LiftCall *self, visitproc visit, void *arg) {
    Py_VISIT(self->inst);
    Py_VISIT(self->callee);
    Py_VISIT(self->ft);
    Py_VISIT(self->opts);
    Py_VISIT(self->plan);
    Py_VISIT(self->related);
    Py_VISIT(self->fi);
    return 0;
}

static int LiftCall_clear(LiftCall *self) {
    Py_CLEAR(self->inst);
    Py_CLEAR(self->callee);
    Py_CLEAR(self->ft);
    Py_CLEAR(self->opts);
    Py_CLEAR(self->plan);
    Py_CLEAR(self->related);
    Py_CLEAR(self->fi);
    return 0;
}

static void LiftCall_dealloc(LiftCall *self) {
    PyObject_GC_UnTrack(self);
    LiftCall_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *lc_trap_enter(void) {
    return trap_with(lc_trap, Py_NewRef(lc_cannot_enter));
}

/* x in o.self_and_ancestors(): 1, 0, -1 */
static int in_lineage(PyObject *x, PyObject *o) {
    PyObject *s = PyObject_CallMethodNoArgs(o, s_self_and_ancestors);
    if (s == NULL) return -1;
    int r = PySequence_Contains(s, x);
    Py_DECREF(s);
    return r;
}

static int set_may_enter(PyObject *entering, PyObject *v) {
    PyObject *it = PyObject_GetIter(entering), *i;
    if (it == NULL) return -1;
    while ((i = PyIter_Next(it)) != NULL) {
        int rc = fast_setattr(i, s_may_enter, v);
        Py_DECREF(i);
        if (rc < 0) { Py_DECREF(it); return -1; }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *LiftCall_vc(LiftCall *self, PyObject *const *a, size_t nargsf, PyObject *kw) {
    if (PyVectorcall_NARGS(nargsf) != 3 || (kw != NULL && PyTuple_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "func_inst(on_start, on_resolve, caller)");
        return NULL;
    }
    PyObject *caller = a[2], *inst = self->inst, *entering = NULL, *ret = NULL, *name = NULL;
    Py_INCREF(self);
    int p = attr_truth(inst, s_poisoned);
    if (p < 0) goto out;
    if (p) { lc_trap_enter(); goto out; }
    /* entering = inst.entering_set(caller): its cache read first, the method on a miss */
    {
        PyObject *cache = fast_attr(inst, s_entering);
        if (cache != NULL && PyDict_CheckExact(cache)) {
            entering = PyDict_GetItemWithError(cache, caller);
            Py_XINCREF(entering);
        } else {
            PyErr_Clear();
        }
        Py_XDECREF(cache);
        if (entering == NULL && PyErr_Occurred()) goto out;
        if (entering == NULL) entering = PyObject_CallMethodOneArg(inst, s_entering_set, caller);
        if (entering == NULL) goto out;
    }
    {
        PyObject *it = PyObject_GetIter(entering), *i;
        if (it == NULL) goto out;
        int bad = 0;
        while ((i = PyIter_Next(it)) != NULL) {
            int me = attr_truth(i, s_may_enter);
            Py_DECREF(i);
            if (me <= 0) { bad = me < 0 ? -1 : 1; break; }
        }
        Py_DECREF(it);
        if (bad < 0 || PyErr_Occurred()) goto out;
        if (bad) { lc_trap_enter(); goto out; }
    }
    int rel = 0;
    if (self->ancestry_check && caller != Py_None) {
        PyObject *r = PyDict_GetItemWithError(self->related, caller);
        if (r == NULL) {
            if (PyErr_Occurred()) goto out;
            int x = in_lineage(caller, inst);
            if (x == 0) x = in_lineage(inst, caller);
            if (x < 0) goto out;
            if (PyDict_SetItem(self->related, caller, x ? Py_True : Py_False) < 0) goto out;
            rel = x;
        } else {
            rel = PyObject_IsTrue(r);
            if (rel < 0) goto out;
        }
    }
    if (rel) { lc_trap_enter(); goto out; }
    if (set_may_enter(entering, Py_False) < 0) goto out;
    /* try: return canon_lift(callee, ft, opts, plan, inst, on_start, on_resolve, fi.name) */
    {
        PyObject *cl = lc_global(s_canon_lift);
        if (cl != NULL) name = fast_attr(self->fi, s_fi_name);
        if (name != NULL) {
            PyObject *args[] = {self->callee, self->ft, self->opts, self->plan, inst, a[0], a[1], name};
            if (PyCFunction_Check(cl) && PyCFunction_GET_FUNCTION(cl) == (PyCFunction)(void (*)(void))canon_lift_c)
                ret = canon_lift_c(NULL, args, 8);
            else
                ret = PyObject_Vectorcall(cl, args, 8, NULL);
        }
    }
    /* finally: for i in entering: i.may_enter = True */
    {
        PyObject *t, *e, *tb;
        PyErr_Fetch(&t, &e, &tb);
        if (set_may_enter(entering, Py_True) < 0) {
            Py_CLEAR(ret);
            if (e != NULL) { /* (the finally's exception, in the context of the one it replaces) */
                PyObject *t2, *e2, *tb2;
                PyErr_NormalizeException(&t, &e, &tb);
                PyErr_Fetch(&t2, &e2, &tb2);
                PyErr_NormalizeException(&t2, &e2, &tb2);
                if (e2 != NULL) PyException_SetContext(e2, Py_NewRef(e));
                PyErr_Restore(t2, e2, tb2);
                Py_XDECREF(t);
                Py_XDECREF(e);
                Py_XDECREF(tb);
            }
        } else {
            PyErr_Restore(t, e, tb);
        }
    }
out:
    Py_XDECREF(name);
    Py_XDECREF(entering);
    Py_DECREF(self);
    return ret;
}

static PyObject *LiftCall_get_fi(LiftCall *self, void *c) {
    (void)c;
    return Py_NewRef(self->fi != NULL ? self->fi : Py_None);
}

static int LiftCall_set_fi(LiftCall *self, PyObject *v, void *c) {
    (void)c;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete fi");
        return -1;
    }
    Py_XSETREF(self->fi, Py_NewRef(v));
    return 0;
}

static PyGetSetDef LiftCall_getset[] = {
    {"fi", (getter)LiftCall_get_fi, (setter)LiftCall_set_fi, "the FuncInst this is the call of", NULL}, {NULL}};

static PyObject *LiftCall_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"inst", "callee", "ft", "opts", "plan", "ancestry_check", NULL};
    PyObject *o[5];
    int ac = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|p", names, &o[0], &o[1], &o[2], &o[3], &o[4], &ac)) return NULL;
    LiftCall *self = PyObject_GC_New(LiftCall, type);
    if (self == NULL) return NULL;
    self->inst = Py_NewRef(o[0]);
    self->callee = Py_NewRef(o[1]);
    self->ft = Py_NewRef(o[2]);
    self->opts = Py_NewRef(o[3]);
    self->plan = Py_NewRef(o[4]);
    self->related = PyDict_New();
    self->fi = Py_NewRef(Py_None);
    self->ancestry_check = ac;
    self->vectorcall = (vectorcallfunc)LiftCall_vc;
    PyObject_GC_Track(self);
    if (self->related == NULL) { Py_DECREF(self); return NULL; }
    return (PyObject *)self;
}

static PyTypeObject LiftCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.runtime._fiber.LiftCall",
    .tp_basicsize = sizeof(LiftCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "LiftCall(inst, callee, ft, opts, plan, ancestry_check=True): canon.lift's func_inst, in C.",
    .tp_dealloc = (destructor)LiftCall_dealloc,
    .tp_traverse = (traverseproc)LiftCall_traverse,
    .tp_clear = (inquiry)LiftCall_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(LiftCall, vectorcall),
    .tp_new = LiftCall_new,
    .tp_getset = LiftCall_getset,
};

/* callee(on_start, on_resolve, caller) for canon_lower: a FuncInst whose
 * __call__ is the one init found calls its .call directly (the same call) */
static PyObject *call_func_inst(PyObject *callee, PyObject *const *a) {
    if (lc_ready && Py_IS_TYPE(callee, (PyTypeObject *)lc_funcinst_t) &&
        _PyType_Lookup((PyTypeObject *)lc_funcinst_t, s_call_dunder) == lc_funcinst_call) {
        PyObject *call = fast_attr(callee, s_call_a);
        if (call == NULL) return NULL;
        PyObject *r = PyObject_Vectorcall(call, a, 3, NULL);
        Py_DECREF(call);
        return r;
    }
    return PyObject_Vectorcall(callee, a, 3, NULL);
}

/* init_canon_lift(canon globals, Task, Task.State.INITIAL, Store.new_id, CANNOT_ENTER, Trap, canon_lift, FuncInst) */
static PyObject *init_canon_lift(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *g, *tt, *init_state, *new_id, *ce, *tr, *clp, *fit;
    if (!PyArg_ParseTuple(a, "O!O!OOOOOO!", &PyDict_Type, &g, &PyType_Type, &tt, &init_state, &new_id, &ce, &tr, &clp,
                          &PyType_Type, &fit))
        return NULL;
    if (!drive_ready || !wt_ready) {
        PyErr_SetString(PyExc_RuntimeError, "init_canon_lift: init_drive and init_wait_until first");
        return NULL;
    }
    PyObject *ti = _PyType_Lookup((PyTypeObject *)tt, s_init_m), *thi = _PyType_Lookup((PyTypeObject *)ThreadT, s_init_m);
    PyObject *fc = _PyType_Lookup((PyTypeObject *)fit, s_call_dunder);
    if (ti == NULL || thi == NULL || fc == NULL) {
        PyErr_SetString(PyExc_TypeError, "init_canon_lift: a method is missing");
        return NULL;
    }
    PyObject *src[] = {g, tt, ti, init_state, thi, new_id, ce, tr, clp, fit, fc};
    PyObject **dst[] = {&lc_globals, &lc_task_t, &lc_task_init, &lc_task_initial, &lc_thread_init, &lc_store_new_id,
                        &lc_cannot_enter, &lc_trap, &lc_canon_lift_py, &lc_funcinst_t, &lc_funcinst_call};
    for (int i = 0; i < 11; i++) Py_XSETREF(*dst[i], Py_NewRef(src[i]));
    if (PyType_Ready(&LiftCallType) < 0) return NULL;
    lc_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------- LiftLowerContext(...) */

/* LiftLowerContext(opts, inst, borrow_scope, host, ptr_type, mask) as the C
 * pieces make it (ptr_type given: the plan's): abi.LiftLowerContext.__init__'s
 * steps for that case on a new object of the class, in its order
 * (budget from CopyBudget.LIMIT as it is now, opts, inst, borrow_scope, host,
 * words from abi's HOST_WORDS/ADAPTER_WORDS as they are now, mv None,
 * ptr_type, _mask). Anything else (no ptr_type, another class, an __init__
 * or __new__ not the ones init_make_cx saw) is the class called. */

static PyObject *mc_cls, *mc_init, *mc_abi_dict, *mc_copy_budget;
static newfunc mc_new;
static int mc_ready = 0;
static PyObject *s_budget, *s_LIMIT, *s_borrow_scope, *s_HOST_WORDS, *s_ADAPTER_WORDS, *s_init_m, *s_empty_tuple;

static PyObject *make_cx(PyObject *cls, PyObject *const *a) {
    PyTypeObject *tp = (PyTypeObject *)cls;
    if (!mc_ready || cls != mc_cls || a[4] == Py_None || tp->tp_new != mc_new || _PyType_Lookup(tp, s_init_m) != mc_init)
        return PyObject_Vectorcall(cls, a, 6, NULL);
    PyObject *cx = tp->tp_new(tp, s_empty_tuple, NULL);
    if (cx == NULL) return NULL;
    PyObject *limit = PyObject_GetAttr(mc_copy_budget, s_LIMIT);
    if (limit == NULL) goto fail;
    int rc = fast_setattr(cx, s_budget, limit);
    Py_DECREF(limit);
    if (rc < 0) goto fail;
    if (fast_setattr(cx, s_opts, a[0]) < 0 || fast_setattr(cx, s_inst, a[1]) < 0 ||
        fast_setattr(cx, s_borrow_scope, a[2]) < 0 || fast_setattr(cx, s_host, a[3]) < 0)
        goto fail;
    int host = PyObject_IsTrue(a[3]);
    if (host < 0) goto fail;
    PyObject *words = PyDict_GetItemWithError(mc_abi_dict, host ? s_HOST_WORDS : s_ADAPTER_WORDS);
    if (words == NULL) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_NameError, host ? s_HOST_WORDS : s_ADAPTER_WORDS);
        goto fail;
    }
    if (fast_setattr(cx, s_words, words) < 0 || fast_setattr(cx, s_mv, Py_None) < 0 ||
        fast_setattr(cx, s_ptr_type, a[4]) < 0 || fast_setattr(cx, s_mask_, a[5]) < 0)
        goto fail;
    return cx;
fail:
    Py_DECREF(cx);
    return NULL;
}

static PyObject *make_cx_py(PyObject *self, PyObject *const *argv, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "make_cx(cls, opts, inst, borrow_scope, host, ptr_type, mask)");
        return NULL;
    }
    return make_cx(argv[0], argv + 1);
}

/* init_make_cx(LiftLowerContext, abi module dict, CopyBudget) */
static PyObject *init_make_cx(PyObject *self, PyObject *a) {
    (void)self;
    PyObject *cls, *d, *cb;
    if (!PyArg_ParseTuple(a, "O!O!O", &PyType_Type, &cls, &PyDict_Type, &d, &cb)) return NULL;
    PyObject *init = _PyType_Lookup((PyTypeObject *)cls, s_init_m);
    if (init == NULL) {
        PyErr_SetString(PyExc_TypeError, "init_make_cx: no __init__");
        return NULL;
    }
    Py_XSETREF(mc_cls, Py_NewRef(cls));
    Py_XSETREF(mc_init, Py_NewRef(init));
    Py_XSETREF(mc_abi_dict, Py_NewRef(d));
    Py_XSETREF(mc_copy_budget, Py_NewRef(cb));
    mc_new = ((PyTypeObject *)cls)->tp_new;
    mc_ready = 1;
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
    {"init_callback_thread", init_callback_thread, METH_VARARGS,
     "init_callback_thread(LiftLowerContext, lower_values, call_core, WaitableSet, EventCode.NONE, "
     "EventCode.TASK_CANCELLED, Task.State.RESOLVED, _always, Trap): what CallbackThread calls"},
    {"init_resume_tick", init_resume_tick, METH_VARARGS,
     "init_resume_tick(Thread, Store, thread globals, Cancelled.FALSE, Store.tick) -> (resume, tick) descriptors"},
    {"init_table", init_table, METH_VARARGS,
     "init_table(Table, get, add, remove, Trap) -> the (get, add, remove) method descriptors"},
    {"task_return", (PyCFunction)(void (*)(void))task_return, METH_FASTCALL,
     "task_return(result_type, opts, shape, flat_args): canon.canon_task_return in C"},
    {"init_task_return", init_task_return, METH_VARARGS,
     "init_task_return(TASK_RETURN_PLANS, values_plan, MAX_FLAT_PARAMS, CoreValueIter, lift_values, "
     "LiftLowerContext, Trap, Task.State.RESOLVED, CANNOT_LEAVE)"},
    {"lower_values", (PyCFunction)(void (*)(void))lower_values_c, METH_FASTCALL,
     "lower_values(cx, plan, vs, out_param=None): abi.lower_values in C"},
    {"init_lower_values", init_lower_values, METH_VARARGS, "init_lower_values(abi.lower_values, Trap, CoreValueIter)"},
    {"canon_lower", (PyCFunction)(void (*)(void))canon_lower_c, METH_FASTCALL,
     "canon_lower(callee, ft, opts, plan, flat_args): canon.canon_lower in C (an async lower, and a sync lower of a "
     "fast host function; any other sync one in Python)"},
    {"init_host_sync", init_host_sync, METH_VARARGS,
     "init_host_sync(HostCall, Pending, _await_host): canon._call_host_sync in C (canon_lower of a sync lower)"},
    {"init_canon_lower", init_canon_lower, METH_VARARGS,
     "init_canon_lower(canon_lower, abi, Subtask, CoreValueIter, LiftLowerContext, host_failure, Trap, CANNOT_LEAVE, "
     "EventCode.SUBTASK)"},
    {"make_cx", (PyCFunction)(void (*)(void))make_cx_py, METH_FASTCALL,
     "make_cx(cls, opts, inst, borrow_scope, host, ptr_type, mask): cls(...) as the C pieces make it"},
    {"init_make_cx", init_make_cx, METH_VARARGS, "init_make_cx(LiftLowerContext, abi's globals, CopyBudget)"},
    {"init_wait_until", init_wait_until, METH_VARARGS,
     "init_wait_until(Task, _BLOCK, Cancelled.TRUE, Cancelled.FALSE, Task.State.PENDING_CANCEL, "
     "Task.State.CANCEL_DELIVERED) -> the Thread.wait_until descriptor"},
    {"init_wait_for_event", init_wait_for_event, METH_VARARGS,
     "init_wait_for_event(WaitableSet, Waitable, Subtask, EventCode.TASK_CANCELLED) -> the "
     "WaitableSet.wait_for_event_and descriptor"},
    {"waitable_join", (PyCFunction)(void (*)(void))waitable_join_c, METH_FASTCALL,
     "waitable_join(wi, si): canon.canon_waitable_join in C"},
    {"subtask_drop", (PyCFunction)(void (*)(void))subtask_drop_c, METH_FASTCALL,
     "subtask_drop(i): canon.canon_subtask_drop in C"},
    {"init_waitable_join", init_waitable_join, METH_VARARGS,
     "init_waitable_join(Waitable, WaitableSet, Subtask, SYNC_IN_SET, CANNOT_LEAVE, Trap)"},
    {"canon_lift", (PyCFunction)(void (*)(void))canon_lift_c, METH_FASTCALL,
     "canon_lift(callee, ft, opts, plan, inst, on_start, on_resolve, name=''): canon.canon_lift in C (a callback lift)"},
    {"init_canon_lift", init_canon_lift, METH_VARARGS,
     "init_canon_lift(canon globals, Task, Task.State.INITIAL, Store.new_id, CANNOT_ENTER, Trap, canon_lift, FuncInst)"},
    {"init_task_methods", init_task_methods, METH_VARARGS,
     "init_task_methods(Task, Task.State.STARTED, Task.State.RESOLVED, ASYNC_NO_RESULT, Trap)"},
    {"lift_values", (PyCFunction)(void (*)(void))lift_values_c, METH_FASTCALL,
     "lift_values(cx, plan, vi): abi.lift_values in C (a plan that does not spill)"},
    {"init_lift_values", init_lift_values, METH_VARARGS,
     "init_lift_values(abi.lift_values, the unsigned lifter's code, the u32 lowerer's code)"},
    {"init_small_steps", init_small_steps, METH_VARARGS, "init_small_steps(Subtask, LiftLowerContext)"},
    {"poll", poll, METH_O, "poll(future address) -> bool: wasmtime_call_future_poll (the GIL released if other threads exist)."},
    {NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_fiber", "fiber.py's trampoline in C", -1, methods};

PyMODINIT_FUNC PyInit__fiber(void) {
    if (PyType_Ready(&HostCallType) < 0) return NULL;
    if (PyType_Ready(&CoreCallType) < 0) return NULL;
    if (PyType_Ready(&CBThreadType) < 0) return NULL;
    if (PyType_Ready(&NotExclusiveType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (m == NULL) return NULL;
    if (init_obs_names() < 0) return NULL;
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
    s_enter_implicit_thread = PyUnicode_InternFromString("enter_implicit_thread");
    s_exit_implicit_thread = PyUnicode_InternFromString("exit_implicit_thread");
    s_start = PyUnicode_InternFromString("start");
    s_ptr_type = PyUnicode_InternFromString("ptr_type");
    s_mask = PyUnicode_InternFromString("mask");
    s_callback = PyUnicode_InternFromString("callback");
    s_exclusive_thread = PyUnicode_InternFromString("exclusive_thread");
    s_state = PyUnicode_InternFromString("state");
    s_wait_until = PyUnicode_InternFromString("wait_until");
    s_handles = PyUnicode_InternFromString("handles");
    s_get = PyUnicode_InternFromString("get");
    s_observer = PyUnicode_InternFromString("observer");
    s_waitable_set_wait = PyUnicode_InternFromString("waitable_set_wait");
    s_wait_for_event_and = PyUnicode_InternFromString("wait_for_event_and");
    s_event_delivered = PyUnicode_InternFromString("event_delivered");
    s_close = PyUnicode_InternFromString("close");
    s_params_p = PyUnicode_InternFromString("params");
    cb_zero = PyLong_FromLong(0);
    s_may_leave = PyUnicode_InternFromString("may_leave");
    s_ft = PyUnicode_InternFromString("ft");
    s_result = PyUnicode_InternFromString("result");
    s_result_type = PyUnicode_InternFromString("result_type");
    s_string_encoding = PyUnicode_InternFromString("string_encoding");
    s_memory = PyUnicode_InternFromString("memory");
    s_return_ = PyUnicode_InternFromString("return_");
    s_opts = PyUnicode_InternFromString("opts");
    s_async_ = PyUnicode_InternFromString("async_");
    s_spills = PyUnicode_InternFromString("spills");
    s_fpack = PyUnicode_InternFromString("fpack");
    s_ts = PyUnicode_InternFromString("ts");
    s_uses_memory = PyUnicode_InternFromString("uses_memory");
    s_refresh = PyUnicode_InternFromString("refresh");
    s_align = PyUnicode_InternFromString("align");
    s_size = PyUnicode_InternFromString("size");
    s_next = PyUnicode_InternFromString("next");
    s_mv = PyUnicode_InternFromString("mv");
    s_mask_ = PyUnicode_InternFromString("_mask");
    s_words = PyUnicode_InternFromString("words");
    s_ptr_align = PyUnicode_InternFromString("ptr_align");
    s_ptr_bounds = PyUnicode_InternFromString("ptr_bounds");
    s_lowerers = PyUnicode_InternFromString("lowerers");
    s_values = PyUnicode_InternFromString("values");
    s_i = PyUnicode_InternFromString("i");
    s_lift_values = PyUnicode_InternFromString("lift_values");
    s_lower_values = PyUnicode_InternFromString("lower_values");
    s_import_call = PyUnicode_InternFromString("import_call");
    s_import_return = PyUnicode_InternFromString("import_return");
    s_next_call_id = PyUnicode_InternFromString("next_call_id");
    s_resolve = PyUnicode_InternFromString("resolve");
    s_resolved = PyUnicode_InternFromString("resolved");
    s_deliver_resolve = PyUnicode_InternFromString("deliver_resolve");
    s_pending_event = PyUnicode_InternFromString("pending_event");
    s_on_cancel = PyUnicode_InternFromString("on_cancel");
    s_host = PyUnicode_InternFromString("host");
    s_fast = PyUnicode_InternFromString("fast");
    s_impl = PyUnicode_InternFromString("impl");
    s_done_hs = PyUnicode_InternFromString("done");
    s_results_p = PyUnicode_InternFromString("results");
    s_subtask_new = PyUnicode_InternFromString("subtask_new");
    s_flat_results = PyUnicode_InternFromString("flat_results");
    s_returned_words = PyUnicode_InternFromString("returned a value its result type cannot hold:");
    s_add_m = PyUnicode_InternFromString("add");
    s_name_a = PyUnicode_InternFromString("name");
    s_budget = PyUnicode_InternFromString("budget");
    s_LIMIT = PyUnicode_InternFromString("LIMIT");
    s_borrow_scope = PyUnicode_InternFromString("borrow_scope");
    s_HOST_WORDS = PyUnicode_InternFromString("HOST_WORDS");
    s_ADAPTER_WORDS = PyUnicode_InternFromString("ADAPTER_WORDS");
    s_init_m = PyUnicode_InternFromString("__init__");
    s_empty_tuple = PyTuple_New(0);
    s_DRIVE = PyUnicode_InternFromString("DRIVE");
    s_MAX_LENGTH = PyUnicode_InternFromString("MAX_LENGTH");
    s_is_running_n = PyUnicode_InternFromString("is_running");
    s_cancellable_n = PyUnicode_InternFromString("cancellable");
    s_ready_func_n = PyUnicode_InternFromString("ready_func");
    s_task_n = PyUnicode_InternFromString("task");
    one_obj = PyLong_FromLong(1);
    s_thread_switch = PyUnicode_InternFromString("thread_switch");
    s_stop_waiting_internal = PyUnicode_InternFromString("stop_waiting_internal");
    s_policy = PyUnicode_InternFromString("policy");
    s_fifo = PyUnicode_InternFromString("fifo");
    s_waiting = PyUnicode_InternFromString("waiting");
    s_nesting_depth = PyUnicode_InternFromString("nesting_depth");
    s_entering = PyUnicode_InternFromString("_entering");
    s_entering_set = PyUnicode_InternFromString("entering_set");
    s_may_enter = PyUnicode_InternFromString("may_enter");
    s_tick_outside = PyUnicode_InternFromString("_tick_outside");
    s_tid = PyUnicode_InternFromString("tid");
    s_resume_m = PyUnicode_InternFromString("resume");
    s_deliver_pending_cancel = PyUnicode_InternFromString("deliver_pending_cancel");
    s_start_waiting_internal = PyUnicode_InternFromString("start_waiting_internal");
    s_has_pending_event = PyUnicode_InternFromString("has_pending_event");
    s_get_pending_event = PyUnicode_InternFromString("get_pending_event");
    s_num_waiting = PyUnicode_InternFromString("num_waiting");
    s_elems = PyUnicode_InternFromString("elems");
    s_rng = PyUnicode_InternFromString("rng");
    s_shuffle = PyUnicode_InternFromString("shuffle");
    s_lenders = PyUnicode_InternFromString("lenders");
    s_num_lends = PyUnicode_InternFromString("num_lends");
    s_remove = PyUnicode_InternFromString("remove");
    s_ready_func_kw = PyUnicode_InternFromString("ready_func");
    s_always_block_kw = PyUnicode_InternFromString("always_block");
    s_append = PyUnicode_InternFromString("append");
    s_has_sync_waiter_s = PyUnicode_InternFromString("has_sync_waiter");
    s_cancellation_requested = PyUnicode_InternFromString("cancellation_requested");
    s_callee = PyUnicode_InternFromString("callee");
    s_view = PyUnicode_InternFromString("view");
    s_lifters = PyUnicode_InternFromString("lifters");
    s_register_thread = PyUnicode_InternFromString("register_thread");
    s_needs_exclusive = PyUnicode_InternFromString("needs_exclusive");
    s_unregister_thread = PyUnicode_InternFromString("unregister_thread");
    s_backpressure = PyUnicode_InternFromString("backpressure");
    s_num_waiting_to_enter = PyUnicode_InternFromString("num_waiting_to_enter");
    s_implicit_thread_t = PyUnicode_InternFromString("implicit_thread");
    s_threads_t = PyUnicode_InternFromString("threads");
    s_index_t = PyUnicode_InternFromString("index");
    s_num_borrows_t = PyUnicode_InternFromString("num_borrows");
    s_on_start_t = PyUnicode_InternFromString("on_start");
    s_on_resolve_t = PyUnicode_InternFromString("on_resolve");
    s_task_start = PyUnicode_InternFromString("task_start");
    s_task_exit = PyUnicode_InternFromString("task_exit");
    s_task_return = PyUnicode_InternFromString("task_return");
    s_add_t = PyUnicode_InternFromString("add");
    s_remove_t = PyUnicode_InternFromString("remove");
    s_canon_lift = PyUnicode_InternFromString("canon_lift");
    s_CALLBACK_THREAD = PyUnicode_InternFromString("CALLBACK_THREAD");
    s_Task = PyUnicode_InternFromString("Task");
    s_Thread = PyUnicode_InternFromString("Thread");
    s_poisoned = PyUnicode_InternFromString("poisoned");
    s_num_borrows = PyUnicode_InternFromString("num_borrows");
    s_implicit_thread = PyUnicode_InternFromString("implicit_thread");
    s_threads = PyUnicode_InternFromString("threads");
    s_id = PyUnicode_InternFromString("id");
    s_caller = PyUnicode_InternFromString("caller");
    s_root = PyUnicode_InternFromString("root");
    s_label = PyUnicode_InternFromString("label");
    s_tokens = PyUnicode_InternFromString("tokens");
    s_next_root = PyUnicode_InternFromString("next_root");
    s_task_new = PyUnicode_InternFromString("task_new");
    s_thread_new = PyUnicode_InternFromString("thread_new");
    s_new_id = PyUnicode_InternFromString("new_id");
    s_ids = PyUnicode_InternFromString("_ids");
    s_on_start = PyUnicode_InternFromString("on_start");
    s_on_resolve = PyUnicode_InternFromString("on_resolve");
    s_request_cancellation = PyUnicode_InternFromString("request_cancellation");
    s_self_and_ancestors = PyUnicode_InternFromString("self_and_ancestors");
    s_call_a = PyUnicode_InternFromString("call");
    s_future_n = PyUnicode_InternFromString("future");
    s_driver_n = PyUnicode_InternFromString("driver");
    s_host_call_n = PyUnicode_InternFromString("host_call");
    s_block_arg_n = PyUnicode_InternFromString("block_arg");
    s_index = PyUnicode_InternFromString("index");
    s_storage = PyUnicode_InternFromString("storage");
    s_done_n = PyUnicode_InternFromString("done");
    s_started_n = PyUnicode_InternFromString("started");
    s_gen_n = PyUnicode_InternFromString("gen");
    s_fi_name = PyUnicode_InternFromString("name");
    s_empty_str = PyUnicode_InternFromString("");
    s_call_dunder = PyUnicode_InternFromString("__call__");
    lc_s_task = PyUnicode_InternFromString("task");
    lc_s_thread = PyUnicode_InternFromString("thread");
    s_join = PyUnicode_InternFromString("join");
    s_drop = PyUnicode_InternFromString("drop");
    s_has_sync_waiter = PyUnicode_InternFromString("has_sync_waiter");
    s_wset = PyUnicode_InternFromString("wset");
    s_elems_j = PyUnicode_InternFromString("elems");
    s_remove_j = PyUnicode_InternFromString("remove");
    s_handles_j = PyUnicode_InternFromString("handles");
    if (PyType_Ready(&LiftCallType) < 0) return NULL;
    Py_INCREF(&LiftCallType);
    PyModule_AddObject(m, "LiftCall", (PyObject *)&LiftCallType);
    Py_INCREF(&CBThreadType);
    PyModule_AddObject(m, "CallbackThread", (PyObject *)&CBThreadType);
    Py_INCREF(&CoreCallType);
    PyModule_AddObject(m, "CoreCall", (PyObject *)&CoreCallType);
    Py_INCREF(&HostCallType);
    PyModule_AddObject(m, "HostCall", (PyObject *)&HostCallType);
    PyModule_AddObject(m, "TRAMPOLINE", PyLong_FromVoidPtr((void *)trampoline));
    PyModule_AddObject(m, "NO_FINALIZER", PyLong_FromVoidPtr((void *)no_finalizer));
    return m;
}
