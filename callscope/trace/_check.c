/* callscope.trace._check: the trace reader's per-event work in C
 * (callscope/trace/reader.py has the same steps in Python, and uses them
 * where this module cannot be built).
 *
 * scan(kinds, fields, start, oks, checks) -> the index of the first event
 *   at or after `start` that the reader must look at in Python, or
 *   len(kinds) when there is none. An event needs no look when its fields
 *   are a tuple whose tuple of item types is a key of oks[kind] (the shapes
 *   _KindSpec.problem found good already), and the checks that shape still
 *   needs on every event (oks[kind][shape]: (field index, check) pairs) all
 *   pass; `checks` is (_value_problem, _ints_problem, _strs_problem,
 *   _idn_problem): a check that is none of these is left to Python. The
 *   reader then gives the event to _KindSpec.problem, which either finds
 *   its problem or learns its shape, and scans on from the next event. The
 *   same events pass and fail as with the Python loop; only which of them
 *   Python sees differs.
 *
 * times(deltas) and Events(...): a chunk's times and its Event tuples,
 *   what accumulate() and the reader's map over zip() make.
 *
 * StringRefs(strings, ext_code, ext_type, bad_ext) is msgpack's ext_hook:
 *   an ext of type ext_code is a reference into the string table `strings`
 *   (a big-endian index), any other stays ext_type(code, data); an index
 *   out of range raises bad_ext with what TraceReader._ext says.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#define MAX_VALUE_DEPTH 32   /* reader.MAX_VALUE_DEPTH */
#define SHAPE_MAX 16         /* fields compared with a kind's last shape without a tuple made */

static PyObject *scalar_types[8];  /* int, float, str, bytes, bool, None, ExtType, Timestamp */
static int n_scalar;

static inline int is_scalar(PyObject *v) {
    PyObject *t = (PyObject *)Py_TYPE(v);
    for (int i = 0; i < n_scalar; i++)
        if (t == scalar_types[i]) return 1;
    return 0;
}

/* _value_problem(v) is None */
static int value_ok(PyObject *v, int depth) {
    if (is_scalar(v)) return 1;
    if (depth >= MAX_VALUE_DEPTH) return 0;
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyTuple_Type) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v); i++) {
            PyObject *x = PyTuple_GET_ITEM(v, i);
            if (!is_scalar(x) && !value_ok(x, depth + 1)) return 0;
        }
        return 1;
    }
    if (t == &PyDict_Type) {
        Py_ssize_t pos = 0;
        PyObject *k, *x;
        while (PyDict_Next(v, &pos, &k, &x)) {
            if (!is_scalar(k) && !value_ok(k, depth + 1)) return 0;
            if (!is_scalar(x) && !value_ok(x, depth + 1)) return 0;
        }
        return 1;
    }
    return 0;
}

/* the check of one field: 1 passed, 0 failed or not one this module knows */
static int check_ok(PyObject *check, PyObject *v, PyObject *const *checks) {
    if (check == checks[0]) return value_ok(v, 0);
    if (Py_TYPE(v) != &PyTuple_Type) return 0;  /* (the shape said tuple: cannot happen) */
    Py_ssize_t n = PyTuple_GET_SIZE(v);
    if (check == checks[1]) {  /* ints */
        for (Py_ssize_t i = 0; i < n; i++)
            if (Py_TYPE(PyTuple_GET_ITEM(v, i)) != &PyLong_Type) return 0;
        return 1;
    }
    if (check == checks[2]) {  /* strs */
        for (Py_ssize_t i = 0; i < n; i++)
            if (Py_TYPE(PyTuple_GET_ITEM(v, i)) != &PyUnicode_Type) return 0;
        return 1;
    }
    if (check == checks[3]) {  /* ints or nil */
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *x = PyTuple_GET_ITEM(v, i);
            if (Py_TYPE(x) != &PyLong_Type && x != Py_None) return 0;
        }
        return 1;
    }
    return 0;
}

/* a kind's last good shape: its field types and the checks it needs */
typedef struct {
    Py_ssize_t n;               /* -1: none yet */
    PyTypeObject *types[SHAPE_MAX];
    PyObject *deep;             /* borrowed from the kind's oks dict, held while scanning */
    PyObject *key;              /* the shape tuple (held) */
} Shape;

