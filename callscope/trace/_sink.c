/* callscope.trace._sink: the trace writer's event buffer, in C.
 *
 * A Sink packs each event as it arrives into three msgpack byte buffers, the
 * three columns of a chunk body (docs/trace-format.md): kind ids (one byte
 * each), time deltas (the chunk's first time absolute), and field arrays.
 * `take()` returns the body, ready to frame. Nothing is kept per event but
 * bytes: no tuple outlives its call, so recording adds no work for the
 * garbage collector, and a flush does no packing.
 *
 * callscope/trace/sink.py is the same thing in Python (used when this module
 * was not built); tests/test_sink.py checks that both write the same bytes.
 *
 * Values are packed as msgpack-python's Packer(use_bin_type=True) packs them
 * (same choice of formats), the trace's string references (msgpack ExtType)
 * included. A value msgpack cannot hold (an int beyond 64 bits, an object of
 * another class) is given to `fallback` (the recorder's summarizer) and its
 * result packed instead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#define MAX_DEPTH 511
#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* a slow path, out of the hot code's lines: gcc moves the blocks that lead
   to its calls out of line too (each event's fast path is then a few
   contiguous cache lines, not spread among its slow paths) */
#define COLD static __attribute__((noinline, cold))

/* ------------------------------------------------------------------ bytes */

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

COLD int buf_grow(Buf *b, Py_ssize_t need) {
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + need) cap *= 2;
    char *p = PyMem_Realloc(b->data, cap);
    if (!p) { PyErr_NoMemory(); return -1; }
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, Py_ssize_t n) {
    if (b->len + n > b->cap && buf_grow(b, n) < 0) return -1;
    char *d = b->data + b->len;
    const char *p = src;
    /* (the few bytes of a packed field copied in place: a memcpy call costs
       more than they do) */
    switch (n) {
    case 4: d[3] = p[3]; /* fall through */
    case 3: d[2] = p[2]; /* fall through */
    case 2: d[1] = p[1]; /* fall through */
    case 1: d[0] = p[0]; /* fall through */
    case 0: break;
    default: memcpy(d, p, n);
    }
    b->len += n;
    return 0;
}

ALWAYS_INLINE int buf_byte(Buf *b, unsigned char c) {
    if (b->len + 1 > b->cap && buf_grow(b, 1) < 0) return -1;
    b->data[b->len++] = (char)c;
    return 0;
}

static inline int put_be(Buf *b, unsigned char tag, uint64_t v, int n) {
    /* (written in place: a memcpy call of 2-9 bytes costs more than this) */
    if (b->len + 1 + n > b->cap && buf_grow(b, 1 + n) < 0) return -1;
    unsigned char *p = (unsigned char *)b->data + b->len;
    p[0] = tag;
    for (int i = 0; i < n; i++) p[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    b->len += 1 + n;
    return 0;
}

/* ---------------------------------------------------------------- packing */

/* room for n more bytes at b->data + b->len: 0, or -1 with an error */
ALWAYS_INLINE int buf_reserve(Buf *b, Py_ssize_t n) {
    return b->len + n > b->cap ? buf_grow(b, n) : 0;
}

/* tag and the n low bytes of v, big-endian, at p (room for 1 + n): past them */
static inline unsigned char *put_be_at(unsigned char *p, unsigned char tag, uint64_t v, int n) {
    p[0] = tag;
    for (int i = 0; i < n; i++) p[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    return p + 1 + n;
}

/* x packed at p (room for 9 bytes): past it */
static unsigned char *put_int_slow(unsigned char *p, long long x) {
    if (x >= 0) {
        if (x < 0x100) return put_be_at(p, 0xcc, (uint64_t)x, 1);
        if (x < 0x10000) return put_be_at(p, 0xcd, (uint64_t)x, 2);
        if (x < 0x100000000LL) return put_be_at(p, 0xce, (uint64_t)x, 4);
        return put_be_at(p, 0xcf, (uint64_t)x, 8);
    }
    if (x >= -128) return put_be_at(p, 0xd0, (uint64_t)(uint8_t)(int8_t)x, 1);
    if (x >= -32768) return put_be_at(p, 0xd1, (uint64_t)(uint16_t)(int16_t)x, 2);
    if (x >= -2147483648LL) return put_be_at(p, 0xd2, (uint64_t)(uint32_t)(int32_t)x, 4);
    return put_be_at(p, 0xd3, (uint64_t)x, 8);
}

/* (the fixints in line: most ids and time deltas) */
ALWAYS_INLINE unsigned char *put_int(unsigned char *p, long long x) {
    if (x >= -32 && x < 128) {
        *p = (unsigned char)(x >= 0 ? x : (0xe0 | (x + 32)));
        return p + 1;
    }
    if (x >= 0 && x < 0x10000) {  /* (ids and time deltas past the fixints) */
        if (x < 0x100) {
            p[0] = 0xcc;
            p[1] = (unsigned char)x;
            return p + 2;
        }
        p[0] = 0xcd;
        p[1] = (unsigned char)(x >> 8);
        p[2] = (unsigned char)x;
        return p + 3;
    }
    return put_int_slow(p, x);
}

ALWAYS_INLINE int pack_int64(Buf *b, long long x) {
    if (buf_reserve(b, 9) < 0) return -1;
    unsigned char *p = (unsigned char *)b->data + b->len;
    b->len = (char *)put_int(p, x) - b->data;
    return 0;
}

/* o (an int) as a long long when it is small (one digit: |o| < 2**30; on
   CPython < 3.12 two: |o| < 2**60, such as a u32 or a time in ns), read off
   its digits without a call: 1, else 0 */
ALWAYS_INLINE int long_compact(PyObject *o, long long *x) {
    if (!PyLong_CheckExact(o)) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyUnstable_Long_IsCompact((PyLongObject *)o)) return 0;
    *x = (long long)PyUnstable_Long_CompactValue((PyLongObject *)o);
    return 1;
#else
    Py_ssize_t size = Py_SIZE(o);
    const digit *d = ((PyLongObject *)o)->ob_digit;
    if (size >= -1 && size <= 1) {
        *x = size * (long long)d[0];
        return 1;
    }
    if (size != 2 && size != -2) return 0;
    long long v = (long long)d[0] | ((long long)d[1] << PyLong_SHIFT);
    *x = size < 0 ? -v : v;
    return 1;
#endif
}

static int pack_len(Buf *b, Py_ssize_t n, unsigned char fix, Py_ssize_t fixmax,
                    unsigned char t8, unsigned char t16, unsigned char t32) {
    if (n < fixmax) return buf_byte(b, (unsigned char)(fix | n));
    if (t8 && n < 0x100) return put_be(b, t8, (uint64_t)n, 1);
    if (n < 0x10000) return put_be(b, t16, (uint64_t)n, 2);
    if ((uint64_t)n <= 0xffffffffULL) return put_be(b, t32, (uint64_t)n, 4);
    PyErr_SetString(PyExc_ValueError, "value too large for the trace");
    return -1;
}

static int pack_bin(Buf *b, const char *p, Py_ssize_t n) {
    int r;
    if (n < 0x100) r = put_be(b, 0xc4, (uint64_t)n, 1);
    else if (n < 0x10000) r = put_be(b, 0xc5, (uint64_t)n, 2);
    else if ((uint64_t)n <= 0xffffffffULL) r = put_be(b, 0xc6, (uint64_t)n, 4);
    else { PyErr_SetString(PyExc_ValueError, "bytes too large for the trace"); return -1; }
    if (r < 0) return -1;
    return buf_put(b, p, n);
}

static int pack_str_utf8(Buf *b, const char *p, Py_ssize_t n) {
    if (pack_len(b, n, 0xa0, 32, 0xd9, 0xda, 0xdb) < 0) return -1;
    return buf_put(b, p, n);
}

typedef struct {
    PyObject_HEAD
    /* (what every event reads and writes first, one after another: a few
       cache lines, not spread over the object; perf: an event's cost is
       more the lines it touches than its instructions) */
    Buf kinds, deltas, fields;
    Py_ssize_t count;
    long long t_prev;      /* time of the last event (the first one's is in the deltas) */
    long long check_at;    /* Python: sink.check_at */
    long long flush_at;    /* Python: sink.flush_at, on the real clock */
    Py_ssize_t chunk_events;
    PyObject *flush_clock; /* the real clock (a callable), or NULL: CLOCK_MONOTONIC read here */
    PyObject *clock_obj;   /* else: the time is clock_obj.<clock_attr> */
    /* when the attribute is a slot of clock_obj's class (a member
       descriptor: the runtime's Store): the class, its version tag then and
       the slot's offset, read there while the class is unchanged. (Not the
       __dict__ for such an object: in CPython 3.11 an instance whose
       __dict__ was asked for has every later attribute load of Python code
       take the generic path, ~150 instructions each) */
    PyTypeObject *clock_type;
    Py_ssize_t clock_offset;
    unsigned int clock_type_version;
    int switch_kind;       /* kind id of thread.switch (-1: switch() unavailable) */
    /* the last "X -> loop" thread switch, while it is the last event */
    Py_ssize_t to_loop_count;  /* count right after it was added (-1: none) */
    Py_ssize_t to_loop_pos;    /* where its last field (the loop: None) is in `fields` */
    long long t_first;
    PyObject *clock;       /* callable returning int ns, or NULL when clock_obj is set */
    PyObject *clock_attr;
    PyObject *clock_dict;  /* clock_obj's __dict__ when the attribute is a plain
                              instance attribute (read there: no getattr) */
    uint64_t clock_version; /* clock_dict's version tag when clock_value was read
                               there (0: not read) */
    long long clock_value;
    PyObject *on_tick;     /* called after an event when t >= check_at or the chunk is full */
    PyObject *fallback;    /* value -> something packable */
    PyTypeObject *ext_type; /* msgpack.ExtType */
    /* the string table: str -> its reference (an ExtType), the strings in id
       order, the ones added since the last chunk */
    PyObject *strings, *string_list, *pending;
    Py_ssize_t string_base;  /* the id of string_list[0]: drop_strings() let go of the ones before */
    long ext_code;
#if PY_VERSION_HEX < 0x030C0000
    /* intern()'s packed references of the last strings asked for (pk_intern),
       each valid while the string table's dict has had no change but new
       strings added by intern itself, so the same bytes as a lookup would
       give: str_known is the dict's version tag (PEP 509: a new one, unique
       in the process, at every change) as intern last left it; any other
       version means another change (the recorder's _forget_strings, the
       dict replaced), which starts a new str_epoch, and an entry is valid
       in the epoch it was made in. (Before, an entry was valid for one
       version: every new string, a request's label or token, invalidated
       them all) */
#define ICACHE 8
    struct { PyObject *key; uint64_t epoch; int len; char data[8]; } icache[ICACHE];
    uint64_t str_known, str_epoch;
#endif
} Sink;

static int pack_obj(Sink *s, Buf *b, PyObject *o, int depth, int may_fallback);

static int pack_fallback(Sink *s, Buf *b, PyObject *o, int depth, int may_fallback) {
    if (!may_fallback || s->fallback == NULL || s->fallback == Py_None) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "cannot record a value of type %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    PyErr_Clear();
    PyObject *r = PyObject_CallOneArg(s->fallback, o);
    if (!r) return -1;
    int rc = pack_obj(s, b, r, depth, 0);
    Py_DECREF(r);
    return rc;
}

static int pack_ext(Buf *b, PyObject *o) {
    PyObject *code = PyTuple_GET_ITEM(o, 0), *data = PyTuple_GET_ITEM(o, 1);
    if (!PyLong_Check(code) || !PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "ExtType needs an int code and bytes data");
        return -1;
    }
    long c = PyLong_AsLong(code);
    if (c == -1 && PyErr_Occurred()) return -1;
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    int r;
    switch (n) {
    case 1: r = buf_byte(b, 0xd4); break;
    case 2: r = buf_byte(b, 0xd5); break;
    case 4: r = buf_byte(b, 0xd6); break;
    case 8: r = buf_byte(b, 0xd7); break;
    case 16: r = buf_byte(b, 0xd8); break;
    default:
        if (n < 0x100) r = put_be(b, 0xc7, (uint64_t)n, 1);
        else if (n < 0x10000) r = put_be(b, 0xc8, (uint64_t)n, 2);
        else r = put_be(b, 0xc9, (uint64_t)n, 4);
    }
    if (r < 0 || buf_byte(b, (unsigned char)(signed char)c) < 0) return -1;
    return buf_put(b, PyBytes_AS_STRING(data), n);
}

/* The order of the tests is msgpack-python's (non-strict types). */
static int pack_obj(Sink *s, Buf *b, PyObject *o, int depth, int may_fallback) {
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "value nested too deeply for the trace");
        return -1;
    }
    if (o == Py_None) return buf_byte(b, 0xc0);
    if (o == Py_True) return buf_byte(b, 0xc3);
    if (o == Py_False) return buf_byte(b, 0xc2);
    /* the exact types first: the common case, and the generic tests below
       (PyFloat_Check, PyObject_TypeCheck) ask about subtypes, which costs a
       walk of the type's bases for every value that is not one */
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == &PyTuple_Type || tp == &PyList_Type) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        if (pack_len(b, n, 0x90, 16, 0, 0xdc, 0xdd) < 0) return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(o); i++)
            if (pack_obj(s, b, PySequence_Fast_GET_ITEM(o, i), depth + 1, may_fallback) < 0) return -1;
        return 0;
    }
    if (tp == s->ext_type) return pack_ext(b, o);
    long long small;
    if (long_compact(o, &small)) return pack_int64(b, small);
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow == 0) {
            if (x == -1 && PyErr_Occurred()) return -1;
            return pack_int64(b, x);
        }
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(o);
            if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
                return put_be(b, 0xcf, (uint64_t)u, 8);
            PyErr_Clear();
        }
        return pack_fallback(s, b, o, depth, may_fallback);
    }
    if (PyFloat_Check(o)) {
        double d = PyFloat_AS_DOUBLE(o);
        uint64_t u;
        memcpy(&u, &d, 8);
        return put_be(b, 0xcb, u, 8);
    }
    if (PyBytes_Check(o)) return pack_bin(b, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
    if (PyByteArray_Check(o)) return pack_bin(b, PyByteArray_AS_STRING(o), PyByteArray_GET_SIZE(o));
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(o, &n);
        if (p) return pack_str_utf8(b, p, n);
        /* lone surrogates: each becomes "?" (not lost, not an error) */
        PyErr_Clear();
        PyObject *enc = PyUnicode_AsEncodedString(o, "utf-8", "replace");
        if (!enc) return -1;
        int rc = pack_str_utf8(b, PyBytes_AS_STRING(enc), PyBytes_GET_SIZE(enc));
        Py_DECREF(enc);
        return rc;
    }
    if (PyDict_Check(o)) {
        if (pack_len(b, PyDict_GET_SIZE(o), 0x80, 16, 0, 0xde, 0xdf) < 0) return -1;
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v)) {
            if (pack_obj(s, b, k, depth + 1, may_fallback) < 0) return -1;
            if (pack_obj(s, b, v, depth + 1, may_fallback) < 0) return -1;
        }
        return 0;
    }
    if (Py_TYPE(o) == s->ext_type || (s->ext_type && PyObject_TypeCheck(o, s->ext_type)))
        return pack_ext(b, o);
    if (PyTuple_Check(o) || PyList_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        if (pack_len(b, n, 0x90, 16, 0, 0xdc, 0xdd) < 0) return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(o); i++)
            if (pack_obj(s, b, PySequence_Fast_GET_ITEM(o, i), depth + 1, may_fallback) < 0) return -1;
        return 0;
    }
    if (PyMemoryView_Check(o)) {
        Py_buffer *view = PyMemoryView_GET_BUFFER(o);
        if (PyBuffer_IsContiguous(view, 'C'))
            return pack_bin(b, view->buf, view->len);
    }
    return pack_fallback(s, b, o, depth, may_fallback);
}

/* ------------------------------------------------------------------ sink */

#ifdef CLOCK_MONOTONIC_COARSE
#define FLUSH_CLOCK CLOCK_MONOTONIC_COARSE
#else
#define FLUSH_CLOCK CLOCK_MONOTONIC
#endif
static long long coarse_res_ns;  /* FLUSH_CLOCK's resolution (read at import) */

/* The real clock of the 100 ms rule, as a variable: a thread of ours (no
 * Python in it, no GIL) writes FLUSH_CLOCK's time to ticker_ns every
 * TICK_NS. An event reads the variable instead of the clock (perf: ~20 ns a
 * crossing of the import loop went to the two clock_gettime calls of its
 * two events: the vDSO page is a cache and TLB miss among the loop's
 * work). ticker_state: 0 not started (or forked: the thread is the
 * parent's), 1 running, 2 could not be started; the clock itself is read
 * unless 1. */
#define TICK_NS 5000000LL
static long long ticker_ns;
static int ticker_state;

static long long coarse_now(void) {
    struct timespec ts;
    clock_gettime(FLUSH_CLOCK, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *ticker_run(void *unused) {
    (void)unused;
    struct timespec d = {0, (long)TICK_NS};
    for (;;) {
        nanosleep(&d, NULL);
        __atomic_store_n(&ticker_ns, coarse_now(), __ATOMIC_RELAXED);
    }
    return NULL;
}

static void ticker_forked(void) { __atomic_store_n(&ticker_state, 0, __ATOMIC_RELAXED); }

static void ticker_start(void) {
    static int atfork;
    if (!atfork) {
        atfork = 1;
        if (pthread_atfork(NULL, NULL, ticker_forked) != 0) { ticker_state = 2; return; }
    }
    __atomic_store_n(&ticker_ns, coarse_now(), __ATOMIC_RELAXED);
    pthread_attr_t attr;
    pthread_t th;
    int ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        ok = pthread_create(&th, &attr, ticker_run, NULL) == 0;
        pthread_attr_destroy(&attr);
    }
    __atomic_store_n(&ticker_state, ok ? 1 : 2, __ATOMIC_RELEASE);
}

/* FLUSH_CLOCK's time, never behind it: the ticker's when it runs (which
   lags by less than a tick and the clock's resolution: both added), else
   the clock's (plus its resolution), the ticker started the first time */
static long long flush_now_slow(int st) {
    if (st == 0) ticker_start();
    return coarse_now() + coarse_res_ns;
}

/* (in line where called: its common case is two loads) */
ALWAYS_INLINE long long flush_now(void) {
    int st = __atomic_load_n(&ticker_state, __ATOMIC_ACQUIRE);
    if (__builtin_expect(st == 1, 1)) return __atomic_load_n(&ticker_ns, __ATOMIC_RELAXED) + TICK_NS + coarse_res_ns;
    return flush_now_slow(st);
}


COLD long long sink_now_slow(Sink *s, int *err);

ALWAYS_INLINE long long sink_now(Sink *s, int *err) {
    long long v;
    if (s->clock_offset) {
        PyTypeObject *tp = Py_TYPE(s->clock_obj);
        if (tp == s->clock_type && tp->tp_version_tag == s->clock_type_version
            && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
            PyObject *t = *(PyObject **)((char *)s->clock_obj + s->clock_offset);  /* (borrowed, read at once) */
            if (t && long_compact(t, &v)) return v;
        }
    }
    return sink_now_slow(s, err);
}

COLD long long sink_now_slow(Sink *s, int *err) {
    long long v;
    if (s->clock_dict) {
#if PY_VERSION_HEX < 0x030C0000
        /* the dict unchanged since the time was last read there (its
           version tag, PEP 509: a new one, unique in the process, at every
           change of the dict): the same time, with no lookup (~100
           instructions an event) */
        uint64_t version = ((PyDictObject *)s->clock_dict)->ma_version_tag;
        if (version == s->clock_version && version) return s->clock_value;
#endif
        /* (a borrowed reference, read at once) */
        PyObject *t = PyDict_GetItemWithError(s->clock_dict, s->clock_attr);
        if (t && long_compact(t, &v)) {
#if PY_VERSION_HEX < 0x030C0000
            s->clock_version = version;
            s->clock_value = v;
#endif
            return v;
        }
        if (t && PyLong_CheckExact(t)) {  /* (beyond two digits, or one: ~1 s of simulated time on 3.12) */
            v = PyLong_AsLongLong(t);
            if (!(v == -1 && PyErr_Occurred())) return v;
            *err = 1;
            return 0;
        }
    }
    PyObject *t = s->clock_obj ? PyObject_GetAttr(s->clock_obj, s->clock_attr) : PyObject_CallNoArgs(s->clock);
    if (!t) { *err = 1; return 0; }
    v = PyLong_AsLongLong(t);
    Py_DECREF(t);
    if (v == -1 && PyErr_Occurred()) { *err = 1; return 0; }
    return v;
}

/* Start an event: its kind and time delta. Returns 0, or -1 with an error. */
ALWAYS_INLINE int sink_begin(Sink *s, int kind, long long *t_out) {
    int err = 0;
    long long t = sink_now(s, &err);
    if (err) return -1;
    if (buf_reserve(&s->kinds, 1) < 0 || buf_reserve(&s->deltas, 9) < 0) return -1;
    s->kinds.data[s->kinds.len++] = (char)(unsigned char)kind;
    long long d = s->count ? t - s->t_prev : t;  /* a chunk's first delta is absolute */
    s->deltas.len = (char *)put_int((unsigned char *)s->deltas.data + s->deltas.len, d) - s->deltas.data;
    if (!s->count) s->t_first = t;
    *t_out = t;
    return 0;
}

/* Finish an event whose fields were packed (ok) or failed (undo it all). */
COLD int sink_end_due(Sink *s, long long t);

/* (sink_end, 0 or -1 with an error) */
ALWAYS_INLINE int sink_finish(Sink *s, int ok, long long t, Py_ssize_t kinds_len, Py_ssize_t deltas_len,
                              Py_ssize_t fields_len) {
    if (!ok) {
        s->kinds.len = kinds_len;
        s->deltas.len = deltas_len;
        s->fields.len = fields_len;
        return -1;
    }
    s->t_prev = t;
    s->count++;
    if (t < s->check_at && s->count < s->chunk_events && s->flush_at != LLONG_MAX && !s->flush_clock) {
        /* (sink_end_due's common case in line: the ticker's clock, flush_now) */
        if (flush_now() < s->flush_at) return 0;
    }
    return sink_end_due(s, t);
}

static PyObject *sink_end(Sink *s, int ok, long long t, Py_ssize_t kinds_len, Py_ssize_t deltas_len,
                          Py_ssize_t fields_len) {
    if (sink_finish(s, ok, t, kinds_len, deltas_len, fields_len) < 0) return NULL;
    Py_RETURN_NONE;
}

/* after an event at t: on_tick() when due (0, or -1 with an error) */
COLD int sink_end_due(Sink *s, long long t) {
    int due = t >= s->check_at || s->count >= s->chunk_events;
    if (!due && s->flush_at != LLONG_MAX) {
        long long now;
        if (s->flush_clock) {
            PyObject *r = PyObject_CallNoArgs(s->flush_clock);
            if (!r) return -1;
            now = PyLong_AsLongLong(r);
            Py_DECREF(r);
            if (now == -1 && PyErr_Occurred()) return -1;
        } else {
            /* the coarse clock, through the ticker (flush_now: never late,
               but up to a tick and the coarse clock's resolution early,
               ~5-9 ms); when it says due, CLOCK_MONOTONIC itself (what
               flush_at was set from: the recorder's time.monotonic_ns)
               decides. Before, on_tick was called at every event of those
               early milliseconds and found nothing due (a Python call, ~1
               us, at each of ~800 events of a demo run crossing it) */
            now = flush_now();
            if (now >= s->flush_at) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
            }
        }
        due = now >= s->flush_at;
    }
    if (due && s->on_tick && s->on_tick != Py_None) {
        PyObject *r = PyObject_CallNoArgs(s->on_tick);
        if (!r) return -1;
        Py_DECREF(r);
    }
    return 0;
}

static PyObject *sink_emit_summarized(Sink *s, int kind, PyObject *const *fields, Py_ssize_t n, Py_ssize_t si,
                                      PyObject *summ, PyObject *vs, unsigned packed);

/* an event of fields[0..n), each packed as it is */
static PyObject *sink_emit_fields(Sink *s, int kind, PyObject *const *fields, Py_ssize_t n) {
    return sink_emit_summarized(s, kind, fields, n, -1, NULL, NULL, 0);
}

static int parse_kind(PyObject *o) {
    long k = PyLong_AsLong(o);
    if (k == -1 && PyErr_Occurred()) return -1;
    if (k < 0 || k > 255) {
        PyErr_SetString(PyExc_ValueError, "event kind out of range");
        return -1;
    }
    return (int)k;
}

/* emit(kind, *fields) */
static PyObject *Sink_emit(Sink *s, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "emit(kind, *fields)");
        return NULL;
    }
    int kind = parse_kind(args[0]);
    if (kind < 0) return NULL;
    return sink_emit_fields(s, kind, args + 1, nargs - 1);
}

/* v (a thread id: None or an int) packed as pack_obj packs it */
ALWAYS_INLINE int pack_id(Sink *s, Buf *b, PyObject *v) {
    long long x;
    if (v == Py_None) return buf_byte(b, 0xc0);
    if (long_compact(v, &x)) return pack_int64(b, x);
    return pack_obj(s, b, v, 1, 1);
}

/* v (None or a small int) packed in room reserved before (9 bytes): 1, or 0
   (another value: nothing written) */
ALWAYS_INLINE int put_id(Buf *b, PyObject *v) {
    long long x;
    if (v == Py_None) {
        b->data[b->len++] = (char)0xc0;
        return 1;
    }
    if (!long_compact(v, &x)) return 0;
    b->len = (char *)put_int((unsigned char *)b->data + b->len, x) - b->data;
    return 1;
}

/* ... into the field buffer, room made first: 0, or -1 with an error */
ALWAYS_INLINE int pack_tid(Sink *s, PyObject *v) {
    if (buf_reserve(&s->fields, 9) < 0) return -1;
    return put_id(&s->fields, v) ? 0 : pack_id(s, &s->fields, v);
}

static int sink_switch_event(Sink *s, PyObject *from, PyObject *to);

/* a thread.switch event (from_thread, to_thread): 0, or -1 with an error */
ALWAYS_INLINE int sink_switch(Sink *s, PyObject *from, PyObject *to) {
    if (from == Py_None && s->to_loop_count == s->count && s->count > 0 && s->fields.len == s->to_loop_pos + 1) {
        /* X -> loop, then loop -> Y with nothing in between: one X -> Y,
           at X's time (docs/trace-format.md, thread.switch). The X -> loop
           event's fields end with its loop (None, one byte, at to_loop_pos):
           Y is packed over it (on a failure the X -> loop event stays as it
           was) */
        s->fields.len = s->to_loop_pos;
        if (pack_tid(s, to) < 0) {
            s->fields.len = s->to_loop_pos;
            s->fields.data[s->fields.len++] = (char)0xc0;
            return -1;
        }
        s->to_loop_count = -1;
        return 0;
    }
    return sink_switch_event(s, from, to);
}

/* switch(from_thread, to_thread): its kind is Sink(switch_kind=...) */
static PyObject *Sink_switch(Sink *s, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || s->switch_kind < 0) {
        PyErr_SetString(PyExc_TypeError, "switch(from_thread, to_thread), on a Sink made with switch_kind");
        return NULL;
    }
    if (sink_switch(s, args[0], args[1]) < 0) return NULL;
    Py_RETURN_NONE;
}

/* intern(s) -> the string table's reference to s (None stays None) */
static PyObject *Sink_intern(Sink *s, PyObject *o) {
    if (o == Py_None) Py_RETURN_NONE;
    PyObject *r = PyDict_GetItemWithError(s->strings, o);
    if (r) { Py_INCREF(r); return r; }
    if (PyErr_Occurred()) return NULL;
    PyObject *key = PyUnicode_CheckExact(o) ? (Py_INCREF(o), o) : PyObject_Str(o);
    if (!key) return NULL;
    if (key != o) {  /* (5 and "5" are one string) */
        r = PyDict_GetItemWithError(s->strings, key);
        if (r || PyErr_Occurred()) { Py_DECREF(key); Py_XINCREF(r); return r; }
    }
    Py_ssize_t sid = s->string_base + PyList_GET_SIZE(s->string_list);
    unsigned char data[4];
    int n = sid < 0x100 ? 1 : sid < 0x10000 ? 2 : 4;
    for (int i = 0; i < n; i++) data[i] = (unsigned char)(sid >> (8 * (n - 1 - i)));
    /* ExtType(code, data) made as tuple.__new__(ExtType, (code, data))
       makes it (the class's alloc, the two items), with no argument tuples
       built and parsed (~1.5k instructions a new string) */
    PyObject *code = PyLong_FromLong(s->ext_code);
    PyObject *bytes = code ? PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)n) : NULL;
    PyObject *ext = bytes ? s->ext_type->tp_alloc(s->ext_type, 2) : NULL;
    if (ext) {
        PyTuple_SET_ITEM(ext, 0, code);
        PyTuple_SET_ITEM(ext, 1, bytes);
    } else {
        Py_XDECREF(code);
        Py_XDECREF(bytes);
    }
    /* a reference holds an int and a bytes object only, and lives as long
       as the string table: not tracked by the GC, which would otherwise
       walk every one of them at each collection of its generation (an
       attribute set on one later could make it part of a cycle, leaked,
       never freed twice: none is set) */
    if (ext && PyObject_GC_IsTracked(ext)) PyObject_GC_UnTrack(ext);
