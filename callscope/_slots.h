/* Attributes of __slots__ read and written at their offsets, for the two C
 * extensions (callscope/runtime/_fiber.c, callscope/trace/_sink.c): one
 * definition, included by both. Include after Python.h and structmember.h. */
#ifndef CALLSCOPE_SLOTS_H
#define CALLSCOPE_SLOTS_H

/* ------------------------------------------------- attributes of __slots__ */

/* o.name and o.name = v as the generic attribute functions do them, quicker
 * for a __slots__ member (a data descriptor: it wins over any instance dict):
 * the value read or written at the member's offset. Anything else (no such
 * member, an unset slot, a type with its own __getattr__ or __setattr__)
 * goes to PyObject_GetAttr / PyObject_SetAttr. */
static inline PyMemberDef *slot_member(PyTypeObject *tp, PyObject *o, PyObject *name) {
    PyObject *d = _PyType_Lookup(tp, name);
    if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) return NULL;
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX || !PyObject_TypeCheck(o, PyDescr_TYPE(d))) return NULL;
    return m;
}

/* Each call site keeps the last type it saw and the member's offset there,
 * valid while the type's version tag is the same (any change to the type or
 * its bases replaces the tag, and no other type is ever given it). */
typedef struct {
    PyTypeObject *tp;
    unsigned int ver;
    Py_ssize_t off;
    int settable;
} AttrCache;

static inline int attr_cached(AttrCache *c, PyTypeObject *tp) {
    return c->tp == tp && c->ver == tp->tp_version_tag && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG);
}

static inline PyMemberDef *attr_fill(AttrCache *c, PyTypeObject *tp, PyObject *o, PyObject *name) {
    PyMemberDef *m = slot_member(tp, o, name);
    c->tp = NULL;
    if (m != NULL && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) { /* (the lookup gave the type its tag) */
        c->tp = tp;
        c->ver = tp->tp_version_tag;
        c->off = m->offset;
        c->settable = !(m->flags & READONLY);
    }
    return m;
}

static inline PyObject *fast_attr_c(PyObject *o, PyObject *name, AttrCache *c) { /* new reference */
    PyTypeObject *tp = Py_TYPE(o);
    if (tp->tp_getattro == PyObject_GenericGetAttr) {
        Py_ssize_t off = -1;
        if (attr_cached(c, tp)) {
            off = c->off;
        } else {
            PyMemberDef *m = attr_fill(c, tp, o, name);
            if (m != NULL) off = m->offset;
        }
        if (off >= 0) {
            PyObject *v = *(PyObject **)((char *)o + off);
            if (v != NULL) return Py_NewRef(v);
        }
    }
    return PyObject_GetAttr(o, name);
}

static inline int fast_setattr_c(PyObject *o, PyObject *name, PyObject *v, AttrCache *c) {
    PyTypeObject *tp = Py_TYPE(o);
    if (v != NULL && tp->tp_setattro == PyObject_GenericSetAttr) {
        Py_ssize_t off = -1;
        if (attr_cached(c, tp)) {
            if (c->settable) off = c->off;
        } else {
            PyMemberDef *m = attr_fill(c, tp, o, name);
            if (m != NULL && !(m->flags & READONLY)) off = m->offset;
        }
        if (off >= 0) {
            PyObject **p = (PyObject **)((char *)o + off), *old = *p;
            *p = Py_NewRef(v);
            Py_XDECREF(old);
            return 0;
        }
    }
    return PyObject_SetAttr(o, name, v);
}

/* (a cache of its own at each use: the statement expression's static) */
#define fast_attr(o, name) __extension__({ static AttrCache _ac; fast_attr_c((o), (name), &_ac); })
#define fast_setattr(o, name, v) __extension__({ static AttrCache _ac; fast_setattr_c((o), (name), (v), &_ac); })
/* bool(o.name): 1, 0, or -1 with an error set (fast_attr's cache of its own) */
#define attr_truth(o, name) __extension__({ PyObject *_v = fast_attr((o), (name)); \
    int _t = _v != NULL ? PyObject_IsTrue(_v) : -1; Py_XDECREF(_v); _t; })

#endif