static PyObject *scan(PyObject *m, PyObject *const *a, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "scan(kinds, fields, start, oks, checks)");
        return NULL;
    }
    PyObject *kinds = a[0], *fields = a[1], *oks = a[3], *checks_t = a[4];
    if (!PyBytes_Check(kinds) || !PyTuple_Check(fields) || !PyList_Check(oks) || !PyTuple_Check(checks_t)
        || PyTuple_GET_SIZE(checks_t) != 4) {
        PyErr_SetString(PyExc_TypeError, "scan(bytes, tuple, int, list, (4 checks))");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(a[2]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyBytes_GET_SIZE(kinds);
    if (PyTuple_GET_SIZE(fields) < n) n = PyTuple_GET_SIZE(fields);
    const unsigned char *kb = (const unsigned char *)PyBytes_AS_STRING(kinds);
    Py_ssize_t nk = PyList_GET_SIZE(oks);
    PyObject *const *checks = &PyTuple_GET_ITEM(checks_t, 0);
    Shape shapes[256];
    for (int i = 0; i < 256; i++) { shapes[i].n = -1; shapes[i].key = NULL; shapes[i].deep = NULL; }
    Py_ssize_t i = start < 0 ? 0 : start;
    for (; i < n; i++) {
        int kid = kb[i];
        if (kid >= nk) break;
        PyObject *f = PyTuple_GET_ITEM(fields, i);
        if (Py_TYPE(f) != &PyTuple_Type) break;
        Py_ssize_t nf = PyTuple_GET_SIZE(f);
        Shape *sh = &shapes[kid];
        int same = sh->n == nf && nf <= SHAPE_MAX;
        for (Py_ssize_t j = 0; same && j < nf; j++)
            same = Py_TYPE(PyTuple_GET_ITEM(f, j)) == sh->types[j];
        if (!same) {
            /* the shape looked up as the reader does: oks[kid].get(tuple(map(type, f))) */
            PyObject *ok = PyList_GET_ITEM(oks, kid);
            if (!PyDict_Check(ok)) break;
            PyObject *key = PyTuple_New(nf);
            if (!key) goto fail;
            for (Py_ssize_t j = 0; j < nf; j++) {
                PyObject *t = (PyObject *)Py_TYPE(PyTuple_GET_ITEM(f, j));
                Py_INCREF(t);
                PyTuple_SET_ITEM(key, j, t);
            }
            PyObject *deep = PyDict_GetItemWithError(ok, key);
            if (!deep) {
                Py_DECREF(key);
                if (PyErr_Occurred()) goto fail;
                break;  /* a shape not seen yet: Python's */
            }
            if (!PyTuple_Check(deep)) { Py_DECREF(key); break; }
            Py_XSETREF(sh->key, key);
            sh->deep = deep;  /* (held through key's entry: the dict only grows while this runs) */
            sh->n = nf <= SHAPE_MAX ? nf : -1;
            for (Py_ssize_t j = 0; j < nf && j < SHAPE_MAX; j++) sh->types[j] = Py_TYPE(PyTuple_GET_ITEM(f, j));
        }
        PyObject *deep = sh->deep;
        int pass = 1;
        for (Py_ssize_t d = 0; pass && d < PyTuple_GET_SIZE(deep); d++) {
            PyObject *pair = PyTuple_GET_ITEM(deep, d);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) { pass = 0; break; }
            Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 0));
            if (at < 0 || at >= nf) { PyErr_Clear(); pass = 0; break; }
            pass = check_ok(PyTuple_GET_ITEM(pair, 1), PyTuple_GET_ITEM(f, at), checks);
        }
        if (!pass) break;
    }
    for (int k = 0; k < 256; k++) Py_XDECREF(shapes[k].key);
    return PyLong_FromSsize_t(i);
fail:
    for (int k = 0; k < 256; k++) Py_XDECREF(shapes[k].key);
    return NULL;
}

/* ---- StringRefs: msgpack's ext_hook */
typedef struct {
    PyObject_HEAD
    PyObject *strings, *ext_type, *bad_ext;
    long code;
    vectorcallfunc vectorcall;
} StringRefs;

static PyObject *StringRefs_vc(StringRefs *self, PyObject *const *a, size_t nargsf, PyObject *kw) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || kw) {
        PyErr_SetString(PyExc_TypeError, "StringRefs(code, data)");
        return NULL;
    }
    long code = PyLong_AsLong(a[0]);
    if (code == -1 && PyErr_Occurred()) return NULL;
    if (code != self->code) return PyObject_CallFunctionObjArgs(self->ext_type, a[0], a[1], NULL);
    char *buf;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(a[1], &buf, &len) < 0) return NULL;
    int is_list = PyList_CheckExact(self->strings);
    Py_ssize_t n = is_list ? PyList_GET_SIZE(self->strings) : PyTuple_GET_SIZE(self->strings);
    /* the big-endian index; more than 8 bytes or past the table: out of range */
    unsigned long long idx = 0;
    int big = 0;
    for (Py_ssize_t k = 0; k < len; k++) {
        if (idx >> 56) big = 1;
        idx = idx << 8 | (unsigned char)buf[k];
    }
    if (!big && idx < (unsigned long long)n) {
        PyObject *s = is_list ? PyList_GET_ITEM(self->strings, (Py_ssize_t)idx)
                              : PyTuple_GET_ITEM(self->strings, (Py_ssize_t)idx);
        Py_INCREF(s);
        return s;
    }
    PyObject *i = _PyLong_FromByteArray((const unsigned char *)buf, len, 0, 0);
    if (!i) return NULL;
    PyObject *msg = PyUnicode_FromFormat("string id %S out of range (the table has %zd)", i, n);
    Py_DECREF(i);
    if (msg) {
        PyErr_SetObject(self->bad_ext, msg);
        Py_DECREF(msg);
    }
    return NULL;
}