#if PY_VERSION_HEX < 0x030C0000
    /* (the dict as intern left it: still so after this new string's entry) */
    int ours = PyDict_CheckExact(s->strings) && ((PyDictObject *)s->strings)->ma_version_tag == s->str_known;
#endif
    if (!ext || PyDict_SetItem(s->strings, key, ext) < 0 || PyList_Append(s->string_list, key) < 0
        || PyList_Append(s->pending, key) < 0) {
        Py_XDECREF(ext);
        Py_DECREF(key);
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (ours) s->str_known = ((PyDictObject *)s->strings)->ma_version_tag;
#endif
    Py_DECREF(key);
    return ext;
}

/* take() -> None, or (count, first time, last time, chunk body bytes); empties the sink */
/* drop_strings(k): string_list's first k strings let go of, string_base
   moved past them, in one step (another thread may intern meanwhile) */
static PyObject *Sink_drop_strings(Sink *s, PyObject *arg) {
    Py_ssize_t k = PyLong_AsSsize_t(arg);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (k < 0 || k > PyList_GET_SIZE(s->string_list)) {
        PyErr_SetString(PyExc_ValueError, "drop_strings: k out of range");
        return NULL;
    }
    if (PyList_SetSlice(s->string_list, 0, k, NULL) < 0) return NULL;
    s->string_base += k;
    Py_RETURN_NONE;
}

static PyObject *Sink_take(Sink *s, PyObject *unused) {
    if (!s->count) Py_RETURN_NONE;
    Buf body = {0};
    int ok = buf_byte(&body, 0x93) == 0 && pack_bin(&body, s->kinds.data, s->kinds.len) == 0
             && pack_len(&body, s->count, 0x90, 16, 0, 0xdc, 0xdd) == 0
             && buf_put(&body, s->deltas.data, s->deltas.len) == 0
             && pack_len(&body, s->count, 0x90, 16, 0, 0xdc, 0xdd) == 0
             && buf_put(&body, s->fields.data, s->fields.len) == 0;
    PyObject *bytes = ok ? PyBytes_FromStringAndSize(body.data, body.len) : NULL;
    PyMem_Free(body.data);
    if (!bytes) return NULL;
    PyObject *r = Py_BuildValue("(nLLN)", s->count, s->t_first, s->t_prev, bytes);
    if (!r) return NULL;
    s->count = 0;
    s->kinds.len = s->deltas.len = s->fields.len = 0;
    s->to_loop_count = -1;
    /* give back memory a burst of events took */
    if (s->fields.cap > (1 << 22)) {
        PyMem_Free(s->kinds.data); PyMem_Free(s->deltas.data); PyMem_Free(s->fields.data);
        memset(&s->kinds, 0, sizeof(Buf)); memset(&s->deltas, 0, sizeof(Buf)); memset(&s->fields, 0, sizeof(Buf));
    }
    return r;
}

/* ------------------------------------------------------------------ crc32 */

/* zlib.crc32 (CRC-32/ISO-HDLC: reflected, polynomial 0xedb88320) of a chunk
 * frame's payload, computed here where the CPU has PCLMULQDQ and SSE4.1: 64
 * bytes folded a step by carry-less multiplication (the method of Intel's
 * "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ", with its
 * constants for this polynomial), the last bytes by a table. zlib's own
 * (1.2.13, the braided one) took ~0.28 ns a byte here: ~10 ns a crossing of
 * the import loop (34 bytes of events). Elsewhere, and for a crc32 that is
 * not zlib's, the function given is called. tests/test_sink.py compares the
 * values with zlib.crc32's on buffers of every length up to a few hundred
 * bytes and on chunk frames. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CRC_SIMD 1
#endif

static uint32_t crc_table[256];
static int crc_simd;          /* 1: crc32_fast may be used */
static PyObject *zlib_crc32;  /* zlib.crc32, to know it when given */

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
#ifdef CRC_SIMD
    __builtin_cpu_init();
    crc_simd = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
}

/* (c: the register, inverted as zlib keeps it in its loop) */
static uint32_t crc_tail(uint32_t c, const unsigned char *p, size_t n) {
    while (n--) c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#ifdef CRC_SIMD
/* the register c after the n bytes at p (n >= 64, a multiple of 16) */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc_fold(uint32_t c, const unsigned char *p, size_t n) {
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124LL);
    const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
    const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 0x00));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 0x10));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 0x20));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)c));
    p += 64;
    n -= 64;
    while (n >= 64) {
        __m128i x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00), x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        __m128i x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00), x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
        x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), _mm_loadu_si128((const __m128i *)(p + 0x00)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), _mm_loadu_si128((const __m128i *)(p + 0x10)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), _mm_loadu_si128((const __m128i *)(p + 0x20)));
        x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), _mm_loadu_si128((const __m128i *)(p + 0x30)));
        p += 64;
        n -= 64;
    }
    /* the four folded into one */
    __m128i x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x2), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x3), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x4), x5);
    while (n >= 16) {
        x2 = _mm_loadu_si128((const __m128i *)p);
        x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x2), x5);
        p += 16;
        n -= 16;
    }
    /* 128 bits to 64, then Barrett's reduction to 32 */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_and_si128(x1, mask32);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, k5k0, 0x00), x2);
    x2 = _mm_and_si128(x1, mask32);
    x2 = _mm_clmulepi64_si128(x2, poly, 0x10);
    x2 = _mm_and_si128(x2, mask32);
    x2 = _mm_clmulepi64_si128(x2, poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

/* zlib.crc32(p[0..n)) (crc_simd only) */
static uint32_t crc32_fast(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
#ifdef CRC_SIMD
    if (n >= 64) {
        size_t m = n & ~(size_t)15;
        c = crc_fold(c, p, m);
        p += m;
        n -= m;
    }
#endif
    return ~crc_tail(c, p, n);
}

/* _crc32(data): crc32_fast's value of a bytes-like (None: not available here) */
static PyObject *sink_crc32(PyObject *self, PyObject *arg) {
    (void)self;
    if (!crc_simd) Py_RETURN_NONE;
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    uint32_t c = crc32_fast(b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLong(c);
}

/* take_frame(tag, n, sid0, crc32) -> None, or (count, first time, last
   time, k, frame): the buffered events as one chunk frame, made in one
   buffer (what the recorder made of take()'s body: F.FRAME_HEADER's tag,
   payload length and crc32(payload), then the payload: its meta's length
   (u32), the meta [n, count, first time, last time, sid0, the first k
   strings of `pending`, all there are now], the body); empties the sink.
   crc32 is zlib.crc32. The caller removes pending's first k. */
static PyObject *Sink_take_frame(Sink *s, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0]) || PyBytes_GET_SIZE(args[0]) != 1) {
        PyErr_SetString(PyExc_TypeError, "take_frame(tag, n, sid0, crc32)");
        return NULL;
    }
    if (!s->count) Py_RETURN_NONE;
    Py_ssize_t k = PyList_GET_SIZE(s->pending);
    Buf meta = {0}, heads = {0};
    /* the meta, then the body's headers: 0x93 and the kinds' bin header
       (heads[0..h1)), the deltas' array header (h1..h2), the fields' (h2..) */
    int ok = buf_byte(&meta, 0x96) == 0 && pack_obj(s, &meta, args[1], 1, 0) == 0
             && pack_int64(&meta, (long long)s->count) == 0 && pack_int64(&meta, s->t_first) == 0
             && pack_int64(&meta, s->t_prev) == 0 && pack_obj(s, &meta, args[2], 1, 0) == 0
             && pack_len(&meta, k, 0x90, 16, 0, 0xdc, 0xdd) == 0;
    for (Py_ssize_t i = 0; ok && i < k; i++) {
        PyObject *str = PyList_GET_ITEM(s->pending, i);
        Py_ssize_t n;
        const char *p = PyUnicode_Check(str) ? PyUnicode_AsUTF8AndSize(str, &n) : NULL;
        if (!p) {  /* (a string msgpack cannot pack either: raised, nothing taken) */
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a pending string that is not a str");
            ok = 0;
        } else {
            ok = pack_str_utf8(&meta, p, n) == 0;
        }
    }
    Py_ssize_t h1 = 0, h2 = 0;
    if (ok) {
        ok = buf_byte(&heads, 0x93) == 0;
        if (ok) {  /* (pack_bin's header of the kinds) */
            Py_ssize_t n = s->kinds.len;
            ok = (n < 0x100 ? put_be(&heads, 0xc4, (uint64_t)n, 1)
                  : n < 0x10000 ? put_be(&heads, 0xc5, (uint64_t)n, 2)
                  : (uint64_t)n <= 0xffffffffULL ? put_be(&heads, 0xc6, (uint64_t)n, 4) : -1) == 0;
            if (!ok && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bytes too large for the trace");
        }
        h1 = heads.len;
        ok = ok && pack_len(&heads, s->count, 0x90, 16, 0, 0xdc, 0xdd) == 0;
        h2 = heads.len;
        ok = ok && pack_len(&heads, s->count, 0x90, 16, 0, 0xdc, 0xdd) == 0;
    }
    PyObject *frame = NULL, *r = NULL;
    Py_ssize_t payload = 4 + meta.len + heads.len + s->kinds.len + s->deltas.len + s->fields.len;
    if (ok && (uint64_t)payload > 0xffffffffULL) {
        PyErr_SetString(PyExc_ValueError, "chunk too large for the trace");
        ok = 0;
    }
    if (ok) frame = PyBytes_FromStringAndSize(NULL, 9 + payload);
    if (frame) {
        unsigned char *d = (unsigned char *)PyBytes_AS_STRING(frame);
        d[0] = (unsigned char)PyBytes_AS_STRING(args[0])[0];
        for (int i = 0; i < 4; i++) d[1 + i] = (unsigned char)((uint64_t)payload >> (8 * i));
        unsigned char *p = d + 9;
        for (int i = 0; i < 4; i++) p[i] = (unsigned char)((uint64_t)meta.len >> (8 * i));
        p += 4;
        memcpy(p, meta.data, meta.len); p += meta.len;
        memcpy(p, heads.data, h1); p += h1;
        memcpy(p, s->kinds.data, s->kinds.len); p += s->kinds.len;
        memcpy(p, heads.data + h1, h2 - h1); p += h2 - h1;
        memcpy(p, s->deltas.data, s->deltas.len); p += s->deltas.len;
        memcpy(p, heads.data + h2, heads.len - h2); p += heads.len - h2;
        memcpy(p, s->fields.data, s->fields.len);
        PyObject *crc;
        if (crc_simd && args[3] == zlib_crc32) {  /* (zlib's value, computed here) */
            crc = PyLong_FromUnsignedLong(crc32_fast(d + 9, (size_t)payload));
        } else {
            PyObject *view = PyMemoryView_FromMemory((char *)d + 9, payload, PyBUF_READ);
            crc = view ? PyObject_CallOneArg(args[3], view) : NULL;
            Py_XDECREF(view);
        }
        unsigned long c = crc ? PyLong_AsUnsignedLongMask(crc) : 0;
        Py_XDECREF(crc);
        if (!crc || (c == (unsigned long)-1 && PyErr_Occurred())) {
            Py_CLEAR(frame);
        } else {
            for (int i = 0; i < 4; i++) d[5 + i] = (unsigned char)((uint64_t)c >> (8 * i));
        }
    }
    PyMem_Free(meta.data);
    PyMem_Free(heads.data);
    if (!frame) return NULL;
    r = Py_BuildValue("(nLLnN)", s->count, s->t_first, s->t_prev, k, frame);
    if (!r) return NULL;
    s->count = 0;
    s->kinds.len = s->deltas.len = s->fields.len = 0;
    s->to_loop_count = -1;
    if (s->fields.cap > (1 << 22)) {  /* (as take) */
        PyMem_Free(s->kinds.data); PyMem_Free(s->deltas.data); PyMem_Free(s->fields.data);
        memset(&s->kinds, 0, sizeof(Buf)); memset(&s->deltas, 0, sizeof(Buf)); memset(&s->fields, 0, sizeof(Buf));
    }
    return r;
}

static PyObject *Sink_emitter(Sink *s, PyObject *args, PyObject *kw);

static void sink_icache_clear(Sink *s) {
#if PY_VERSION_HEX < 0x030C0000
    for (int i = 0; i < ICACHE; i++) Py_CLEAR(s->icache[i].key);
    s->str_known = 0;
    s->str_epoch++;
#endif
}

static int Sink_init(Sink *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"clock", "on_tick", "fallback", "ext_type", "chunk_events", "clock_attr", "switch_kind",
                             "ext_code", "flush_clock", NULL};
    PyObject *clock, *on_tick, *fallback, *ext_type, *clock_attr = Py_None;
    Py_ssize_t chunk_events = 16384;
    int switch_kind = -1;
    long ext_code = 1;
    PyObject *flush_clock = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|nOilO", names, &clock, &on_tick, &fallback, &ext_type,
                                     &chunk_events, &clock_attr, &switch_kind, &ext_code, &flush_clock))
        return -1;
    if (!PyType_Check(ext_type) || !PyType_IsSubtype((PyTypeObject *)ext_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "ext_type must be a tuple class (msgpack.ExtType)");
        return -1;
    }
    s->ext_code = ext_code;
    Py_CLEAR(s->strings); Py_CLEAR(s->string_list); Py_CLEAR(s->pending);
    sink_icache_clear(s);
    s->strings = PyDict_New();
    s->string_list = PyList_New(0);
    s->string_base = 0;
    s->pending = PyList_New(0);
    if (!s->strings || !s->string_list || !s->pending) return -1;
    Py_CLEAR(s->clock); Py_CLEAR(s->clock_obj); Py_CLEAR(s->clock_attr); Py_CLEAR(s->clock_dict);
    Py_CLEAR(s->clock_type);
    s->clock_offset = 0;
    if (clock_attr != Py_None) {
        if (!PyUnicode_Check(clock_attr)) {
            PyErr_SetString(PyExc_TypeError, "clock_attr must be a str");
            return -1;
        }
        Py_INCREF(clock); s->clock_obj = clock;
        Py_INCREF(clock_attr); s->clock_attr = clock_attr;
        /* an attribute its class does not define (no property, no slot)
           lives in the instance's __dict__, which stays that object's */
        PyObject *cls_attr = PyObject_GetAttr((PyObject *)Py_TYPE(clock), clock_attr);
        s->clock_offset = 0;
        if (cls_attr) {
            PyTypeObject *tp = Py_TYPE(clock);
            if (Py_IS_TYPE(cls_attr, &PyMemberDescr_Type) && tp->tp_getattro == PyObject_GenericGetAttr
                && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) && _PyType_Lookup(tp, clock_attr) == cls_attr) {
                PyMemberDef *m = ((PyMemberDescrObject *)cls_attr)->d_member;
                if (m->type == T_OBJECT_EX && !(m->flags & READ_RESTRICTED) && m->offset > 0) {
                    Py_INCREF(tp);
                    Py_XSETREF(s->clock_type, tp);
                    s->clock_type_version = tp->tp_version_tag;
                    s->clock_offset = m->offset;
                }
            }
            Py_DECREF(cls_attr);
        } else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            PyObject *d = PyObject_GenericGetDict(clock, NULL);
            if (d && PyDict_CheckExact(d)) s->clock_dict = d;
            else Py_XDECREF(d);
            PyErr_Clear();
        } else {
            return -1;
        }
    } else {
        if (!PyCallable_Check(clock)) {
            PyErr_SetString(PyExc_TypeError, "clock must be callable");
            return -1;
        }
        Py_INCREF(clock); s->clock = clock;
    }
    Py_INCREF(on_tick); Py_XSETREF(s->on_tick, on_tick);
    Py_INCREF(fallback); Py_XSETREF(s->fallback, fallback);
    Py_INCREF(ext_type); Py_XSETREF(s->ext_type, (PyTypeObject *)ext_type);
    s->chunk_events = chunk_events > 0 ? chunk_events : 1;
    s->switch_kind = switch_kind;
    s->check_at = LLONG_MAX;
    s->flush_at = LLONG_MAX;
    Py_CLEAR(s->flush_clock);
    if (flush_clock != Py_None) {
        if (!PyCallable_Check(flush_clock)) {
            PyErr_SetString(PyExc_TypeError, "flush_clock must be callable");
            return -1;
        }
        Py_INCREF(flush_clock);
        s->flush_clock = flush_clock;
    }
    s->to_loop_count = -1;
    return 0;
}

static int Sink_traverse(Sink *s, visitproc visit, void *arg) {
    Py_VISIT(s->clock_attr);
    Py_VISIT(s->clock); Py_VISIT(s->clock_obj); Py_VISIT(s->clock_dict); Py_VISIT(s->clock_type); Py_VISIT(s->on_tick); Py_VISIT(s->fallback);
    Py_VISIT(s->ext_type);
    Py_VISIT(s->strings); Py_VISIT(s->string_list); Py_VISIT(s->pending); Py_VISIT(s->flush_clock);
    return 0;
}

static int Sink_clear(Sink *s) {
    sink_icache_clear(s);
    Py_CLEAR(s->clock); Py_CLEAR(s->clock_obj); Py_CLEAR(s->clock_attr); Py_CLEAR(s->clock_dict); Py_CLEAR(s->on_tick);
    Py_CLEAR(s->clock_type); s->clock_offset = 0;
    Py_CLEAR(s->fallback); Py_CLEAR(s->ext_type);
    Py_CLEAR(s->strings); Py_CLEAR(s->string_list); Py_CLEAR(s->pending); Py_CLEAR(s->flush_clock);
    return 0;
}

static void Sink_dealloc(Sink *s) {
    PyObject_GC_UnTrack(s);
    Sink_clear(s);
    PyMem_Free(s->kinds.data); PyMem_Free(s->deltas.data); PyMem_Free(s->fields.data);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static Py_ssize_t Sink_len(Sink *s) { return s->count; }

static PyMethodDef Sink_methods[] = {
    {"emit", (PyCFunction)(void (*)(void))Sink_emit, METH_FASTCALL,
     "emit(kind, *fields): record one event now"},
    {"switch", (PyCFunction)(void (*)(void))Sink_switch, METH_FASTCALL,
     "switch(from_thread, to_thread): a thread.switch event (X -> loop, loop -> Y merged)"},
    {"emitter", (PyCFunction)(void (*)(void))Sink_emitter, METH_VARARGS | METH_KEYWORDS,
     "emitter(kind, nargs, fields, then=None): a callable recording one event of `kind` from its arguments"},
    {"intern", (PyCFunction)Sink_intern, METH_O,
     "intern(s): the string table's reference to s (None stays None)"},
    {"drop_strings", (PyCFunction)Sink_drop_strings, METH_O,
     "drop_strings(k): string_list's first k strings dropped, string_base moved past them"},
    {"take", (PyCFunction)Sink_take, METH_NOARGS,
     "take() -> None or (count, first time, last time, body): the buffered chunk, emptied"},
    {"take_frame", (PyCFunction)(void (*)(void))Sink_take_frame, METH_FASTCALL,
     "take_frame(tag, n, sid0, crc32) -> None or (count, first time, last time, k, frame): the buffered chunk "
     "as a frame (its meta naming the first k pending strings), emptied"},
    {NULL}
};

static PyMemberDef Sink_members[] = {
    {"check_at", T_LONGLONG, offsetof(Sink, check_at), 0,
     "on_tick() is called after an event whose time is at least this"},
    {"strings", T_OBJECT, offsetof(Sink, strings), READONLY, "the string table: str -> reference"},
    {"string_list", T_OBJECT, offsetof(Sink, string_list), READONLY,
     "the string table's strings, in id order, from id string_base on"},
    {"string_base", T_PYSSIZET, offsetof(Sink, string_base), READONLY, "the id of string_list[0]"},
    {"pending", T_OBJECT, offsetof(Sink, pending), READONLY, "strings added since the last chunk (the recorder clears it)"},
    {"flush_at", T_LONGLONG, offsetof(Sink, flush_at), 0,
     "on_tick() is called after an event when the real clock (flush_clock) is at least this"},
    {"chunk_events", T_PYSSIZET, offsetof(Sink, chunk_events), 0, "on_tick() is called when this many are buffered"},
    {NULL}
};

static PySequenceMethods Sink_as_sequence = {.sq_length = (lenfunc)Sink_len};

static PyTypeObject SinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.trace._sink.Sink",
    .tp_basicsize = sizeof(Sink),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Sink(clock, on_tick, fallback, ext_type, chunk_events=16384, clock_attr=None, switch_kind=-1, ext_code=1, "
              "flush_clock=None): "
              "a chunk's events, packed as they arrive",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sink_init,
    .tp_dealloc = (destructor)Sink_dealloc,
    .tp_traverse = (traverseproc)Sink_traverse,
    .tp_clear = (inquiry)Sink_clear,
    .tp_methods = Sink_methods,
    .tp_members = Sink_members,
    .tp_as_sequence = &Sink_as_sequence,
};

/* --------------------------------------------------------------- emitter
 * sink.emitter(kind, nargs, fields, then=None) is a callable taking `nargs`
 * positional arguments that records one event of `kind`. Each item of
 * `fields` says where a field comes from:
 *   i                       argument i as it is
 *   (i, "a.b")              its attribute path (None when a step is None)
 *   (i, "a.b", "scalar")    as it is when None, a bool or an int, else fallback(value)
 *   (i, "a.b", "intern")    its string-table reference (None and "" give None)
 *   (i, "a.b", "not")       `not value`
 * (the path may be "" for the argument itself). `then` is (f, i, "path"):
 * after the event, f(argument i) is called when that path's value is true.
 * The runtime's calls of the observer go straight here: no Python frame.
 */

#define MAX_FIELDS 16
#define MAX_PATH 4
enum { F_RAW, F_SCALAR, F_INTERN, F_NOT };

/* a __slots__ attribute read at its offset (fast_attr_c, AttrCache: one
   definition with _fiber.c) */
#include "../_slots.h"
#include "../_sinkapi.h"

typedef struct {
    int arg, mode, npath;
    PyObject *path[MAX_PATH];
    AttrCache cache[MAX_PATH];
} FieldSpec;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Sink *sink;
    int kind;
    Py_ssize_t nargs, nfields;
    FieldSpec fields[MAX_FIELDS];
    PyObject *then;      /* callable or NULL */
    FieldSpec then_spec; /* which argument, and the path tested */
} Emitter;

/* the value of spec's path on args: a new reference */
static PyObject *field_value(FieldSpec *f, PyObject *const *args) {
    PyObject *v = args[f->arg];
    Py_INCREF(v);
    for (int k = 0; k < f->npath && v != Py_None; k++) {
        PyObject *w = fast_attr_c(v, f->path[k], &f->cache[k]);
        Py_DECREF(v);
        if (!w) return NULL;
        v = w;
    }
    return v;
}

static int pack_field(Sink *s, FieldSpec *f, PyObject *const *args) {
    PyObject *v = field_value(f, args);
    if (!v) return -1;
    int rc;
    switch (f->mode) {
    case F_SCALAR:
        if (v == Py_None || PyBool_Check(v) || PyLong_Check(v)) rc = pack_obj(s, &s->fields, v, 1, 1);
        else rc = pack_fallback(s, &s->fields, v, 1, 1);
        break;
    case F_INTERN:
        if (v == Py_None || (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0)) {
            rc = buf_byte(&s->fields, 0xc0);
        } else {
            PyObject *r = Sink_intern(s, v);
            rc = r ? pack_obj(s, &s->fields, r, 1, 1) : -1;
            Py_XDECREF(r);
        }
        break;
    case F_NOT: {
        int t = PyObject_IsTrue(v);
        rc = t < 0 ? -1 : buf_byte(&s->fields, t ? 0xc2 : 0xc3);
        break;
    }
    default:
        rc = pack_obj(s, &s->fields, v, 1, 1);
    }
    Py_DECREF(v);
    return rc;
}

static PyObject *Emitter_vectorcall(Emitter *e, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != e->nargs || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_Format(PyExc_TypeError, "this event takes %zd positional arguments", e->nargs);
        return NULL;
    }
    Sink *s = e->sink;
    Py_ssize_t kl = s->kinds.len, dl = s->deltas.len, fl = s->fields.len;
    long long t;
    if (sink_begin(s, e->kind, &t) < 0) return NULL;
    int ok = pack_len(&s->fields, e->nfields, 0x90, 16, 0, 0xdc, 0xdd) == 0;
    for (Py_ssize_t i = 0; ok && i < e->nfields; i++)
        ok = pack_field(s, &e->fields[i], args) == 0;
    PyObject *r = sink_end(s, ok, t, kl, dl, fl);
    if (!r || !e->then) return r;
    Py_DECREF(r);
    PyObject *v = field_value(&e->then_spec, args);
    if (!v) return NULL;
    int truth = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (truth < 0) return NULL;
    if (!truth) Py_RETURN_NONE;
    r = PyObject_CallOneArg(e->then, args[e->then_spec.arg]);
    if (!r) return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static void spec_clear(FieldSpec *f) {
    for (int k = 0; k < MAX_PATH; k++) Py_CLEAR(f->path[k]);
    f->npath = 0;
}

/* (i, "path"[, mode]) or i -> spec; 0 or -1 with an error */
static int spec_parse(FieldSpec *f, PyObject *item, Py_ssize_t nargs, int allow_mode) {
    PyObject *idx = item, *path = NULL, *mode = NULL;
    memset(f, 0, sizeof(*f));
    if (PyTuple_Check(item)) {
        Py_ssize_t n = PyTuple_GET_SIZE(item);
        if (n < 2 || n > 3 || (n == 3 && !allow_mode)) goto bad;
        idx = PyTuple_GET_ITEM(item, 0);
        path = PyTuple_GET_ITEM(item, 1);
        if (n == 3) mode = PyTuple_GET_ITEM(item, 2);
    }
    if (!PyLong_Check(idx) || PyBool_Check(idx)) goto bad;
    long i = PyLong_AsLong(idx);
    if (i < 0 || i >= nargs) goto bad;
    f->arg = (int)i;
    f->mode = F_RAW;
    if (mode) {
        if (!PyUnicode_Check(mode)) goto bad;
        if (PyUnicode_CompareWithASCIIString(mode, "scalar") == 0) f->mode = F_SCALAR;
        else if (PyUnicode_CompareWithASCIIString(mode, "intern") == 0) f->mode = F_INTERN;
        else if (PyUnicode_CompareWithASCIIString(mode, "not") == 0) f->mode = F_NOT;
        else goto bad;
    }
    if (path && path != Py_None) {
        if (!PyUnicode_Check(path)) goto bad;
        if (PyUnicode_GET_LENGTH(path) == 0) return 0;
        PyObject *dot = PyUnicode_FromString(".");
        PyObject *parts = dot ? PyUnicode_Split(path, dot, -1) : NULL;
        Py_XDECREF(dot);
        if (!parts) return -1;
        Py_ssize_t n = PyList_GET_SIZE(parts);
        if (n > MAX_PATH) { Py_DECREF(parts); goto bad; }
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *name = PyList_GET_ITEM(parts, k);
            if (PyUnicode_GET_LENGTH(name) == 0) { Py_DECREF(parts); spec_clear(f); goto bad; }
            Py_INCREF(name);
            PyUnicode_InternInPlace(&name);
            f->path[k] = name;
            f->npath = (int)k + 1;
        }
        Py_DECREF(parts);
    }
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError,
                    "a field is i, (i, \"attr.path\") or (i, \"attr.path\", \"scalar\"|\"intern\"|\"not\"), "
                    "with 0 <= i < nargs and at most 4 steps");
    return -1;
}

static int Emitter_traverse(Emitter *e, visitproc visit, void *arg) {
    Py_VISIT(e->sink);
    Py_VISIT(e->then);
    return 0;
}

