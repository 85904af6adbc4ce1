/* The recording observer's C entry points (callscope/trace/_sink.c's Core),
 * for callscope/runtime/_fiber.c: the runtime's observer calls made from C go
 * straight to Core's code, with no method lookup and no Python-level call,
 * when the observer's method of that name is still Core's own.
 *
 * _sink.c exports one CallscopeSinkAPI as the capsule CS_SINK_API_NAME (the
 * module attribute `_C_API`). _fiber.c finds it in sys.modules when it first
 * meets an observer (no import: without _sink loaded there is no Core), and
 * goes on calling methods when it is absent or of another version. */
#ifndef CALLSCOPE_SINKAPI_H
#define CALLSCOPE_SINKAPI_H

#define CS_SINK_MODULE "callscope.trace._sink"
#define CS_SINK_API_NAME "callscope.trace._sink._C_API"
#define CS_SINK_API_VERSION 2

/* the observer methods, by number (the first eight are Core.HOOKS' order) */
enum {
    CS_TASK_NEW,          /* task_new(task) */
    CS_THREAD_NEW,        /* thread_new(tid, task_id) */
    CS_THREAD_SWITCH,     /* thread_switch(from_tid, to_tid) */
    CS_TASK_START,        /* task_start(task) */
    CS_TASK_EXIT,         /* task_exit(task) */
    CS_SUBTASK_NEW,       /* subtask_new(task, handle, name, state) */
    CS_WAITABLE_SET_WAIT, /* waitable_set_wait(thread, set_handle) */
    CS_EVENT_DELIVERED,   /* event_delivered(thread, code, p1, p2) */
    CS_IMPORT_CALL,       /* import_call(task, callee, args) -> call id */
    CS_IMPORT_RETURN,     /* import_return(call_id, result) */
    CS_TASK_RETURN,       /* task_return(task, result) */
    CS_NEXT_CALL_ID,      /* next_call_id() -> call id */
    CS_N_CALLS
};

typedef struct {
    int version;               /* CS_SINK_API_VERSION */
    const char *const *names;  /* the methods' names, by number */
    /* bit h: an instance of tp finds Core's own method names[h] on its type
       (a Core, or a subclass that does not override it, whose attribute
       lookup and setting are Core's). Ask again when tp's version tag
       changes. */
    unsigned (*type_mask)(PyTypeObject *tp);
    /* call[h](obs, args, nargs, result): obs.names[h](*args) for an obs
       whose type has bit h: 1 when done (*result, when result is not NULL,
       the method's result: a new reference), 0 when this instance must have
       the method called after all (a Core not made ready by Core.__init__,
       or one with an instance attribute of that name), -1 with an error */
    int (*call[CS_N_CALLS])(PyObject *obs, PyObject *const *args, Py_ssize_t nargs, PyObject **result);
    /* the sync host path's two calls with the call's id as a number (no int
       object made), for an obs whose type has bit CS_IMPORT_CALL (and, for
       the second, CS_IMPORT_RETURN). import_call_n(obs, task, callee, args,
       &id): 1 when done as call[CS_IMPORT_CALL] does it (the id in *id),
       0 when not this case (nothing done: the caller makes that call), -1
       with an error. A call done so returns through import_return_n(obs,
       id, result): 1 when done as call[CS_IMPORT_RETURN] with the id as an
       int does it, 0 when this instance must have the method called after
       all (with the id as an int), -1 with an error. */
    int (*import_call_n)(PyObject *obs, PyObject *task, PyObject *callee, PyObject *args, long long *id);
    int (*import_return_n)(PyObject *obs, long long id, PyObject *result);
} CallscopeSinkAPI;

#endif