static int StringRefs_traverse(StringRefs *self, visitproc visit, void *arg) {
    Py_VISIT(self->strings); Py_VISIT(self->ext_type); Py_VISIT(self->bad_ext);
    return 0;
}

static int StringRefs_clear(StringRefs *self) {
    Py_CLEAR(self->strings); Py_CLEAR(self->ext_type); Py_CLEAR(self->bad_ext);
    return 0;
}

static void StringRefs_dealloc(StringRefs *self) {
    PyObject_GC_UnTrack(self);
    StringRefs_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *StringRefs_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *strings, *ext_type, *bad_ext;
    long code;
    if (!PyArg_ParseTuple(args, "OlOO", &strings, &code, &ext_type, &bad_ext)) return NULL;
    if (!PyList_CheckExact(strings) && !PyTuple_CheckExact(strings)) {
        PyErr_SetString(PyExc_TypeError, "StringRefs: strings is a list or a tuple");
        return NULL;
    }
    StringRefs *self = PyObject_GC_New(StringRefs, type);
    if (!self) return NULL;
    Py_INCREF(strings); self->strings = strings;
    Py_INCREF(ext_type); self->ext_type = ext_type;
    Py_INCREF(bad_ext); self->bad_ext = bad_ext;
    self->code = code;
    self->vectorcall = (vectorcallfunc)StringRefs_vc;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyTypeObject StringRefsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.trace._check.StringRefs",
    .tp_basicsize = sizeof(StringRefs),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "StringRefs(strings, ext_code, ext_type, bad_ext): msgpack's ext_hook for a trace's string references.",
    .tp_dealloc = (destructor)StringRefs_dealloc,
    .tp_traverse = (traverseproc)StringRefs_traverse,
    .tp_clear = (inquiry)StringRefs_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(StringRefs, vectorcall),
    .tp_new = StringRefs_new,
};


/* times(deltas) -> each event's absolute time (the deltas accumulated), or
   None when a delta is not an int or a sum leaves int64 (the reader's
   Python steps then say which, or make the big ints) */
static PyObject *times(PyObject *m, PyObject *deltas) {
    if (!PyTuple_CheckExact(deltas)) Py_RETURN_NONE;
    Py_ssize_t n = PyTuple_GET_SIZE(deltas);
    PyObject *out = PyTuple_New(n);
    if (!out) return NULL;
    long long t = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyTuple_GET_ITEM(deltas, i);
        if (Py_TYPE(d) != &PyLong_Type) goto python;
        int over = 0;
        long long v = PyLong_AsLongLongAndOverflow(d, &over);
        if (over || (v == -1 && PyErr_Occurred())) { PyErr_Clear(); goto python; }
        if (i == 0) t = v;
        else if (__builtin_add_overflow(t, v, &t)) goto python;
        PyObject *x = PyLong_FromLongLong(t);
        if (!x) { Py_DECREF(out); return NULL; }
        PyTuple_SET_ITEM(out, i, x);
    }
    return out;
python:
    Py_DECREF(out);
    Py_RETURN_NONE;
}

/* Events(cls, first_n, names, kinds, times, fields): an iterator over a
   chunk's events, cls((first_n + i, names[kinds[i]], times[i], fields[i]))
   made as each is asked for (cls a subclass of tuple; none held here once
   given: a chunk's events made at once are garbage the collector walks
   over and over while they live) */
typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    PyObject *names, *kinds, *times, *fields;
    Py_ssize_t first, i, n;
} Events;

static PyObject *Events_next(Events *it) {
    if (it->i >= it->n) return NULL;
    Py_ssize_t i = it->i;
    unsigned char kid = (unsigned char)PyBytes_AS_STRING(it->kinds)[i];
    if (kid >= PyTuple_GET_SIZE(it->names)) {
        PyErr_SetString(PyExc_ValueError, "Events: a kind id past the names");
        return NULL;
    }
    PyObject *e = it->cls->tp_alloc(it->cls, 4);
    PyObject *num = e ? PyLong_FromSsize_t(it->first + i) : NULL;
    if (!num) { Py_XDECREF(e); return NULL; }
    PyObject *name = PyTuple_GET_ITEM(it->names, kid), *t = PyTuple_GET_ITEM(it->times, i),
             *f = PyTuple_GET_ITEM(it->fields, i);
    Py_INCREF(name); Py_INCREF(t); Py_INCREF(f);
    PyTuple_SET_ITEM(e, 0, num);
    PyTuple_SET_ITEM(e, 1, name);
    PyTuple_SET_ITEM(e, 2, t);
    PyTuple_SET_ITEM(e, 3, f);
    it->i = i + 1;
    return e;
}