static int Emitter_clear(Emitter *e) {
    Py_CLEAR(e->sink);
    Py_CLEAR(e->then);
    for (int i = 0; i < MAX_FIELDS; i++) spec_clear(&e->fields[i]);
    spec_clear(&e->then_spec);
    return 0;
}

static void Emitter_dealloc(Emitter *e) {
    PyObject_GC_UnTrack(e);
    Emitter_clear(e);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyTypeObject EmitterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.trace._sink.Emitter",
    .tp_basicsize = sizeof(Emitter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "made by Sink.emitter(kind, nargs, fields, then=None)",
    .tp_vectorcall_offset = offsetof(Emitter, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dealloc = (destructor)Emitter_dealloc,
    .tp_traverse = (traverseproc)Emitter_traverse,
    .tp_clear = (inquiry)Emitter_clear,
};

static PyObject *Sink_emitter(Sink *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"kind", "nargs", "fields", "then", NULL};
    PyObject *kindobj, *fields, *then = Py_None;
    Py_ssize_t nargs;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OnO!|O", names, &kindobj, &nargs, &PyTuple_Type, &fields, &then))
        return NULL;
    int kind = parse_kind(kindobj);
    if (kind < 0) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    if (n > MAX_FIELDS || nargs < 0 || nargs > 64) {
        PyErr_SetString(PyExc_ValueError, "at most 16 fields and 64 arguments");
        return NULL;
    }
    Emitter *e = PyObject_GC_New(Emitter, &EmitterType);
    if (!e) return NULL;
    e->vectorcall = (vectorcallfunc)Emitter_vectorcall;
    Py_INCREF(s);
    e->sink = s;
    e->kind = kind;
    e->nargs = nargs;
    e->nfields = 0;
    e->then = NULL;
    memset(e->fields, 0, sizeof(e->fields));
    memset(&e->then_spec, 0, sizeof(e->then_spec));
    PyObject_GC_Track(e);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (spec_parse(&e->fields[i], PyTuple_GET_ITEM(fields, i), nargs, 1) < 0) { Py_DECREF(e); return NULL; }
        e->nfields = i + 1;
    }
    if (then != Py_None) {
        if (!PyTuple_Check(then) || PyTuple_GET_SIZE(then) != 3 || !PyCallable_Check(PyTuple_GET_ITEM(then, 0))) {
            PyErr_SetString(PyExc_ValueError, "then is (callable, i, \"attr.path\")");
            Py_DECREF(e);
            return NULL;
        }
        PyObject *rest = PyTuple_GetSlice(then, 1, 3);
        int rc = rest ? spec_parse(&e->then_spec, rest, nargs, 0) : -1;
        Py_XDECREF(rest);
        if (rc < 0) { Py_DECREF(e); return NULL; }
        e->then = PyTuple_GET_ITEM(then, 0);
        Py_INCREF(e->then);
    }
    return (PyObject *)e;
}

/* ------------------------------------------------------------ summarizer
 * Summarizer(specs, max_str, ellipsis, fallback, text_classes, async_classes)
 * called with a list of values: their summaries (runtime/valueplan.py's
 * bounded summarizers, in C), or fallback(values) when a value is not of
 * its type's shape (or the list is not of len(specs)). A spec, per type:
 *   (0,) int (an int within 64 bits)   (1,) bool   (2,) float
 *   (3,) text: a str of text_classes, cut at max_str characters + ellipsis
 *   (4,) stream/future (async_classes): "<stream #id>" / "<future #id>", cut
 *   (5, n, spec) a list of n values
 *   (6, labels, specs) a tuple: a list/tuple of len(specs), or a dict by label
 *   (7, labels, specs) a record (flags: of bools): a dict by label
 *   (8, labels, specs) a variant/option/result/enum: a dict of one case
 *       (a case's spec None: its value must be None)
 * With max_bytes >= 0 the summaries are valueplan's budgeted ones: each
 * value spends the budget as summarize does, and where it would run out
 * (a "…" in the summary) the whole list goes to fallback, which gives it;
 * tuples are then dicts only, as there. Budgeted only:
 *   (9,) a list below the depth limit: "[…N]"   (10,) a dict there: "{…N}"
 *   (11, spec) a list of any length: its first max_items values, then "…+N"
 */

static PyObject *s_id;  /* "id" (interned at import) */
static PyTypeObject SummarizerType;

enum { N_INT, N_BOOL, N_FLOAT, N_TEXT, N_ASYNC, N_LIST, N_TUPLE, N_RECORD, N_VARIANT, N_LIST_AT_DEPTH,
       N_DICT_AT_DEPTH, N_VARLIST };

typedef struct Node {
    int kind;
    Py_ssize_t n;          /* list: its length; tuple/record/variant: how many labels */
    struct Node **kids;    /* (variant: NULL for a case with no value) */
    PyObject *labels;      /* dict: label -> index */
} Node;

static void node_free(Node *node) {
    if (!node) return;
    if (node->kids) {
        Py_ssize_t k = (node->kind == N_LIST || node->kind == N_VARLIST) ? 1 : node->n;
        for (Py_ssize_t i = 0; i < k; i++) node_free(node->kids[i]);
        PyMem_Free(node->kids);
    }
    Py_XDECREF(node->labels);
    PyMem_Free(node);
}

static Node *node_parse(PyObject *spec, int depth) {
    if (depth > 32 || !PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1) goto bad;
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    if (kind < N_INT || kind > N_VARLIST) goto bad;
    Node *node = PyMem_Calloc(1, sizeof(Node));
    if (!node) { PyErr_NoMemory(); return NULL; }
    node->kind = (int)kind;
    if (kind <= N_ASYNC || kind == N_LIST_AT_DEPTH || kind == N_DICT_AT_DEPTH) {
        if (PyTuple_GET_SIZE(spec) != 1) { node_free(node); goto bad; }
        return node;
    }
    if (kind == N_VARLIST) {
        if (PyTuple_GET_SIZE(spec) != 2) { node_free(node); goto bad; }
        node->kids = PyMem_Calloc(1, sizeof(Node *));
        if (!node->kids) { node_free(node); PyErr_NoMemory(); return NULL; }
        if (!(node->kids[0] = node_parse(PyTuple_GET_ITEM(spec, 1), depth + 1))) { node_free(node); return NULL; }
        return node;
    }
    if (PyTuple_GET_SIZE(spec) != 3) { node_free(node); goto bad; }
    if (kind == N_LIST) {
        node->n = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 1));
        if (node->n < 0) { node_free(node); goto bad; }
        node->kids = PyMem_Calloc(1, sizeof(Node *));
        if (!node->kids) { node_free(node); PyErr_NoMemory(); return NULL; }
        if (!(node->kids[0] = node_parse(PyTuple_GET_ITEM(spec, 2), depth + 1))) { node_free(node); return NULL; }
        return node;
    }
    PyObject *labels = PyTuple_GET_ITEM(spec, 1), *kids = PyTuple_GET_ITEM(spec, 2);
    if (!PyTuple_Check(labels) || !PyTuple_Check(kids) || PyTuple_GET_SIZE(labels) != PyTuple_GET_SIZE(kids)) {
        node_free(node);
        goto bad;
    }
    node->n = PyTuple_GET_SIZE(labels);
    node->kids = PyMem_Calloc(node->n ? node->n : 1, sizeof(Node *));
    node->labels = PyDict_New();
    if (!node->kids || !node->labels) { node_free(node); PyErr_NoMemory(); return NULL; }
    for (Py_ssize_t i = 0; i < node->n; i++) {
        PyObject *label = PyTuple_GET_ITEM(labels, i), *kid = PyTuple_GET_ITEM(kids, i);
        PyObject *idx = PyLong_FromSsize_t(i);
        int rc = idx ? PyDict_SetItem(node->labels, label, idx) : -1;
        Py_XDECREF(idx);
        if (rc < 0) { node_free(node); return NULL; }
        if (kid == Py_None && kind == N_VARIANT) continue;
        if (!(node->kids[i] = node_parse(kid, depth + 1))) { node_free(node); return NULL; }
    }
    return node;
bad:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "not a summarizer spec (see Summarizer's doc)");
    return NULL;
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Py_ssize_t n;
    Node **nodes;
    Py_ssize_t max_str;
    Py_ssize_t max_bytes;  /* -1: no budget */
    Py_ssize_t max_items;  /* (budgeted lists) */
    PyObject *ellipsis, *fallback, *text_classes, *async_classes;
    /* fewer than 16 values, each an int, bool or float, which the budget
       cannot cut (max_bytes - 1 > 5 n: the most they spend): packed with no
       budget kept (summ_pack_values) */
    int scalars;
} Summarizer;

static PyObject *summ_cut(Summarizer *f, PyObject *v) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(v);
    if (len <= f->max_str) {
        if (PyUnicode_CheckExact(v)) { Py_INCREF(v); return v; }
        return PyUnicode_Substring(v, 0, len);  /* a subclass made a str */
    }
    PyObject *head = PyUnicode_Substring(v, 0, f->max_str);
    if (!head) return NULL;
    PyObject *r = PyUnicode_Concat(head, f->ellipsis);
    Py_DECREF(head);
    return r;
}

static int summ_type_in(PyObject *v, PyObject *classes) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(classes); i++)
        if ((PyObject *)Py_TYPE(v) == PyTuple_GET_ITEM(classes, i)) return (int)i + 1;
    return 0;
}

/* the summary of v: a new reference, or NULL (not of the shape, or an error:
   either way the caller falls back) */
static PyObject *summ_node(Summarizer *f, Node *node, PyObject *v, Py_ssize_t *b);

/* pre + mid (a str, or NULL) + sep + the decimal digits of n +
   post, pre, sep and post ASCII: what PyUnicode_FromFormat gives of
   "pre%Usep%zdpost" (the same characters, its kind the least that holds them),
   with no format parsed (~1.7k instructions a string there: the
   summarizer's "[…N]" and "<stream #N>", several an import call) */
static PyObject *text_of(const char *pre, PyObject *mid, const char *sep, Py_ssize_t n, const char *post) {
    char digits[24];
    int nd = 0;
    size_t u = n < 0 ? (size_t)0 - (size_t)n : (size_t)n;
    do { digits[nd++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (n < 0) digits[nd++] = '-';
    Py_ssize_t lp = (Py_ssize_t)strlen(pre), ls = (Py_ssize_t)strlen(sep), lq = (Py_ssize_t)strlen(post);
    Py_ssize_t lm = mid ? PyUnicode_GET_LENGTH(mid) : 0;
    Py_UCS4 maxc = mid ? PyUnicode_MAX_CHAR_VALUE(mid) : 127;
    PyObject *r = PyUnicode_New(lp + lm + ls + nd + lq, maxc < 127 ? 127 : maxc);
    if (!r) return NULL;
    int kind = PyUnicode_KIND(r);
    void *data = PyUnicode_DATA(r);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < lp; i++) PyUnicode_WRITE(kind, data, at++, (Py_UCS1)pre[i]);
    if (lm && PyUnicode_CopyCharacters(r, at, mid, 0, lm) < 0) {
        Py_DECREF(r);
        return NULL;
    }
    at += lm;
    for (Py_ssize_t i = 0; i < ls; i++) PyUnicode_WRITE(kind, data, at++, (Py_UCS1)sep[i]);
    while (nd) PyUnicode_WRITE(kind, data, at++, (Py_UCS1)digits[--nd]);
    for (Py_ssize_t i = 0; i < lq; i++) PyUnicode_WRITE(kind, data, at++, (Py_UCS1)post[i]);
    return r;
}

/* "<stream #ID>" / "<future #ID>" (which 1 / 2) of a stream's or future's id */
static PyObject *async_text(int which, PyObject *id) {
    long long x;
    if (PyLong_CheckExact(id) && long_compact(id, &x) && x >= 0)
        return text_of(which == 1 ? "<stream #" : "<future #", NULL, "", (Py_ssize_t)x, ">");
    return PyUnicode_FromFormat(which == 1 ? "<stream #%S>" : "<future #%S>", id);
}

/* spend n of the budget (none: b NULL); 0 when it had run out (summarize
   would give "…" here: the caller falls back) */
static inline int spend(Py_ssize_t *b, Py_ssize_t n) {
    if (!b) return 1;
    if (*b <= 0) return 0;
    *b -= n;
    return 1;
}

static PyObject *summ_by_label(Summarizer *f, Node *node, PyObject *v, Py_ssize_t *b) {
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    Py_ssize_t pos = 0;
    PyObject *k, *x;
    while (PyDict_Next(v, &pos, &k, &x)) {
        PyObject *idx = PyDict_GetItemWithError(node->labels, k);
        if (!idx) { Py_DECREF(out); return NULL; }
        if (b) {  /* the key: a label (no longer than max_str) */
            if (!PyUnicode_CheckExact(k) || !spend(b, PyUnicode_GET_LENGTH(k) + 1)) { Py_DECREF(out); return NULL; }
        }
        Node *kid = node->kids[PyLong_AsSsize_t(idx)];
        PyObject *r;
        if (kid) {
            r = summ_node(f, kid, x, b);
        } else if (x == Py_None && spend(b, 1)) {
            r = Py_None;
            Py_INCREF(r);
        } else {
            r = NULL;
        }
        if (!r || PyDict_SetItem(out, k, r) < 0) { Py_XDECREF(r); Py_DECREF(out); return NULL; }
        Py_DECREF(r);
    }
    return out;
}

/* a host's list<u8> as bytes (budgeted): its first max_str bytes, then b"..." */
static PyObject *summ_bytes(Summarizer *f, PyObject *v, Py_ssize_t *b) {
    Py_ssize_t n = PyBytes_GET_SIZE(v);
    PyObject *r;
    if (n > f->max_str) {
        r = PyBytes_FromStringAndSize(NULL, f->max_str + 3);
        if (!r) return NULL;
        memcpy(PyBytes_AS_STRING(r), PyBytes_AS_STRING(v), f->max_str);
        memcpy(PyBytes_AS_STRING(r) + f->max_str, "...", 3);
    } else {
        r = v;
        Py_INCREF(r);
    }
    *b -= PyBytes_GET_SIZE(r) + 1;
    return r;
}

static PyObject *summ_node(Summarizer *f, Node *node, PyObject *v, Py_ssize_t *b) {
    PyTypeObject *tp = Py_TYPE(v);
    if (b && *b <= 0) return NULL;  /* ("…") */
    switch (node->kind) {
    case N_INT: {
        if (tp != &PyLong_Type || !spend(b, 5)) return NULL;
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow < 0 || (x == -1 && PyErr_Occurred())) return NULL;
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(v);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
        }
        Py_INCREF(v);
        return v;
    }
    case N_BOOL:
        if (tp != &PyBool_Type || !spend(b, 1)) return NULL;
        Py_INCREF(v);
        return v;
    case N_FLOAT:
        if (tp != &PyFloat_Type || !spend(b, 5)) return NULL;
        Py_INCREF(v);
        return v;
    case N_TEXT: {
        if (!summ_type_in(v, f->text_classes)) return NULL;
        PyObject *r = summ_cut(f, v);
        if (r && !spend(b, PyUnicode_GET_LENGTH(r) + 1)) Py_CLEAR(r);
        return r;
    }
    case N_ASYNC: {
        int which = summ_type_in(v, f->async_classes);
        if (!which) return NULL;
        PyObject *id = PyObject_GetAttr(v, s_id);
        if (!id) return NULL;
        PyObject *text = async_text(which, id);
        Py_DECREF(id);
        if (!text) return NULL;
        PyObject *r = summ_cut(f, text);
        Py_DECREF(text);
        if (r && !spend(b, PyUnicode_GET_LENGTH(r) + 1)) Py_CLEAR(r);
        return r;
    }
    case N_LIST:
    case N_TUPLE: {
        /* (budgeted, a tuple is a dict only) */
        if ((tp == &PyList_Type || tp == &PyTuple_Type) && !(b && node->kind == N_TUPLE)) {
            Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
            if (n != node->n || !spend(b, 1)) return NULL;
            PyObject *out = PyList_New(n);
            if (!out) return NULL;
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *r = summ_node(f, node->kind == N_LIST ? node->kids[0] : node->kids[i],
                                        PySequence_Fast_GET_ITEM(v, i), b);
                if (!r) { Py_DECREF(out); return NULL; }
                PyList_SET_ITEM(out, i, r);
            }
            return out;
        }
        if (node->kind == N_TUPLE && tp == &PyDict_Type && PyDict_GET_SIZE(v) == node->n && spend(b, 1))
            return summ_by_label(f, node, v, b);
        return NULL;
    }
    case N_LIST_AT_DEPTH:
    case N_DICT_AT_DEPTH: {
        if (b && tp == &PyBytes_Type && node->kind == N_LIST_AT_DEPTH) return summ_bytes(f, v, b);
        int ok = node->kind == N_LIST_AT_DEPTH ? (tp == &PyList_Type || tp == &PyTuple_Type) : tp == &PyDict_Type;
        if (!b || !ok) return NULL;
        *b -= 4;
        Py_ssize_t len = PyObject_Length(v);
        if (len < 0) return NULL;
        return text_of(node->kind == N_LIST_AT_DEPTH ? "[" : "{", f->ellipsis, "", len,
                       node->kind == N_LIST_AT_DEPTH ? "]" : "}");
    }
    case N_VARLIST: {
        if (b && tp == &PyBytes_Type) return summ_bytes(f, v, b);
        if (!b || !(tp == &PyList_Type || tp == &PyTuple_Type) || !spend(b, 1)) return NULL;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v), head = n < f->max_items ? n : f->max_items;
        PyObject *out = PyList_New(head);
        if (!out) return NULL;
        for (Py_ssize_t i = 0; i < head; i++) {
            PyObject *r = summ_node(f, node->kids[0], PySequence_Fast_GET_ITEM(v, i), b);
            if (!r) { Py_DECREF(out); return NULL; }
            PyList_SET_ITEM(out, i, r);
        }
        if (n > head) {
            PyObject *more = text_of("", f->ellipsis, "+", n - head, "");
            if (!more || PyList_Append(out, more) < 0) { Py_XDECREF(more); Py_DECREF(out); return NULL; }
            Py_DECREF(more);
        }
        return out;
    }
    case N_RECORD:
        if (tp != &PyDict_Type || PyDict_GET_SIZE(v) != node->n || !spend(b, 1)) return NULL;
        return summ_by_label(f, node, v, b);
    case N_VARIANT:
        if (tp != &PyDict_Type || PyDict_GET_SIZE(v) != 1 || !spend(b, 1)) return NULL;
        return summ_by_label(f, node, v, b);
    }
    return NULL;
}

static PyObject *Summarizer_vectorcall(Summarizer *f, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "a summarizer takes one argument: the values");
        return NULL;
    }
    PyObject *vs = args[0];
    if ((PyList_CheckExact(vs) || PyTuple_CheckExact(vs)) && PySequence_Fast_GET_SIZE(vs) == f->n) {
        PyObject *out = PyList_New(f->n);
        if (!out) return NULL;
        Py_ssize_t budget = f->max_bytes - 1, *b = f->max_bytes >= 0 ? &budget : NULL;
        Py_ssize_t i;
        for (i = 0; i < f->n; i++) {
            PyObject *r = summ_node(f, f->nodes[i], PySequence_Fast_GET_ITEM(vs, i), b);
            if (!r) break;
            PyList_SET_ITEM(out, i, r);
        }
        if (i == f->n) return out;
        Py_DECREF(out);
        PyErr_Clear();  /* (a value of another shape: the fallback summarizes it, as the Python plans do) */
    }
    return PyObject_CallOneArg(f->fallback, vs);
}

/* summ_node's summary of v packed straight into `out` as pack_obj would pack
 * it, with no objects made for ints, bools, floats, short text, lists,
 * tuples, records and variants: 0, or -1 where summ_node gives NULL (the
 * caller rolls `out` back and falls back). The budget is spent in
 * summ_node's order, so both give up at the same values. */
static int summ_pack(Summarizer *f, Node *node, PyObject *v, Py_ssize_t *b, Sink *s, Buf *out, int depth);

static int summ_pack_object(Summarizer *f, Node *node, PyObject *v, Py_ssize_t *b, Sink *s, Buf *out, int depth) {
    PyObject *r = summ_node(f, node, v, b);
    if (!r) return -1;
    int rc = pack_obj(s, out, r, depth, 1);
    Py_DECREF(r);
    return rc;
}

static int summ_pack_by_label(Summarizer *f, Node *node, PyObject *v, Py_ssize_t *b, Sink *s, Buf *out,
                              int depth) {
    if (pack_len(out, PyDict_GET_SIZE(v), 0x80, 16, 0, 0xde, 0xdf) < 0) return -1;
    Py_ssize_t pos = 0;
    PyObject *k, *x;
    while (PyDict_Next(v, &pos, &k, &x)) {
        PyObject *idx = PyDict_GetItemWithError(node->labels, k);
        if (!idx) return -1;
        if (b && (!PyUnicode_CheckExact(k) || !spend(b, PyUnicode_GET_LENGTH(k) + 1))) return -1;
        if (pack_obj(s, out, k, depth + 1, 1) < 0) return -1;
        Node *kid = node->kids[PyLong_AsSsize_t(idx)];
        if (kid) {
            if (summ_pack(f, kid, x, b, s, out, depth + 1) < 0) return -1;
        } else if (x == Py_None && spend(b, 1)) {
            if (buf_byte(out, 0xc0) < 0) return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static int summ_pack(Summarizer *f, Node *node, PyObject *v, Py_ssize_t *b, Sink *s, Buf *out, int depth) {
    PyTypeObject *tp = Py_TYPE(v);
    if (b && *b <= 0) return -1;  /* ("…") */
    switch (node->kind) {
    case N_INT: {
        if (tp != &PyLong_Type || !spend(b, 5)) return -1;
        long long small;
        if (long_compact(v, &small)) return pack_int64(out, small);
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow < 0 || (x == -1 && PyErr_Occurred())) return -1;
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(v);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) return -1;
            return put_be(out, 0xcf, (uint64_t)u, 8);
        }
        return pack_int64(out, x);
    }
    case N_BOOL:
        if (tp != &PyBool_Type || !spend(b, 1)) return -1;
        return buf_byte(out, v == Py_True ? 0xc3 : 0xc2);
    case N_FLOAT: {
        if (tp != &PyFloat_Type || !spend(b, 5)) return -1;
        double d = PyFloat_AS_DOUBLE(v);
        uint64_t u;
        memcpy(&u, &d, 8);
        return put_be(out, 0xcb, u, 8);
    }
    case N_TEXT:
        if (tp == &PyUnicode_Type && PyUnicode_GET_LENGTH(v) <= f->max_str && summ_type_in(v, f->text_classes)) {
            if (!spend(b, PyUnicode_GET_LENGTH(v) + 1)) return -1;
            return pack_obj(s, out, v, depth, 1);
        }
        return summ_pack_object(f, node, v, b, s, out, depth);
    case N_LIST:
    case N_TUPLE:
        if ((tp == &PyList_Type || tp == &PyTuple_Type) && !(b && node->kind == N_TUPLE)) {
            Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
            if (n != node->n || !spend(b, 1)) return -1;
            if (pack_len(out, n, 0x90, 16, 0, 0xdc, 0xdd) < 0) return -1;
            for (Py_ssize_t i = 0; i < n; i++)
                if (summ_pack(f, node->kind == N_LIST ? node->kids[0] : node->kids[i], PySequence_Fast_GET_ITEM(v, i),
                              b, s, out, depth + 1) < 0)
                    return -1;
            return 0;
        }
        if (node->kind == N_TUPLE && tp == &PyDict_Type && PyDict_GET_SIZE(v) == node->n && spend(b, 1))
            return summ_pack_by_label(f, node, v, b, s, out, depth);
        return -1;
    case N_VARLIST: {
        if (!b || !(tp == &PyList_Type || tp == &PyTuple_Type))
            return summ_pack_object(f, node, v, b, s, out, depth);  /* (bytes, or NULL) */
        if (!spend(b, 1)) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v), head = n < f->max_items ? n : f->max_items;
        if (pack_len(out, head + (n > head), 0x90, 16, 0, 0xdc, 0xdd) < 0) return -1;
        for (Py_ssize_t i = 0; i < head; i++)
            if (summ_pack(f, node->kids[0], PySequence_Fast_GET_ITEM(v, i), b, s, out, depth + 1) < 0) return -1;
        if (n > head) {
            PyObject *more = text_of("", f->ellipsis, "+", n - head, "");
            int rc = more ? pack_obj(s, out, more, depth + 1, 1) : -1;
            Py_XDECREF(more);
            return rc;
        }
        return 0;
    }
    case N_RECORD:
        if (tp != &PyDict_Type || PyDict_GET_SIZE(v) != node->n || !spend(b, 1)) return -1;
        return summ_pack_by_label(f, node, v, b, s, out, depth);
    case N_VARIANT:
        if (tp != &PyDict_Type || PyDict_GET_SIZE(v) != 1 || !spend(b, 1)) return -1;
        return summ_pack_by_label(f, node, v, b, s, out, depth);
    default:  /* (N_ASYNC, N_LIST_AT_DEPTH, N_DICT_AT_DEPTH: text made anyway) */
        return summ_pack_object(f, node, v, b, s, out, depth);
    }
}

/* summarizer summ's summary of vs (summ(vs)) packed into s->fields at depth:
   0, or -1 with an error */
static int summ_pack_values(PyObject *summ, PyObject *vs, Sink *s, int depth) {
    Buf *out = &s->fields;
    PyObject *r;
    if (Py_TYPE(summ) == &SummarizerType) {
        Summarizer *f = (Summarizer *)summ;
        if (f->scalars && (PyList_CheckExact(vs) || PyTuple_CheckExact(vs)) && PySequence_Fast_GET_SIZE(vs) == f->n) {
            /* (as below, with no budget to spend: it cannot run out) */
            Py_ssize_t mark = out->len, i;
            if (buf_byte(out, (unsigned char)(0x90 | f->n)) == 0) {
                for (i = 0; i < f->n; i++) {
                    PyObject *v = PySequence_Fast_GET_ITEM(vs, i);
                    long long x;
                    if (f->nodes[i]->kind == N_INT && long_compact(v, &x)) {
                        if (pack_int64(out, x) < 0) break;
                    } else if (summ_pack(f, f->nodes[i], v, NULL, s, out, depth + 1) < 0) {
                        break;
                    }
                }
                if (i == f->n) return 0;
            }
            out->len = mark;
            PyErr_Clear();
            r = PyObject_CallOneArg(f->fallback, vs);
            goto packed;
        }
        if ((PyList_CheckExact(vs) || PyTuple_CheckExact(vs)) && PySequence_Fast_GET_SIZE(vs) == f->n) {
            Py_ssize_t mark = out->len;
            Py_ssize_t budget = f->max_bytes - 1, *b = f->max_bytes >= 0 ? &budget : NULL;
            if (pack_len(out, f->n, 0x90, 16, 0, 0xdc, 0xdd) == 0) {
                Py_ssize_t i;
                for (i = 0; i < f->n; i++)
                    if (summ_pack(f, f->nodes[i], PySequence_Fast_GET_ITEM(vs, i), b, s, out, depth + 1) < 0) break;
                if (i == f->n) return 0;
            }
            out->len = mark;
            PyErr_Clear();  /* (as Summarizer_vectorcall: the fallback summarizes it) */
        }
        r = PyObject_CallOneArg(f->fallback, vs);
    } else {
        r = PyObject_CallOneArg(summ, vs);
    }
packed:
    if (!r) return -1;
    int rc = pack_obj(s, out, r, depth, 1);
    Py_DECREF(r);
    return rc;
}

/* packed(sink, values): the bytes summ_pack_values writes (for the tests:
   they must be msgpack's packing of summarizer(values)) */
static PyObject *Summarizer_packed(Summarizer *f, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &SinkType)) {
        PyErr_SetString(PyExc_TypeError, "packed(sink, values)");
        return NULL;
    }
    Sink *s = (Sink *)args[0];
    Py_ssize_t mark = s->fields.len;
    if (summ_pack_values((PyObject *)f, args[1], s, 1) < 0) { s->fields.len = mark; return NULL; }
    PyObject *r = PyBytes_FromStringAndSize(s->fields.data + mark, s->fields.len - mark);
    s->fields.len = mark;
    return r;
}

static PyMethodDef Summarizer_methods[] = {
    {"packed", (PyCFunction)(void (*)(void))Summarizer_packed, METH_FASTCALL,
     "packed(sink, values) -> the summary as the sink packs it (msgpack)"},
    {NULL}
};

static int Summarizer_traverse(Summarizer *f, visitproc visit, void *arg) {
    Py_VISIT(f->async_classes); Py_VISIT(f->ellipsis); Py_VISIT(f->text_classes);
    Py_VISIT(f->fallback);
    return 0;
}

static int Summarizer_clear(Summarizer *f) {
    Py_CLEAR(f->fallback);
    Py_CLEAR(f->ellipsis);
    Py_CLEAR(f->text_classes);
    Py_CLEAR(f->async_classes);
    return 0;
}

static void Summarizer_dealloc(Summarizer *f) {
    PyObject_GC_UnTrack(f);
    Summarizer_clear(f);
    if (f->nodes) {
        for (Py_ssize_t i = 0; i < f->n; i++) node_free(f->nodes[i]);
        PyMem_Free(f->nodes);
    }
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static PyObject *Summarizer_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"specs", "max_str", "ellipsis", "fallback", "text_classes", "async_classes",
                            "max_bytes", "max_items", NULL};
    PyObject *specs, *ellipsis, *fallback, *text_classes, *async_classes;
    Py_ssize_t max_str, max_bytes = -1, max_items = PY_SSIZE_T_MAX;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!nUOO!O!|nn", names, &PyTuple_Type, &specs, &max_str, &ellipsis,
                                     &fallback, &PyTuple_Type, &text_classes, &PyTuple_Type, &async_classes,
                                     &max_bytes, &max_items))
        return NULL;
    if (max_str < 0 || !PyCallable_Check(fallback) || PyTuple_GET_SIZE(async_classes) != 2) {
        PyErr_SetString(PyExc_ValueError, "max_str >= 0, a callable fallback, (stream class, future class)");
        return NULL;
    }
    Summarizer *f = (Summarizer *)type->tp_alloc(type, 0);
    if (!f) return NULL;
    f->vectorcall = (vectorcallfunc)Summarizer_vectorcall;
    f->max_str = max_str;
    f->max_bytes = max_bytes < 0 ? -1 : max_bytes;
    f->max_items = max_items < 0 ? 0 : max_items;
    Py_INCREF(ellipsis); f->ellipsis = ellipsis;
    Py_INCREF(fallback); f->fallback = fallback;
    Py_INCREF(text_classes); f->text_classes = text_classes;
    Py_INCREF(async_classes); f->async_classes = async_classes;
    Py_ssize_t n = PyTuple_GET_SIZE(specs);
    f->nodes = PyMem_Calloc(n ? n : 1, sizeof(Node *));
    if (!f->nodes) { Py_DECREF(f); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(f->nodes[i] = node_parse(PyTuple_GET_ITEM(specs, i), 0))) { f->n = i; Py_DECREF(f); return NULL; }
    }
    f->n = n;
    f->scalars = n < 16 && (f->max_bytes < 0 || f->max_bytes - 1 > 5 * n);
    for (Py_ssize_t i = 0; i < n; i++)
        if (f->nodes[i]->kind != N_INT && f->nodes[i]->kind != N_BOOL && f->nodes[i]->kind != N_FLOAT) f->scalars = 0;
    return (PyObject *)f;
}

static PyTypeObject SummarizerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.trace._sink.Summarizer",
    .tp_basicsize = sizeof(Summarizer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Summarizer(specs, max_str, ellipsis, fallback, text_classes, async_classes, max_bytes=-1, max_items=...): "
              "summaries of value lists by type (runtime/valueplan.py)",
    .tp_vectorcall_offset = offsetof(Summarizer, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_methods = Summarizer_methods,
    .tp_new = Summarizer_new,
    .tp_dealloc = (destructor)Summarizer_dealloc,
    .tp_traverse = (traverseproc)Summarizer_traverse,
    .tp_clear = (inquiry)Summarizer_clear,
};

/* ------------------------------------------------------------------ core
 * Core(sink, callee_of, roots, groups, summ_any, fallbacks, kinds, info_of,
 * ret_info_of, shared_classes, limits): the recording observer's
 * import.call, import.return and task.return (runtime/observe.py), with no
 * Python frame on the common path. What it needs of a callee it asks once,
 * of info_of(callee): a tuple (callee, name reference, walk, args
 * summarizer, results summarizer, handles, egress, the name reference as
 * msgpack packs it, handle spec), walk being the plan's
 * (index, holds only text) pairs of the parameters to search, the handle
 * spec (None: no handles) the (index, spec) pairs of the parameters that
 * can hold handles (observe.py's _handle_spec: where _handles finds them). Of a task's
 * function type, ret_info_of(ft): (ft, results summarizer). A call is then
 * recorded as RecordingObserver.import_call records it: the async call
 * stack, the strings and streams/futures of the walked parameters (_walk),
 * the taint tokens among the strings (TaintIndex.find, on the index's own
 * dicts `roots` and `groups`), the lineage of the streams and futures, the
 * summaries, the event. The handles of a call are looked into here too
 * (core_handles: when the store knows resource roots, or the callee is an
 * egress and tokens were planted): their lineage roots, and the egress's
 * taint views searched. The Python methods (`fallbacks`) record the calls
 * whose values have another shape than their spec says and those whose
 * text parameter holds no str: both give the same events
 * (tests/test_examples.py, tests/test_sink.py, tests/test_core_handles.py).
 */

enum { I_CALLEE, I_NAME, I_WALK, I_ARGS, I_RESULTS, I_HANDLES, I_EGRESS, I_NAME_PACKED, I_HSPEC, I_SIZE };

#define COPY_MEMO 8  /* (the runtime's copy_op calls: 2 kinds x 4 ops) */
typedef struct {
    PyObject_HEAD
    Sink *sink;
    /* (what a transition from C reads, next to the sink: api_hook) */
    /* bit i: hooks[i] is this sink's own emitter (switch) of the shape
       core_typed packs, with no Python call and no field specs read: the
       same bytes (set_hooks checks each one; tests/test_fiber_paths.py
       compares the traces) */
    unsigned typed;
    /* bit h (the CS_ numbers of _sinkapi.h): an instance attribute of that
       method's name was set (Core_setattro), so calls from C (_fiber.c)
       look the method up as before */
    unsigned overridden;
#define N_HOOKS 8
    int hkind[N_HOOKS];        /* the typed hooks' event kinds */
    PyObject *hthen[N_HOOKS];  /* their `then` callables (borrowed: the emitter in hooks[i] holds it), or NULL */
    PyObject *callee_of, *roots, *groups, *summ_any;
    /* TaintIndex.pending: (tokens, root id) whose encoded forms are not
       indexed yet, and TaintIndex.expand, which indexes them (called before
       any search that is not a token as it is); both NULL: none */
    PyObject *pending, *expand;
    PyObject *more;  /* TaintIndex.more: token -> adds after its first (NULL: not counted) */
    /* (optional) the class of the tokens callscope.model.tokens.plant_tokens
       makes (_PlantedLazily): every token plain, the forms lazy, both read
       off the class (NULL: read as attributes) */
    PyTypeObject *lazy_tp;     /* (held) */
    unsigned int lazy_ver;     /* its version tag when given (set_planted) */
    PyObject *last_prefix;     /* (core_prefix) */
    /* callscope.model.tokens.encoded_forms (set_forms): pending tokens'
       forms indexed here (core_expand), not by a call of `expand` */
    PyObject *forms_of;
    int forms_c;               /* (set_forms(fn, True)) an ASCII token's forms from ascii_forms, fn not called */
    PyObject *shared_cls[2];   /* SharedStreamImpl, SharedFutureImpl */
    PyObject *copy_kinds;      /* "stream"/"future" -> op -> kind id */
    /* copy_op's (kind, op) strings last seen (held) -> their kind id, and
       whether op is "new": the runtime passes the same constants */
    struct { PyObject *kind, *op; int k, is_new; } copy_memo[COPY_MEMO];
    PyObject *stack;           /* the runtime's stack of running threads (runtime/thread.py's STACK) */
    int k_handle_new, k_taint;
    Py_ssize_t prefix;         /* TaintIndex.PREFIX */
    Py_ssize_t bytes_limit, scan_limit;
    PyObject *py_call, *py_return, *py_task_return;
    PyObject *info_of, *ret_info_of;
    PyObject *infos, *rinfos;  /* id(callee) -> info, id(ft) -> ret info */
    PyObject *front[64], *rfront[64];  /* (FRONT) */
    /* (task, its async call stack, its instance's id) by the task's address:
       a task's caller and instance never change (FRONT) */
    PyObject *tfront[64];
    PyObject *roots_inst, *roots_of_inst;  /* (core_resource_roots) */
    PyObject *last_call_id;    /* the id of the import call recorded last */
    /* the callee of the import call recorded last, until it returns or the
       next one is recorded (then it joins callee_of): most calls return
       before the next one starts, and skip the dict */
    PyObject *pend_id, *pend_info;
    /* the sync host path's pair (api_import_call_n / api_import_return_n):
       the pending call's id and the last call's id kept as numbers, with
       no int object made (pend_num > 0: pend_id is that number, NULL here;
       last_is_num: last_call_id is last_num, NULL here); core_pend_obj
       makes them objects wherever anything else looks at them */
    long long pend_num, last_num;
    int last_is_num;
    long long next_id;         /* the next import call's id (1, 2, ...) */
    /* the (task, callee) of the import call recorded last, when its event
       needs no search (the callee's parameters hold no text, stream,
       future or handle): its callee info and task info (held: they hold the
       task and the callee, so these addresses stay theirs) and the packed
       instance id, name and stack, one after another. The next call of
       the same pair (a loop calling one import) is packed from these with
       no lookup (memo_pre_len 0: none) */
    PyObject *memo_task, *memo_callee, *memo_info, *memo_tinfo;
    Py_ssize_t memo_pre_len;
    /* how many parameters and results the memo's callee has when each is
       an int (its summarizers' plain case, packed here with no look at
       them: an int that is not small takes the summarizer); -1: not so */
    int memo_nargs, memo_nres;
    char memo_pre[48];
    /* root_exit (set_root_exit): the observer's _exited (root task id ->
       its tokens, in exit order), its taint window, taint.retire's kind
       and TaintIndex.release_forms (the encoded forms of tokens already
       indexed); exited NULL: root_exit unavailable */
    PyObject *exited, *release_forms;
    Py_ssize_t window;
    int k_retire;
    /* what the methods of Core_hook_names call (set_hooks): the sink's
       emitters (and switch) of a subclass's transitions, called as methods
       of the subclass (bind_methods) */
    PyObject *hooks[N_HOOKS];
    /* `not ft.async_` of the task.new recorded last, its ft (a function
       type: a frozen dataclass, whose attributes are not set after it is
       made) and that type's version then */
    PyObject *ft_last;
    PyTypeObject *ft_type;
    unsigned int ft_type_ver;
    int ft_not_async;
    PyObject *empty;           /* () */
    int k_call, k_return, k_task_return;
} Core;

static PyObject *s_ft, *s_id, *s_caller, *s_inst, *s_results, *s_store, *s_resource_roots, *s_root, *s_task, *s_tokens, *s_forms, *s_plain;
static PyObject *s_dtor, *s_taint_view;

/* the resource roots of tinfo's task's store (its last item the task's
   instance, whose store's resource_roots is kept for the last instance asked
   about: a dict the store keeps): borrowed, or NULL with an error */
static PyObject *core_resource_roots(Core *c, PyObject *tinfo) {
    PyObject *inst = PyTuple_GET_ITEM(tinfo, 3);
    if (inst != c->roots_inst || !c->roots_of_inst) {
        PyObject *store = PyObject_GetAttr(inst, s_store);
        PyObject *roots = store ? PyObject_GetAttr(store, s_resource_roots) : NULL;
        Py_XDECREF(store);
        if (!roots) return NULL;
        Py_INCREF(inst);
        Py_XSETREF(c->roots_inst, inst);
        Py_XSETREF(c->roots_of_inst, roots);
    }
    return c->roots_of_inst;
}

/* the cached info of `obj` (its first item is obj), made by maker(obj) when
   missing: a borrowed reference, or NULL with an error */
#define FRONT 64  /* a direct-mapped cache in front of each info dict */

static PyObject *core_cached_slow(PyObject *cache, PyObject *maker, PyObject *obj, Py_ssize_t size);

/* core_cached through `front` (strong references: an info holds its object,
   so an address found there is that object's) */
static inline PyObject *core_cached(PyObject **front, PyObject *cache, PyObject *maker, PyObject *obj,
                                    Py_ssize_t size) {
    size_t slot = ((uintptr_t)obj >> 4) & (FRONT - 1);
    PyObject *info = front[slot];
    if (info && PyTuple_GET_ITEM(info, 0) == obj) return info;
    info = core_cached_slow(cache, maker, obj, size);
    if (info) {
        Py_INCREF(info);
        Py_XSETREF(front[slot], info);
    }
    return info;
}

static PyObject *core_cached_slow(PyObject *cache, PyObject *maker, PyObject *obj, Py_ssize_t size) {
    PyObject *key = PyLong_FromVoidPtr(obj);
    if (!key) return NULL;
    PyObject *info = PyDict_GetItemWithError(cache, key);
    if (info && PyTuple_GET_ITEM(info, 0) == obj) { Py_DECREF(key); return info; }
    if (PyErr_Occurred()) { Py_DECREF(key); return NULL; }
    info = PyObject_CallOneArg(maker, obj);
    if (info && (!PyTuple_CheckExact(info) || PyTuple_GET_SIZE(info) != size || PyTuple_GET_ITEM(info, 0) != obj)) {
        PyErr_SetString(PyExc_TypeError, "Core: info_of/ret_info_of gave a tuple of another shape");
        Py_CLEAR(info);
    }
    int rc = info ? PyDict_SetItem(cache, key, info) : -1;
    Py_DECREF(key);
    Py_XDECREF(info);  /* (the cache holds it) */
    return rc < 0 ? NULL : info;
}

static PyObject *core_stack(PyObject *task) {
    static AttrCache c_caller, c_id, c_id2, c_caller2;
    PyObject *caller = fast_attr_c(task, s_caller, &c_caller);
    if (!caller) return NULL;
    if (caller == Py_None) {
        Py_DECREF(caller);
        PyObject *id = fast_attr_c(task, s_id, &c_id);
        if (!id) return NULL;
        PyObject *t = PyTuple_Pack(1, id);
        Py_DECREF(id);
        return t;
    }
    Py_DECREF(caller);
    PyObject *ids = PyList_New(0);
    if (!ids) return NULL;
    PyObject *t = task;
    Py_INCREF(t);
    while (t != Py_None) {
        PyObject *id = fast_attr_c(t, s_id, &c_id2);
        if (!id || PyList_Append(ids, id) < 0) { Py_XDECREF(id); Py_DECREF(t); Py_DECREF(ids); return NULL; }
        Py_DECREF(id);
        PyObject *next = fast_attr_c(t, s_caller, &c_caller2);
        Py_DECREF(t);
        if (!next) { Py_DECREF(ids); return NULL; }
        t = next;
    }
    Py_DECREF(t);
    PyObject *tup = PyList_AsTuple(ids);
    Py_DECREF(ids);
    return tup;
}

/* o as the sink packs it (bytes), or NULL with an error */
static PyObject *packed_bytes(Sink *s, PyObject *o) {
    /* (packed after the end of the sink's field buffer, then taken back
       off it: no buffer of its own to allocate and free, ~600 instructions
       a call) */
    Buf *b = &s->fields;
    Py_ssize_t end = b->len, count = s->count;
    if (pack_obj(s, b, o, 1, 1) < 0) {
        if (b->len >= end) b->len = end;
        return NULL;
    }
    if (b->len < end || s->count != count) {  /* (taken meanwhile: a fallback let another thread flush) */
        PyErr_SetString(PyExc_RuntimeError, "the sink was taken while a value was packed");
        return NULL;
    }
    PyObject *r = PyBytes_FromStringAndSize(b->data + end, b->len - end);
    b->len = end;
    return r;
}

/* (task, its async call stack, its instance's id, its instance), the
   stack and id packed: a borrowed reference, or NULL with an error */
static PyObject *core_task_info(Core *c, PyObject *task) {
    size_t slot = ((uintptr_t)task >> 4) & (FRONT - 1);
    PyObject *info = c->tfront[slot];
    if (info && PyTuple_GET_ITEM(info, 0) == task) return info;
    PyObject *stack = core_stack(task);
    static AttrCache c_inst, c_inst_id;
    PyObject *inst = stack ? fast_attr_c(task, s_inst, &c_inst) : NULL;
    PyObject *inst_id = inst ? fast_attr_c(inst, s_id, &c_inst_id) : NULL;
    PyObject *pstack = inst_id ? packed_bytes(c->sink, stack) : NULL;
    PyObject *pinst = pstack ? packed_bytes(c->sink, inst_id) : NULL;
    info = pinst ? PyTuple_Pack(4, task, pstack, pinst, inst) : NULL;
    Py_XDECREF(stack); Py_XDECREF(inst); Py_XDECREF(inst_id); Py_XDECREF(pstack); Py_XDECREF(pinst);
    if (info) Py_XSETREF(c->tfront[slot], info);
    return info;
}

/* The taint search (runtime/observe.py's _walk and TaintIndex.find, in C).
 * walk: collect the strings and the streams/futures in `v` (byte strings and
 * lists of small ints as latin-1 text, their first bytes_limit bytes); 1 when
 * it holds a stream or future, 0 when not, -1 with an error. */
static int walk(PyObject *v, PyObject *strings, PyObject *shared, int depth, PyObject *const *shared_cls,
                Py_ssize_t bytes_limit) {
    PyTypeObject *tp = Py_TYPE(v);
    if (PyUnicode_Check(v)) return PyList_Append(strings, v);
    if (tp == &PyLong_Type || tp == &PyFloat_Type || tp == &PyBool_Type || v == Py_None) return 0;
    if ((PyObject *)tp == shared_cls[0] || (PyObject *)tp == shared_cls[1])
        return PyList_Append(shared, v) < 0 ? -1 : 1;
    if (tp == &PyBytes_Type || tp == &PyByteArray_Type || tp == &PyMemoryView_Type) {
        Py_buffer view;
        if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0) { PyErr_Clear(); return 0; }
        int rc = 0;
        if (view.len) {
            PyObject *text = PyUnicode_DecodeLatin1(view.buf, view.len < bytes_limit ? view.len : bytes_limit, NULL);
            rc = text ? PyList_Append(strings, text) : -1;
            Py_XDECREF(text);
        }
        PyBuffer_Release(&view);
        return rc;
    }
    if (depth >= 6) return 0;
    int found = 0;
    if (tp == &PyDict_Type) {
        Py_ssize_t pos = 0;
        PyObject *k, *x;
        while (PyDict_Next(v, &pos, &k, &x)) {
            int r = walk(x, strings, shared, depth + 1, shared_cls, bytes_limit);
            if (r < 0) return -1;
            found |= r;
        }
    } else if (tp == &PyList_Type || tp == &PyTuple_Type) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        if (n && Py_TYPE(PySequence_Fast_GET_ITEM(v, 0)) == &PyLong_Type) {
            /* bytes(value[:limit]).decode("latin-1"), when every item is an int in 0..255 */
            Py_ssize_t m = n < bytes_limit ? n : bytes_limit;
            unsigned char *buf = PyMem_Malloc(m ? m : 1);
            if (!buf) { PyErr_NoMemory(); return -1; }
            Py_ssize_t k;
            for (k = 0; k < m; k++) {
                PyObject *x = PySequence_Fast_GET_ITEM(v, k);
                if (!PyLong_Check(x)) break;
                long b = PyLong_AsLong(x);
                if (b < 0 || b > 255) { PyErr_Clear(); break; }
                buf[k] = (unsigned char)b;
            }
            if (k == m) {
                PyObject *text = PyUnicode_DecodeLatin1((const char *)buf, m, NULL);
                PyMem_Free(buf);
                int rc = text ? PyList_Append(strings, text) : -1;
                Py_XDECREF(text);
                return rc;
            }
            PyMem_Free(buf);
        }
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(v); k++) {
            int r = walk(PySequence_Fast_GET_ITEM(v, k), strings, shared, depth + 1, shared_cls, bytes_limit);
            if (r < 0) return -1;
            found |= r;
        }
    }
    return found;
}

/* TaintIndex.find: the planted tokens occurring in `strings` (a list) */
/* the tokens of group by_len at place `at` of text, as (at, length, token)
   hits: 0, or -1 with an error */
static int find_at(PyObject *text, Py_ssize_t len, Py_ssize_t at, PyObject *by_len, PyObject *hits) {
    Py_ssize_t lpos = 0;
    PyObject *nobj, *toks;
    while (PyDict_Next(by_len, &lpos, &nobj, &toks)) {
        Py_ssize_t n = PyLong_AsSsize_t(nobj);
        if (n < 0 && PyErr_Occurred()) return -1;
        Py_ssize_t end = at + n < len ? at + n : len;
        PyObject *sub = PyUnicode_Substring(text, at, end);
        if (!sub) return -1;
        int is_tok = PySet_Contains(toks, sub);
        PyObject *hit = is_tok > 0 ? Py_BuildValue("(nnO)", at, n, sub) : NULL;
        int rc = is_tok < 0 ? -1 : is_tok ? (hit ? PyList_Append(hits, hit) : -1) : 0;
        Py_XDECREF(hit);
        Py_DECREF(sub);
        if (rc < 0) return -1;
    }
    return 0;
}

/* text.find(sub, start) (text of length len): a 1-byte text and a 1-byte
   sub searched here (memchr for sub's first character, then the rest
   compared), with no PyUnicode_Find and its checks (~190 instructions a
   call, on strings of a few dozen characters); -1 not found, -2 an error */
static Py_ssize_t find_from(PyObject *text, Py_ssize_t len, PyObject *sub, Py_ssize_t start) {
    int tk = PyUnicode_KIND(text), sk = PyUnicode_KIND(sub);
    Py_ssize_t n = PyUnicode_GET_LENGTH(sub);
    if (sk > tk) return -1;  /* (sub holds a character text cannot) */
    if (tk != PyUnicode_1BYTE_KIND || n == 0) return PyUnicode_Find(text, sub, start, len, 1);
    const unsigned char *h = PyUnicode_1BYTE_DATA(text), *nd = PyUnicode_1BYTE_DATA(sub);
    Py_ssize_t last = len - n;  /* (the last place sub can start) */
    for (Py_ssize_t i = start; i <= last; i++) {
        const unsigned char *p = memchr(h + i, nd[0], (size_t)(last - i + 1));
        if (!p) return -1;
        i = p - h;
        if (memcmp(p + 1, nd + 1, (size_t)(n - 1)) == 0) return i;
    }
    return -1;
}

/* TaintIndex.find (see there: the same two ways of searching, the same
   order) */
#define FIND_FEW 32  /* TaintIndex.FEW */
static PyObject *find_tokens(PyObject *strings, PyObject *roots, PyObject *groups, Py_ssize_t scan_limit,
                             Py_ssize_t prefix_len) {
    PyObject *found = PyList_New(0);
    if (!found) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(strings); k++) {
        PyObject *str = PyList_GET_ITEM(strings, k);
        int hit = PyDict_Contains(roots, str);
        if (hit < 0) goto fail;
        if (hit) {
            int in = PySequence_Contains(found, str);
            if (in < 0 || (!in && PyList_Append(found, str) < 0)) goto fail;
            continue;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(str);
        /* (s[:SCAN_LIMIT]: the string itself when it is no longer, its
           characters the same) */
        PyObject *text = len <= scan_limit ? Py_NewRef(str) : PyUnicode_Substring(str, 0, scan_limit);
        PyObject *hits = text ? PyList_New(0) : NULL;
        if (!hits) { Py_XDECREF(text); goto fail; }
        len = PyUnicode_GET_LENGTH(text);
        int rc = 0;
        if (PyDict_GET_SIZE(groups) <= (len < FIND_FEW ? len : FIND_FEW)) {
            /* for each prefix, where it occurs */
            Py_ssize_t gpos = 0;
            PyObject *prefix, *by_len;
            while (rc == 0 && PyDict_Next(groups, &gpos, &prefix, &by_len)) {
                if (!PyUnicode_Check(prefix) || PyUnicode_GET_LENGTH(prefix) < prefix_len) continue;
                Py_ssize_t at = find_from(text, len, prefix, 0);
                while (rc == 0 && at >= 0) {
                    rc = find_at(text, len, at, by_len, hits);
                    at = at + 1 <= len ? find_from(text, len, prefix, at + 1) : -1;
                }
                if (at == -2) rc = -1;
            }
        } else {
            /* at each place, its prefix */
            for (Py_ssize_t at = 0; rc == 0 && at + prefix_len <= len; at++) {
                PyObject *key = PyUnicode_Substring(text, at, at + prefix_len);
                PyObject *by_len = key ? PyDict_GetItemWithError(groups, key) : NULL;
                Py_XDECREF(key);
                if (by_len) rc = find_at(text, len, at, by_len, hits);
                else if (!key || PyErr_Occurred()) rc = -1;
            }
        }
        if (rc == 0 && PyList_GET_SIZE(hits) > 1) rc = PyList_Sort(hits);
        for (Py_ssize_t h = 0; rc == 0 && h < PyList_GET_SIZE(hits); h++) {
            PyObject *tok = PyTuple_GET_ITEM(PyList_GET_ITEM(hits, h), 2);
            int in = PySequence_Contains(found, tok);
            rc = in < 0 ? -1 : in ? 0 : PyList_Append(found, tok);
        }
        Py_DECREF(hits);
        Py_DECREF(text);
        if (rc < 0) goto fail;
    }
    if (PyList_GET_SIZE(found) > 1) {
        /* a token inside a longer one found too is that longer one's evidence, not its own */
        PyObject *kept = PyList_New(0);
        if (!kept) goto fail;
        for (Py_ssize_t a = 0; a < PyList_GET_SIZE(found); a++) {
            PyObject *t = PyList_GET_ITEM(found, a);
            int inside = 0;
            for (Py_ssize_t b = 0; b < PyList_GET_SIZE(found) && !inside; b++) {
                PyObject *u = PyList_GET_ITEM(found, b);
                int ne = PyObject_RichCompareBool(t, u, Py_NE);
                int in = ne > 0 ? PyUnicode_Contains(u, t) : 0;
                if (ne < 0 || in < 0) { Py_DECREF(kept); goto fail; }
                inside = ne && in;
            }
            if (!inside && PyList_Append(kept, t) < 0) { Py_DECREF(kept); goto fail; }
        }
        Py_DECREF(found);
        found = kept;
    }
    return found;
fail:
    Py_DECREF(found);
    return NULL;
}

/* find_tokens(strings, roots, groups, scan_limit, prefix): TaintIndex.find in C (for tests) */
static PyObject *mod_find_tokens(PyObject *m, PyObject *args) {
    PyObject *strings, *roots, *groups;
    Py_ssize_t scan_limit, prefix;
    if (!PyArg_ParseTuple(args, "O!O!O!nn", &PyList_Type, &strings, &PyDict_Type, &roots, &PyDict_Type, &groups,
                          &scan_limit, &prefix))
        return NULL;
    if (prefix < 1) {
        PyErr_SetString(PyExc_ValueError, "prefix: at least 1");
        return NULL;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(strings); k++)
        if (!PyUnicode_Check(PyList_GET_ITEM(strings, k))) {
            PyErr_SetString(PyExc_TypeError, "strings: a list of str");
            return NULL;
        }
    return find_tokens(strings, roots, groups, scan_limit, prefix);
}

/* walk_values(value, shared_classes, bytes_limit) -> (strings, shared, found): _walk in C (for tests) */
static PyObject *mod_walk(PyObject *m, PyObject *args) {
    PyObject *v, *classes;
    Py_ssize_t limit;
    int depth = 0;
    if (!PyArg_ParseTuple(args, "OO!n|i", &v, &PyTuple_Type, &classes, &limit, &depth)) return NULL;
    if (PyTuple_GET_SIZE(classes) != 2) { PyErr_SetString(PyExc_TypeError, "two classes"); return NULL; }
    PyObject *strings = PyList_New(0), *shared = PyList_New(0);
    int r = strings && shared ? walk(v, strings, shared, depth, &PyTuple_GET_ITEM(classes, 0), limit) : -1;
    PyObject *out = r < 0 ? NULL : Py_BuildValue("(OOO)", strings, shared, r ? Py_True : Py_False);
    Py_XDECREF(strings); Py_XDECREF(shared);
    return out;
}

/* the taint tokens and lineage roots of a call's arguments, as import_call
   finds them (the parameters of `walkspec`: (index, only text) pairs): a new
   reference to the tokens (a list or ()), *lineage a new list or NULL; or
   NULL with an error; *fallback set when a text-only parameter is not a str
   (the Python path decides what to do with it) */
static int core_expand(Core *c);
static PyObject *core_find(Core *c, PyObject *strings);