static int Events_traverse(Events *it, visitproc visit, void *arg) {
    Py_VISIT(it->cls); Py_VISIT(it->names); Py_VISIT(it->kinds); Py_VISIT(it->times); Py_VISIT(it->fields);
    return 0;
}

static int Events_clear(Events *it) {
    Py_CLEAR(it->cls); Py_CLEAR(it->names); Py_CLEAR(it->kinds); Py_CLEAR(it->times); Py_CLEAR(it->fields);
    return 0;
}

static void Events_dealloc(Events *it) {
    PyObject_GC_UnTrack(it);
    Events_clear(it);
    Py_TYPE(it)->tp_free((PyObject *)it);
}

static PyObject *Events_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *cls, *names, *kinds, *tms, *fields;
    Py_ssize_t first;
    if (!PyArg_ParseTuple(args, "O!nO!O!O!O!", &PyType_Type, &cls, &first, &PyTuple_Type, &names, &PyBytes_Type,
                          &kinds, &PyTuple_Type, &tms, &PyTuple_Type, &fields))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "Events: cls is a subclass of tuple");
        return NULL;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(kinds);
    if (PyTuple_GET_SIZE(tms) != n || PyTuple_GET_SIZE(fields) != n) {
        PyErr_SetString(PyExc_ValueError, "Events: columns of different lengths");
        return NULL;
    }
    Events *it = PyObject_GC_New(Events, type);
    if (!it) return NULL;
    Py_INCREF(cls); it->cls = (PyTypeObject *)cls;
    Py_INCREF(names); it->names = names;
    Py_INCREF(kinds); it->kinds = kinds;
    Py_INCREF(tms); it->times = tms;
    Py_INCREF(fields); it->fields = fields;
    it->first = first;
    it->i = 0;
    it->n = n;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyTypeObject EventsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.trace._check.Events",
    .tp_basicsize = sizeof(Events),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Events(cls, first_n, names, kinds, times, fields): a chunk's events, made one at a time.",
    .tp_dealloc = (destructor)Events_dealloc,
    .tp_traverse = (traverseproc)Events_traverse,
    .tp_clear = (inquiry)Events_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Events_next,
    .tp_new = Events_new,
};

/* max_byte(b) -> the largest byte of b (0 when empty): max(b), with no int per byte */
static PyObject *max_byte(PyObject *m, PyObject *b) {
    if (!PyBytes_Check(b)) {
        PyErr_SetString(PyExc_TypeError, "max_byte(bytes)");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(b);
    unsigned char mx = 0;
    for (Py_ssize_t i = 0, n = PyBytes_GET_SIZE(b); i < n; i++)
        if (p[i] > mx) mx = p[i];
    return PyLong_FromLong(mx);
}

/* set_scalars(types): the exact types a value summary's leaves may have */
static PyObject *set_scalars(PyObject *m, PyObject *types) {
    if (!PyTuple_Check(types) || PyTuple_GET_SIZE(types) > 8) {
        PyErr_SetString(PyExc_TypeError, "set_scalars(a tuple of at most 8 types)");
        return NULL;
    }
    for (int i = 0; i < n_scalar; i++) Py_CLEAR(scalar_types[i]);
    n_scalar = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(types); i++) {
        PyObject *t = PyTuple_GET_ITEM(types, i);
        Py_INCREF(t);
        scalar_types[n_scalar++] = t;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(kinds, fields, start, oks, checks) -> the first event from start that Python must check"},
    {"max_byte", max_byte, METH_O, "max_byte(b) -> max(b), 0 for empty"},
    {"times", times, METH_O, "times(deltas) -> the accumulated times, or None (see the source)"},
    {"set_scalars", set_scalars, METH_O, "set_scalars(types): the leaf types of a value summary"},
    {NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "callscope.trace._check",
                                    "The trace reader's per-event checks in C (see trace/reader.py).", -1, methods};

PyMODINIT_FUNC PyInit__check(void) {
    if (PyType_Ready(&StringRefsType) < 0 || PyType_Ready(&EventsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&StringRefsType);
    if (PyModule_AddObject(m, "StringRefs", (PyObject *)&StringRefsType) < 0) {
        Py_DECREF(&StringRefsType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&EventsType);
    if (PyModule_AddObject(m, "Events", (PyObject *)&EventsType) < 0) {
        Py_DECREF(&EventsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