static PyObject *core_search(Core *c, PyObject *walkspec, PyObject *args, int *fallback, PyObject **lineage) {
    Py_ssize_t n = PyTuple_GET_SIZE(walkspec), nargs = PySequence_Fast_GET_SIZE(args);
    *lineage = NULL;
    if (n == 0) { Py_INCREF(c->empty); return c->empty; }
    /* (shared: made for the first parameter walked that is not text only;
       a call whose walked parameters are all text, a URL, makes no list) */
    PyObject *strings = PyList_New(0), *shared = NULL;
    if (!strings) goto fail;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *pair = PyTuple_GET_ITEM(walkspec, k);
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 0));
        PyObject *v = (i >= 0 && i < nargs) ? PySequence_Fast_GET_ITEM(args, i) : NULL;
        if (!v) { PyErr_Clear(); *fallback = 1; goto fail; }
        if (PyTuple_GET_ITEM(pair, 1) == Py_True) {
            if (!PyUnicode_Check(v)) { *fallback = 1; goto fail; }
            if (PyList_Append(strings, v) < 0) goto fail;
        } else if ((!shared && !(shared = PyList_New(0)))
                   || walk(v, strings, shared, 1, c->shared_cls, c->bytes_limit) < 0) {
            goto fail;
        }
    }
    if (shared && PyList_GET_SIZE(shared)) {
        /* [s.root.id for s in shared if s.root is not None] */
        if (!(*lineage = PyList_New(0))) goto fail;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(shared); k++) {
            PyObject *root = PyObject_GetAttr(PyList_GET_ITEM(shared, k), s_root);
            if (!root) goto fail;
            if (root != Py_None) {
                PyObject *id = PyObject_GetAttr(root, s_id);
                int rc = id ? PyList_Append(*lineage, id) : -1;
                Py_XDECREF(id);
                if (rc < 0) { Py_DECREF(root); goto fail; }
            }
            Py_DECREF(root);
        }
    }
    Py_CLEAR(shared);
    if (PyList_GET_SIZE(strings) == 0 || PyDict_GET_SIZE(c->roots) == 0) {
        Py_DECREF(strings);
        Py_INCREF(c->empty);
        return c->empty;
    }
    if (PyList_GET_SIZE(strings) == 1) {
        int hit = PyDict_Contains(c->roots, PyList_GET_ITEM(strings, 0));
        if (hit < 0) goto fail;
        if (hit) return strings;  /* the argument is a token as it is: what find gives */
    }
    PyObject *found = core_find(c, strings);
    Py_DECREF(strings);
    if (!found) Py_CLEAR(*lineage);
    return found;
fail:
    Py_XDECREF(strings);
    Py_XDECREF(shared);
    Py_CLEAR(*lineage);
    return NULL;
}

/* TaintIndex.find(strings) on the core's index: the pending roots' encoded
   forms indexed first (a new list, or NULL with an error) */
static PyObject *core_find(Core *c, PyObject *strings) {
    if (c->pending && c->forms_of && PyList_GET_SIZE(c->pending)) {
        if (core_expand(c) < 0) return NULL;
    } else if (c->pending && c->expand && PyList_GET_SIZE(c->pending)) {
        PyObject *r = PyObject_CallNoArgs(c->expand);
        if (!r) return NULL;
        Py_DECREF(r);
    }
    return find_tokens(strings, c->roots, c->groups, c->scan_limit, c->prefix);
}

/* The handles of a call (observe.py's _handles, following the callee's
 * handle spec: see _handle_spec) appended to `out` as rt, rep, rt, rep, ...:
 * 0, 1 when the value has another shape than the spec says (the Python
 * path records the call), or -1 with an error */
static int hspec_collect(PyObject *spec, PyObject *v, PyObject *out) {
    if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) != 2 || !PyLong_CheckExact(PyTuple_GET_ITEM(spec, 0)))
        return 1;
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    PyObject *sub = PyTuple_GET_ITEM(spec, 1);
    if (kind == 0)  /* own/borrow: (rt, the value), whatever it is */
        return PyList_Append(out, sub) < 0 || PyList_Append(out, v) < 0 ? -1 : 0;
    if (v == Py_None) return 0;
    if (kind == 1) {
        if (!PyList_CheckExact(v) && !PyTuple_CheckExact(v)) return 1;
        /* (the list's length read each time: a view called meanwhile runs no code here) */
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(v); k++) {
            PyObject *x = PySequence_Fast_GET_ITEM(v, k);
            Py_INCREF(x);
            int r = hspec_collect(sub, x, out);
            Py_DECREF(x);
            if (r) return r;
        }
        return 0;
    }
    if ((kind != 2 && kind != 3) || !PyDict_CheckExact(v) || !PyTuple_CheckExact(sub)) return 1;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(sub); k++) {
        PyObject *pair = PyTuple_GET_ITEM(sub, k);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) return 1;
        PyObject *x = PyDict_GetItemWithError(v, PyTuple_GET_ITEM(pair, 0));
        if (!x) {
            if (PyErr_Occurred()) return -1;
            if (kind == 3) continue;  /* (a case not held) */
            x = Py_None;  /* value.get(label) */
        }
        Py_INCREF(x);
        int r = hspec_collect(PyTuple_GET_ITEM(pair, 1), x, out);
        Py_DECREF(x);
        if (r) return r;
    }
    return 0;
}

/* _py_import_call_id's handle steps (runtime/observe.py): when the store
 * knows resource roots or the callee is an egress with tokens planted, the
 * handles in args found by the callee's handle spec; the root of each
 * (store.resource_roots[(rt, rep)]) appended to *lineage (made when NULL),
 * and for an egress, what rt.dtor.taint_view(rep) shows walked and
 * searched, the tokens found there and not in *taint appended to it (a new
 * list then). 0, 1 when the Python path must record the call, -1 with an
 * error. */
static int core_handles(Core *c, PyObject *info, PyObject *tinfo, PyObject *args, PyObject **taint,
                        PyObject **lineage) {
    if (PyTuple_GET_ITEM(info, I_HANDLES) != Py_True) return 0;
    PyObject *spec = PyTuple_GET_ITEM(info, I_HSPEC);
    int egress = PyTuple_GET_ITEM(info, I_EGRESS) == Py_True && PyDict_GET_SIZE(c->roots);
    PyObject *rroots = core_resource_roots(c, tinfo);
    if (!rroots) return -1;
    int has_roots = PyDict_CheckExact(rroots) ? PyDict_GET_SIZE(rroots) > 0 : PyObject_IsTrue(rroots);
    if (has_roots < 0) return -1;
    if (!has_roots && !egress) return 0;
    if (spec == Py_None) return 0;  /* (nothing _handles would collect) */
    if ((has_roots && !PyDict_CheckExact(rroots)) || !PyTuple_CheckExact(spec)) return 1;
    Py_INCREF(rroots);  /* (held: a view is Python code) */
    PyObject *reps = PyList_New(0), *views = NULL, *shared = NULL, *found = NULL;
    int rc = reps ? 0 : -1;
    Py_ssize_t nargs = PySequence_Fast_GET_SIZE(args);
    for (Py_ssize_t k = 0; rc == 0 && k < PyTuple_GET_SIZE(spec); k++) {
        PyObject *pair = PyTuple_GET_ITEM(spec, k);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) { rc = 1; break; }
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 0));
        if (i < 0) { PyErr_Clear(); rc = 1; break; }
        if (i >= nargs) continue;  /* (zip(args, param_types)) */
        rc = hspec_collect(PyTuple_GET_ITEM(pair, 1), PySequence_Fast_GET_ITEM(args, i), reps);
    }
    if (rc) goto done;
    Py_ssize_t n = PyList_GET_SIZE(reps);
    if (n && !*lineage && !(*lineage = PyList_New(0))) { rc = -1; goto done; }
    for (Py_ssize_t k = 0; rc == 0 && k + 1 < n; k += 2) {
        PyObject *rt = PyList_GET_ITEM(reps, k), *rep = PyList_GET_ITEM(reps, k + 1);
        if (has_roots) {
            PyObject *key = PyTuple_Pack(2, rt, rep);
            PyObject *root = key ? PyDict_GetItemWithError(rroots, key) : NULL;
            Py_XDECREF(key);
            if (!root && (!key || PyErr_Occurred())) { rc = -1; break; }
            if (root && root != Py_None) {
                Py_INCREF(root);
                PyObject *id = PyObject_GetAttr(root, s_id);
                Py_DECREF(root);
                if (!id || PyList_Append(*lineage, id) < 0) rc = -1;
                Py_XDECREF(id);
                if (rc) break;
            }
        }
        if (!egress) continue;
        /* getattr(rt.dtor, "taint_view", None) */
        PyObject *dtor = PyObject_GetAttr(rt, s_dtor);
        if (!dtor) { rc = -1; break; }
        PyObject *view = NULL;
#if PY_VERSION_HEX >= 0x030D0000
        int has = PyObject_GetOptionalAttr(dtor, s_taint_view, &view);
#else
        int has = _PyObject_LookupAttr(dtor, s_taint_view, &view);
#endif
        Py_DECREF(dtor);
        if (has < 0) { rc = -1; break; }
        if (!view || view == Py_None) { Py_XDECREF(view); continue; }
        PyObject *shown = PyObject_CallOneArg(view, rep);
        Py_DECREF(view);
        if (!shown) { rc = -1; break; }
        if ((!views && !(views = PyList_New(0))) || (!shared && !(shared = PyList_New(0)))
            || walk(shown, views, shared, 0, c->shared_cls, c->bytes_limit) < 0)
            rc = -1;
        Py_DECREF(shown);
    }
    if (rc || !views || !PyList_GET_SIZE(views)) goto done;
    if (!(found = core_find(c, views))) { rc = -1; goto done; }
    if (PyList_GET_SIZE(found)) {
        /* list(taint) + [t for t in found if t not in taint] (found holds each token once) */
        PyObject *merged = PySequence_List(*taint);
        for (Py_ssize_t k = 0; merged && k < PyList_GET_SIZE(found); k++) {
            PyObject *t = PyList_GET_ITEM(found, k);
            int in = PySequence_Contains(merged, t);
            if (in < 0 || (!in && PyList_Append(merged, t) < 0)) Py_CLEAR(merged);
        }
        if (!merged) { rc = -1; goto done; }
        Py_SETREF(*taint, merged);
    }
done:
    Py_DECREF(rroots);
    Py_XDECREF(reps); Py_XDECREF(views); Py_XDECREF(shared); Py_XDECREF(found);
    return rc;
}

/* an event of fields[0..n), fields[si] (si >= 0) being summarizer summ's
   summary of vs, packed with no summary object made (summ_pack_values); the
   fields of the bits of `packed` are bytes, packed already */
static PyObject *sink_emit_summarized(Sink *s, int kind, PyObject *const *fields, Py_ssize_t n, Py_ssize_t si,
                                      PyObject *summ, PyObject *vs, unsigned packed) {
    Py_ssize_t kl = s->kinds.len, dl = s->deltas.len, fl = s->fields.len;
    long long t;
    if (sink_begin(s, kind, &t) < 0) return NULL;
    int ok = pack_len(&s->fields, n, 0x90, 16, 0, 0xdc, 0xdd) == 0;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *f = fields[i];
        if (i == si) ok = summ_pack_values(summ, vs, s, 1) == 0;
        else if (packed >> i & 1) ok = buf_put(&s->fields, PyBytes_AS_STRING(f), PyBytes_GET_SIZE(f)) == 0;
        else ok = pack_obj(s, &s->fields, f, 1, 1) == 0;
    }
    return sink_end(s, ok, t, kl, dl, fl);
}

/* what typed packing holds: the values it read the generic way (and the
   objects they were read from), let go of at the event's end */
typedef struct { PyObject *h[32]; int n; } Holds;

COLD void holds_free(Holds *hs) {
    while (hs->n) Py_DECREF(hs->h[--hs->n]);
}

COLD PyObject *rd_slow(PyObject *o, PyObject *name, AttrCache *c, Holds *hs) {
    if (hs->n > 30) {  /* (not reached: the events read fewer) */
        PyErr_SetString(PyExc_RuntimeError, "Core: too many attribute reads in one event");
        return NULL;
    }
    Py_INCREF(o);
    hs->h[hs->n++] = o;
    PyObject *v = fast_attr_c(o, name, c);
    if (v) hs->h[hs->n++] = v;
    return v;
}

/* o.name: a borrowed reference, read at the slot's offset (no reference
   taken: it is packed, or read on from, before any Python code can run),
   else read the generic way and held in hs; NULL with an error */
ALWAYS_INLINE PyObject *rd(PyObject *o, PyObject *name, AttrCache *c, Holds *hs) {
    if (o == Py_None) return o;  /* (field_value: a path stops at None) */
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == c->tp && c->ver == tp->tp_version_tag && tp->tp_getattro == PyObject_GenericGetAttr
        && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
        PyObject *v = *(PyObject **)((char *)o + c->off);
        if (v) return v;
    }
    return rd_slow(o, name, c, hs);
}

/* o.a.b as field_value reads it (None when o.a is None) */
ALWAYS_INLINE PyObject *rd2(PyObject *o, PyObject *a, AttrCache *ca, PyObject *b, AttrCache *cb, Holds *hs) {
    PyObject *v = rd(o, a, ca, hs);
    return v ? rd(v, b, cb, hs) : NULL;
}

static int pk_obj_held(Sink *s, PyObject *v) {
    Py_INCREF(v);
    int rc = pack_obj(s, &s->fields, v, 1, 1);
    Py_DECREF(v);
    return rc;
}

/* v packed as pack_field's raw mode packs it: 0, or -1 with an error */
ALWAYS_INLINE int pk_raw(Sink *s, PyObject *v) {
    long long x;
    if (v == Py_None) return buf_byte(&s->fields, 0xc0);
    if (long_compact(v, &x)) return pack_int64(&s->fields, x);
    return pk_obj_held(s, v);
}

static int pk_scalar_slow(Sink *s, PyObject *v) {
    Py_INCREF(v);
    int rc = v == Py_None || PyBool_Check(v) || PyLong_Check(v) ? pack_obj(s, &s->fields, v, 1, 1)
                                                                : pack_fallback(s, &s->fields, v, 1, 1);
    Py_DECREF(v);
    return rc;
}

/* ... its "scalar" mode */
ALWAYS_INLINE int pk_scalar(Sink *s, PyObject *v) {
    long long x;
    if (long_compact(v, &x)) return pack_int64(&s->fields, x);
    return pk_scalar_slow(s, v);
}

static int pk_intern_slow(Sink *s, PyObject *v);

/* ... its "intern" mode */
static int pk_intern(Sink *s, PyObject *v) {
    if (v == Py_None || (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0)) return buf_byte(&s->fields, 0xc0);
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_CheckExact(v) && PyDict_CheckExact(s->strings)) {
        size_t slot = ((uintptr_t)v >> 4) & (ICACHE - 1);
        uint64_t version = ((PyDictObject *)s->strings)->ma_version_tag;
        if (version != s->str_known) {  /* (changed by someone else: every entry out of date) */
            s->str_epoch++;
            s->str_known = version;
        }
        if (s->icache[slot].key == v && s->icache[slot].epoch == s->str_epoch)
            return buf_put(&s->fields, s->icache[slot].data, s->icache[slot].len);
        Py_ssize_t mark = s->fields.len;
        if (pk_intern_slow(s, v) < 0) return -1;
        Py_ssize_t n = s->fields.len - mark;
        if (n <= 8) {
            Py_INCREF(v);
            Py_XSETREF(s->icache[slot].key, v);
            s->icache[slot].epoch = s->str_epoch;  /* (intern's own new entry keeps the epoch: str_known) */
            s->icache[slot].len = (int)n;
            memcpy(s->icache[slot].data, s->fields.data + mark, (size_t)n);
        }
        return 0;
    }
#endif
    return pk_intern_slow(s, v);
}

static int pk_intern_slow(Sink *s, PyObject *v) {
    Py_INCREF(v);
    PyObject *r = Sink_intern(s, v);
    Py_DECREF(v);
    if (!r) return -1;
    int rc = Py_IS_TYPE(r, s->ext_type) ? pack_ext(&s->fields, r) : pack_obj(s, &s->fields, r, 1, 1);
    Py_DECREF(r);
    return rc;
}


/* a Core method called on a Core whose __init__ did not run (an instance of
   a subclass recording in Python, whose methods are bound over these) */
static int core_unready(Core *c) {
    if (c->sink) return 0;
    PyErr_SetString(PyExc_TypeError, "Core: not initialized (Core.__init__ was not called)");
    return 1;
}

static PyObject *core_import_call(Core *c, PyObject *const *a);

/* the pending call's id an object again (pend_id), as the paths other than
   the sync host pair keep it: 0, or -1 with an error */
static int core_pend_obj(Core *c) {
    if (c->pend_num > 0) {
        PyObject *id = PyLong_FromLongLong(c->pend_num);
        if (!id) return -1;
        c->pend_num = 0;
        Py_XSETREF(c->pend_id, id);
    }
    return 0;
}

/* n when summarizer summ's values are n ints (1 <= n <= 4), packed as
   summ_pack_values' plain case packs them; else -1 */
static int summ_ints(PyObject *summ) {
    if (Py_TYPE(summ) != &SummarizerType) return -1;
    Summarizer *f = (Summarizer *)summ;
    if (!f->scalars || f->n < 1 || f->n > 4) return -1;
    for (Py_ssize_t i = 0; i < f->n; i++)
        if (f->nodes[i]->kind != N_INT) return -1;
    return (int)f->n;
}

/* vs's n items as small ints in x (vs a list or tuple of n): 1, else 0 */
ALWAYS_INLINE int small_ints(PyObject *vs, int n, long long *x) {
    if (n <= 0 || !(PyList_CheckExact(vs) || PyTuple_CheckExact(vs)) || PySequence_Fast_GET_SIZE(vs) != n) return 0;
    for (int i = 0; i < n; i++)
        if (!long_compact(PySequence_Fast_GET_ITEM(vs, i), &x[i])) return 0;
    return 1;
}

/* put_int with a u32 past 0xffff in line too (a loop's ids soon are, and
   the u32s of an import such as bench/run.py's step mostly are) */
ALWAYS_INLINE unsigned char *put_int_w(unsigned char *p, long long x) {
    return x >= 0x10000 && x < 0x100000000LL ? put_be_at(p, 0xce, (uint64_t)x, 4) : put_int(p, x);
}

/* One event of the memo's pair, its ints small (x): the memo's import.call
   (call) of call id, [id, instance id, name, stack, the args, [], [], None],
   or the import.return, [id, the results], as core_import_call and
   Core_import_return pack them, written at one pointer into room reserved
   once. Every such event runs this one function (the sync host pair's
   api_import_call_n and api_import_return_n, core_import_call_memo,
   Core_import_return's memo case), so a crossing's second event finds its
   code in the instruction cache (callgrind's cache simulation: the
   recording's code missed there on every line, the loop around it being
   larger than the cache). 0, or -1 with an error. */
static __attribute__((noinline, hot)) int core_pair_event(Core *c, const long long *x, long long id, int call) {
    Sink *s = c->sink;
    Buf *out = &s->fields;
    /* (the fields' room first: once sink_begin has written, nothing fails) */
    if (__builtin_expect(buf_reserve(out, 1 + 9 + (Py_ssize_t)sizeof(c->memo_pre) + 1 + 9 * 4 + 3) < 0, 0)) return -1;
    long long t;
    if (__builtin_expect(sink_begin(s, call ? c->k_call : c->k_return, &t) < 0, 0)) return -1;
    unsigned char *p = (unsigned char *)out->data + out->len;
    int n;
    if (call) {
        *p++ = 0x98;
        p = put_int_w(p, id);
        memcpy(p, c->memo_pre, sizeof(c->memo_pre));  /* (its whole array: the room holds it) */
        p += c->memo_pre_len;
        n = c->memo_nargs;
    } else {
        *p++ = 0x92;
        p = put_int_w(p, id);
        n = c->memo_nres;
    }
    *p++ = (unsigned char)(0x90 | n);
    for (int i = 0; i < n; i++) p = put_int_w(p, x[i]);
    if (call) {
        p[0] = 0x90;
        p[1] = 0x90;
        p[2] = 0xc0;
        p += 3;
    }
    out->len = (char *)p - out->data;
    return sink_finish(s, 1, t, 0, 0, 0);
}

static void core_memo_clear(Core *c) {
    c->memo_pre_len = 0;
    c->memo_task = c->memo_callee = NULL;
    Py_CLEAR(c->memo_info);
    Py_CLEAR(c->memo_tinfo);
}

/* the memo (see Core) set to this call's pair when its event is the plain
   one (no search, no handles: what core_import_call's packing in place
   writes with no taint and no lineage) */
static void core_memo_set(Core *c, PyObject *info, PyObject *tinfo) {
    if (PyTuple_GET_ITEM(info, I_HANDLES) == Py_True || !PyTuple_CheckExact(PyTuple_GET_ITEM(info, I_WALK))
        || PyTuple_GET_SIZE(PyTuple_GET_ITEM(info, I_WALK)) != 0)
        return;
    PyObject *parts[3] = {PyTuple_GET_ITEM(tinfo, 2), PyTuple_GET_ITEM(info, I_NAME_PACKED), PyTuple_GET_ITEM(tinfo, 1)};
    Py_ssize_t n = 0;
    for (int i = 0; i < 3; i++) {
        if (!PyBytes_CheckExact(parts[i])) return;
        n += PyBytes_GET_SIZE(parts[i]);
    }
    if (n > (Py_ssize_t)sizeof(c->memo_pre)) return;
    core_memo_clear(c);
    n = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(c->memo_pre + n, PyBytes_AS_STRING(parts[i]), PyBytes_GET_SIZE(parts[i]));
        n += PyBytes_GET_SIZE(parts[i]);
    }
    Py_INCREF(info);
    c->memo_info = info;
    Py_INCREF(tinfo);
    c->memo_tinfo = tinfo;
    c->memo_task = PyTuple_GET_ITEM(tinfo, 0);
    c->memo_callee = PyTuple_GET_ITEM(info, 0);
    c->memo_pre_len = n;
    c->memo_nargs = summ_ints(PyTuple_GET_ITEM(info, I_ARGS));
    c->memo_nres = summ_ints(PyTuple_GET_ITEM(info, I_RESULTS));
}


/* import.call of the memo's pair (core_import_call's packing in place,
   from the memo): a new reference to the call's id, or NULL with an error */
static PyObject *core_import_call_memo(Core *c, PyObject *args) {
    if (core_pend_obj(c) < 0) return NULL;
    PyObject *call_id = PyLong_FromLongLong(c->next_id);
    if (!call_id) return NULL;
    c->next_id++;
    PyObject *info = c->memo_info;
    if (c->pend_id) {
        if (PyDict_SetItem(c->callee_of, c->pend_id, c->pend_info) < 0) { Py_DECREF(call_id); return NULL; }
        Py_CLEAR(c->pend_id);
        Py_CLEAR(c->pend_info);
    }
    Py_INCREF(call_id);
    Py_XSETREF(c->last_call_id, call_id);
    c->last_is_num = 0;
    Py_INCREF(call_id);
    c->pend_id = call_id;
    Py_INCREF(info);
    c->pend_info = info;
    /* (the id is the next of a counter from 1: a positive int64) */
    long long x[4];
    if (small_ints(args, c->memo_nargs, x)) {
        if (core_pair_event(c, x, c->next_id - 1, 1) < 0) { Py_DECREF(call_id); return NULL; }
        return call_id;
    }
    /* [id, instance id, name, stack, args' summary, [], [], None] */
    static const char tail[3] = {(char)0x90, (char)0x90, (char)0xc0};
    Sink *s = c->sink;
    Py_ssize_t kl = s->kinds.len, dl = s->deltas.len, fl = s->fields.len;
    long long t;
    if (sink_begin(s, c->k_call, &t) < 0) { Py_DECREF(call_id); return NULL; }
    Buf *out = &s->fields;
    int ok = buf_byte(out, 0x98) == 0 && pack_int64(out, c->next_id - 1) == 0
             && buf_put(out, c->memo_pre, c->memo_pre_len) == 0
             && summ_pack_values(PyTuple_GET_ITEM(info, I_ARGS), args, s, 1) == 0 && buf_put(out, tail, 3) == 0;
    PyObject *r = sink_end(s, ok, t, kl, dl, fl);
    if (!r) { Py_DECREF(call_id); return NULL; }
    Py_DECREF(r);
    return call_id;
}

/* import_call(task, callee, args) -> the call's id (from the observer's counter) */
static PyObject *Core_import_call(Core *c, PyObject *const *a3, Py_ssize_t nargs) {
    if (nargs != 3) { PyErr_SetString(PyExc_TypeError, "import_call(task, callee, args)"); return NULL; }
    if (core_unready(c)) return NULL;
    if (a3[0] == c->memo_task && a3[1] == c->memo_callee && c->memo_pre_len
        && (PyList_CheckExact(a3[2]) || PyTuple_CheckExact(a3[2])))
        return core_import_call_memo(c, a3[2]);
    PyObject *call_id = PyLong_FromLongLong(c->next_id);
    if (!call_id) return NULL;
    c->next_id++;
    PyObject *a[4] = {call_id, a3[0], a3[1], a3[2]};
    PyObject *r = core_import_call(c, a);
    if (!r) { Py_DECREF(call_id); return NULL; }
    Py_DECREF(r);
    return call_id;
}

/* record import call a[0] (task a[1], callee a[2], args a[3]) */
static PyObject *core_import_call(Core *c, PyObject *const *a) {
    PyObject *call_id = a[0], *task = a[1], *callee = a[2], *args = a[3];
    if (core_pend_obj(c) < 0) return NULL;
    PyObject *info = core_cached(c->front, c->infos, c->info_of, callee, I_SIZE);
    if (!info) return NULL;
    if (!(PyList_CheckExact(args) || PyTuple_CheckExact(args)))
        return PyObject_Vectorcall(c->py_call, a, 4, NULL);
    PyObject *tinfo = core_task_info(c, task);
    if (!tinfo) return NULL;
    Py_INCREF(tinfo);  /* (held: Python code called below could reuse its slot) */
    int fallback = 0;
    PyObject *lineage = NULL;
    PyObject *taint = core_search(c, PyTuple_GET_ITEM(info, I_WALK), args, &fallback, &lineage);
    if (taint && (fallback = core_handles(c, info, tinfo, args, &taint, &lineage)) != 0) {
        Py_CLEAR(taint);
        Py_CLEAR(lineage);
    }
    if (fallback || !taint) {
        Py_DECREF(tinfo);
        if (fallback < 0) return NULL;
        return fallback ? PyObject_Vectorcall(c->py_call, a, 4, NULL) : NULL;
    }
    PyObject *refs = NULL, *r = NULL, *lineage_t = NULL;
    if (taint != c->empty && !PySequence_Check(taint)) {
        PyErr_SetString(PyExc_TypeError, "Core: find gave no list");
        goto done;
    }
    Py_INCREF(call_id);
    Py_XSETREF(c->last_call_id, call_id);
    c->last_is_num = 0;
    if (c->pend_id) {
        if (PyDict_SetItem(c->callee_of, c->pend_id, c->pend_info) < 0) goto done;
        Py_CLEAR(c->pend_id);
        Py_CLEAR(c->pend_info);
    }
    Py_INCREF(call_id);
    c->pend_id = call_id;
    Py_INCREF(info);
    c->pend_info = info;
    Py_ssize_t nt = taint == c->empty ? 0 : PySequence_Size(taint);
    if (nt < 0) goto done;
    /* (the instance id, name and stack packed already) */
    if (!PyBytes_CheckExact(PyTuple_GET_ITEM(info, I_NAME_PACKED))) {
        PyErr_SetString(PyExc_TypeError, "Core: info_of gave no packed name");
        goto done;
    }
    /* no lineage, and the taint tokens (if any: a URL passed on as it is)
       non-empty strings, up to 15: the event packed here, each token's reference
       packed as intern packs it (pk_intern), with no tuple of references
       made and no fields array walked (what sink_emit_summarized packs) */
    int in_line = !(lineage && PyList_GET_SIZE(lineage)) && nt <= 15 && (nt == 0 || PyList_CheckExact(taint));
    for (Py_ssize_t k = 0; in_line && k < nt; k++) {
        PyObject *tok = PyList_GET_ITEM(taint, k);
        /* (a str subclass too, a lifted string: intern makes it a str either way) */
        in_line = PyUnicode_Check(tok) && PyUnicode_GET_LENGTH(tok) > 0;
    }
    if (in_line) {
        /* (the three fields after the summary: the references, [], None) */
        Sink *s = c->sink;
        PyObject *inst_b = PyTuple_GET_ITEM(tinfo, 2), *name_b = PyTuple_GET_ITEM(info, I_NAME_PACKED),
                 *stack_b = PyTuple_GET_ITEM(tinfo, 1);
        Py_ssize_t kl = s->kinds.len, dl = s->deltas.len, fl = s->fields.len;
        long long t;
        if (sink_begin(s, c->k_call, &t) < 0) goto done;
        Buf *out = &s->fields;
        int ok = buf_byte(out, 0x98) == 0 && pack_obj(s, out, call_id, 1, 1) == 0
                 && buf_put(out, PyBytes_AS_STRING(inst_b), PyBytes_GET_SIZE(inst_b)) == 0
                 && buf_put(out, PyBytes_AS_STRING(name_b), PyBytes_GET_SIZE(name_b)) == 0
                 && buf_put(out, PyBytes_AS_STRING(stack_b), PyBytes_GET_SIZE(stack_b)) == 0
                 && summ_pack_values(PyTuple_GET_ITEM(info, I_ARGS), args, s, 1) == 0
                 && buf_byte(out, (unsigned char)(0x90 | nt)) == 0;
        for (Py_ssize_t k = 0; ok && k < nt; k++)
            ok = pk_intern(s, PyList_GET_ITEM(taint, k)) == 0;
        ok = ok && buf_byte(out, 0x90) == 0 && buf_byte(out, 0xc0) == 0;
        r = sink_end(s, ok, t, kl, dl, fl);
        if (r && nt == 0) core_memo_set(c, info, tinfo);  /* (the next call of this pair: from the memo) */
        goto done;
    }
    if (nt == 0) {
        Py_INCREF(c->empty);
        refs = c->empty;
    } else {
        if (!(refs = PyTuple_New(nt))) goto done;
        for (Py_ssize_t k = 0; k < nt; k++) {
            PyObject *tok = PySequence_GetItem(taint, k);
            PyObject *ref = tok ? Sink_intern(c->sink, tok) : NULL;
            Py_XDECREF(tok);
            if (!ref) goto done;
            PyTuple_SET_ITEM(refs, k, ref);
        }
    }
    if (lineage && PyList_GET_SIZE(lineage)) {
        if (!(lineage_t = PyList_AsTuple(lineage))) goto done;
    } else {
        Py_INCREF(c->empty);
        lineage_t = c->empty;
    }
    PyObject *fields[8] = {call_id, PyTuple_GET_ITEM(tinfo, 2), PyTuple_GET_ITEM(info, I_NAME_PACKED),
                           PyTuple_GET_ITEM(tinfo, 1), NULL, refs, lineage_t, Py_None};
    r = sink_emit_summarized(c->sink, c->k_call, fields, 8, 4, PyTuple_GET_ITEM(info, I_ARGS), args,
                             1u << 1 | 1u << 2 | 1u << 3);
done:
    Py_DECREF(taint);
    Py_XDECREF(lineage); Py_XDECREF(lineage_t);
    Py_XDECREF(refs); Py_XDECREF(tinfo);
    return r;
}

/* import_return(call_id, result) */
static PyObject *Core_import_return(Core *c, PyObject *const *a, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "import_return(call_id, result)"); return NULL; }
    if (core_unready(c)) return NULL;
    if (core_pend_obj(c) < 0) return NULL;
    PyObject *key = a[0];
    PyObject *p = NULL;
    if (c->pend_id == key && c->pend_info == c->memo_info && c->memo_nres > 0) {
        /* (the memo's callee, returning: its result ints packed here) */
        long long id, x[4];
        if (long_compact(key, &id) && small_ints(a[1], c->memo_nres, x)) {
            if (core_pair_event(c, x, id, 0) < 0) return NULL;
            Py_CLEAR(c->pend_id);
            Py_CLEAR(c->pend_info);
            Py_RETURN_NONE;
        }
    }
    int pending = c->pend_id && (c->pend_id == key || PyObject_RichCompareBool(c->pend_id, key, Py_EQ) == 1);
    if (pending) {
        p = c->pend_info;  /* (the reference moves to p) */
        c->pend_info = NULL;
        Py_CLEAR(c->pend_id);
    } else {
        PyErr_Clear();
        p = PyDict_GetItemWithError(c->callee_of, key);
        if (!p && PyErr_Occurred()) return NULL;
        Py_XINCREF(p);
        if (p && PyDict_DelItem(c->callee_of, key) < 0) { Py_DECREF(p); return NULL; }
    }
    PyObject *summ;
    if (p) {
        /* an info tuple of ours, or the Python path's _Plan */
        if (PyTuple_CheckExact(p)) {
            summ = PyTuple_GET_ITEM(p, I_RESULTS);
            Py_INCREF(summ);
        } else {
            summ = PyObject_GetAttr(p, s_results);
        }
        Py_DECREF(p);
        if (!summ) return NULL;
    } else {
        summ = c->summ_any;
        Py_INCREF(summ);
    }
    /* [call id, summary] (as sink_emit_summarized packs it, in place) */
    Sink *s = c->sink;
    Py_ssize_t kl = s->kinds.len, dl = s->deltas.len, fl = s->fields.len;
    long long t;
    PyObject *r = NULL;
    if (sink_begin(s, c->k_return, &t) == 0) {
        int ok = buf_byte(&s->fields, 0x92) == 0 && pack_obj(s, &s->fields, key, 1, 1) == 0
                 && summ_pack_values(summ, a[1], s, 1) == 0;
        r = sink_end(s, ok, t, kl, dl, fl);
    }
    Py_DECREF(summ);
    return r;
}

/* task_return(task, result) */
static PyObject *Core_task_return(Core *c, PyObject *const *a, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "task_return(task, result)"); return NULL; }
    if (core_unready(c)) return NULL;
    static AttrCache c_ft, c_id;
    PyObject *ft = fast_attr_c(a[0], s_ft, &c_ft);
    if (!ft) return NULL;
    PyObject *info = core_cached(c->rfront, c->rinfos, c->ret_info_of, ft, 2);
    Py_DECREF(ft);
    if (!info) return NULL;
    Py_INCREF(info);  /* (the front may drop it while the summary is made) */
    /* [task.id, summary]: sink_emit_summarized's event, its steps in line */
    Sink *s = c->sink;
    Py_ssize_t kl = s->kinds.len, dl = s->deltas.len, fl = s->fields.len;
    long long t;
    if (sink_begin(s, c->k_task_return, &t) < 0) {
        Py_DECREF(info);
        return NULL;
    }
    int ok;
    {
        Holds hs;
        hs.n = 0;
        PyObject *id;
        ok = buf_byte(&s->fields, 0x92) == 0 && (id = rd(a[0], s_id, &c_id, &hs)) && pk_raw(s, id) == 0;
        holds_free(&hs);
        ok = ok && summ_pack_values(PyTuple_GET_ITEM(info, 1), a[1], s, 1) == 0;
    }
    Py_DECREF(info);
    return sink_end(s, ok, t, kl, dl, fl);
}

/* tok[:k] (a new reference, or NULL with an error): the last one made
   when tok starts with it (roots planted one after another share their
   prefix, "req-" or "htt": no new string, its hash known) */
static PyObject *core_prefix(Core *c, PyObject *tok, Py_ssize_t k) {
    PyObject *last = c->last_prefix;
    if (last && PyUnicode_GET_LENGTH(last) == k && PyUnicode_KIND(last) == PyUnicode_KIND(tok)
        && memcmp(PyUnicode_DATA(last), PyUnicode_DATA(tok), (size_t)k * PyUnicode_KIND(tok)) == 0)
        return Py_NewRef(last);
    PyObject *p = PyUnicode_Substring(tok, 0, k);
    if (p) Py_XSETREF(c->last_prefix, Py_NewRef(p));
    return p;
}

/* TaintIndex.add(tok, root_id) of a str tok: 0, or -1 with an error */
static int core_add(Core *c, PyObject *tok, PyObject *root_id) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(tok);
    if (n == 0) return 0;  /* (if not token: return) */
    int known = PyDict_Contains(c->roots, tok);
    if (known < 0) return -1;
    if (known) {
        if (!c->more) return 0;
        /* more[token] = more.get(token, 0) + 1 */
        PyObject *k = PyDict_GetItemWithError(c->more, tok);
        if (!k && PyErr_Occurred()) return -1;
        PyObject *one = PyLong_FromLong(1);
        PyObject *k1 = !one ? NULL : k ? PyNumber_Add(k, one) : Py_NewRef(one);
        Py_XDECREF(one);
        int rc = k1 ? PyDict_SetItem(c->more, tok, k1) : -1;
        Py_XDECREF(k1);
        return rc;
    }
    /* roots[tok] = root_id; groups[tok[:prefix]][len(tok)].add(tok) */
    if (PyDict_SetItem(c->roots, tok, root_id) < 0) return -1;
    PyObject *prefix = core_prefix(c, tok, n < c->prefix ? n : c->prefix);
    PyObject *len = prefix ? PyLong_FromSsize_t(n) : NULL;
    PyObject *by_len = NULL, *toks = NULL;
    int rc = len ? 0 : -1;
    if (rc == 0) {
        by_len = PyDict_GetItemWithError(c->groups, prefix);
        if (by_len) Py_INCREF(by_len);
        else if (PyErr_Occurred() || !(by_len = PyDict_New()) || PyDict_SetItem(c->groups, prefix, by_len) < 0)
            rc = -1;
    }
    if (rc == 0) {
        toks = PyDict_GetItemWithError(by_len, len);
        if (toks) Py_INCREF(toks);
        else if (PyErr_Occurred() || !(toks = PySet_New(NULL)) || PyDict_SetItem(by_len, len, toks) < 0)
            rc = -1;
    }
    if (rc == 0) rc = PySet_Add(toks, tok);
    Py_XDECREF(prefix); Py_XDECREF(len); Py_XDECREF(by_len); Py_XDECREF(toks);
    return rc;
}

/* TaintIndex.expand: the encoded forms of the pending roots' tokens
   indexed, in the order they were planted (pending emptied in place; the
   forms from encoded_forms, as the Python one gets them): 0, or -1 with an
   error. (~3 us a root less than the Python method: the service guest's
   every request) */
static PyObject *mod_ascii_forms(PyObject *self, PyObject *tok);
static int core_expand(Core *c) {
    Py_ssize_t np = PyList_GET_SIZE(c->pending);
    PyObject *pending = PyList_GetSlice(c->pending, 0, np);
    if (!pending || PyList_SetSlice(c->pending, 0, np, NULL) < 0) {
        Py_XDECREF(pending);
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(pending); i++) {
        PyObject *item = PyList_GET_ITEM(pending, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "TaintIndex.pending: (tokens, root id) pairs");
            rc = -1;
            break;
        }
        PyObject *root_id = PyTuple_GET_ITEM(item, 1);
        PyObject *toks = PySequence_Fast(PyTuple_GET_ITEM(item, 0), "TaintIndex.pending: tokens");
        if (!toks) { rc = -1; break; }
        for (Py_ssize_t k = 0; rc == 0 && k < PySequence_Fast_GET_SIZE(toks); k++) {
            PyObject *tok = PySequence_Fast_GET_ITEM(toks, k);
            /* (if tok and tok.__class__ is str) */
            if (!PyUnicode_CheckExact(tok) || PyUnicode_GET_LENGTH(tok) == 0) continue;
            PyObject *forms = NULL;
            if (c->forms_c && PyUnicode_IS_READY(tok) && PyUnicode_IS_ASCII(tok))
                forms = mod_ascii_forms(NULL, tok);  /* (what encoded_forms gives: a tuple of pairs) */
            else
                forms = PyObject_CallOneArg(c->forms_of, tok);
            PyObject *seq = forms ? PySequence_Fast(forms, "encoded_forms: a sequence") : NULL;
            Py_XDECREF(forms);
            if (!seq) { rc = -1; break; }
            for (Py_ssize_t f = 0; rc == 0 && f < PySequence_Fast_GET_SIZE(seq); f++) {
                PyObject *pair = PySequence_Fast_GET_ITEM(seq, f);
                if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2
                    || !PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 0))) {
                    PyErr_SetString(PyExc_TypeError, "encoded_forms: (form, encoding) pairs of strings");
                    rc = -1;
                } else {
                    rc = core_add(c, PyTuple_GET_ITEM(pair, 0), root_id);
                }
            }
            Py_DECREF(seq);
        }
        Py_DECREF(toks);
    }
    Py_DECREF(pending);
    return rc;
}

/* set_forms(encoded_forms, ascii_in_c=False): the pending tokens' forms
   indexed by the core itself (core_expand), with this function's forms;
   with ascii_in_c, an ASCII token's from ascii_forms with no call of the
   function (for the function that gives the same: tokens.encoded_forms) */
static PyObject *Core_set_forms(Core *c, PyObject *args) {
    PyObject *fn;
    int in_c = 0;
    if (!PyArg_ParseTuple(args, "O|p:set_forms", &fn, &in_c)) return NULL;
    if (core_unready(c)) return NULL;
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "set_forms(encoded_forms): a callable");
        return NULL;
    }
    Py_INCREF(fn);
    Py_XSETREF(c->forms_of, fn);
    c->forms_c = in_c;
    Py_RETURN_NONE;
}

/* expand_forms(): core_expand, called (what a search does first) */
static PyObject *Core_expand_forms(Core *c, PyObject *unused) {
    if (core_unready(c)) return NULL;
    if (!c->forms_of || !c->pending) {
        PyErr_SetString(PyExc_TypeError, "expand_forms: set_forms was not called");
        return NULL;
    }
    if (core_expand(c) < 0) return NULL;
    Py_RETURN_NONE;
}

/* plant(task): a root task's taint tokens, added to the index (roots,
   groups: TaintIndex.add) and recorded (taint.plant) */
static PyObject *Core_plant(Core *c, PyObject *task) {
    static AttrCache c_tokens, c_id;
    PyObject *tokens = fast_attr_c(task, s_tokens, &c_tokens);
    PyObject *tid = tokens ? fast_attr_c(task, s_id, &c_id) : NULL;
    /* (PySequence_Fast iterates what is not an exact tuple or list into a
       list: a tuple whose class iterates it as a tuple, a Planted, gives
       its items as they are, ~1k instructions less. Only tp_iter says so: a
       Python subclass of tuple never has tuple's sq_item, which its
       __getitem__ (tuple's mp_subscript) replaces with a generic one) */
    PyObject *seq = !tid ? NULL
                    : PyTuple_Check(tokens) && Py_TYPE(tokens)->tp_iter == PyTuple_Type.tp_iter
                    ? Py_NewRef(tokens) : PySequence_Fast(tokens, "task.tokens: a sequence");
    /* tokens.plain (callscope.model.tokens.Planted): only the first `plain`
       are recorded (taint.plant); the rest, their encoded forms, are only
       indexed (the model derives them from the plain ones) */
    Py_ssize_t n_emit = seq ? PySequence_Fast_GET_SIZE(seq) : 0;
    int lazy = 0;  /* tokens.forms: their encoded forms are indexed when first searched for (TaintIndex.pending) */
    int attrs = seq && !PyTuple_CheckExact(tokens) && !PyList_CheckExact(tokens);
    if (attrs && Py_TYPE(tokens) == c->lazy_tp && (Py_TYPE(tokens)->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
        && Py_TYPE(tokens)->tp_version_tag == c->lazy_ver) {
        /* plant_tokens' class, unchanged since Core was given it (its forms
           True and plain its length, checked then): the same as reading
           the two attributes (~600 instructions), when the instance has no
           attribute of its own (forms is not a data descriptor) */
        PyObject **dp = _PyObject_GetDictPtr(tokens);
        if (!dp || !*dp || !PyDict_GET_SIZE(*dp)) {
            lazy = 1;
            attrs = 0;
        }
    }
    if (attrs) {
        PyObject *forms = PyObject_GetAttr(tokens, s_forms);
        if (forms) {
            lazy = PyObject_IsTrue(forms);
            Py_DECREF(forms);
            if (lazy < 0) { Py_DECREF(seq); seq = NULL; }
        } else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
        } else {
            Py_DECREF(seq);
            seq = NULL;
        }
    }
    if (attrs && seq) {
        PyObject *plain = PyObject_GetAttr(tokens, s_plain);
        if (plain) {
            Py_ssize_t k = PyLong_AsSsize_t(plain);
            Py_DECREF(plain);
            if (k == -1 && PyErr_Occurred()) { Py_DECREF(seq); seq = NULL; }
            else if (k >= 0 && k < n_emit) n_emit = k;
        } else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
        } else {
            Py_DECREF(seq);
            seq = NULL;
        }
    }
    if (seq && lazy && c->pending && n_emit > 0) {
        /* (an exact tuple of the tokens, not seq, which for a Planted is
           the Planted, with its __dict__: the pair and it are untracked by
           the GC at its next collection, not walked at every later one
           while they wait) */
        PyObject *toks = PySequence_Tuple(seq);
        PyObject *item = toks ? PyTuple_Pack(2, toks, tid) : NULL;
        Py_XDECREF(toks);
        int rc = item ? PyList_Append(c->pending, item) : -1;
        Py_XDECREF(item);
        if (rc < 0) { Py_DECREF(seq); seq = NULL; }
    }
    Py_XDECREF(tokens);
    if (!seq) { Py_XDECREF(tid); return NULL; }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *tok = PySequence_Fast_GET_ITEM(seq, i);
        if (PyUnicode_Check(tok)) {
            /* TaintIndex.add (a token already in: more[tok] += 1, one more
               add to undo before it leaves the index, retire) */
            if (core_add(c, tok, tid) < 0) goto fail;
        } else {
            /* (another object is not indexed; what `if not token` and
               `token in roots` raise for it is raised) */
            int truth = PyObject_IsTrue(tok);
            if (truth < 0 || (truth > 0 && PyDict_Contains(c->roots, tok) < 0)) goto fail;
        }
        if (i >= n_emit) continue;
        PyObject *ref = Sink_intern(c->sink, tok);
        if (!ref) goto fail;
        PyObject *fields[2] = {tid, ref};
        PyObject *r = sink_emit_fields(c->sink, c->k_taint, fields, 2);
        Py_DECREF(ref);
        if (!r) goto fail;
        Py_DECREF(r);
    }
    Py_DECREF(seq);
    Py_DECREF(tid);
    Py_RETURN_NONE;
fail:
    Py_DECREF(seq);
    Py_DECREF(tid);
    return NULL;
}

/* TaintIndex._release(token): one add of token undone (out of the index
   when no root still in it added it): 0, or -1 with an error */
static int core_release(Core *c, PyObject *tok) {
    if (c->more) {
        PyObject *n = PyDict_GetItemWithError(c->more, tok);
        if (n && n != Py_None) {  /* (more.get(token) is not None) */
            Py_INCREF(n);
            PyObject *one = PyLong_FromLong(1);
            int gt = one ? PyObject_RichCompareBool(n, one, Py_GT) : -1;
            int rc;
            if (gt > 0) {
                PyObject *n1 = PyNumber_Subtract(n, one);
                rc = n1 ? PyDict_SetItem(c->more, tok, n1) : -1;
                Py_XDECREF(n1);
            } else {
                rc = gt < 0 ? -1 : PyDict_DelItem(c->more, tok);
            }
            Py_XDECREF(one);
            Py_DECREF(n);
            return rc;
        }
        if (PyErr_Occurred()) return -1;
    }
    /* roots.pop(token, None) is None: nothing more */
    PyObject *root = PyDict_GetItemWithError(c->roots, tok);
    if (!root) return PyErr_Occurred() ? -1 : 0;
    int none = root == Py_None;
    if (PyDict_DelItem(c->roots, tok) < 0) return -1;
    if (none) return 0;
    /* prefix = token[:PREFIX]; groups[prefix][len(token)].discard(token), emptied ones deleted */
    Py_ssize_t n = PyObject_Length(tok);
    if (n < 0) return -1;
    PyObject *prefix = PySequence_GetSlice(tok, 0, c->prefix);
    PyObject *len = prefix ? PyLong_FromSsize_t(n) : NULL;
    int rc = len ? 0 : -1;
    PyObject *by_len = rc == 0 ? PyDict_GetItemWithError(c->groups, prefix) : NULL;
    if (!by_len && PyErr_Occurred()) rc = -1;
    Py_XINCREF(by_len);
    PyObject *toks = by_len ? PyDict_GetItemWithError(by_len, len) : NULL;
    if (!toks && PyErr_Occurred()) rc = -1;
    Py_XINCREF(toks);
    if (rc == 0 && toks) {
        rc = PySet_Discard(toks, tok) < 0 ? -1 : 0;
        Py_ssize_t left = rc == 0 ? PyObject_Length(toks) : 0;
        if (left < 0) rc = -1;
        if (rc == 0 && left == 0) {
            rc = PyDict_DelItem(by_len, len);
            Py_ssize_t groups_left = rc == 0 ? PyObject_Length(by_len) : 0;
            if (groups_left < 0) rc = -1;
            if (rc == 0 && groups_left == 0) rc = PyDict_DelItem(c->groups, prefix);
        }
    }
    Py_XDECREF(toks); Py_XDECREF(by_len); Py_XDECREF(len); Py_XDECREF(prefix);
    return rc;
}

/* getattr(o, name, dflt) truth: 1, 0, -1 with an error */
static int attr_or_truth(PyObject *o, PyObject *name, int dflt) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (!v) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
        PyErr_Clear();
        return dflt;
    }
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

/* TaintIndex.retire(tokens, root_id): 0, or -1 with an error */
static int core_retire(Core *c, PyObject *tokens, PyObject *root_id) {
    int truth = PyObject_IsTrue(tokens);
    if (truth <= 0) return truth;
    PyObject *seq = PySequence_Fast(tokens, "tokens: a sequence");
    if (!seq) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *tok = PySequence_Fast_GET_ITEM(seq, i);
        int t = PyObject_IsTrue(tok);
        rc = t < 0 ? -1 : t ? core_release(c, tok) : 0;
    }
    Py_DECREF(seq);
    if (rc < 0) return -1;
    /* queues_forms(tokens): bool(tokens) and getattr(tokens, "forms", False)
       and getattr(tokens, "plain", len(tokens)) (tokens is true here) */
    int forms = attr_or_truth(tokens, s_forms, 0);
    if (forms <= 0) return forms;
    int plain = attr_or_truth(tokens, s_plain, 1);
    if (plain <= 0) return plain;
    if (c->pending) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(c->pending); i++) {
            PyObject *item = PyList_GET_ITEM(c->pending, i);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 2) {
                PyErr_SetString(PyExc_TypeError, "TaintIndex.pending: (tokens, root id) pairs");
                return -1;
            }
            Py_INCREF(item);
            int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(item, 1), root_id, Py_EQ);
            Py_DECREF(item);
            if (eq < 0) return -1;
            if (eq) return PySequence_DelItem(c->pending, i);  /* (never expanded: only dropped) */
        }
    }
    /* indexed already: its encoded forms released (TaintIndex.release_forms) */
    PyObject *r = PyObject_CallOneArg(c->release_forms, tokens);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

/* root_exit(task): the observer's _root_exit (a root task that planted
   tokens exited: the oldest one's tokens retired once more than the taint
   window's roots have) */
static PyObject *Core_root_exit(Core *c, PyObject *task) {
    if (core_unready(c)) return NULL;
    if (!c->exited) {
        PyErr_SetString(PyExc_TypeError, "Core.root_exit: set_root_exit was not called");
        return NULL;
    }
    static AttrCache c_id, c_tokens;
    PyObject *id = fast_attr_c(task, s_id, &c_id);
    PyObject *tokens = id ? fast_attr_c(task, s_tokens, &c_tokens) : NULL;
    int rc = tokens ? PyDict_SetItem(c->exited, id, tokens) : -1;
    Py_XDECREF(id);
    Py_XDECREF(tokens);
    if (rc < 0) return NULL;
    if (PyDict_GET_SIZE(c->exited) <= c->window) Py_RETURN_NONE;
    Py_ssize_t pos = 0;
    PyObject *root_id, *old;
    if (!PyDict_Next(c->exited, &pos, &root_id, &old)) Py_RETURN_NONE;
    Py_INCREF(root_id);
    Py_INCREF(old);
    PyObject *r = NULL;
    if (PyDict_DelItem(c->exited, root_id) == 0 && core_retire(c, old, root_id) == 0) {
        PyObject *fields[1] = {root_id};
        r = sink_emit_fields(c->sink, c->k_retire, fields, 1);
    }
    Py_DECREF(root_id);
    Py_DECREF(old);
    return r;
}

/* set_root_exit(exited, window, retire_kind, release_forms): what root_exit uses */
static PyObject *Core_set_root_exit(Core *c, PyObject *args) {
    PyObject *exited, *release_forms;
    Py_ssize_t window;
    int kind;
    if (!PyArg_ParseTuple(args, "O!niO", &PyDict_Type, &exited, &window, &kind, &release_forms)) return NULL;
    if (core_unready(c)) return NULL;
    Py_INCREF(exited);
    Py_XSETREF(c->exited, exited);
    Py_INCREF(release_forms);
    Py_XSETREF(c->release_forms, release_forms);
    c->window = window;
    c->k_retire = kind;
    Py_RETURN_NONE;
}

/* set_planted(cls): the class of the tokens plant_tokens makes
   (callscope.model.tokens._PlantedLazily: a tuple subclass iterated as a
   tuple, whose `forms` is true and whose `plain` is property(len)), read by
   plant off the class while the class is unchanged (its version tag); a
   class that is not so is refused (ValueError) */
static PyObject *Core_set_planted(Core *c, PyObject *cls) {
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)
        || ((PyTypeObject *)cls)->tp_iter != PyTuple_Type.tp_iter) {
        PyErr_SetString(PyExc_ValueError, "set_planted: a tuple subclass iterated as a tuple");
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    PyObject *plain = _PyType_Lookup(tp, s_plain);  /* (borrowed; gives the class a version tag) */
    PyObject *forms = _PyType_Lookup(tp, s_forms);
    int ok = plain && forms && Py_IS_TYPE(plain, &PyProperty_Type) && !Py_TYPE(forms)->tp_descr_get
             && tp->tp_as_sequence && tp->tp_as_sequence->sq_length == PyTuple_Type.tp_as_sequence->sq_length;
    if (ok) {
        int t = PyObject_IsTrue(forms);
        if (t < 0) return NULL;
        PyObject *fget = PyObject_GetAttrString(plain, "fget");
        if (!fget) return NULL;
        PyObject *len = PyDict_GetItemString(PyEval_GetBuiltins(), "len");  /* (borrowed) */
        ok = t && len && fget == len;
        Py_DECREF(fget);
    }
    if (!ok || !(tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
        PyErr_SetString(PyExc_ValueError, "set_planted: a class whose forms is true and plain property(len)");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(c->lazy_tp, tp);
    c->lazy_ver = tp->tp_version_tag;
    Py_RETURN_NONE;
}

/* plant(task), on a Core that was initialized */
static PyObject *Core_plant_ready(Core *c, PyObject *task) {
    if (core_unready(c)) return NULL;
    return Core_plant(c, task);
}

/* copy_op(inst, kind, op, handle, result, size): a stream/future built-in */
static PyObject *Core_copy_op(Core *c, PyObject *const *a, Py_ssize_t nargs) {
    if (nargs != 6) { PyErr_SetString(PyExc_TypeError, "copy_op(inst, kind, op, handle, result, size)"); return NULL; }
    if (core_unready(c)) return NULL;
    PyObject *inst = a[0], *kind = a[1], *op = a[2], *handle = a[3], *result = a[4], *size = a[5];
    int k = -1, is_new = 0, m;
    for (m = 0; m < COPY_MEMO && c->copy_memo[m].kind; m++) {
        if (c->copy_memo[m].kind == kind && c->copy_memo[m].op == op) {
            k = c->copy_memo[m].k;
            is_new = c->copy_memo[m].is_new;
            break;
        }
    }
    if (k < 0) {
        PyObject *ops = PyDict_GetItemWithError(c->copy_kinds, kind);
        PyObject *kid = ops ? PyDict_GetItemWithError(ops, op) : NULL;
        if (!kid) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "no event for %R %R", kind, op);
            return NULL;
        }
        k = (int)PyLong_AsLong(kid);
        if (k == -1 && PyErr_Occurred()) return NULL;
        is_new = PyUnicode_Check(op) && PyUnicode_CompareWithASCIIString(op, "new") == 0;
        if (m < COPY_MEMO && PyUnicode_CheckExact(kind) && PyUnicode_CheckExact(op)) {
            /* (held: the same objects next time mean the same strings) */
            Py_INCREF(kind); Py_INCREF(op);
            c->copy_memo[m].kind = kind; c->copy_memo[m].op = op;
            c->copy_memo[m].k = k; c->copy_memo[m].is_new = is_new;
        }
    }
    PyObject *value = NULL;
    if (result == Py_None || PyLong_CheckExact(result) || PyBool_Check(result)) {  /* (as the recorder's _v) */
        Py_INCREF(result);
        value = result;
    } else if (!(value = PyObject_CallOneArg(c->sink->fallback, result))) {
        return NULL;
    }
    static AttrCache c_inst_id, c_task, c_root, c_root_id;
    PyObject *inst_id = fast_attr_c(inst, s_id, &c_inst_id);
    if (!inst_id) { Py_DECREF(value); return NULL; }
    PyObject *fields[4] = {handle, is_new ? Py_None : size, value, inst_id};
    PyObject *r = sink_emit_fields(c->sink, k, fields, 4);
    Py_DECREF(value);
    if (r && is_new && PyList_GET_SIZE(c->stack)) {
        /* the stream or future's lineage: the root task it was created under */
        Py_DECREF(r);
        PyObject *thread = PyList_GET_ITEM(c->stack, PyList_GET_SIZE(c->stack) - 1);
        PyObject *task = fast_attr_c(thread, s_task, &c_task);
        PyObject *root = task ? fast_attr_c(task, s_root, &c_root) : NULL;
        PyObject *root_id = root ? fast_attr_c(root, s_id, &c_root_id) : NULL;
        PyObject *kind_ref = root_id ? Sink_intern(c->sink, kind) : NULL;
        if (kind_ref) {
            PyObject *more[4] = {kind_ref, inst_id, handle, root_id};
            r = sink_emit_fields(c->sink, c->k_handle_new, more, 4);
        } else {
            r = NULL;
        }
        Py_XDECREF(task); Py_XDECREF(root); Py_XDECREF(root_id); Py_XDECREF(kind_ref);
    }
    Py_DECREF(inst_id);
    return r;
}

/* next_call_id() -> the next import call's id, taken (a call recorded
   without import_call: cancelled before it started) */
static PyObject *Core_next_call_id(Core *c, PyObject *unused) {
    if (core_unready(c)) return NULL;
    return PyLong_FromLongLong(c->next_id++);
}

static PyObject *Core_get_last_call_id(Core *c, void *unused) {
    if (c->last_is_num) return PyLong_FromLongLong(c->last_num);
    PyObject *v = c->last_call_id ? c->last_call_id : Py_None;
    Py_INCREF(v);
    return v;
}

static int Core_set_last_call_id(Core *c, PyObject *v, void *unused) {
    Py_XINCREF(v);
    Py_XSETREF(c->last_call_id, v);
    c->last_is_num = 0;
    return 0;
}

static int Core_init(Core *c, PyObject *args, PyObject *kw) {
    static char *names[] = {"sink", "callee_of", "roots", "groups", "summ_any", "fallbacks", "kinds", "info_of",
                            "ret_info_of", "shared_classes", "limits", "copy_kinds", "stack", "handle_new_kind", "taint_kind",
                            "prefix", "pending", "expand", "more", NULL};
    /* fallbacks and kinds: triples (import_call, import_return, task_return);
       shared_classes: (SharedStreamImpl, SharedFutureImpl); limits: (bytes
       searched of one byte string, characters searched of one string);
       copy_kinds: {"stream"|"future": {op: kind id}}; stack: the runtime's
       list of running threads (their last one's task's root owns a new
       stream or future); handle_new_kind, taint_kind: the kind ids of
       handle.new and taint.plant; prefix: TaintIndex.PREFIX; pending, expand
       (optional): TaintIndex.pending and TaintIndex.expand; more (optional):
       TaintIndex.more */
    PyObject *sink, *callee_of, *roots, *groups, *summ_any, *py_call, *py_return, *py_task_return, *info_of,
        *ret_info_of, *cls0, *cls1, *copy_kinds, *stack, *pending = NULL, *expand = NULL, *more = NULL;
    int k1, k2, k3, k4, k5;
    Py_ssize_t prefix;
    Py_ssize_t bytes_limit, scan_limit;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!O!O!O(OOO)(iii)OO(OO)(nn)O!O!iin|O!OO!", names, &SinkType, &sink,
                                     &PyDict_Type, &callee_of, &PyDict_Type, &roots, &PyDict_Type, &groups,
                                     &summ_any, &py_call, &py_return, &py_task_return, &k1, &k2, &k3, &info_of,
                                     &ret_info_of, &cls0, &cls1, &bytes_limit, &scan_limit, &PyDict_Type,
                                     &copy_kinds, &PyList_Type, &stack, &k4, &k5, &prefix,
                                     &PyList_Type, &pending, &expand, &PyDict_Type, &more))
        return -1;
    if (c->sink) {
        PyErr_SetString(PyExc_TypeError, "Core is made once");
        return -1;
    }
#define KEEP(field, value) Py_INCREF(value); c->field = value
    KEEP(sink, (Sink *)sink); KEEP(callee_of, callee_of); KEEP(roots, roots); KEEP(groups, groups);
    KEEP(summ_any, summ_any); KEEP(py_call, py_call); KEEP(py_return, py_return);
    KEEP(py_task_return, py_task_return); KEEP(info_of, info_of); KEEP(ret_info_of, ret_info_of);
    KEEP(shared_cls[0], cls0); KEEP(shared_cls[1], cls1); KEEP(copy_kinds, copy_kinds); KEEP(stack, stack);
#undef KEEP
    Py_XINCREF(pending); c->pending = pending;
    Py_XINCREF(expand); c->expand = expand;
    Py_XINCREF(more); c->more = more;
    c->next_id = 1;
    c->k_handle_new = k4;
    c->k_taint = k5;
    c->prefix = prefix > 0 ? prefix : 1;
    c->bytes_limit = bytes_limit > 0 ? bytes_limit : 0;
    c->scan_limit = scan_limit > 0 ? scan_limit : 0;
    c->k_call = k1; c->k_return = k2; c->k_task_return = k3;
    c->infos = PyDict_New();
    c->rinfos = PyDict_New();
    c->empty = PyTuple_New(0);
    c->last_call_id = PyLong_FromLong(0);
    return c->infos && c->rinfos && c->empty && c->last_call_id ? 0 : -1;
}

static int Core_traverse(Core *c, visitproc visit, void *arg) {
    Py_VISIT(c->forms_of);
    Py_VISIT(c->lazy_tp);
    Py_VISIT(c->sink); Py_VISIT(c->callee_of); Py_VISIT(c->roots); Py_VISIT(c->groups); Py_VISIT(c->summ_any);
    Py_VISIT(c->py_call); Py_VISIT(c->py_return); Py_VISIT(c->py_task_return); Py_VISIT(c->info_of);
    Py_VISIT(c->ret_info_of); Py_VISIT(c->infos); Py_VISIT(c->rinfos);
    Py_VISIT(c->shared_cls[0]); Py_VISIT(c->shared_cls[1]); Py_VISIT(c->copy_kinds); Py_VISIT(c->stack);
    Py_VISIT(c->pend_info); Py_VISIT(c->roots_inst); Py_VISIT(c->roots_of_inst);
    Py_VISIT(c->pending); Py_VISIT(c->expand); Py_VISIT(c->more);
    Py_VISIT(c->memo_info); Py_VISIT(c->memo_tinfo); Py_VISIT(c->exited); Py_VISIT(c->release_forms);
    /* (every reference Core_clear drops: one not visited keeps a cycle through it alive, ft_last
       the export's function type, whose resource types' destructors hold the store) */
    Py_VISIT(c->ft_last); Py_VISIT(c->last_prefix); Py_VISIT(c->last_call_id); Py_VISIT(c->pend_id);
    Py_VISIT(c->empty);
    for (int i = 0; i < 64; i++) { Py_VISIT(c->front[i]); Py_VISIT(c->rfront[i]); Py_VISIT(c->tfront[i]); }
    for (int i = 0; i < N_HOOKS; i++) Py_VISIT(c->hooks[i]);
    return 0;
}

static int Core_clear(Core *c) {
    Py_CLEAR(c->sink); Py_CLEAR(c->callee_of); Py_CLEAR(c->roots); Py_CLEAR(c->groups); Py_CLEAR(c->summ_any);
    Py_CLEAR(c->py_call); Py_CLEAR(c->py_return); Py_CLEAR(c->py_task_return); Py_CLEAR(c->info_of);
    Py_CLEAR(c->ret_info_of); Py_CLEAR(c->infos); Py_CLEAR(c->rinfos); Py_CLEAR(c->last_call_id);
    Py_CLEAR(c->empty); Py_CLEAR(c->shared_cls[0]); Py_CLEAR(c->shared_cls[1]); Py_CLEAR(c->copy_kinds);
    Py_CLEAR(c->pend_id); Py_CLEAR(c->pend_info); Py_CLEAR(c->roots_inst); Py_CLEAR(c->roots_of_inst);
    Py_CLEAR(c->pending); Py_CLEAR(c->expand); Py_CLEAR(c->more); Py_CLEAR(c->ft_last);
    core_memo_clear(c);
    for (int i = 0; i < COPY_MEMO; i++) { Py_CLEAR(c->copy_memo[i].kind); Py_CLEAR(c->copy_memo[i].op); }
    Py_CLEAR(c->exited); Py_CLEAR(c->release_forms); Py_CLEAR(c->lazy_tp); Py_CLEAR(c->last_prefix); Py_CLEAR(c->forms_of);
    for (int i = 0; i < 64; i++) { Py_CLEAR(c->front[i]); Py_CLEAR(c->rfront[i]); Py_CLEAR(c->tfront[i]); }
    for (int i = 0; i < N_HOOKS; i++) Py_CLEAR(c->hooks[i]);
    Py_CLEAR(c->stack);
    return 0;
}

static void Core_dealloc(Core *c) {
    PyObject_GC_UnTrack(c);
    Core_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyMethodDef Core_methods[];
static PyTypeObject CoreType;

static const char *Core_hook_names[N_HOOKS] = {"task_new", "thread_new", "thread_switch", "task_start", "task_exit",
                                               "subtask_new", "waitable_set_wait", "event_delivered"};

/* ---- the transitions, typed: each hook's fields read and packed here
   (what the emitter set_hooks found would pack, byte for byte) */

/* the shapes set_hooks accepts (Sink.emitter's field specs: observe.py's
   RecordingObserver.__init__ makes exactly these) */
typedef struct { int arg, mode; const char *path; } WantField;
typedef struct { Py_ssize_t nargs; int n; WantField f[8]; int then_tokens; } WantHook;
static const WantHook want_hooks[N_HOOKS] = {
    /* task_new(task) */
    {1, 7, {{0, F_RAW, "id"}, {0, F_RAW, "inst.id"}, {0, F_INTERN, "name"}, {0, F_RAW, "caller.id"},
            {0, F_RAW, "root.id"}, {0, F_INTERN, "label"}, {0, F_NOT, "ft.async_"}}, 1},
    /* thread_new(tid, task_id) */
    {2, 2, {{0, F_RAW, ""}, {1, F_RAW, ""}}, 0},
    /* thread_switch: the sink's switch */
    {2, 0, {{0}}, 0},
    /* task_start(task) */
    {1, 1, {{0, F_RAW, "id"}}, 0},
    /* task_exit(task) */
    {1, 1, {{0, F_RAW, "id"}}, 1},
    /* subtask_new(task, handle, name, state) */
    {4, 3, {{0, F_RAW, "id"}, {1, F_RAW, ""}, {3, F_RAW, ""}}, 0},
    /* waitable_set_wait(thread, set_handle) */
    {2, 2, {{0, F_RAW, "tid"}, {1, F_RAW, ""}}, 0},
    /* event_delivered(thread, code, p1, p2) */
    {4, 4, {{0, F_RAW, "tid"}, {1, F_RAW, ""}, {2, F_RAW, ""}, {3, F_SCALAR, ""}}, 0},
};

/* f reads argument arg's attribute path (dotted, "" for the argument) */
static int spec_is(const FieldSpec *f, int arg, const char *path) {
    if (f->arg != arg) return 0;
    int k = 0;
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        if (k >= f->npath) return 0;
        PyObject *name = f->path[k++];
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(name, &n);
        if (!u) { PyErr_Clear(); return 0; }
        if ((size_t)n != len || memcmp(u, path, len) != 0) return 0;
        path += len + (dot != NULL);
    }
    return k == f->npath;
}

/* hooks[i]'s shape: 1 when core_typed packs what it would */
static int hook_typed(Core *c, int i, PyObject *h) {
    const WantHook *w = &want_hooks[i];
    if (i == 2)
        return PyCFunction_Check(h) && PyCFunction_GET_SELF(h) == (PyObject *)c->sink
               && PyCFunction_GET_FUNCTION(h) == (PyCFunction)(void (*)(void))Sink_switch && c->sink->switch_kind >= 0;
    if (!Py_IS_TYPE(h, &EmitterType)) return 0;
    Emitter *e = (Emitter *)h;
    if (e->sink != c->sink || e->nargs != w->nargs || e->nfields != w->n) return 0;
    for (int k = 0; k < w->n; k++)
        if (e->fields[k].mode != w->f[k].mode || !spec_is(&e->fields[k], w->f[k].arg, w->f[k].path)) return 0;
    if (e->then && !(w->then_tokens && spec_is(&e->then_spec, 0, "tokens"))) return 0;
    c->hkind[i] = e->kind;
    c->hthen[i] = e->then;
    return 1;
}

/* set_hooks(callables): hooks[i] is called by the method Core_hook_names[i] */
static PyObject *Core_set_hooks(Core *c, PyObject *hooks) {
    if (!PyTuple_CheckExact(hooks) || PyTuple_GET_SIZE(hooks) != N_HOOKS) {
        PyErr_Format(PyExc_TypeError, "set_hooks: a tuple of %d callables (Core.HOOKS)", N_HOOKS);
        return NULL;
    }
    for (int i = 0; i < N_HOOKS; i++) {
        PyObject *h = PyTuple_GET_ITEM(hooks, i);
        if (!PyCallable_Check(h)) {
            PyErr_Format(PyExc_TypeError, "set_hooks: %s is not callable", Core_hook_names[i]);
            return NULL;
        }
    }
    c->typed = 0;
    for (int i = 0; i < N_HOOKS; i++) {
        PyObject *h = PyTuple_GET_ITEM(hooks, i);
        Py_INCREF(h);
        Py_XSETREF(c->hooks[i], h);
        c->hthen[i] = NULL;
        if (c->sink && hook_typed(c, i, h)) c->typed |= 1u << i;
    }
    Py_RETURN_NONE;
}

static PyObject *s_tid, *s_name, *s_label, *s_async_;

/* An event of hook i's kind, its fields written at a pointer into the
   field buffer with room for FROOM bytes reserved once (every field a small
   int or None: no capacity test each); another value is packed by pack_obj
   (the pointer's position committed first, the room reserved again after) */
#define FROOM 80  /* (the array's header and 8 fields of at most 9 bytes) */
typedef struct { Py_ssize_t kl, dl, fl; long long t; unsigned char *p; } Ev;

ALWAYS_INLINE int ev_begin(Core *c, int i, Ev *e) {
    Sink *s = c->sink;
    e->kl = s->kinds.len; e->dl = s->deltas.len; e->fl = s->fields.len;
    if (sink_begin(s, c->hkind[i], &e->t) < 0) return -1;
    if (buf_reserve(&s->fields, FROOM) < 0) {
        s->kinds.len = e->kl; s->deltas.len = e->dl;
        return -1;
    }
    e->p = (unsigned char *)s->fields.data + s->fields.len;
    *e->p++ = (unsigned char)(0x90 | want_hooks[i].n);
    return 0;
}

/* (the pointer's position made the buffer's length, and back) */
ALWAYS_INLINE void ev_commit(Sink *s, Ev *e) { s->fields.len = (char *)e->p - s->fields.data; }
ALWAYS_INLINE int ev_resume(Sink *s, Ev *e) {
    if (buf_reserve(&s->fields, FROOM) < 0) return -1;
    e->p = (unsigned char *)s->fields.data + s->fields.len;
    return 0;
}

COLD int ev_val_slow(Sink *s, Ev *e, PyObject *v) {
    ev_commit(s, e);
    return pk_obj_held(s, v) < 0 ? -1 : ev_resume(s, e);
}

/* v as pack_field's raw mode packs it: 0, or -1 with an error */
ALWAYS_INLINE int ev_val(Sink *s, Ev *e, PyObject *v) {
    long long x;
    if (v == Py_None) {
        *e->p++ = 0xc0;
        return 0;
    }
    if (long_compact(v, &x)) {
        e->p = put_int(e->p, x);
        return 0;
    }
    return ev_val_slow(s, e, v);
}

COLD int ev_scalar_slow(Sink *s, Ev *e, PyObject *v) {
    ev_commit(s, e);
    return pk_scalar_slow(s, v) < 0 ? -1 : ev_resume(s, e);
}

/* ... its "scalar" mode */
ALWAYS_INLINE int ev_scalar(Sink *s, Ev *e, PyObject *v) {
    long long x;
    if (long_compact(v, &x)) {
        e->p = put_int(e->p, x);
        return 0;
    }
    return ev_scalar_slow(s, e, v);
}

/* ... its "intern" mode */
static int ev_intern(Sink *s, Ev *e, PyObject *v) {
    if (v == Py_None) {
        *e->p++ = 0xc0;
        return 0;
    }
    ev_commit(s, e);
    return pk_intern(s, v) < 0 ? -1 : ev_resume(s, e);
}

static int ev_then(Core *c, int i, PyObject *task);
static AttrCache c_tokens;

ALWAYS_INLINE int ev_end(Core *c, int i, Ev *e, int ok, PyObject *task) {
    Sink *s = c->sink;
    if (ok) ev_commit(s, e);
    if (sink_finish(s, ok, e->t, e->kl, e->dl, e->fl) < 0) return -1;
    if (!c->hthen[i] || task == Py_None) return 0;
    /* (task.tokens None, read at its slot: nothing to do) */
    PyTypeObject *tp = Py_TYPE(task);
    if (tp == c_tokens.tp && c_tokens.ver == tp->tp_version_tag && tp->tp_getattro == PyObject_GenericGetAttr
        && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) && *(PyObject **)((char *)task + c_tokens.off) == Py_None)
        return 0;
    return ev_then(c, i, task);
}

/* then(task) when task.tokens (read after the event, as the emitter does) */
static int ev_then_call(PyObject *then, PyObject *task) {
    PyObject *tok = fast_attr_c(task, s_tokens, &c_tokens);
    if (!tok) return -1;
    int truth = tok == Py_None ? 0 : PyObject_IsTrue(tok);
    Py_DECREF(tok);
    if (truth <= 0) return truth;
    PyObject *r = PyObject_CallOneArg(then, task);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

static int ev_then(Core *c, int i, PyObject *task) { return ev_then_call(c->hthen[i], task); }

static AttrCache c_task_id, c_thread_tid;

/* `not ft.async_` packed as pack_field's "not" mode packs it: read again
   only for another function type (or when ft's class changed, or is one
   whose instances may be set: no __setattr__ of its own) */
ALWAYS_INLINE int ev_not_async(Core *c, Ev *e, PyObject *ft, AttrCache *ca, Holds *hs) {
    PyTypeObject *tp = Py_TYPE(ft);
    if (ft == c->ft_last && tp == c->ft_type && tp->tp_version_tag == c->ft_type_ver
        && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
        *e->p++ = c->ft_not_async ? 0xc3 : 0xc2;
        return 0;
    }
    PyObject *v = rd(ft, s_async_, ca, hs);
    if (!v) return -1;
    int t;
    if (v == Py_True || v == Py_False) {
        t = v == Py_True;
    } else {
        Py_INCREF(v);
        t = PyObject_IsTrue(v);
        Py_DECREF(v);
        if (t < 0) return -1;
    }
    if (ft != Py_None && tp->tp_setattro != PyObject_GenericSetAttr && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
        Py_INCREF(ft);
        Py_XSETREF(c->ft_last, ft);
        c->ft_type = tp;
        c->ft_type_ver = tp->tp_version_tag;
        c->ft_not_async = !t;
    }
    *e->p++ = t ? 0xc2 : 0xc3;
    return 0;
}

/* task.new's reads of the task itself at one look at its class: the class
   (a task's: the runtime's Task), its version tag then and the slots'
   offsets of id, inst, name, caller, root, label and ft, set once the
   attribute caches of these reads (ev_task_new's slow path) all found
   them as slots of that class at that version. A task's caller and root
   are tasks of the same class: their ids read at the same offset. (perf:
   task.new was the costliest event of a ping-pong subtask, ~100 ns, ten
   attribute reads each checking its object's class) */
enum { TN_ID, TN_INST, TN_NAME, TN_CALLER, TN_ROOT, TN_LABEL, TN_FT, TN_N };
static struct { PyTypeObject *tp; unsigned int ver; Py_ssize_t off[TN_N]; } tn_shape;

/* o.id for o a task's caller or root (None stays None): at the shape's
   offset when o is of the shape's class, else rd */
ALWAYS_INLINE PyObject *tn_task_id(PyObject *o, AttrCache *ca, Holds *hs) {
    if (Py_TYPE(o) == tn_shape.tp) {
        PyObject *v = *(PyObject **)((char *)o + tn_shape.off[TN_ID]);
        if (v) return v;
    }
    return rd(o, s_id, ca, hs);
}

/* task.new(task): id, inst.id, name, caller.id, root.id, label, not ft.async_ */
static int ev_task_new(Core *c, PyObject *const *a) {
    static AttrCache c_inst, c_inst_id, c_name, c_caller, c_caller_id, c_root, c_root_id, c_label, c_ft, c_async;
    Sink *s = c->sink;
    Ev e;
    if (ev_begin(c, 0, &e) < 0) return -1;
    Holds hs;
    hs.n = 0;
    PyObject *v, *t = a[0];
    PyTypeObject *tp = Py_TYPE(t);
    int ok;
    PyObject *f[TN_N];
    int shaped = tp == tn_shape.tp && tp->tp_version_tag == tn_shape.ver && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
                 && tp->tp_getattro == PyObject_GenericGetAttr;
    for (int k = 0; shaped && k < TN_N; k++)
        if (!(f[k] = *(PyObject **)((char *)t + tn_shape.off[k]))) shaped = 0;  /* (unset: the slow path's error) */
    if (shaped) {
        /* (the values as the reads below would give them, in their order) */
        ok = ev_val(s, &e, f[TN_ID]) == 0
             && (v = f[TN_INST] == Py_None ? Py_None : rd(f[TN_INST], s_id, &c_inst_id, &hs)) && ev_val(s, &e, v) == 0
             && ev_intern(s, &e, f[TN_NAME]) == 0
             && (v = f[TN_CALLER] == Py_None ? Py_None : tn_task_id(f[TN_CALLER], &c_caller_id, &hs))
             && ev_val(s, &e, v) == 0
             && (v = f[TN_ROOT] == Py_None ? Py_None : tn_task_id(f[TN_ROOT], &c_root_id, &hs)) && ev_val(s, &e, v) == 0
             && ev_intern(s, &e, f[TN_LABEL]) == 0 && ev_not_async(c, &e, f[TN_FT], &c_async, &hs) == 0;
    } else {
        ok = (v = rd(t, s_id, &c_task_id, &hs)) && ev_val(s, &e, v) == 0
             && (v = rd2(t, s_inst, &c_inst, s_id, &c_inst_id, &hs)) && ev_val(s, &e, v) == 0
             && (v = rd(t, s_name, &c_name, &hs)) && ev_intern(s, &e, v) == 0
             && (v = rd2(t, s_caller, &c_caller, s_id, &c_caller_id, &hs)) && ev_val(s, &e, v) == 0
             && (v = rd2(t, s_root, &c_root, s_id, &c_root_id, &hs)) && ev_val(s, &e, v) == 0
             && (v = rd(t, s_label, &c_label, &hs)) && ev_intern(s, &e, v) == 0
             && (v = rd(t, s_ft, &c_ft, &hs)) && ev_not_async(c, &e, v, &c_async, &hs) == 0;
        /* the shape, when every read of t found a slot of its class */
        AttrCache *cs[TN_N] = {&c_task_id, &c_inst, &c_name, &c_caller, &c_root, &c_label, &c_ft};
        int all = ok && tp->tp_getattro == PyObject_GenericGetAttr && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG);
        for (int k = 0; all && k < TN_N; k++) all = cs[k]->tp == tp && cs[k]->ver == tp->tp_version_tag;
        if (all) {
            for (int k = 0; k < TN_N; k++) tn_shape.off[k] = cs[k]->off;
            tn_shape.ver = tp->tp_version_tag;
            tn_shape.tp = tp;
        }
    }
    if (hs.n) holds_free(&hs);
    return ev_end(c, 0, &e, ok, t);
}

/* ---- the small events, one routine for all (small_event): thread.new,
   thread.switch, task.start, task.exit, subtask.state, waitable-set.wait,
   event.delivered. Each is its kind, its time and up to four fields, each
   an argument or an argument's id / tid, packed as ev_val packs it (the
   last of event.delivered as ev_scalar: the same bytes for the values
   ev_val takes in line). One function's lines for the eleven of a
   ping-pong subtask's thirteen events, not a copy each in its own hook:
   the runtime's code between two events (~7k instructions) pushes most of
   a hook's lines out of the instruction cache, so an event's cost was its
   lines' misses more than its instructions (callgrind's cache simulation:
   each hook missed on ~18-34 lines a call) */
enum { SA_NONE, SA_ID, SA_TID };  /* what a field reads off its argument */
typedef struct {
    unsigned char n;          /* fields */
    unsigned char arg[4];     /* the argument each reads */
    unsigned char attr[4];    /* SA_*: the argument, its .id or its .tid */
    unsigned char scalar;     /* bit k: field k in "scalar" mode */
    unsigned char then_task;  /* the hook's then(task) is for argument 0 */
    unsigned char sw;         /* thread.switch: X -> loop remembered (sink_switch) */
} SmallSpec;

static const SmallSpec small_thread_new = {2, {0, 1}, {SA_NONE, SA_NONE}, 0, 0, 0};
static const SmallSpec small_switch = {2, {0, 1}, {SA_NONE, SA_NONE}, 0, 0, 1};
static const SmallSpec small_task_id = {1, {0}, {SA_ID}, 0, 1, 0};
static const SmallSpec small_subtask = {3, {0, 1, 3}, {SA_ID, SA_NONE, SA_NONE}, 0, 0, 0};
static const SmallSpec small_ws_wait = {2, {0, 1}, {SA_TID, SA_NONE}, 0, 0, 0};
static const SmallSpec small_event_delivered = {4, {0, 1, 2, 3}, {SA_TID, SA_NONE, SA_NONE, SA_NONE}, 8, 0, 0};

/* the event of kind with sp's fields from a; then(a[0]) after it when then
   is set and sp says so: 0, or -1 with an error */
static __attribute__((noinline, hot)) int small_event(Sink *s, int kind, const SmallSpec *sp, PyObject *const *a,
                                                      PyObject *then) {
    Py_ssize_t kl = s->kinds.len, dl = s->deltas.len, fl = s->fields.len;
    long long t;
    if (__builtin_expect(sink_begin(s, kind, &t) < 0, 0)) return -1;
    if (__builtin_expect(buf_reserve(&s->fields, FROOM) < 0, 0)) {
        s->kinds.len = kl; s->deltas.len = dl;
        return -1;
    }
    Ev e;
    e.p = (unsigned char *)s->fields.data + s->fields.len;
    *e.p++ = (unsigned char)(0x90 | sp->n);
    Holds hs;
    hs.n = 0;
    int ok = 1;
    for (int k = 0; k < sp->n; k++) {
        PyObject *v = a[sp->arg[k]];
        int at = sp->attr[k];
        if (at) {
            v = at == SA_ID ? rd(v, s_id, &c_task_id, &hs) : rd(v, s_tid, &c_thread_tid, &hs);
            if (__builtin_expect(!v, 0)) { ok = 0; break; }
        }
        long long x;
        if (v == Py_None) {
            *e.p++ = 0xc0;
        } else if (long_compact(v, &x)) {
            e.p = put_int(e.p, x);
        } else if ((sp->scalar >> k & 1) ? ev_scalar_slow(s, &e, v) < 0 : ev_val_slow(s, &e, v) < 0) {
            ok = 0;
            break;
        }
    }
    if (__builtin_expect(hs.n != 0, 0)) holds_free(&hs);
    if (ok) {
        ev_commit(s, &e);
        if (sp->sw && a[1] == Py_None) {
            s->to_loop_count = s->count + 1;
            s->to_loop_pos = s->fields.len - 1;
        }
    }
    if (sink_finish(s, ok, t, kl, dl, fl) < 0) return -1;
    if (!then || !sp->then_task || a[0] == Py_None) return 0;
    /* (task.tokens None, read at its slot: nothing to do) */
    PyObject *task = a[0];
    PyTypeObject *tp = Py_TYPE(task);
    if (tp == c_tokens.tp && c_tokens.ver == tp->tp_version_tag && tp->tp_getattro == PyObject_GenericGetAttr
        && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) && *(PyObject **)((char *)task + c_tokens.off) == Py_None)
        return 0;
    return ev_then_call(then, task);
}

/* a thread.switch that is a new event (sink_switch) */
static int sink_switch_event(Sink *s, PyObject *from, PyObject *to) {
    PyObject *a[2] = {from, to};
    return small_event(s, s->switch_kind, &small_switch, a, NULL);
}

/* thread.new(tid, task id) */
ALWAYS_INLINE int ev_thread_new(Core *c, PyObject *const *a) {
    return small_event(c->sink, c->hkind[1], &small_thread_new, a, NULL);
}

ALWAYS_INLINE int ev_thread_switch(Core *c, PyObject *const *a) {
    return sink_switch(c->sink, a[0], a[1]);
}

/* task.start(task), task.exit(task): the task's id */
ALWAYS_INLINE int ev_task_start(Core *c, PyObject *const *a) {
    return small_event(c->sink, c->hkind[3], &small_task_id, a, c->hthen[3]);
}
ALWAYS_INLINE int ev_task_exit(Core *c, PyObject *const *a) {
    return small_event(c->sink, c->hkind[4], &small_task_id, a, c->hthen[4]);
}

/* subtask.state(task, handle, name, state): task id, handle, state */
ALWAYS_INLINE int ev_subtask_new(Core *c, PyObject *const *a) {
    return small_event(c->sink, c->hkind[5], &small_subtask, a, NULL);
}

/* waitable-set.wait(thread, set): thread id, set */
ALWAYS_INLINE int ev_ws_wait(Core *c, PyObject *const *a) {
    return small_event(c->sink, c->hkind[6], &small_ws_wait, a, NULL);
}

/* event.delivered(thread, code, p1, p2): thread id, code, p1, p2 (a scalar) */
ALWAYS_INLINE int ev_event(Core *c, PyObject *const *a) {
    return small_event(c->sink, c->hkind[7], &small_event_delivered, a, NULL);
}

/* hook i's event from its arguments a (of the typed shape's number): 0, or
   -1 with an error (i a constant where it is called: one event's code) */
ALWAYS_INLINE int core_typed(Core *c, int i, PyObject *const *a) {
    switch (i) {
    case 0: return ev_task_new(c, a);
    case 1: return ev_thread_new(c, a);
    case 2: return ev_thread_switch(c, a);
    case 3: return ev_task_start(c, a);
    case 4: return ev_task_exit(c, a);
    case 5: return ev_subtask_new(c, a);
    case 6: return ev_ws_wait(c, a);
    default: return ev_event(c, a);
    }
}

ALWAYS_INLINE PyObject *core_hook(Core *c, int i, PyObject *const *a, Py_ssize_t n) {
    if ((c->typed >> i & 1) && n == want_hooks[i].nargs) {
        if (core_typed(c, i, a) < 0) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *h = c->hooks[i];
    if (!h) {
        PyErr_Format(PyExc_TypeError, "Core.%s: no hook set (set_hooks)", Core_hook_names[i]);
        return NULL;
    }
    return PyObject_Vectorcall(h, a, (size_t)n, NULL);
}

#define CORE_HOOK(i) \
    static PyObject *Core_hook_##i(Core *c, PyObject *const *a, Py_ssize_t n) { return core_hook(c, i, a, n); }
CORE_HOOK(0) CORE_HOOK(1) CORE_HOOK(2) CORE_HOOK(3) CORE_HOOK(4) CORE_HOOK(5) CORE_HOOK(6) CORE_HOOK(7)
#undef CORE_HOOK

/* bind_methods(cls): Core's methods set on its subclass cls as method
   descriptors of cls. CPython 3.11 specializes a call of a C method only
   when the instance's type is the descriptor's own (a subclass's instance
   calling Core's takes the generic path: a lookup and a type walk a call) */
static PyObject *Core_bind_methods(PyObject *unused, PyObject *cls) {
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &CoreType)) {
        PyErr_SetString(PyExc_TypeError, "bind_methods(cls): a subclass of Core");
        return NULL;
    }
    for (PyMethodDef *m = Core_methods; m->ml_name; m++) {
        if (m->ml_flags & METH_STATIC) continue;
        PyObject *d = PyDescr_NewMethod((PyTypeObject *)cls, m);
        int rc = d ? PyObject_SetAttrString(cls, m->ml_name, d) : -1;
        Py_XDECREF(d);
        if (rc < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef Core_methods[] = {
    {"import_call", (PyCFunction)(void (*)(void))Core_import_call, METH_FASTCALL,
     "import_call(task, callee, args) -> the call's id"},
    {"import_return", (PyCFunction)(void (*)(void))Core_import_return, METH_FASTCALL, "import_return(call_id, result)"},
    {"task_return", (PyCFunction)(void (*)(void))Core_task_return, METH_FASTCALL, "task_return(task, result)"},
    {"copy_op", (PyCFunction)(void (*)(void))Core_copy_op, METH_FASTCALL, "copy_op(inst, kind, op, handle, result, size)"},
    {"plant", (PyCFunction)Core_plant_ready, METH_O, "plant(task): a root task's taint tokens, indexed and recorded"},
    {"root_exit", (PyCFunction)Core_root_exit, METH_O,
     "root_exit(task): a root that planted tokens exited (the oldest beyond the taint window retired)"},
    {"set_planted", (PyCFunction)Core_set_planted, METH_O,
     "set_planted(cls): the class of plant_tokens' tokens (every token plain, forms lazy), read off the class"},
    {"set_forms", (PyCFunction)Core_set_forms, METH_VARARGS,
     "set_forms(encoded_forms, ascii_in_c=False): the pending tokens' forms indexed by the core itself "
     "(with ascii_in_c an ASCII token's from ascii_forms)"},
    {"expand_forms", (PyCFunction)Core_expand_forms, METH_NOARGS,
     "expand_forms(): the pending tokens' forms indexed (TaintIndex.expand, in C)"},
    {"set_root_exit", (PyCFunction)Core_set_root_exit, METH_VARARGS,
     "set_root_exit(exited, window, retire_kind, release_forms): what root_exit uses"},
    {"next_call_id", (PyCFunction)Core_next_call_id, METH_NOARGS, "next_call_id() -> the next import call's id"},
    {"bind_methods", (PyCFunction)Core_bind_methods, METH_O | METH_STATIC,
     "bind_methods(cls): these methods set on the subclass cls as its own"},
    {"set_hooks", (PyCFunction)Core_set_hooks, METH_O, "set_hooks(callables): what the methods of Core.HOOKS call"},
#define HOOK_DEF(i, name) {name, (PyCFunction)(void (*)(void))Core_hook_##i, METH_FASTCALL, "calls hooks[" #i "]"},
    HOOK_DEF(0, "task_new") HOOK_DEF(1, "thread_new") HOOK_DEF(2, "thread_switch") HOOK_DEF(3, "task_start")
    HOOK_DEF(4, "task_exit") HOOK_DEF(5, "subtask_new") HOOK_DEF(6, "waitable_set_wait")
    HOOK_DEF(7, "event_delivered")
#undef HOOK_DEF
    {NULL}
};

static PyObject *Core_get_typed(Core *c, void *unused) { return PyLong_FromUnsignedLong(c->typed); }

static PyGetSetDef Core_getset[] = {
    {"typed_hooks", (getter)Core_get_typed, NULL,
     "bit i: the hook Core.HOOKS[i] is packed by the core itself (the emitter set_hooks was given has that shape)", NULL},
    {"last_call_id", (getter)Core_get_last_call_id, (setter)Core_set_last_call_id,
     "the id of the import call recorded last", NULL},
    {NULL}
};

/* ---- the C entry points (_sinkapi.h) */

static const char *const api_names[CS_N_CALLS] = {
    "task_new", "thread_new", "thread_switch", "task_start", "task_exit", "subtask_new", "waitable_set_wait",
    "event_delivered", "import_call", "import_return", "task_return", "next_call_id",
};
static PyObject *api_name_objs[CS_N_CALLS];  /* (interned at import) */
static const PyCFunction api_meths[CS_N_CALLS] = {
    (PyCFunction)(void (*)(void))Core_hook_0, (PyCFunction)(void (*)(void))Core_hook_1,
    (PyCFunction)(void (*)(void))Core_hook_2, (PyCFunction)(void (*)(void))Core_hook_3,
    (PyCFunction)(void (*)(void))Core_hook_4, (PyCFunction)(void (*)(void))Core_hook_5,
    (PyCFunction)(void (*)(void))Core_hook_6, (PyCFunction)(void (*)(void))Core_hook_7,
    (PyCFunction)(void (*)(void))Core_import_call, (PyCFunction)(void (*)(void))Core_import_return,
    (PyCFunction)(void (*)(void))Core_task_return, (PyCFunction)Core_next_call_id,
};

static int Core_setattro(PyObject *o, PyObject *name, PyObject *v);

static unsigned api_type_mask(PyTypeObject *tp) {
    if (!PyType_IsSubtype(tp, &CoreType) || tp->tp_getattro != PyObject_GenericGetAttr
        || tp->tp_setattro != Core_setattro)
        return 0;
    unsigned mask = 0;
    for (int h = 0; h < CS_N_CALLS; h++) {
        PyObject *d = _PyType_Lookup(tp, api_name_objs[h]);  /* (borrowed) */
        if (d && Py_IS_TYPE(d, &PyMethodDescr_Type) && ((PyMethodDescrObject *)d)->d_method->ml_meth == api_meths[h])
            mask |= 1u << h;
    }
    return mask;
}

/* obs's hook h from C: a typed one packed here, another called */
ALWAYS_INLINE int api_hook(PyObject *obs, int h, PyObject *const *a, Py_ssize_t n, PyObject **result) {
    Core *c = (Core *)obs;
    if (!c->sink || (c->overridden >> h & 1)) return 0;
    if ((c->typed >> h & 1) && n == want_hooks[h].nargs) {
        if (core_typed(c, h, a) < 0) return -1;
        if (result) *result = Py_NewRef(Py_None);
        return 1;
    }
    if (!c->hooks[h]) return 0;
    PyObject *r = PyObject_Vectorcall(c->hooks[h], a, (size_t)n, NULL);
    if (!r) return -1;
    if (result) *result = r;
    else Py_DECREF(r);
    return 1;
}

/* ... a method of Core's own */
ALWAYS_INLINE int api_method(PyObject *obs, int h, PyObject *r, PyObject **result) {
    if (!r) return -1;
    if (result) *result = r;
    else Py_DECREF(r);
    return 1;
}

#define API_HOOK(i) \
    static int api_hook_##i(PyObject *obs, PyObject *const *a, Py_ssize_t n, PyObject **result) { \
        return api_hook(obs, i, a, n, result); \
    }
API_HOOK(0) API_HOOK(1) API_HOOK(2) API_HOOK(3) API_HOOK(4) API_HOOK(5) API_HOOK(6) API_HOOK(7)
#undef API_HOOK

#define API_READY(h) \
    Core *c = (Core *)obs; \
    if (!c->sink || (c->overridden >> (h) & 1)) return 0

static int api_import_call(PyObject *obs, PyObject *const *a, Py_ssize_t n, PyObject **result) {
    API_READY(CS_IMPORT_CALL);
    return api_method(obs, CS_IMPORT_CALL, Core_import_call(c, a, n), result);
}

static int api_import_return(PyObject *obs, PyObject *const *a, Py_ssize_t n, PyObject **result) {
    API_READY(CS_IMPORT_RETURN);
    return api_method(obs, CS_IMPORT_RETURN, Core_import_return(c, a, n), result);
}

static int api_task_return(PyObject *obs, PyObject *const *a, Py_ssize_t n, PyObject **result) {
    API_READY(CS_TASK_RETURN);
    return api_method(obs, CS_TASK_RETURN, Core_task_return(c, a, n), result);
}

static int api_next_call_id(PyObject *obs, PyObject *const *a, Py_ssize_t n, PyObject **result) {
    API_READY(CS_NEXT_CALL_ID);
    if (n) {
        PyErr_SetString(PyExc_TypeError, "next_call_id() takes no arguments");
        return -1;
    }
    return api_method(obs, CS_NEXT_CALL_ID, Core_next_call_id(c, NULL), result);
}
#undef API_READY

/* the sync host path's import_call (_sinkapi.h): the memo's pair with small
   int arguments only (core_import_call_memo's steps), the id kept as a
   number (pend_num, last_num) */
static int api_import_call_n(PyObject *obs, PyObject *task, PyObject *callee, PyObject *args, long long *id) {
    Core *c = (Core *)obs;
    long long x[4];
    if (!c->sink || (c->overridden >> CS_IMPORT_CALL & 1) || task != c->memo_task || callee != c->memo_callee
        || !c->memo_pre_len || !small_ints(args, c->memo_nargs, x))
        return 0;
    if (c->pend_id || c->pend_num > 0) {
        if (core_pend_obj(c) < 0 || PyDict_SetItem(c->callee_of, c->pend_id, c->pend_info) < 0) return -1;
        Py_CLEAR(c->pend_id);
        Py_CLEAR(c->pend_info);
    }
    long long n = c->next_id++;
    Py_CLEAR(c->last_call_id);
    c->last_num = n;
    c->last_is_num = 1;
    c->pend_num = n;
    Py_INCREF(c->memo_info);
    c->pend_info = c->memo_info;
    if (core_pair_event(c, x, n, 1) < 0) return -1;
    *id = n;
    return 1;
}

/* the sync host path's import_return (_sinkapi.h): the pending memo call
   returning small ints packed here; anything else Core_import_return's */
static int api_import_return_n(PyObject *obs, long long id, PyObject *result) {
    Core *c = (Core *)obs;
    if (!c->sink || (c->overridden >> CS_IMPORT_RETURN & 1)) return 0;
    long long x[4];
    if (c->pend_num == id && c->pend_info == c->memo_info && small_ints(result, c->memo_nres, x)) {
        if (core_pair_event(c, x, id, 0) < 0) return -1;
        c->pend_num = 0;
        Py_CLEAR(c->pend_info);
        return 1;
    }
    PyObject *key = PyLong_FromLongLong(id);
    if (!key) return -1;
    PyObject *r = Core_import_return(c, (PyObject *[]){key, result}, 2);
    Py_DECREF(key);
    if (!r) return -1;
    Py_DECREF(r);
    return 1;
}

static const CallscopeSinkAPI sink_api = {
    CS_SINK_API_VERSION, api_names, api_type_mask,
    {api_hook_0, api_hook_1, api_hook_2, api_hook_3, api_hook_4, api_hook_5, api_hook_6, api_hook_7, api_import_call,
     api_import_return, api_task_return, api_next_call_id},
    api_import_call_n, api_import_return_n,
};

/* o.name = v, noting an instance attribute that hides one of Core's
   methods (then the calls from C call it: api_call) */
static int Core_setattro(PyObject *o, PyObject *name, PyObject *v) {
    if (PyUnicode_Check(name)) {
        for (int h = 0; h < CS_N_CALLS; h++) {
            PyObject *m = api_name_objs[h];
            if (name == m || (PyUnicode_GET_LENGTH(name) == PyUnicode_GET_LENGTH(m) && PyUnicode_Compare(name, m) == 0)) {
                ((Core *)o)->overridden |= 1u << h;
                break;
            }
        }
    }
    return PyObject_GenericSetAttr(o, name, v);
}

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callscope.trace._sink.Core",
    .tp_setattro = Core_setattro,
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Core(sink, callee_of, roots, find, summ_any, (import_call, import_return, task_return), (kinds), "
              "info_of, ret_info_of): the recording observer's import and task-return events in C",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
};

/* ------------------------------------------------------- taint forms */

/* ascii_forms(token): callscope.model.tokens' encoded forms of an ASCII
   token, the same tuple of (form, encoding) pairs in the same order (its
   _encoded_forms runs this for ASCII tokens: the request ids every recorded
   request of a guest that transforms its tokens expands, ~43k instructions
   a token in Python). None for a token that is not ASCII (the Python
   function makes those: quote's UTF-8, json's ensure_ascii=False form).
   The steps, as _forms has them: percent-encoding (upper-, lower-case hex;
   then with '/' kept, with '/' and ':' kept; with '+' for ' '), the JSON
   escape (and with '\/' for '/'), base64 of the token alone and of the
   characters that depend only on it at each alignment (and URL-safe);
   a form kept when at least MIN_FORM long and not the token or a form
   kept before it. */
#define FORMS_MIN 6
#define FORMS_MAX 16
static PyObject *s_percent, *s_json, *s_base64;
static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int forms_safe(unsigned char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
           || ch == '_' || ch == '.' || ch == '~' || ch == '-';
}

typedef struct {
    const char *tok; Py_ssize_t n;
    const char *form[FORMS_MAX]; Py_ssize_t len[FORMS_MAX]; PyObject *enc[FORMS_MAX];
    int count;
} forms_acc;

/* the form buf[0:len] kept unless short or seen (the token, a form kept) */
static void forms_add(forms_acc *a, const char *buf, Py_ssize_t len, PyObject *enc) {
    if (len < FORMS_MIN || a->count == FORMS_MAX) return;
    if (len == a->n && memcmp(buf, a->tok, len) == 0) return;
    for (int i = 0; i < a->count; i++)
        if (a->len[i] == len && memcmp(a->form[i], buf, len) == 0) return;
    a->form[a->count] = buf; a->len[a->count] = len; a->enc[a->count] = enc;
    a->count++;
}

/* the token percent-encoded into out (hex digits from `hex`), the
   characters in `keep` (or ' ' as '+' with plus) left as they are */
static Py_ssize_t forms_percent(const char *t, Py_ssize_t n, char *out, const char *hex, const char *keep, int plus) {
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (forms_safe(ch) || (keep && strchr(keep, ch) && ch)) {
            out[o++] = (char)ch;
        } else if (plus && ch == ' ') {
            out[o++] = '+';
        } else {
            out[o++] = '%'; out[o++] = hex[ch >> 4]; out[o++] = hex[ch & 15];
        }
    }
    return o;
}

/* base64 (standard alphabet, '=' padded) of k NUL bytes then the token */
static Py_ssize_t forms_b64(const char *t, Py_ssize_t n, int k, char *out) {
    Py_ssize_t total = n + k, o = 0;
    unsigned char in[3];
    for (Py_ssize_t i = 0; i < total; i += 3) {
        int m = 0;
        for (; m < 3 && i + m < total; m++) in[m] = i + m < k ? 0 : (unsigned char)t[i + m - k];
        for (int j = m; j < 3; j++) in[j] = 0;
        out[o++] = b64_std[in[0] >> 2];
        out[o++] = b64_std[((in[0] & 3) << 4) | (in[1] >> 4)];
        out[o++] = m > 1 ? b64_std[((in[1] & 15) << 2) | (in[2] >> 6)] : '=';
        out[o++] = m > 2 ? b64_std[in[2] & 63] : '=';
    }
    return o;
}

static PyObject *mod_ascii_forms(PyObject *self, PyObject *tok) {
    if (!PyUnicode_Check(tok)) {
        PyErr_SetString(PyExc_TypeError, "ascii_forms(token): a str");
        return NULL;
    }
    if (PyUnicode_READY(tok) < 0) return NULL;
    if (!PyUnicode_IS_ASCII(tok)) Py_RETURN_NONE;
    const char *t = (const char *)PyUnicode_DATA(tok);
    Py_ssize_t n = PyUnicode_GET_LENGTH(tok);
    int reserved = 0, slash = 0, colon = 0, space = 0, json = 0, i;
    for (Py_ssize_t j = 0; j < n; j++) {
        unsigned char ch = (unsigned char)t[j];
        if (!forms_safe(ch)) reserved = 1;
        if (ch == '/') slash = 1;
        else if (ch == ':') colon = 1;
        else if (ch == ' ') space = 1;
        if (ch == '"' || ch == '\\' || ch == '/' || ch < 0x20 || ch == 0x7f) json = 1;
    }
    /* room: 7 percent forms (3n each), 2 JSON (6n, 7n), 7 base64 (4(n+2)/3+4 each) */
    Py_ssize_t b64n = 4 * ((n + 2 + 2) / 3) + 4;
    Py_ssize_t room = 21 * n + 13 * n + 7 * b64n + 16;
    char *buf = PyMem_Malloc(room), *w = buf;
    if (!buf) return PyErr_NoMemory();
    forms_acc a;
    a.tok = t; a.n = n; a.count = 0;
    static const char UP[] = "0123456789ABCDEF", LO[] = "0123456789abcdef";
    Py_ssize_t len;
    if (reserved) {
        len = forms_percent(t, n, w, UP, NULL, 0); forms_add(&a, w, len, s_percent); w += len;
        len = forms_percent(t, n, w, LO, NULL, 0); forms_add(&a, w, len, s_percent); w += len;
        if (slash) {
            len = forms_percent(t, n, w, UP, "/", 0); forms_add(&a, w, len, s_percent); w += len;
            len = forms_percent(t, n, w, LO, "/", 0); forms_add(&a, w, len, s_percent); w += len;
            if (colon) {
                len = forms_percent(t, n, w, UP, "/:", 0); forms_add(&a, w, len, s_percent); w += len;
                len = forms_percent(t, n, w, LO, "/:", 0); forms_add(&a, w, len, s_percent); w += len;
            }
        }
        if (space) {
            len = forms_percent(t, n, w, UP, NULL, 1); forms_add(&a, w, len, s_percent); w += len;
        }
    }
    if (json) {  /* json.dumps(token)[1:-1] (ensure_ascii), then with '\/' for '/' */
        for (int pass = 0; pass < (slash ? 2 : 1); pass++) {
            char *j0 = w;
            for (Py_ssize_t j = 0; j < n; j++) {
                unsigned char ch = (unsigned char)t[j];
                const char *e = NULL;
                switch (ch) {
                case '"': e = "\\\""; break;
                case '\\': e = "\\\\"; break;
                case '\n': e = "\\n"; break;
                case '\r': e = "\\r"; break;
                case '\t': e = "\\t"; break;
                case '\b': e = "\\b"; break;
                case '\f': e = "\\f"; break;
                case '/': if (pass) e = "\\/"; break;
                }
                if (e) {
                    while (*e) *w++ = *e++;
                } else if (ch < 0x20 || ch == 0x7f) {
                    *w++ = '\\'; *w++ = 'u'; *w++ = '0'; *w++ = '0'; *w++ = LO[ch >> 4]; *w++ = LO[ch & 15];
                } else {
                    *w++ = (char)ch;
                }
            }
            forms_add(&a, j0, w - j0, s_json);
        }
    }
    len = forms_b64(t, n, 0, w);  /* the token alone, its '=' padding stripped */
    while (len && w[len - 1] == '=') len--;
    forms_add(&a, w, len, s_base64); w += len;
    for (int k = 0; k < 3; k++) {  /* the characters that depend only on the token, wherever it starts */
        Py_ssize_t first = (8 * k + 5) / 6, last = (8 * (k + n)) / 6;
        if (last - first < FORMS_MIN) continue;
        len = forms_b64(t, n, k, w);
        char *f = w + first;
        Py_ssize_t flen = last - first;
        w += len;
        forms_add(&a, f, flen, s_base64);
        if (memchr(f, '+', flen) || memchr(f, '/', flen)) {
            for (Py_ssize_t j = 0; j < flen; j++) w[j] = f[j] == '+' ? '-' : f[j] == '/' ? '_' : f[j];
            forms_add(&a, w, flen, s_base64);
            w += flen;
        }
    }
    PyObject *out = PyTuple_New(a.count);
    for (i = 0; out && i < a.count; i++) {
        PyObject *form = PyUnicode_New(a.len[i], 127);
        PyObject *pair = form ? PyTuple_New(2) : NULL;
        if (!pair) {
            Py_XDECREF(form);
            Py_CLEAR(out);
            break;
        }
        memcpy(PyUnicode_DATA(form), a.form[i], a.len[i]);
        PyTuple_SET_ITEM(pair, 0, form);
        Py_INCREF(a.enc[i]);
        PyTuple_SET_ITEM(pair, 1, a.enc[i]);
        PyTuple_SET_ITEM(out, i, pair);
    }
    PyMem_Free(buf);
    return out;
}

/* ---------------------------------------------------------------- module */

static PyMethodDef module_methods[] = {
    {"ascii_forms", mod_ascii_forms, METH_O,
     "ascii_forms(token): callscope.model.tokens.encoded_forms of an ASCII token (None: not ASCII)"},
    {"find_tokens", mod_find_tokens, METH_VARARGS, "find_tokens(strings, roots, groups, scan_limit, prefix): TaintIndex.find"},
    {"walk", mod_walk, METH_VARARGS, "walk(value, (stream class, future class), bytes_limit, depth=0): _walk"},
    {"_crc32", sink_crc32, METH_O, "_crc32(data): zlib.crc32(data) as take_frame computes it here (None: not here)"},
    {NULL}
};

static struct PyModuleDef sinkmodule = {
    PyModuleDef_HEAD_INIT, "callscope.trace._sink",
    "The trace writer's event buffer in C (callscope/trace/sink.py is the same in Python).", -1, module_methods,
};

PyMODINIT_FUNC PyInit__sink(void) {
    if (PyType_Ready(&SinkType) < 0 || PyType_Ready(&EmitterType) < 0 || PyType_Ready(&SummarizerType) < 0
        || PyType_Ready(&CoreType) < 0)
        return NULL;
#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return NULL
    INTERN(s_ft, "ft"); INTERN(s_id, "id"); INTERN(s_caller, "caller"); INTERN(s_inst, "inst");
    INTERN(s_results, "results"); INTERN(s_store, "store"); INTERN(s_resource_roots, "resource_roots");
    INTERN(s_root, "root"); INTERN(s_task, "task"); INTERN(s_tokens, "tokens");
    INTERN(s_forms, "forms"); INTERN(s_plain, "plain"); INTERN(s_dtor, "dtor"); INTERN(s_taint_view, "taint_view");
    INTERN(s_percent, "percent"); INTERN(s_json, "json"); INTERN(s_base64, "base64");
    for (int h = 0; h < CS_N_CALLS; h++) INTERN(api_name_objs[h], api_names[h]);
    INTERN(s_tid, "tid"); INTERN(s_name, "name"); INTERN(s_label, "label"); INTERN(s_async_, "async_");
#undef INTERN
    crc_init();
    {
        PyObject *zlib = PyImport_ImportModule("zlib");
        zlib_crc32 = zlib ? PyObject_GetAttrString(zlib, "crc32") : NULL;  /* (held: the module's, for good) */
        Py_XDECREF(zlib);
        if (!zlib_crc32) PyErr_Clear();
    }
    struct timespec res;
    if (clock_getres(FLUSH_CLOCK, &res) == 0)
        coarse_res_ns = (long long)res.tv_sec * 1000000000LL + res.tv_nsec;
    PyObject *hook_names = PyTuple_New(N_HOOKS);
    if (!hook_names) return NULL;
    for (int i = 0; i < N_HOOKS; i++) {
        PyObject *name = PyUnicode_InternFromString(Core_hook_names[i]);
        if (!name) { Py_DECREF(hook_names); return NULL; }
        PyTuple_SET_ITEM(hook_names, i, name);
    }
    int hrc = PyDict_SetItemString(CoreType.tp_dict, "HOOKS", hook_names);
    Py_DECREF(hook_names);
    if (hrc < 0) return NULL;
    PyType_Modified(&CoreType);
    PyObject *m = PyModule_Create(&sinkmodule);
    if (!m) return NULL;
    Py_INCREF(&SinkType);
    if (PyModule_AddObject(m, "Sink", (PyObject *)&SinkType) < 0) { Py_DECREF(&SinkType); Py_DECREF(m); return NULL; }
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) { Py_DECREF(&CoreType); Py_DECREF(m); return NULL; }
    Py_INCREF(&SummarizerType);
    if (PyModule_AddObject(m, "Summarizer", (PyObject *)&SummarizerType) < 0) {
        Py_DECREF(&SummarizerType);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *api = PyCapsule_New((void *)&sink_api, CS_SINK_API_NAME, NULL);
    if (!api || PyModule_AddObject(m, "_C_API", api) < 0) {
        Py_XDECREF(api);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
