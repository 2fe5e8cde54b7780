/* aloop._aloop: the C half of aloop's asyncio event loop. LoopCore wraps one aloop_loop.
 *
 * Why this shape. The Python class is `class Loop(_aloop.LoopCore, asyncio.AbstractEventLoop)`,
 * not a subclass of asyncio.base_events.BaseEventLoop, whose iteration runs a selector. What runs
 * on every iteration, and the calls a program makes all the time, live here, on aloop: the ready
 * queue and timers (aloop_call_soon, aloop_call_at), run_forever and run_until_complete (aloop_run,
 * with the interpreter lock given up while the driver sleeps, and a wake-up socket for signals),
 * readers and writers, calls from other threads, futures and tasks, the exception handler,
 * run_in_executor, the socket operations (aloop_sock_*: requests io_uring completes in the kernel,
 * never a selector) and stream transports (aloop transports calling the protocol's methods). The
 * rest (create_connection's resolution and happy eyeballs, create_server and Server objects, TLS,
 * datagram endpoints, pipes, child processes, default_exception_handler's formatting and logging,
 * shutdown_default_executor, async generator shutdown, set_debug) is asyncio's own pure-Python
 * code bound onto Loop in __init__.py: it runs on the methods defined here, so its semantics and
 * words are asyncio's exactly.
 *
 * Callbacks are asyncio.Handle / asyncio.TimerHandle objects, so cancel(), cancelled(), when(),
 * the contextvars context and the exception handler reports are asyncio's own. aloop owns one
 * reference to each handle it has scheduled, dropped when the callback runs or is skipped.
 *
 * The module keeps no global state: the asyncio classes it needs are in its module state. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <aloop.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Nanoseconds per second: aloop counts in ns, asyncio in float seconds. */
#define NS_PER_S 1e9
/* How long close() lets the driver confirm cancelled socket operations, in iterations of at most
 * CLOSE_WAIT_NS each: io_uring must hear back from the kernel before a buffer is free. */
enum { CLOSE_WAIT_ITERATIONS = 1000 };
#define CLOSE_WAIT_NS (1000 * 1000LL)

/* asyncio.Handle's slots that the fast path fills and reads (see new_handle). */
enum { SLOT_CALLBACK, SLOT_ARGS, SLOT_CANCELLED, SLOT_LOOP, SLOT_SOURCE_TRACEBACK, SLOT_REPR,
       SLOT_CONTEXT, HANDLE_SLOTS };
static const char *const handle_slot_names[HANDLE_SLOTS] = {
    "_callback", "_args", "_cancelled", "_loop", "_source_traceback", "_repr", "_context"};

typedef struct {
  PyObject *handle_type; /* asyncio.Handle */
  PyObject *timer_type;  /* asyncio.TimerHandle */
  PyObject *future_type; /* asyncio.Future */
  PyObject *task_type;   /* asyncio.Task */
  PyObject *set_task_name; /* asyncio.tasks._set_task_name */
  PyObject *get_running_loop, *set_running_loop; /* asyncio.events' */
  PyObject *get_asyncgen_hooks, *set_asyncgen_hooks; /* sys's */
  PyObject *set_wakeup_fd; /* signal.set_wakeup_fd */
  PyObject *isfuture, *ensure_future, *until_complete_cb; /* asyncio's, for run_until_complete */
  PyObject *logger; /* logging.getLogger("asyncio"), as asyncio's own reports */
  PyObject *thread_pool, *wrap_future; /* concurrent.futures.ThreadPoolExecutor, asyncio's */
  PyObject *buffered_protocol_type; /* asyncio.BufferedProtocol */
  PyObject *format_callback_source; /* asyncio.format_helpers._format_callback_source */
  /* Where asyncio.Handle keeps its __slots__ (0: unknown; handles are then made and run through
   * their Python methods). */
  Py_ssize_t slot[HANDLE_SLOTS];
  Py_ssize_t when_slot, scheduled_slot; /* TimerHandle's own (0: timers use __init__) */
  /* the protocol methods transports call, interned once */
  PyObject *str_connection_made, *str_data_received, *str_eof_received, *str_connection_lost,
      *str_pause_writing, *str_resume_writing, *str_get_buffer, *str_buffer_updated,
      *str_datagram_received, *str_error_received;
  PyTypeObject *core_type;
  PyTypeObject *op_type;
  PyTypeObject *transport_type, *datagram_type;
} module_state;

typedef struct {
  PyObject_HEAD
  aloop_loop *loop;
  PyThreadState *saved; /* the thread state given up while the driver waits */
  PyObject *readers;    /* fd -> Handle */
  PyObject *writers;
  module_state *st;     /* the module's state, kept here for the hot paths */
  PyObject *ops;        /* socket operations in flight (Op objects) */
  PyObject *transports; /* Transports aloop still has (until their connection_lost) */
  PyObject *exc;        /* a BaseException a callback raised past asyncio's handler: re-raised */
  char debug;
  PyObject *task_factory;
  PyObject *exception_handler;
  int closed, closing, running;
  unsigned long thread_id;  /* the thread running the loop, while it runs */
  int wake[2];              /* signals wake the loop: Python's handler writes wake[1] */
  struct scheduled *scheduled; /* handles aloop holds (see new_scheduled) */
  PyObject *weakrefs;
  PyObject *dict;
} LoopCore;

/* One socket operation in flight: the aloop future, the asyncio future it completes, the buffer
 * it reads into or writes from, and the sender's address for a recvfrom (here because it must stay
 * put until the driver is done, as the buffer). Called with the asyncio future (a done callback), it cancels the
 * aloop operation if the asyncio future was cancelled. */
typedef struct {
  PyObject_HEAD
  LoopCore *core;
  aloop_future *af;
  PyObject *fut;
  Py_buffer buf;
  int has_buf;
  int kind;
  aloop_sockaddr from;
} Op;

enum op_kind { OP_RECV, OP_RECV_INTO, OP_SENDALL, OP_ACCEPT, OP_CONNECT, OP_RECVFROM, OP_SENDTO,
               OP_SENDFILE, OP_PIDFD_WAIT };

static struct PyModuleDef aloop_module;

/* ---- the interpreter lock around the driver's wait ----------------------------------------- */

static void release_gil(void *arg) { ((LoopCore *)arg)->saved = PyEval_SaveThread(); }

static void acquire_gil(void *arg) {
  LoopCore *self = arg;
  PyEval_RestoreThread(self->saved);
  self->saved = NULL;
}

/* ---- running handles --------------------------------------------------------------------------- */

/* Keep the first BaseException that got past Handle._run (KeyboardInterrupt, SystemExit) and stop
 * the loop: run_forever raises it once the iteration is over, as asyncio's loop does. */
static void keep_exception(LoopCore *self) {
  if (self->exc) {
    PyErr_WriteUnraisable((PyObject *)self);
  } else {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    self->exc = value;
  }
  aloop_stop(self->loop);
}

static int handle_cancelled(PyObject *handle) {
  PyObject *c = PyObject_GetAttrString(handle, "_cancelled");
  if (!c) return -1;
  int yes = PyObject_IsTrue(c);
  Py_DECREF(c);
  return yes;
}

/* ---- handles without their Python methods ---------------------------------------------------------
 * asyncio.Handle and TimerHandle are pure Python in 3.11: __init__ and _run cost more than the rest
 * of a callback's trip through the loop. Outside debug mode (which keeps asyncio's own methods,
 * for its source tracebacks), a handle is made by filling its __slots__ directly and run by
 * reading them: the objects are asyncio's exactly (isinstance, cancel(), repr), without the
 * interpreter in between. The slots' offsets come from the class's member descriptors; if they
 * are not what this expects, the Python methods are used. */

static PyObject *core_call_exception_handler(LoopCore *self, PyObject *context);

#define HANDLE_SLOT(st, h, i) (*(PyObject **)((char *)(h) + (st)->slot[i]))

static Py_ssize_t object_slot(PyObject *type, const char *name) {
  PyObject *d = PyObject_GetAttrString(type, name);
  int ok = d && Py_IS_TYPE(d, &PyMemberDescr_Type) &&
           ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
  Py_ssize_t offset = ok ? ((PyMemberDescrObject *)d)->d_member->offset : 0;
  Py_XDECREF(d);
  PyErr_Clear();
  return offset;
}

static void find_handle_slots(module_state *st) {
  st->when_slot = object_slot(st->timer_type, "_when");
  st->scheduled_slot = object_slot(st->timer_type, "_scheduled");
  if (!st->scheduled_slot) st->when_slot = 0;
  for (int i = 0; i < HANDLE_SLOTS; i++) {
    st->slot[i] = object_slot(st->handle_type, handle_slot_names[i]);
    if (!st->slot[i]) {
      st->slot[0] = 0;
      return;
    }
  }
}

static int fast_handles(LoopCore *self) { return !self->debug && self->st->slot[0]; }

static void set_slot(module_state *st, PyObject *h, int i, PyObject *v) {
  Py_XSETREF(HANDLE_SLOT(st, h, i), Py_NewRef(v));
}

/* A Handle (or TimerHandle: type) for callback(*args) in context (None: a copy of the current
 * one), as asyncio's __init__ makes it. */
static PyObject *new_handle(LoopCore *self, PyTypeObject *type, PyObject *cb, PyObject *args,
                            PyObject *context) {
  module_state *st = self->st;
  PyObject *h = type->tp_alloc(type, 0);
  if (!h) return NULL;
  PyObject *ctx = context == Py_None ? PyContext_CopyCurrent() : Py_NewRef(context);
  if (!ctx) {
    Py_DECREF(h);
    return NULL;
  }
  set_slot(st, h, SLOT_CALLBACK, cb);
  set_slot(st, h, SLOT_ARGS, args);
  set_slot(st, h, SLOT_CANCELLED, Py_False);
  set_slot(st, h, SLOT_LOOP, (PyObject *)self);
  set_slot(st, h, SLOT_SOURCE_TRACEBACK, Py_None);
  set_slot(st, h, SLOT_REPR, Py_None);
  Py_XSETREF(HANDLE_SLOT(st, h, SLOT_CONTEXT), ctx);
  return h;
}

/* What asyncio's Handle._run does when the callback raises: the exception handler hears of it
 * with the callback's source (SystemExit and KeyboardInterrupt go on up). */
static void callback_failed(LoopCore *self, PyObject *h, PyObject *cb, PyObject *args) {
  if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
    keep_exception(self);
    return;
  }
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  PyObject *source = PyObject_CallFunctionObjArgs(self->st->format_callback_source, cb, args, NULL);
  PyObject *context = source ? Py_BuildValue("{sUsOsO}", "message", "", "exception",
                                             value ? value : Py_None, "handle", h)
                             : NULL;
  PyObject *message = source ? PyUnicode_FromFormat("Exception in callback %U", source) : NULL;
  PyObject *r = context && message && PyDict_SetItemString(context, "message", message) == 0
                    ? core_call_exception_handler(self, context)
                    : NULL;
  if (!r) keep_exception(self); /* the handler's own SystemExit, or no memory */
  Py_XDECREF(r);
  Py_XDECREF(message);
  Py_XDECREF(context);
  Py_XDECREF(source);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
}

/* Handle._run, for a handle whose slots hold what new_handle (or asyncio's __init__) put there:
 * 1 if it ran (or was cancelled), 0 if the slots are not as expected (the caller calls _run). */
static int run_handle_fast(LoopCore *self, PyObject *h) {
  module_state *st = self->st;
  if (HANDLE_SLOT(st, h, SLOT_CANCELLED) == Py_True) return 1;
  PyObject *cb = HANDLE_SLOT(st, h, SLOT_CALLBACK), *args = HANDLE_SLOT(st, h, SLOT_ARGS),
           *ctx = HANDLE_SLOT(st, h, SLOT_CONTEXT);
  if (!cb || !args || !ctx || !PyTuple_CheckExact(args) || !PyContext_CheckExact(ctx)) return 0;
  Py_INCREF(cb); /* the callback may cancel its own handle, which lets go of them */
  Py_INCREF(args);
  Py_INCREF(ctx);
  PyObject *r = NULL;
  if (PyContext_Enter(ctx) == 0) {
    r = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(args, 0), (size_t)PyTuple_GET_SIZE(args), NULL);
    if (PyContext_Exit(ctx) < 0) Py_CLEAR(r);
  }
  if (r) Py_DECREF(r);
  else callback_failed(self, h, cb, args);
  Py_DECREF(cb);
  Py_DECREF(args);
  Py_DECREF(ctx);
  return 1;
}

static void run_handle(LoopCore *self, PyObject *handle) {
  if (fast_handles(self) && (Py_IS_TYPE(handle, (PyTypeObject *)self->st->handle_type) ||
                             Py_IS_TYPE(handle, (PyTypeObject *)self->st->timer_type)) &&
      run_handle_fast(self, handle))
    return;
  int cancelled = handle_cancelled(handle);
  if (cancelled == 0) {
    PyObject *r = PyObject_CallMethod(handle, "_run", NULL);
    if (r) {
      Py_DECREF(r);
      return;
    }
  }
  if (cancelled != 0 && !PyErr_Occurred()) return;
  keep_exception(self);
}

/* What aloop holds for one scheduled handle: a reference to it, on a list of the loop's, so the
 * handles aloop still has when the loop is closed (timers not yet due, calls from other threads)
 * are let go of too. The list is touched only with the interpreter lock held. The core is
 * borrowed: it frees the aloop loop (and so every pending callback) before it goes. */
typedef struct scheduled {
  LoopCore *core;
  PyObject *handle;
  struct scheduled *prev, *next;
} scheduled;

static void unlink_scheduled(scheduled *s) {
  if (s->prev) s->prev->next = s->next;
  else s->core->scheduled = s->next;
  if (s->next) s->next->prev = s->prev;
  Py_DECREF(s->handle);
  PyMem_RawFree(s);
}

static void on_scheduled(aloop_loop *loop, void *arg) {
  scheduled *s = arg;
  /* A callback of this round raised past the handler (KeyboardInterrupt): run_forever leaves as
   * soon as the round is over, and asyncio leaves the rest of its round queued for the next run,
   * so the rest of this round goes back to the queue, in order. */
  if (s->core->exc && !s->core->closing && aloop_call_soon(loop, on_scheduled, s, NULL) == 0)
    return;
  if (!s->core->closing) run_handle(s->core, s->handle);
  unlink_scheduled(s);
}

static scheduled *new_scheduled(LoopCore *self, PyObject *handle) {
  scheduled *s = PyMem_RawMalloc(sizeof *s);
  if (!s) {
    PyErr_NoMemory();
    return NULL;
  }
  Py_INCREF(handle);
  *s = (scheduled){.core = self, .handle = handle, .prev = NULL, .next = self->scheduled};
  if (s->next) s->next->prev = s;
  self->scheduled = s;
  return s;
}

static void free_scheduled(scheduled *s) { unlink_scheduled(s); }

/* After aloop_free: the callbacks it dropped will never run. */
static void drop_scheduled(LoopCore *self) {
  while (self->scheduled) unlink_scheduled(self->scheduled);
}

/* ---- checks, as asyncio's ------------------------------------------------------------------------ */

static int check_closed(LoopCore *self) {
  if (self->closed || !self->loop) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return -1;
  }
  return 0;
}

/* In debug mode asyncio refuses coroutines and non-callables when they are scheduled (with
 * asyncio's own check, so the words are the same). */
static int check_callback(LoopCore *self, PyObject *cb, const char *method) {
  if (!self->debug) return 0;
  PyObject *r = PyObject_CallMethod((PyObject *)self, "_check_callback", "Os", cb, method);
  Py_XDECREF(r);
  return r ? 0 : -1;
}

/* In debug mode asyncio also refuses a non-thread-safe call from a thread other than the one
 * running the loop. */
static int check_thread(LoopCore *self) {
  if (!self->debug) return 0;
  PyObject *r = PyObject_CallMethod((PyObject *)self, "_check_thread", NULL);
  Py_XDECREF(r);
  return r ? 0 : -1;
}

/* Split (callback, *args) and the context= keyword of a FASTCALL|KEYWORDS call. */
static int split_call(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t skip,
                      const char *method, PyObject **cb, PyObject **cargs, PyObject **context) {
  *context = Py_None;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *name = PyTuple_GET_ITEM(kwnames, i);
    if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, "context") != 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", method, name);
      return -1;
    }
    *context = args[nargs + i];
  }
  if (nargs < skip + 1) {
    PyErr_Format(PyExc_TypeError, "%s() missing required argument 'callback'", method);
    return -1;
  }
  *cb = args[skip];
  *cargs = PyTuple_New(nargs - skip - 1);
  if (!*cargs) return -1;
  for (Py_ssize_t i = skip + 1; i < nargs; i++) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(*cargs, i - skip - 1, args[i]);
  }
  return 0;
}

/* ---- scheduling ------------------------------------------------------------------------------------ */

/* Queue the handle h to run soon: 0, or -1 with an exception. */
static int schedule_handle(LoopCore *self, PyObject *h, int threadsafe) {
  scheduled *s = new_scheduled(self, h);
  if (!s) return -1;
  int err = threadsafe ? aloop_call_soon_threadsafe(self->loop, on_scheduled, s)
                       : aloop_call_soon(self->loop, on_scheduled, s, NULL);
  if (err < 0) {
    free_scheduled(s);
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

/* _call_handle_soon(handle): queue an existing Handle (a signal handler's, which runs again on
 * every delivery, as asyncio's). */
static PyObject *core_call_handle_soon(LoopCore *self, PyObject *handle) {
  if (check_closed(self) < 0 || schedule_handle(self, handle, 0) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *schedule_soon(LoopCore *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames, const char *method, int threadsafe) {
  PyObject *cb, *cargs, *context;
  if (check_closed(self) < 0 || (!threadsafe && check_thread(self) < 0)) return NULL;
  if (split_call(args, nargs, kwnames, 0, method, &cb, &cargs, &context) < 0) return NULL;
  if (check_callback(self, cb, method) < 0) {
    Py_DECREF(cargs);
    return NULL;
  }
  module_state *st = self->st;
  PyObject *h = fast_handles(self)
                    ? new_handle(self, (PyTypeObject *)st->handle_type, cb, cargs, context)
                    : PyObject_CallFunction(st->handle_type, "OOOO", cb, cargs, self, context);
  Py_DECREF(cargs);
  if (!h) return NULL;
  if (schedule_handle(self, h, threadsafe) < 0) Py_CLEAR(h);
  return h;
}

static PyObject *core_call_soon(LoopCore *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  return schedule_soon(self, args, nargs, kwnames, "call_soon", 0);
}

static PyObject *core_call_soon_threadsafe(LoopCore *self, PyObject *const *args,
                                           Py_ssize_t nargs, PyObject *kwnames) {
  return schedule_soon(self, args, nargs, kwnames, "call_soon_threadsafe", 1);
}

static double now_s(LoopCore *self) { return (double)aloop_time(self->loop) / NS_PER_S; }

/* A deadline in seconds as aloop's ns, rounded up (and one ns more, for the float's own
 * rounding) so the timer never runs before loop.time() reaches `when`. */
static int64_t deadline_ns(double when) {
  double ns = ceil(when * NS_PER_S) + 1;
  if (ns < 0) return 0;
  if (ns > (double)INT64_MAX / 2) return INT64_MAX / 2;
  return (int64_t)ns;
}

static PyObject *schedule_at(LoopCore *self, double when, PyObject *cb, PyObject *cargs,
                             PyObject *context, const char *method) {
  if (check_callback(self, cb, method) < 0) return NULL;
  module_state *st = self->st;
  PyObject *h;
  if (fast_handles(self) && st->when_slot) {
    PyObject *w = PyFloat_FromDouble(when);
    h = w ? new_handle(self, (PyTypeObject *)st->timer_type, cb, cargs, context) : NULL;
    if (h) {
      Py_XSETREF(*(PyObject **)((char *)h + st->when_slot), w);
      Py_XSETREF(*(PyObject **)((char *)h + st->scheduled_slot), Py_NewRef(Py_False));
    } else {
      Py_XDECREF(w);
    }
  } else {
    h = PyObject_CallFunction(st->timer_type, "dOOOO", when, cb, cargs, self, context);
  }
  if (!h) return NULL;
  scheduled *s = new_scheduled(self, h);
  if (!s) {
    Py_DECREF(h);
    return NULL;
  }
  if (aloop_call_at(self->loop, deadline_ns(when), on_scheduled, s, NULL) < 0) {
    free_scheduled(s);
    Py_DECREF(h);
    return PyErr_NoMemory();
  }
  return h;
}

static PyObject *schedule_timer(LoopCore *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames, const char *method, int relative) {
  PyObject *cb, *cargs, *context;
  if (check_closed(self) < 0 || check_thread(self) < 0) return NULL;
  if (nargs < 1) {
    PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", method,
                 relative ? "delay" : "when");
    return NULL;
  }
  if (args[0] == Py_None) {
    PyErr_SetString(PyExc_TypeError, relative ? "delay must not be None" : "when cannot be None");
    return NULL;
  }
  double t = PyFloat_AsDouble(args[0]);
  if (t == -1.0 && PyErr_Occurred()) return NULL;
  if (relative) t += now_s(self);
  if (split_call(args, nargs, kwnames, 1, method, &cb, &cargs, &context) < 0) return NULL;
  PyObject *h = schedule_at(self, t, cb, cargs, context, method);
  Py_DECREF(cargs);
  return h;
}

static PyObject *core_call_later(LoopCore *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames) {
  return schedule_timer(self, args, nargs, kwnames, "call_later", 1);
}

static PyObject *core_call_at(LoopCore *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
  return schedule_timer(self, args, nargs, kwnames, "call_at", 0);
}

static PyObject *core_time(LoopCore *self, PyObject *unused) {
  if (!self->loop) return PyFloat_FromDouble(0);
  return PyFloat_FromDouble(now_s(self));
}

/* TimerHandle.cancel() tells the loop; aloop's timer then runs, finds the handle cancelled and
 * drops it (as asyncio's heap keeps cancelled timers until they surface). */
static PyObject *core_timer_handle_cancelled(LoopCore *self, PyObject *handle) { Py_RETURN_NONE; }

/* ---- futures and tasks ------------------------------------------------------------------------- */

static PyObject *core_create_future(LoopCore *self, PyObject *unused) {
  module_state *st = self->st;
  if (!st) return NULL;
  PyObject *kw = Py_BuildValue("{sO}", "loop", self);
  PyObject *empty = PyTuple_New(0);
  PyObject *f = kw && empty ? PyObject_Call(st->future_type, empty, kw) : NULL;
  Py_XDECREF(kw);
  Py_XDECREF(empty);
  return f;
}

/* asyncio's create_task: the factory if one is set (with context= only when given), else a
 * Task; the name is set afterwards for a factory's task, as asyncio does. */
static PyObject *core_create_task(LoopCore *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"coro", "name", "context", NULL};
  PyObject *coro, *name = Py_None, *context = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$OO:create_task", kwlist, &coro, &name,
                                   &context))
    return NULL;
  if (check_closed(self) < 0) return NULL;
  module_state *st = self->st;
  if (!st) return NULL;
  if (self->task_factory == NULL || self->task_factory == Py_None) {
    PyObject *empty = PyTuple_New(0);
    PyObject *kw = Py_BuildValue("{sOsOsO}", "loop", self, "name", name, "context", context);
    PyObject *targs = PyTuple_Pack(1, coro);
    PyObject *task = empty && kw && targs ? PyObject_Call(st->task_type, targs, kw) : NULL;
    Py_XDECREF(empty);
    Py_XDECREF(kw);
    Py_XDECREF(targs);
    return task;
  }
  PyObject *task;
  if (context == Py_None) {
    task = PyObject_CallFunctionObjArgs(self->task_factory, self, coro, NULL);
  } else {
    PyObject *fargs = PyTuple_Pack(2, self, coro);
    PyObject *kw = Py_BuildValue("{sO}", "context", context);
    task = fargs && kw ? PyObject_Call(self->task_factory, fargs, kw) : NULL;
    Py_XDECREF(fargs);
    Py_XDECREF(kw);
  }
  if (!task) return NULL;
  PyObject *r = PyObject_CallFunctionObjArgs(st->set_task_name, task, name, NULL);
  if (!r) Py_CLEAR(task);
  Py_XDECREF(r);
  return task;
}

static PyObject *core_set_task_factory(LoopCore *self, PyObject *factory) {
  if (factory != Py_None && !PyCallable_Check(factory)) {
    PyErr_SetString(PyExc_TypeError, "task factory must be a callable or None");
    return NULL;
  }
  Py_INCREF(factory);
  Py_XSETREF(self->task_factory, factory);
  Py_RETURN_NONE;
}

static PyObject *core_get_task_factory(LoopCore *self, PyObject *unused) {
  PyObject *f = self->task_factory ? self->task_factory : Py_None;
  Py_INCREF(f);
  return f;
}

static PyObject *core_get_debug(LoopCore *self, PyObject *unused) {
  return PyBool_FromLong(self->debug);
}

/* ---- the executor ------------------------------------------------------------------------------ */

/* The default executor, made on first use (a ThreadPoolExecutor, as asyncio's); refused once
 * shutdown_default_executor was called. Lives in _default_executor, which shutdown_default_executor
 * and close use too. */
static PyObject *default_executor(LoopCore *self, module_state *st) {
  PyObject *ex = PyObject_GetAttrString((PyObject *)self, "_default_executor");
  if (!ex) return NULL;
  PyObject *r = PyObject_CallMethod((PyObject *)self, "_check_default_executor", NULL);
  if (!r) {
    Py_DECREF(ex);
    return NULL;
  }
  Py_DECREF(r);
  if (ex != Py_None) return ex;
  Py_DECREF(ex);
  PyObject *args = PyTuple_New(0), *kw = Py_BuildValue("{ss}", "thread_name_prefix", "asyncio");
  ex = args && kw ? PyObject_Call(st->thread_pool, args, kw) : NULL;
  Py_XDECREF(args);
  Py_XDECREF(kw);
  if (ex && PyObject_SetAttrString((PyObject *)self, "_default_executor", ex) < 0) Py_CLEAR(ex);
  return ex;
}

/* run_in_executor(executor, func, *args): func(*args) on the executor (None: the default one),
 * its concurrent future wrapped in an asyncio future of this loop. */
static PyObject *core_run_in_executor(LoopCore *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 2) {
    PyErr_SetString(PyExc_TypeError, "run_in_executor() takes at least 2 arguments");
    return NULL;
  }
  module_state *st = self->st;
  if (!st || check_closed(self) < 0 || check_callback(self, args[1], "run_in_executor") < 0)
    return NULL;
  PyObject *ex = args[0] == Py_None ? default_executor(self, st) : (Py_INCREF(args[0]), args[0]);
  if (!ex) return NULL;
  PyObject *submit = PyObject_GetAttrString(ex, "submit");
  Py_DECREF(ex);
  PyObject *cf = submit ? PyObject_Vectorcall(submit, args + 1, (size_t)(nargs - 1), NULL) : NULL;
  Py_XDECREF(submit);
  if (!cf) return NULL;
  PyObject *wargs = PyTuple_Pack(1, cf), *kw = Py_BuildValue("{sO}", "loop", self);
  PyObject *fut = wargs && kw ? PyObject_Call(st->wrap_future, wargs, kw) : NULL;
  Py_XDECREF(wargs);
  Py_XDECREF(kw);
  Py_DECREF(cf);
  return fut;
}

static PyObject *core_set_default_executor(LoopCore *self, PyObject *executor) {
  module_state *st = self->st;
  if (!st) return NULL;
  int ok = PyObject_IsInstance(executor, st->thread_pool);
  if (ok < 0) return NULL;
  if (!ok) {
    PyErr_SetString(PyExc_TypeError, "executor must be ThreadPoolExecutor");
    return NULL;
  }
  if (PyObject_SetAttrString((PyObject *)self, "_default_executor", executor) < 0) return NULL;
  Py_RETURN_NONE;
}

/* ---- the exception handler -------------------------------------------------------------------- */

static PyObject *core_set_exception_handler(LoopCore *self, PyObject *handler) {
  if (handler != Py_None && !PyCallable_Check(handler)) {
    PyErr_Format(PyExc_TypeError, "A callable object or None is expected, got %R", handler);
    return NULL;
  }
  Py_INCREF(handler);
  Py_XSETREF(self->exception_handler, handler);
  Py_RETURN_NONE;
}

static PyObject *core_get_exception_handler(LoopCore *self, PyObject *unused) {
  PyObject *h = self->exception_handler ? self->exception_handler : Py_None;
  Py_INCREF(h);
  return h;
}

/* A handler's own failure: SystemExit and KeyboardInterrupt go on up (0 returned with the error
 * set); anything else is taken (1). */
static int handler_failed_quietly(void) {
  if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
    return 0;
  return 1;
}

/* Log `message` on asyncio's logger with the exception being handled, and clear it. */
static PyObject *log_current_error(module_state *st, const char *message) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  PyObject *args = Py_BuildValue("(s)", message);
  PyObject *kw = value ? Py_BuildValue("{sO}", "exc_info", value) : NULL;
  PyObject *error = PyObject_GetAttrString(st->logger, "error");
  PyObject *r = args && kw && error ? PyObject_Call(error, args, kw) : NULL;
  Py_XDECREF(args);
  Py_XDECREF(kw);
  Py_XDECREF(error);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  return r;
}

static PyObject *call_default_handler(LoopCore *self, module_state *st, PyObject *context,
                                      const char *if_it_fails) {
  PyObject *name = PyUnicode_FromString("default_exception_handler");
  PyObject *r = name ? PyObject_CallMethodOneArg((PyObject *)self, name, context) : NULL;
  Py_XDECREF(name);
  if (r || !handler_failed_quietly()) return r;
  return log_current_error(st, if_it_fails);
}

/* As asyncio's: the handler set (or the default one) hears the context; its own failure is
 * reported through the default handler, and a failure there is logged. */
static PyObject *core_call_exception_handler(LoopCore *self, PyObject *context) {
  module_state *st = self->st;
  if (!st) return NULL;
  PyObject *handler = self->exception_handler;
  if (!handler || handler == Py_None)
    return call_default_handler(self, st, context, "Exception in default exception handler");
  PyObject *r = PyObject_CallFunctionObjArgs(handler, self, context, NULL);
  if (r || !handler_failed_quietly()) return r;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  PyObject *report = Py_BuildValue("{sssOsO}", "message", "Unhandled error in exception handler",
                                   "exception", value ? value : Py_None, "context", context);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  if (!report) return NULL;
  r = call_default_handler(self, st, report,
                           "Exception in default exception handler while handling an unexpected "
                           "error in custom exception handler");
  Py_DECREF(report);
  return r;
}

/* ---- running ----------------------------------------------------------------------------------- */

/* One aloop_run: until stop(). Raises what a callback let through, or a signal's exception. */
static PyObject *run_core(LoopCore *self) {
  aloop_set_wait_hooks(self->loop, release_gil, acquire_gil, self);
  int err = aloop_run(self->loop);
  aloop_set_wait_hooks(self->loop, NULL, NULL, NULL);
  if (self->exc) {
    PyObject *e = self->exc;
    self->exc = NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    Py_DECREF(e);
    return NULL;
  }
  if (PyErr_CheckSignals() < 0) return NULL;
  if (err < 0) {
    PyErr_Format(PyExc_RuntimeError, "aloop: %s", aloop_strerror(err));
    return NULL;
  }
  Py_RETURN_NONE;
}

/* Whether add_signal_handler has handlers in place (the dict __init__.py keeps): while it has,
 * the wake-up socket stays Python's wake-up fd between runs too, so no delivery is lost. */
static int has_signal_handlers(LoopCore *self) {
  PyObject *handlers = PyObject_GetAttrString((PyObject *)self, "_signal_handlers");
  Py_ssize_t n = handlers ? PyObject_Size(handlers) : -1;
  Py_XDECREF(handlers);
  if (n < 0) PyErr_Clear(); /* a subclass that skipped __init__ has none */
  return n > 0;
}

/* Each byte is a signal's number: the handlers add_signal_handler set run as asyncio's do. */
static void dispatch_signals(LoopCore *self, const unsigned char *sigs, ssize_t n) {
  for (ssize_t i = 0; i < n && has_signal_handlers(self); i++) {
    PyObject *r = PyObject_CallMethod((PyObject *)self, "_handle_signal", "i", (int)sigs[i]);
    Py_XDECREF(r);
    if (!r) keep_exception(self);
  }
}

/* The wake-up socket is readable: a signal arrived (Python's C handler wrote its number). Drain
 * it, queue the handlers of add_signal_handler, and let Python run its own handlers now: SIGINT's
 * raises KeyboardInterrupt, which leaves run_forever as asyncio's loop does. */
static void on_wakeup(aloop_loop *loop, int fd, void *arg) {
  LoopCore *self = arg;
  unsigned char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) dispatch_signals(self, buf, n);
  if (PyErr_CheckSignals() < 0) keep_exception(self);
}

/* After a run: Python's wake-up fd as it was before, unless signal handlers still need ours (and
 * never ours once they are gone: the socket dies with the loop). */
static void restore_wakeup(LoopCore *self, module_state *st, PyObject *old_wakeup) {
  if (has_signal_handlers(self)) return;
  long old = PyLong_AsLong(old_wakeup);
  if (old == -1 && PyErr_Occurred()) PyErr_Clear();
  PyObject *r = old == self->wake[1] ? PyObject_CallFunction(st->set_wakeup_fd, "i", -1)
                                     : PyObject_CallOneArg(st->set_wakeup_fd, old_wakeup);
  Py_XDECREF(r);
  if (!r) PyErr_WriteUnraisable((PyObject *)self);
}

static int check_running(LoopCore *self, module_state *st) {
  if (self->running) {
    PyErr_SetString(PyExc_RuntimeError, "This event loop is already running");
    return -1;
  }
  PyObject *other = PyObject_CallNoArgs(st->get_running_loop);
  if (!other) return -1;
  int busy = other != Py_None;
  Py_DECREF(other);
  if (busy) {
    PyErr_SetString(PyExc_RuntimeError, "Cannot run the event loop while another loop is running");
    return -1;
  }
  return 0;
}

static int call_method_quietly(PyObject *obj, const char *name, PyObject *arg) {
  PyObject *r = PyObject_CallMethod(obj, name, "O", arg);
  Py_XDECREF(r);
  return r ? 0 : -1;
}

/* While the loop runs: the async generator hooks are the loop's (shutdown_asyncgens finds them),
 * the running loop is this one, and on the main thread signals write to the wake-up socket. */
static PyObject *enter_run(LoopCore *self, module_state *st, PyObject **old_wakeup) {
  PyObject *old_hooks = PyObject_CallNoArgs(st->get_asyncgen_hooks);
  if (!old_hooks) return NULL;
  PyObject *first = PyObject_GetAttrString((PyObject *)self, "_asyncgen_firstiter_hook");
  PyObject *fin = PyObject_GetAttrString((PyObject *)self, "_asyncgen_finalizer_hook");
  PyObject *kw = first && fin ? Py_BuildValue("{sOsO}", "firstiter", first, "finalizer", fin) : NULL;
  PyObject *empty = PyTuple_New(0);
  PyObject *r = kw && empty ? PyObject_Call(st->set_asyncgen_hooks, empty, kw) : NULL;
  Py_XDECREF(first);
  Py_XDECREF(fin);
  Py_XDECREF(kw);
  Py_XDECREF(empty);
  if (!r) {
    Py_DECREF(old_hooks);
    return NULL;
  }
  Py_DECREF(r);
  *old_wakeup = PyObject_CallFunction(st->set_wakeup_fd, "i", self->wake[1]);
  if (!*old_wakeup) PyErr_Clear(); /* not the main thread: no signals come here anyway */
  r = PyObject_CallOneArg(st->set_running_loop, (PyObject *)self);
  Py_XDECREF(r);
  return old_hooks; /* the caller restores them even if setting the running loop failed */
}

static void leave_run(LoopCore *self, module_state *st, PyObject *old_hooks, PyObject *old_wakeup) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb); /* what run_forever raises: the steps below must not lose it */
  PyObject *r = PyObject_CallOneArg(st->set_running_loop, Py_None);
  Py_XDECREF(r);
  if (!r) PyErr_WriteUnraisable((PyObject *)self);
  if (call_method_quietly((PyObject *)self, "_set_coroutine_origin_tracking", Py_False) < 0)
    PyErr_WriteUnraisable((PyObject *)self);
  r = PyObject_CallObject(st->set_asyncgen_hooks, old_hooks);
  Py_XDECREF(r);
  if (!r) PyErr_WriteUnraisable((PyObject *)self);
  if (old_wakeup) restore_wakeup(self, st, old_wakeup);
  PyErr_Restore(type, value, tb);
}

static PyObject *core_run_forever(LoopCore *self, PyObject *unused) {
  module_state *st = self->st;
  if (!st || check_closed(self) < 0 || check_running(self, st) < 0) return NULL;
  if (call_method_quietly((PyObject *)self, "_set_coroutine_origin_tracking",
                          self->debug ? Py_True : Py_False) < 0)
    return NULL;
  self->running = 1;
  self->thread_id = PyThread_get_thread_ident();
  PyObject *old_wakeup = NULL;
  PyObject *old_hooks = enter_run(self, st, &old_wakeup);
  PyObject *result = old_hooks && !PyErr_Occurred() ? run_core(self) : NULL;
  self->running = 0;
  self->thread_id = 0;
  if (old_hooks) leave_run(self, st, old_hooks, old_wakeup);
  Py_XDECREF(old_hooks);
  Py_XDECREF(old_wakeup);
  return result;
}

/* obj.name() as a truth value, or -1 with an exception. */
static int call_bool(PyObject *obj, const char *name) {
  PyObject *r = PyObject_CallMethod(obj, name, NULL);
  int yes = r ? PyObject_IsTrue(r) : -1;
  Py_XDECREF(r);
  return yes;
}

/* After run_forever failed: a task made here that ended with an error has had its error looked
 * at (the caller gets run_forever's), so asyncio's "exception was never retrieved" stays quiet. */
static void mark_retrieved(PyObject *fut) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (call_bool(fut, "done") == 1 && call_bool(fut, "cancelled") == 0) {
    PyObject *r = PyObject_CallMethod(fut, "exception", NULL);
    Py_XDECREF(r);
  }
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
}

static PyObject *wrap_future(LoopCore *self, module_state *st, PyObject *future, int *new_task) {
  PyObject *isf = PyObject_CallOneArg(st->isfuture, future);
  int is_future = isf ? PyObject_IsTrue(isf) : -1;
  Py_XDECREF(isf);
  if (is_future < 0) return NULL;
  *new_task = !is_future;
  PyObject *args = PyTuple_Pack(1, future), *kw = Py_BuildValue("{sO}", "loop", self);
  PyObject *fut = args && kw ? PyObject_Call(st->ensure_future, args, kw) : NULL;
  Py_XDECREF(args);
  Py_XDECREF(kw);
  if (fut && *new_task && PyObject_SetAttrString(fut, "_log_destroy_pending", Py_False) < 0)
    PyErr_Clear(); /* a task factory's task may not have it */
  return fut;
}

/* As asyncio's: run until the future (or the task made of a coroutine) is done; an error if the
 * loop was stopped first. */
static PyObject *core_run_until_complete(LoopCore *self, PyObject *future) {
  module_state *st = self->st;
  if (!st || check_closed(self) < 0 || check_running(self, st) < 0) return NULL;
  int new_task;
  PyObject *fut = wrap_future(self, st, future, &new_task);
  if (!fut) return NULL;
  PyObject *r = PyObject_CallMethod(fut, "add_done_callback", "O", st->until_complete_cb);
  if (r) {
    Py_DECREF(r);
    r = core_run_forever(self, NULL);
    if (!r && new_task) mark_retrieved(fut);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *removed = PyObject_CallMethod(fut, "remove_done_callback", "O", st->until_complete_cb);
    Py_XDECREF(removed);
    if (type) PyErr_Restore(type, value, tb);
    else if (!removed) Py_CLEAR(r);
  }
  PyObject *result = NULL;
  if (r) {
    Py_DECREF(r);
    int done = call_bool(fut, "done");
    if (done == 0)
      PyErr_SetString(PyExc_RuntimeError, "Event loop stopped before Future completed.");
    else if (done == 1)
      result = PyObject_CallMethod(fut, "result", NULL);
  }
  Py_DECREF(fut);
  return result;
}

static PyObject *core_is_running(LoopCore *self, PyObject *unused) {
  return PyBool_FromLong(self->running);
}

static PyObject *core_is_closed(LoopCore *self, PyObject *unused) {
  return PyBool_FromLong(self->closed);
}

static PyObject *core_get_thread_id(LoopCore *self, void *unused) {
  if (!self->running) Py_RETURN_NONE;
  return PyLong_FromUnsignedLong(self->thread_id);
}

static PyObject *core_stop(LoopCore *self, PyObject *unused) {
  if (self->loop) aloop_stop(self->loop);
  Py_RETURN_NONE;
}

/* ---- readers and writers --------------------------------------------------------------------------- */

/* An int, or an object with fileno(), as asyncio's selectors take them. */
static int fd_of(PyObject *obj) {
  int fd = PyObject_AsFileDescriptor(obj);
  if (fd < 0 && PyErr_ExceptionMatches(PyExc_TypeError)) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "Invalid file object: %R", obj);
  } else if (fd < 0 && PyErr_ExceptionMatches(PyExc_ValueError) && PyLong_Check(obj)) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %R", obj);
  }
  return fd;
}

/* A watcher whose handle was cancelled is removed, as asyncio's selector loop does: its fd would
 * otherwise be reported ready on every iteration with nothing to run. */
static void on_io(LoopCore *self, int fd, int write) {
  if (self->closing || self->exc) return; /* the fd stays ready: it is reported again */
  PyObject *table = write ? self->writers : self->readers;
  PyObject *key = PyLong_FromLong(fd);
  PyObject *h = key ? PyDict_GetItemWithError(table, key) : NULL;
  Py_XINCREF(h);
  int cancelled = h ? handle_cancelled(h) : -1;
  if (cancelled == 1) {
    if (PyDict_DelItem(table, key) < 0) cancelled = -1;
    if (write) aloop_remove_writer(self->loop, fd);
    else aloop_remove_reader(self->loop, fd);
  } else if (cancelled == 0) {
    run_handle(self, h);
  }
  if (cancelled < 0 && PyErr_Occurred()) keep_exception(self);
  Py_XDECREF(h);
  Py_XDECREF(key);
}

static void on_readable(aloop_loop *loop, int fd, void *arg) { on_io(arg, fd, 0); }

static void on_writable(aloop_loop *loop, int fd, void *arg) { on_io(arg, fd, 1); }

static PyObject *set_error(int err) {
  if (-err < ALOOP_EBASE) {
    errno = -err;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  return PyErr_Format(PyExc_OSError, "%s", aloop_strerror(err));
}

static PyObject *add_watcher(LoopCore *self, PyObject *const *args, Py_ssize_t nargs, int write) {
  if (check_closed(self) < 0) return NULL;
  if (nargs < 2) {
    PyErr_Format(PyExc_TypeError, "add_%s() takes at least 2 arguments", write ? "writer" : "reader");
    return NULL;
  }
  int fd = fd_of(args[0]);
  if (fd < 0) return NULL;
  PyObject *cb, *cargs, *context;
  const char *method = write ? "add_writer" : "add_reader";
  if (split_call(args, nargs, NULL, 1, method, &cb, &cargs, &context) < 0) return NULL;
  module_state *st = self->st;
  PyObject *h = st ? PyObject_CallFunction(st->handle_type, "OOOO", cb, cargs, self, Py_None) : NULL;
  Py_DECREF(cargs);
  if (!h) return NULL;
  int err = write ? aloop_add_writer(self->loop, fd, on_writable, self)
                  : aloop_add_reader(self->loop, fd, on_readable, self);
  if (err < 0) {
    Py_DECREF(h);
    return set_error(err);
  }
  PyObject *key = PyLong_FromLong(fd), *table = write ? self->writers : self->readers;
  PyObject *old = key ? PyDict_GetItemWithError(table, key) : NULL;
  if (old) {
    PyObject *r = PyObject_CallMethod(old, "cancel", NULL);
    Py_XDECREF(r);
  }
  err = key && !PyErr_Occurred() ? PyDict_SetItem(table, key, h) : -1;
  Py_XDECREF(key);
  Py_DECREF(h);
  if (err < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *remove_watcher(LoopCore *self, PyObject *fileobj, int write) {
  if (!self->loop || self->closed) Py_RETURN_FALSE; /* asyncio: nothing to remove once closed */
  int fd = fd_of(fileobj);
  if (fd < 0) return NULL;
  PyObject *key = PyLong_FromLong(fd), *table = write ? self->writers : self->readers;
  if (!key) return NULL;
  PyObject *h = PyDict_GetItemWithError(table, key);
  if (!h) {
    Py_DECREF(key);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_FALSE;
  }
  PyObject *r = PyObject_CallMethod(h, "cancel", NULL);
  Py_XDECREF(r);
  int err = PyDict_DelItem(table, key);
  Py_DECREF(key);
  if (!r || err < 0) return NULL;
  if (write) aloop_remove_writer(self->loop, fd);
  else aloop_remove_reader(self->loop, fd);
  Py_RETURN_TRUE;
}

static PyObject *core_add_reader(LoopCore *self, PyObject *const *args, Py_ssize_t nargs) {
  return add_watcher(self, args, nargs, 0);
}
static PyObject *core_add_writer(LoopCore *self, PyObject *const *args, Py_ssize_t nargs) {
  return add_watcher(self, args, nargs, 1);
}
static PyObject *core_remove_reader(LoopCore *self, PyObject *fileobj) {
  return remove_watcher(self, fileobj, 0);
}
static PyObject *core_remove_writer(LoopCore *self, PyObject *fileobj) {
  return remove_watcher(self, fileobj, 1);
}

/* ---- socket operations ----------------------------------------------------------------------------- */

/* A peer address as the socket module gives it: (host, port) for IPv4, (host, port, flowinfo,
 * scope_id) for IPv6, the path for Unix sockets. */
static PyObject *address_of(const aloop_sockaddr *a) {
  char host[INET6_ADDRSTRLEN];
  if (a->addr.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a->addr;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return Py_BuildValue("(si)", host, ntohs(in->sin_port));
  }
  if (a->addr.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->addr;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return Py_BuildValue("(siII)", host, ntohs(in6->sin6_port), ntohl(in6->sin6_flowinfo),
                         in6->sin6_scope_id);
  }
  if (a->addr.ss_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->addr;
    Py_ssize_t n = (Py_ssize_t)a->len - (Py_ssize_t)offsetof(struct sockaddr_un, sun_path);
    if (n <= 0) return PyUnicode_FromString("");
    if (un->sun_path[0] == '\0') return PyBytes_FromStringAndSize(un->sun_path, n);
    return PyUnicode_DecodeFSDefaultAndSize(un->sun_path, (Py_ssize_t)strnlen(un->sun_path, n));
  }
  Py_RETURN_NONE;
}

static PyObject *op_result(Op *op, int64_t n) {
  switch (op->kind) {
  case OP_RECV:
    return PyBytes_FromStringAndSize(aloop_future_data(op->af), (Py_ssize_t)n);
  case OP_RECV_INTO:
  case OP_SENDTO:
  case OP_SENDFILE:
  case OP_PIDFD_WAIT: /* the wait status */
    return PyLong_FromLongLong(n);
  case OP_RECVFROM: {
    PyObject *addr = address_of(&op->from);
    return addr ? Py_BuildValue("(LN)", (long long)n, addr) : NULL;
  }
  case OP_ACCEPT: {
    PyObject *addr = address_of(aloop_future_data(op->af));
    return addr ? Py_BuildValue("(LN)", (long long)n, addr) : NULL;
  }
  default:
    Py_RETURN_NONE;
  }
}

static PyObject *op_error(Op *op, int64_t code) {
  int err = (int)-code;
  if (err < ALOOP_EBASE) return PyObject_CallFunction(PyExc_OSError, "is", err, strerror(err));
  return PyObject_CallFunction(PyExc_OSError, "s", aloop_future_message(op->af));
}

/* Hand the outcome to the asyncio future (unless it was cancelled meanwhile, or the loop is
 * closing: then nobody waits for it). */
static void op_settle(Op *op, int64_t outcome) {
  PyObject *done = PyObject_CallMethod(op->fut, "done", NULL);
  int is_done = done ? PyObject_IsTrue(done) : -1;
  Py_XDECREF(done);
  if (is_done != 0 || op->core->closing) {
    if (is_done < 0) PyErr_WriteUnraisable(op->fut);
    if (outcome >= 0 && op->kind == OP_ACCEPT) close((int)outcome); /* nobody will serve it */
    return;
  }
  PyObject *r;
  if (outcome == -ECANCELED) {
    r = PyObject_CallMethod(op->fut, "cancel", NULL);
  } else {
    int ok = outcome >= 0;
    PyObject *v = ok ? op_result(op, outcome) : op_error(op, outcome);
    PyObject *name = PyUnicode_FromString(ok ? "set_result" : "set_exception");
    r = v && name ? PyObject_CallMethodOneArg(op->fut, name, v) : NULL;
    Py_XDECREF(name);
    Py_XDECREF(v);
  }
  if (!r) PyErr_WriteUnraisable(op->fut);
  Py_XDECREF(r);
}

/* aloop's done callback: the driver has let go of the buffer. */
static void op_done(aloop_future *af, void *arg) {
  Op *op = arg;
  op_settle(op, aloop_future_outcome(af));
  if (PySet_Discard(op->core->ops, (PyObject *)op) < 0) PyErr_WriteUnraisable((PyObject *)op);
  if (op->has_buf) PyBuffer_Release(&op->buf);
  op->has_buf = 0;
  op->af = NULL;
  aloop_future_release(af);
  Py_DECREF(op);
}

/* The asyncio future's done callback: a cancelled future cancels the operation in the driver. */
static PyObject *op_call(Op *op, PyObject *args, PyObject *kwargs) {
  if (op->af && !aloop_future_done(op->af)) {
    PyObject *c = PyObject_CallMethod(op->fut, "cancelled", NULL);
    int yes = c ? PyObject_IsTrue(c) : -1;
    Py_XDECREF(c);
    if (yes < 0) return NULL;
    if (yes) aloop_future_cancel(op->af);
  }
  Py_RETURN_NONE;
}

static void op_dealloc(Op *op) {
  PyObject_GC_UnTrack(op);
  if (op->has_buf) PyBuffer_Release(&op->buf);
  Py_XDECREF(op->fut);
  Py_XDECREF(op->core);
  PyTypeObject *tp = Py_TYPE(op);
  tp->tp_free(op);
  Py_DECREF(tp);
}

static int op_traverse(Op *op, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(op->fut);
  Py_VISIT(op->core);
  return 0;
}

static Op *new_op(LoopCore *self, PyObject *fut, int kind) {
  module_state *st = self->st;
  if (!st) return NULL;
  Op *op = PyObject_GC_New(Op, st->op_type);
  if (!op) return NULL;
  Py_INCREF(self);
  Py_INCREF(fut);
  op->core = self;
  op->fut = fut;
  op->af = NULL;
  op->has_buf = 0;
  op->kind = kind;
  memset(&op->from, 0, sizeof op->from);
  PyObject_GC_Track(op);
  return op;
}

/* Watch af for op: aloop keeps a reference to op until op_done, the future keeps another. */
static PyObject *start_op(LoopCore *self, Op *op, aloop_future *af) {
  if (!af) {
    Py_DECREF(op);
    return PyErr_NoMemory();
  }
  op->af = af;
  if (PySet_Add(self->ops, (PyObject *)op) < 0 ||
      aloop_future_add_done_callback(af, op_done, op) < 0) {
    aloop_future_cancel(af); /* cannot happen short of memory; the op is then dropped */
    op->af = NULL;
    aloop_future_release(af);
    PySet_Discard(self->ops, (PyObject *)op);
    Py_DECREF(op);
    return PyErr_Occurred() ? NULL : PyErr_NoMemory();
  }
  Py_INCREF(op); /* aloop's */
  PyObject *r = PyObject_CallMethod(op->fut, "add_done_callback", "O", op);
  Py_DECREF(op);
  if (!r) return NULL;
  Py_DECREF(r);
  Py_RETURN_NONE;
}

/* _close_fd(fd): aloop_close, for an fd the loop worked on (a pidfd), so that the driver forgets
 * it even if its number comes back at once. */
static PyObject *core_close_fd(LoopCore *self, PyObject *arg) {
  long fd = PyLong_AsLong(arg);
  if (fd == -1 && PyErr_Occurred()) return NULL;
  if (fd < 0 || fd > INT_MAX) return PyErr_Format(PyExc_ValueError, "bad file descriptor %ld", fd);
  if (check_closed(self) < 0) return NULL;
  int err = aloop_close(self->loop, (int)fd);
  if (err < 0) {
    errno = -err;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  Py_RETURN_NONE;
}

/* _pidfd_wait(pidfd, fut): fut gets the wait status once the child behind pidfd has exited and
 * has been reaped (aloop_pidfd_wait: the kernel's waitid on io_uring), or ChildProcessError. */
static PyObject *core_pidfd_wait(LoopCore *self, PyObject *args) {
  int pidfd;
  PyObject *fut;
  if (!PyArg_ParseTuple(args, "iO:_pidfd_wait", &pidfd, &fut)) return NULL;
  if (check_closed(self) < 0) return NULL;
  Op *op = new_op(self, fut, OP_PIDFD_WAIT);
  return op ? start_op(self, op, aloop_pidfd_wait(self->loop, pidfd)) : NULL;
}

static PyObject *core_sock_recv(LoopCore *self, PyObject *args) {
  int fd;
  Py_ssize_t n;
  PyObject *fut;
  if (!PyArg_ParseTuple(args, "inO:_sock_recv", &fd, &n, &fut)) return NULL;
  if (check_closed(self) < 0) return NULL;
  if (n < 0) return PyErr_Format(PyExc_ValueError, "negative buffersize in recv");
  Op *op = new_op(self, fut, OP_RECV);
  return op ? start_op(self, op, aloop_sock_recv(self->loop, fd, (size_t)n)) : NULL;
}

/* A writable buffer taken as the socket module takes it (`format` is "w*:method"), so a read-only
 * object is refused with socket's TypeError and words. */
static int writable_buffer(PyObject *data, Py_buffer *buf, const char *format) {
  PyObject *t = PyTuple_Pack(1, data);
  int ok = t && PyArg_ParseTuple(t, format, buf);
  Py_XDECREF(t);
  return ok ? 0 : -1;
}

/* An operation that lends data's buffer to the driver (writable if the operation reads into it)
 * until it is done: the op holds the buffer, so the object cannot be resized meanwhile. */
static Op *buffer_op(LoopCore *self, PyObject *data, PyObject *fut, int kind) {
  if (check_closed(self) < 0) return NULL;
  Op *op = new_op(self, fut, kind);
  if (!op) return NULL;
  int err = kind == OP_RECV_INTO  ? writable_buffer(data, &op->buf, "w*:recv_into")
            : kind == OP_RECVFROM ? writable_buffer(data, &op->buf, "w*:recvfrom_into")
                                  : PyObject_GetBuffer(data, &op->buf, PyBUF_C_CONTIGUOUS);
  if (err < 0) {
    Py_DECREF(op);
    return NULL;
  }
  op->has_buf = 1;
  return op;
}

static PyObject *with_buffer(LoopCore *self, PyObject *args, int kind) {
  int fd;
  PyObject *data, *fut;
  if (!PyArg_ParseTuple(args, "iOO", &fd, &data, &fut)) return NULL;
  Op *op = buffer_op(self, data, fut, kind);
  if (!op) return NULL;
  size_t len = (size_t)op->buf.len;
  aloop_future *af = kind == OP_RECV_INTO ? aloop_sock_recv_into(self->loop, fd, op->buf.buf, len)
                                          : aloop_sock_sendall(self->loop, fd, op->buf.buf, len);
  return start_op(self, op, af);
}

static PyObject *core_sock_recv_into(LoopCore *self, PyObject *args) {
  return with_buffer(self, args, OP_RECV_INTO);
}

static PyObject *core_sock_sendall(LoopCore *self, PyObject *args) {
  return with_buffer(self, args, OP_SENDALL);
}

/* _sock_recvfrom_into(fd, buf, nbytes, fut): one datagram into the first nbytes of buf (0: all
 * of it), checked as socket.recvfrom_into checks them; the future gets (length, sender). */
static PyObject *core_sock_recvfrom_into(LoopCore *self, PyObject *args) {
  int fd;
  Py_ssize_t nbytes;
  PyObject *data, *fut;
  if (!PyArg_ParseTuple(args, "iOnO:_sock_recvfrom_into", &fd, &data, &nbytes, &fut)) return NULL;
  if (nbytes < 0)
    return PyErr_Format(PyExc_ValueError, "negative buffersize in recvfrom_into");
  Op *op = buffer_op(self, data, fut, OP_RECVFROM);
  if (!op) return NULL;
  if (nbytes == 0) nbytes = op->buf.len;
  if (nbytes > op->buf.len) {
    Py_DECREF(op);
    return PyErr_Format(PyExc_ValueError, "nbytes is greater than the length of the buffer");
  }
  op->from.len = sizeof op->from.addr;
  return start_op(self, op,
                  aloop_sock_recvfrom(self->loop, fd, op->buf.buf, (size_t)nbytes, &op->from));
}

static PyObject *core_sock_accept(LoopCore *self, PyObject *args) {
  int fd;
  PyObject *fut;
  if (!PyArg_ParseTuple(args, "iO:_sock_accept", &fd, &fut)) return NULL;
  if (check_closed(self) < 0) return NULL;
  Op *op = new_op(self, fut, OP_ACCEPT);
  return op ? start_op(self, op, aloop_sock_accept(self->loop, fd)) : NULL;
}

/* An IPv4, IPv6 or Unix address as the socket module takes it, into a sockaddr. */
static int parse_address(int family, PyObject *address, struct sockaddr_storage *ss,
                         socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  const char *host;
  int port;
  unsigned int flowinfo = 0, scope_id = 0;
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    if (!PyArg_ParseTuple(address, "si", &host, &port)) return -1;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    *len = sizeof *in;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) return 0;
  } else if (family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (!PyArg_ParseTuple(address, "si|II", &host, &port, &flowinfo, &scope_id)) return -1;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    in6->sin6_flowinfo = htonl(flowinfo);
    in6->sin6_scope_id = scope_id;
    *len = sizeof *in6;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) return 0;
  } else if (family == AF_UNIX) {
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    PyObject *path;
    if (!PyUnicode_FSConverter(address, &path)) return -1;
    Py_ssize_t n = PyBytes_GET_SIZE(path);
    if (n >= (Py_ssize_t)sizeof un->sun_path) {
      Py_DECREF(path);
      PyErr_SetString(PyExc_OSError, "AF_UNIX path too long");
      return -1;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, PyBytes_AS_STRING(path), (size_t)n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
    Py_DECREF(path);
    return 0;
  } else {
    PyErr_Format(PyExc_ValueError, "address family %d is not supported", family);
    return -1;
  }
  PyErr_Format(PyExc_ValueError, "not a numeric address: %R", address);
  return -1;
}

static PyObject *core_sock_connect(LoopCore *self, PyObject *args) {
  int fd, family;
  PyObject *address, *fut;
  if (!PyArg_ParseTuple(args, "iiOO:_sock_connect", &fd, &family, &address, &fut)) return NULL;
  if (check_closed(self) < 0) return NULL;
  struct sockaddr_storage ss;
  socklen_t len;
  if (parse_address(family, address, &ss, &len) < 0) return NULL;
  Op *op = new_op(self, fut, OP_CONNECT);
  return op ? start_op(self, op, aloop_sock_connect(self->loop, fd, (struct sockaddr *)&ss, len))
            : NULL;
}

/* _sock_sendto(fd, family, data, address, fut): one datagram to a numeric address; the future
 * gets the number of bytes sent. */
static PyObject *core_sock_sendto(LoopCore *self, PyObject *args) {
  int fd, family;
  PyObject *data, *address, *fut;
  if (!PyArg_ParseTuple(args, "iiOOO:_sock_sendto", &fd, &family, &data, &address, &fut))
    return NULL;
  if (check_closed(self) < 0) return NULL;
  aloop_sockaddr to;
  if (parse_address(family, address, &to.addr, &to.len) < 0) return NULL;
  Op *op = buffer_op(self, data, fut, OP_SENDTO);
  return op ? start_op(self, op, aloop_sock_sendto(self->loop, fd, op->buf.buf,
                                                   (size_t)op->buf.len, &to))
            : NULL;
}

/* _sock_sendfile(sock, fd, offset, count, fut): count bytes (0: up to the end) of the regular file
 * fd from offset to the stream socket; the future gets the number sent. Neither fd is ours. */
static PyObject *core_sock_sendfile(LoopCore *self, PyObject *args) {
  int sock, fd;
  long long offset;
  unsigned long long count;
  PyObject *fut;
  if (!PyArg_ParseTuple(args, "iiLKO:_sock_sendfile", &sock, &fd, &offset, &count, &fut))
    return NULL;
  if (check_closed(self) < 0) return NULL;
  Op *op = new_op(self, fut, OP_SENDFILE);
  return op ? start_op(self, op, aloop_sock_sendfile(self->loop, sock, fd, (off_t)offset,
                                                     (size_t)count))
            : NULL;
}

/* ---- stream transports --------------------------------------------------------------------------
 * asyncio's socket transport over an aloop_transport: aloop reads (in the kernel on io_uring),
 * queues what cannot be sent at once and keeps the flow-control marks; this calls the protocol's
 * methods with asyncio's semantics and words. aloop owns a duplicate of the socket's fd, so the
 * Python socket (get_extra_info('socket')) stays usable; it is closed after connection_lost, as
 * asyncio closes its own. aloop holds a reference to the Transport from its creation until
 * connection_lost has run, and the loop's set of transports another (so close() can end them). */

typedef struct {
  PyObject_HEAD
  LoopCore *core;
  module_state *st;
  aloop_transport *t; /* NULL once connection_lost has run */
  aloop_datagram_transport *d; /* the same, for a DatagramTransport (t is then NULL) */
  PyObject *address; /* a DatagramTransport's connected peer as asyncio has it, or None */
  PyObject *protocol, *extra, *sock, *server, *waiter;
  PyObject *lost_exc; /* why a protocol method made it abort: connection_lost's argument */
  Py_buffer rbuf;     /* a BufferedProtocol's last buffer, held while a read may land in it */
  char has_rbuf, buffered, made, closing, eof_written, paused, protocol_paused;
  char kind;            /* SOCKET_TRANSPORT, READ_PIPE or WRITE_PIPE */
  Py_ssize_t high, low; /* as set_write_buffer_limits was given them */
  int writes_after_loss;
  PyObject *weakrefs;
} Transport;

enum { SOCKET_TRANSPORT, READ_PIPE, WRITE_PIPE, DATAGRAM };

/* asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES: writes to a lost connection are dropped, and
 * from this one on each is logged. */
enum { WRITES_AFTER_LOSS_LOGGED = 5 };

static const aloop_protocol plain_protocol, buffered_protocol;
static const aloop_datagram_protocol datagram_protocol;

static void release_rbuf(Transport *self) {
  if (self->has_rbuf) PyBuffer_Release(&self->rbuf);
  self->has_rbuf = 0;
}

/* An OSError for a negative errno (its subclass: ConnectionResetError for -ECONNRESET...). */
static PyObject *error_from(int err) {
  if (-err < ALOOP_EBASE) return PyObject_CallFunction(PyExc_OSError, "is", -err, strerror(-err));
  return PyObject_CallFunction(PyExc_OSError, "s", aloop_strerror(err));
}

/* The exception handler hears of `exc` with asyncio's context for a transport. */
static void report_to_handler(Transport *self, const char *message, PyObject *exc) {
  PyObject *context = Py_BuildValue("{sssOsOsO}", "message", message, "exception", exc,
                                    "transport", self, "protocol", self->protocol);
  PyObject *r = context ? core_call_exception_handler(self->core, context) : NULL;
  Py_XDECREF(context);
  if (r) {
    Py_DECREF(r);
  } else if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
             PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
    keep_exception(self->core);
  } else {
    PyErr_WriteUnraisable((PyObject *)self);
  }
}

/* A protocol method raised. SystemExit and KeyboardInterrupt stop the loop and come out of
 * run_forever, as on asyncio's loop. Anything else goes to the exception handler (an OSError
 * only in debug mode, as asyncio's _fatal_error does); when `fatal`, it becomes connection_lost's
 * argument and the caller aborts the connection. */
static void protocol_failed(Transport *self, const char *message, int fatal) {
  if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
    keep_exception(self->core);
    return;
  }
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  if (!value) return;
  if (!fatal || !PyErr_GivenExceptionMatches(value, PyExc_OSError) || self->core->debug)
    report_to_handler(self, message, value);
  if (fatal && !self->lost_exc) {
    self->lost_exc = value;
    return;
  }
  Py_DECREF(value);
}

static PyObject *call_protocol(Transport *self, PyObject *name, PyObject *arg) {
  return arg ? PyObject_CallMethodOneArg(self->protocol, name, arg)
             : PyObject_CallMethodNoArgs(self->protocol, name);
}

static void abort_after_failure(Transport *self, const char *message) {
  protocol_failed(self, message, 1);
  if (self->t) aloop_transport_abort(self->t);
}

static void set_waiter(Transport *self, PyObject *exc) {
  PyObject *waiter = self->waiter;
  if (!waiter) return;
  self->waiter = NULL;
  PyObject *c = PyObject_CallMethod(waiter, "cancelled", NULL);
  int cancelled = c ? PyObject_IsTrue(c) : -1;
  Py_XDECREF(c);
  PyObject *r = NULL;
  if (cancelled == 0)
    r = exc ? PyObject_CallMethod(waiter, "set_exception", "O", exc)
            : PyObject_CallMethod(waiter, "set_result", "O", Py_None);
  if (cancelled < 0 || (cancelled == 0 && !r)) PyErr_WriteUnraisable(waiter);
  Py_XDECREF(r);
  Py_DECREF(waiter);
}

static void tr_made(aloop_transport *t, void *ctx) {
  Transport *self = ctx;
  if (self->core->closing) return;
  self->made = 1;
  PyObject *r = call_protocol(self, self->st->str_connection_made, (PyObject *)self);
  if (!r) protocol_failed(self, "Exception in callback protocol.connection_made()", 0);
  Py_XDECREF(r);
  set_waiter(self, NULL);
}

static void tr_data(aloop_transport *t, const void *data, size_t n, void *ctx) {
  Transport *self = ctx;
  if (self->core->closing) return;
  PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)n);
  PyObject *r = bytes ? call_protocol(self, self->st->str_data_received, bytes) : NULL;
  Py_XDECREF(bytes);
  if (!r) abort_after_failure(self, "Fatal error: protocol.data_received() call failed.");
  Py_XDECREF(r);
}

static bool tr_eof(aloop_transport *t, void *ctx) {
  Transport *self = ctx;
  if (self->core->closing) return false;
  PyObject *r = call_protocol(self, self->st->str_eof_received, NULL);
  if (!r) {
    abort_after_failure(self, "Fatal error: protocol.eof_received() call failed.");
    return true; /* aborting already */
  }
  int keep_open = PyObject_IsTrue(r);
  Py_DECREF(r);
  if (keep_open < 0) {
    abort_after_failure(self, "Fatal error: protocol.eof_received() call failed.");
    return true;
  }
  if (self->kind != SOCKET_TRANSPORT) keep_open = 0; /* a pipe ends at its end, as asyncio's */
  if (!keep_open) self->closing = 1; /* aloop closes it */
  return keep_open;
}

/* connection_lost (or the waiter's failure) once aloop let go (t or d already NULL); then the
 * socket or pipe is closed and aloop's reference dropped. */
static void transport_lost(Transport *self, int err) {
  self->closing = 1;
  PyObject *exc = self->lost_exc;
  self->lost_exc = NULL;
  if (!exc) exc = err < 0 ? error_from(err) : Py_NewRef(Py_None);
  if (!exc) PyErr_WriteUnraisable((PyObject *)self);
  if (exc && !self->core->closing) {
    if (self->made) {
      PyObject *r = call_protocol(self, self->st->str_connection_lost, exc);
      if (!r) protocol_failed(self, "Exception in callback protocol.connection_lost()", 0);
      Py_XDECREF(r);
    } else {
      set_waiter(self, exc != Py_None ? exc : NULL);
    }
  }
  Py_XDECREF(exc);
  if (self->sock != Py_None) {
    PyObject *r = PyObject_CallMethod(self->sock, "close", NULL);
    if (!r) PyErr_WriteUnraisable(self->sock);
    Py_XDECREF(r);
  }
  if (self->server != Py_None) {
    PyObject *r = PyObject_CallMethod(self->server, "_detach", NULL);
    if (!r) PyErr_WriteUnraisable(self->server);
    Py_XDECREF(r);
  }
  Py_SETREF(self->sock, Py_NewRef(Py_None));
  Py_SETREF(self->server, Py_NewRef(Py_None));
  Py_CLEAR(self->waiter);
  if (PySet_Discard(self->core->transports, (PyObject *)self) < 0)
    PyErr_WriteUnraisable((PyObject *)self);
  Py_DECREF(self); /* aloop's */
}

static void tr_lost(aloop_transport *t, int err, void *ctx) {
  Transport *self = ctx;
  self->t = NULL;
  release_rbuf(self);
  transport_lost(self, err);
}

static void flow_changed(Transport *self, int paused) {
  self->protocol_paused = (char)paused;
  if (self->core->closing) return;
  PyObject *r = call_protocol(self, paused ? self->st->str_pause_writing
                                           : self->st->str_resume_writing, NULL);
  if (!r)
    protocol_failed(self, paused ? "protocol.pause_writing() failed"
                                 : "protocol.resume_writing() failed", 0);
  Py_XDECREF(r);
}

static void tr_pause(aloop_transport *t, void *ctx) { flow_changed(ctx, 1); }
static void tr_resume(aloop_transport *t, void *ctx) { flow_changed(ctx, 0); }

/* BufferedProtocol: the protocol's buffer is held (exported) until the bytes are in it, so it
 * cannot be resized under the copy. A failure fails the connection (aloop: -ENOBUFS) with the
 * exception as connection_lost's argument. */
static void *tr_get_buffer(aloop_transport *t, size_t sizehint, size_t *n, void *ctx) {
  Transport *self = ctx;
  release_rbuf(self);
  if (self->core->closing || self->lost_exc) return NULL; /* failed once: failing already */
  PyObject *hint = PyLong_FromSize_t(sizehint);
  PyObject *buf = hint ? call_protocol(self, self->st->str_get_buffer, hint) : NULL;
  Py_XDECREF(hint);
  if (buf && PyObject_GetBuffer(buf, &self->rbuf, PyBUF_WRITABLE) == 0) {
    self->has_rbuf = 1;
    if (self->rbuf.len == 0) {
      release_rbuf(self);
      PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
    }
  }
  Py_XDECREF(buf);
  if (!self->has_rbuf) {
    protocol_failed(self, "Fatal error: protocol.get_buffer() call failed.", 1);
    return NULL;
  }
  *n = (size_t)self->rbuf.len;
  return self->rbuf.buf;
}

static void tr_buffer_updated(aloop_transport *t, size_t n, void *ctx) {
  Transport *self = ctx;
  release_rbuf(self); /* before the call: the protocol may resize its buffer there */
  if (self->core->closing) return;
  PyObject *count = PyLong_FromSize_t(n);
  PyObject *r = count ? call_protocol(self, self->st->str_buffer_updated, count) : NULL;
  Py_XDECREF(count);
  if (!r) abort_after_failure(self, "Fatal error: protocol.buffer_updated() call failed.");
  Py_XDECREF(r);
}

static const aloop_protocol plain_protocol = {
    .connection_made = tr_made, .data_received = tr_data, .eof_received = tr_eof,
    .connection_lost = tr_lost, .pause_writing = tr_pause, .resume_writing = tr_resume};
static const aloop_protocol buffered_protocol = {
    .connection_made = tr_made, .eof_received = tr_eof, .connection_lost = tr_lost,
    .pause_writing = tr_pause, .resume_writing = tr_resume, .get_buffer = tr_get_buffer,
    .buffer_updated = tr_buffer_updated};

static int take_protocol(Transport *self, PyObject *protocol) {
  int buffered = PyObject_IsInstance(protocol, self->st->buffered_protocol_type);
  if (buffered < 0) return -1;
  Py_INCREF(protocol);
  Py_XSETREF(self->protocol, protocol);
  self->buffered = (char)buffered;
  if (self->t)
    aloop_transport_set_protocol(self->t, buffered ? &buffered_protocol : &plain_protocol, self);
  return 0;
}

/* A Transport of `kind` over a duplicate of obj's fd (obj: a socket, or a pipe object; kept, and
 * closed after connection_lost as asyncio closes its own). connection_made runs on the next
 * iteration, then waiter (a future, or None) gets None. */
static PyObject *new_transport(LoopCore *self, int kind, PyObject *obj, PyObject *protocol,
                               PyObject *extra, PyObject *server, PyObject *waiter,
                               PyObject *address) {
  if (check_closed(self) < 0) return NULL;
  module_state *st = self->st;
  int fd = st ? fd_of(obj) : -1;
  if (fd < 0) return NULL;
  Transport *tr =
      PyObject_GC_New(Transport, kind == DATAGRAM ? st->datagram_type : st->transport_type);
  if (!tr) return NULL;
  tr->core = (LoopCore *)Py_NewRef(self);
  tr->st = st;
  tr->t = NULL;
  tr->d = NULL;
  tr->address = Py_NewRef(Py_None);
  tr->protocol = NULL;
  tr->extra = Py_NewRef(extra);
  tr->sock = Py_NewRef(obj);
  tr->server = Py_NewRef(server);
  tr->waiter = waiter == Py_None ? NULL : Py_NewRef(waiter);
  tr->lost_exc = NULL;
  tr->has_rbuf = tr->made = tr->closing = tr->eof_written = tr->paused = 0;
  tr->protocol_paused = 0;
  tr->kind = (char)kind;
  tr->high = ALOOP_WRITE_HIGH_DEFAULT;
  tr->low = ALOOP_WRITE_HIGH_DEFAULT / 4;
  tr->writes_after_loss = 0;
  tr->weakrefs = NULL;
  PyObject_GC_Track(tr);
  if (kind == DATAGRAM) Py_SETREF(tr->address, Py_NewRef(address));
  if (take_protocol(tr, protocol) < 0) {
    Py_DECREF(tr);
    return NULL;
  }
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    Py_DECREF(tr);
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  const aloop_protocol *proto = tr->buffered ? &buffered_protocol : &plain_protocol;
  if (kind == DATAGRAM)
    tr->d = aloop_datagram_transport_new(self->loop, dup, &datagram_protocol, tr);
  else if (kind == READ_PIPE)
    tr->t = aloop_connect_read_pipe(self->loop, dup, proto, tr);
  else if (kind == WRITE_PIPE)
    tr->t = aloop_connect_write_pipe(self->loop, dup, proto, tr);
  else
    tr->t = aloop_transport_new(self->loop, dup, proto, tr);
  if (!tr->t && !tr->d) {
    Py_DECREF(tr);
    if (errno == EINVAL && (kind == READ_PIPE || kind == WRITE_PIPE)) /* asyncio's messages */
      return PyErr_Format(PyExc_ValueError, kind == READ_PIPE
                              ? "Pipe transport is for pipes/sockets only."
                              : "Pipe transport is only for pipes, sockets and character devices");
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  Py_INCREF(tr); /* aloop's, until connection_lost (which follows an abort too) */
  PyObject *attached = NULL;
  if (PySet_Add(self->transports, (PyObject *)tr) < 0 ||
      (server != Py_None && !(attached = PyObject_CallMethod(server, "_attach", NULL)))) {
    Py_SETREF(tr->server, Py_NewRef(Py_None)); /* not attached: no _detach */
    if (tr->d)
      aloop_datagram_abort(tr->d);
    else
      aloop_transport_abort(tr->t);
    Py_DECREF(tr);
    return NULL;
  }
  Py_XDECREF(attached);
  return (PyObject *)tr;
}

/* _socket_transport(sock, protocol, extra, server, waiter): over the connected, non-blocking
 * stream socket sock. */
static PyObject *core_socket_transport(LoopCore *self, PyObject *args) {
  PyObject *sock, *protocol, *extra, *server, *waiter;
  if (!PyArg_ParseTuple(args, "OOO!OO:_socket_transport", &sock, &protocol, &PyDict_Type, &extra,
                        &server, &waiter))
    return NULL;
  return new_transport(self, SOCKET_TRANSPORT, sock, protocol, extra, server, waiter, Py_None);
}

/* _datagram_transport(sock, protocol, address, extra, waiter): asyncio's datagram transport over
 * aloop_datagram_transport_new (address: the connected peer as asyncio's create_datagram_endpoint
 * gives it, or None). */
static PyObject *core_datagram_transport(LoopCore *self, PyObject *args) {
  PyObject *sock, *protocol, *address, *extra, *waiter;
  if (!PyArg_ParseTuple(args, "OOOO!O:_datagram_transport", &sock, &protocol, &address,
                        &PyDict_Type, &extra, &waiter))
    return NULL;
  return new_transport(self, DATAGRAM, sock, protocol, extra, Py_None, waiter, address);
}

/* _pipe_transport(pipe, protocol, extra, waiter, writes): asyncio's read or write pipe transport
 * (a pipe, FIFO, socket or character device; ValueError for anything else) over
 * aloop_connect_read_pipe / aloop_connect_write_pipe. */
static PyObject *core_pipe_transport(LoopCore *self, PyObject *args) {
  PyObject *pipe, *protocol, *extra, *waiter;
  int writes;
  if (!PyArg_ParseTuple(args, "OOO!Op:_pipe_transport", &pipe, &protocol, &PyDict_Type, &extra,
                        &waiter, &writes))
    return NULL;
  return new_transport(self, writes ? WRITE_PIPE : READ_PIPE, pipe, protocol, extra, Py_None,
                       waiter, Py_None);
}

static PyObject *tr_write(Transport *self, PyObject *data) {
  if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data))
    return PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.200s'",
                        Py_TYPE(data)->tp_name);
  if (self->eof_written && self->kind == SOCKET_TRANSPORT) {
    PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
    return NULL;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return NULL;
  int err = 0;
  if (view.len && self->t && !aloop_transport_is_closing(self->t))
    err = aloop_transport_write(self->t, view.buf, (size_t)view.len);
  else if (view.len)
    err = -EPIPE;
  PyBuffer_Release(&view);
  if (err == -EBUSY) {
    PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
    return NULL;
  }
  if (err == -ENOMEM) return PyErr_NoMemory();
  if (err == -EPIPE && ++self->writes_after_loss >= WRITES_AFTER_LOSS_LOGGED) {
    PyObject *r = PyObject_CallMethod(
        self->st->logger, "warning", "s",
        self->kind == SOCKET_TRANSPORT ? "socket.send() raised exception."
                                       : "pipe closed by peer or os.write(pipe, data) raised exception.");
    if (!r) return NULL;
    Py_DECREF(r);
  }
  Py_RETURN_NONE;
}

static PyObject *tr_writelines(Transport *self, PyObject *list) {
  PyObject *it = PyObject_GetIter(list), *item;
  if (!it) return NULL;
  while ((item = PyIter_Next(it))) {
    PyObject *r = tr_write(self, item);
    Py_DECREF(item);
    if (!r) break;
    Py_DECREF(r);
  }
  Py_DECREF(it);
  if (PyErr_Occurred()) return NULL;
  Py_RETURN_NONE;
}

static PyObject *tr_write_eof(Transport *self, PyObject *unused) {
  if (self->closing || self->eof_written || !self->t) Py_RETURN_NONE;
  self->eof_written = 1;
  if (self->kind != SOCKET_TRANSPORT) self->closing = 1; /* a pipe closes once its queue is out */
  int err = aloop_transport_write_eof(self->t);
  if (err == -EBUSY) {
    self->eof_written = 0;
    PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *tr_can_write_eof(Transport *self, PyObject *unused) { Py_RETURN_TRUE; }

/* close, abort, is_closing and get_write_buffer_size serve both types: t or d is set. */
static PyObject *tr_close(Transport *self, PyObject *unused) {
  if (self->closing || (!self->t && !self->d)) Py_RETURN_NONE;
  self->closing = 1;
  if (self->d)
    aloop_datagram_close(self->d);
  else
    aloop_transport_close(self->t);
  Py_RETURN_NONE;
}

static PyObject *tr_abort(Transport *self, PyObject *unused) {
  self->closing = 1;
  if (self->t) aloop_transport_abort(self->t);
  if (self->d) aloop_datagram_abort(self->d);
  Py_RETURN_NONE;
}

static PyObject *tr_is_closing(Transport *self, PyObject *unused) {
  return PyBool_FromLong(self->closing || (!self->t && !self->d));
}

static PyObject *tr_is_reading(Transport *self, PyObject *unused) {
  return PyBool_FromLong(!self->closing && self->t && !self->paused);
}

static PyObject *tr_pause_reading(Transport *self, PyObject *unused) {
  if (self->closing || !self->t || self->paused) Py_RETURN_NONE;
  self->paused = 1;
  aloop_transport_pause_reading(self->t);
  Py_RETURN_NONE;
}

static PyObject *tr_resume_reading(Transport *self, PyObject *unused) {
  if (self->closing || !self->t || !self->paused) Py_RETURN_NONE;
  self->paused = 0;
  aloop_transport_resume_reading(self->t);
  Py_RETURN_NONE;
}

/* asyncio's rules: high defaults to 64 KiB (4 * low when only low is given), low to high // 4.
 * aloop pauses above high and resumes at or below low, as asyncio; its high of 0 means "the
 * default", so asyncio's 0 (pause as soon as anything is queued) is given as 1. */
static PyObject *tr_set_write_buffer_limits(Transport *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"high", "low", NULL};
  PyObject *high_obj = Py_None, *low_obj = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:set_write_buffer_limits", kwlist, &high_obj,
                                   &low_obj))
    return NULL;
  Py_ssize_t high = -1, low = -1;
  if (high_obj != Py_None && (high = PyLong_AsSsize_t(high_obj)) == -1 && PyErr_Occurred())
    return NULL;
  if (low_obj != Py_None && (low = PyLong_AsSsize_t(low_obj)) == -1 && PyErr_Occurred())
    return NULL;
  if (high_obj == Py_None) high = low_obj == Py_None ? ALOOP_WRITE_HIGH_DEFAULT : 4 * low;
  if (low_obj == Py_None) low = high / 4;
  if (!(high >= low && low >= 0))
    return PyErr_Format(PyExc_ValueError, "high (%zd) must be >= low (%zd) must be >= 0", high,
                        low);
  self->high = high;
  self->low = low;
  if (self->t)
    aloop_transport_set_write_buffer_limits(self->t, high ? (size_t)high : 1, (size_t)low);
  if (self->d)
    aloop_datagram_set_write_buffer_limits(self->d, high ? (size_t)high : 1, (size_t)low);
  Py_RETURN_NONE;
}

static PyObject *tr_get_write_buffer_limits(Transport *self, PyObject *unused) {
  return Py_BuildValue("(nn)", self->low, self->high);
}

static PyObject *tr_get_write_buffer_size(Transport *self, PyObject *unused) {
  if (self->d) return PyLong_FromSize_t(aloop_datagram_get_write_buffer_size(self->d));
  return PyLong_FromSize_t(self->t ? aloop_transport_get_write_buffer_size(self->t) : 0);
}

static PyObject *tr_get_extra_info(Transport *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"name", "default", NULL};
  PyObject *name, *dflt = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:get_extra_info", kwlist, &name, &dflt))
    return NULL;
  PyObject *v = PyDict_GetItemWithError(self->extra, name);
  if (!v && PyErr_Occurred()) return NULL;
  return Py_NewRef(v ? v : dflt);
}

static PyObject *tr_set_protocol(Transport *self, PyObject *protocol) {
  if (take_protocol(self, protocol) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *tr_get_protocol(Transport *self, PyObject *unused) {
  return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

/* _sendfile(fd, offset, count, fut): aloop_transport_sendfile; fut gets the number sent. */
static PyObject *tr_sendfile(Transport *self, PyObject *args) {
  int fd;
  long long offset;
  unsigned long long count;
  PyObject *fut;
  if (!PyArg_ParseTuple(args, "iLKO:_sendfile", &fd, &offset, &count, &fut)) return NULL;
  if (!self->t) {
    PyErr_SetString(PyExc_RuntimeError, "Transport is closing");
    return NULL;
  }
  Op *op = new_op(self->core, fut, OP_SENDFILE);
  return op ? start_op(self->core, op, aloop_transport_sendfile(self->t, fd, (off_t)offset,
                                                                (size_t)count))
            : NULL;
}

static PyObject *tr_repr(Transport *self) {
  const char *state = !self->t ? "closed" : self->closing ? "closing" : "open";
  int fd = self->t ? aloop_transport_fd(self->t) : -1;
  return PyUnicode_FromFormat("<aloop Transport %s fd=%d read=%s write=<bufsize=%zu>>", state, fd,
                              self->paused ? "paused" : "reading",
                              self->t ? aloop_transport_get_write_buffer_size(self->t) : 0);
}

static PyObject *tr_get_protocol_paused(Transport *self, void *unused) {
  return PyBool_FromLong(self->protocol_paused);
}

static PyObject *tr_get_loop(Transport *self, void *unused) {
  return Py_NewRef(self->t || self->d ? (PyObject *)self->core : Py_None);
}

static int tr_traverse(Transport *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->core);
  Py_VISIT(self->protocol);
  Py_VISIT(self->extra);
  Py_VISIT(self->sock);
  Py_VISIT(self->server);
  Py_VISIT(self->waiter);
  Py_VISIT(self->lost_exc);
  Py_VISIT(self->address);
  return 0;
}

static int tr_clear(Transport *self) {
  Py_CLEAR(self->protocol);
  Py_CLEAR(self->extra);
  Py_CLEAR(self->sock);
  Py_CLEAR(self->server);
  Py_CLEAR(self->waiter);
  Py_CLEAR(self->lost_exc);
  Py_CLEAR(self->address);
  return 0;
}

static void tr_dealloc(Transport *self) {
  PyObject_GC_UnTrack(self);
  if (self->weakrefs) PyObject_ClearWeakRefs((PyObject *)self);
  release_rbuf(self);
  tr_clear(self);
  Py_CLEAR(self->core);
  PyTypeObject *tp = Py_TYPE(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* What every transport type has (BaseTransport's and the write side's flow control). */
#define BASE_TRANSPORT_METHODS \
    {"close", (PyCFunction)tr_close, METH_NOARGS, NULL}, \
    {"abort", (PyCFunction)tr_abort, METH_NOARGS, NULL}, \
    {"is_closing", (PyCFunction)tr_is_closing, METH_NOARGS, NULL}, \
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))tr_set_write_buffer_limits, \
     METH_VARARGS | METH_KEYWORDS, NULL}, \
    {"get_write_buffer_limits", (PyCFunction)tr_get_write_buffer_limits, METH_NOARGS, NULL}, \
    {"get_write_buffer_size", (PyCFunction)tr_get_write_buffer_size, METH_NOARGS, NULL}, \
    {"get_extra_info", (PyCFunction)(void (*)(void))tr_get_extra_info, \
     METH_VARARGS | METH_KEYWORDS, NULL}, \
    {"set_protocol", (PyCFunction)tr_set_protocol, METH_O, NULL}, \
    {"get_protocol", (PyCFunction)tr_get_protocol, METH_NOARGS, NULL},

static PyMethodDef tr_methods[] = {
    {"write", (PyCFunction)tr_write, METH_O, NULL},
    {"writelines", (PyCFunction)tr_writelines, METH_O, NULL},
    {"write_eof", (PyCFunction)tr_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)tr_can_write_eof, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)tr_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)tr_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)tr_resume_reading, METH_NOARGS, NULL},
    {"_sendfile", (PyCFunction)tr_sendfile, METH_VARARGS, NULL},
    BASE_TRANSPORT_METHODS
    {NULL, NULL, 0, NULL},
};

static PyMemberDef tr_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Transport, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef tr_getset[] = {
    {"_protocol_paused", (getter)tr_get_protocol_paused, NULL, NULL, NULL},
    {"_loop", (getter)tr_get_loop, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot tr_slots[] = {
    {Py_tp_dealloc, tr_dealloc}, {Py_tp_traverse, tr_traverse}, {Py_tp_clear, tr_clear},
    {Py_tp_methods, tr_methods}, {Py_tp_members, tr_members},   {Py_tp_getset, tr_getset},
    {Py_tp_repr, tr_repr},       {0, NULL},
};

static PyType_Spec tr_spec = {
    .name = "aloop._aloop.Transport",
    .basicsize = sizeof(Transport),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = tr_slots,
};

/* ---- datagram transports --------------------------------------------------------------------
 * asyncio's datagram transport over an aloop_datagram_transport (one multishot recvmsg on
 * io_uring, a bounded batch per wake-up on select and libev), the same struct as Transport with
 * d in place of t. */

static void dg_made(aloop_datagram_transport *d, void *ctx) {
  Transport *self = ctx;
  if (self->core->closing) return;
  self->made = 1;
  PyObject *r = call_protocol(self, self->st->str_connection_made, (PyObject *)self);
  if (!r) protocol_failed(self, "Exception in callback protocol.connection_made()", 0);
  Py_XDECREF(r);
  set_waiter(self, NULL);
}

static void dg_received(aloop_datagram_transport *d, const void *data, size_t n,
                        const aloop_sockaddr *from, void *ctx) {
  Transport *self = ctx;
  if (self->core->closing) return;
  PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)n);
  PyObject *addr = bytes ? address_of(from) : NULL;
  PyObject *r = addr ? PyObject_CallMethodObjArgs(self->protocol, self->st->str_datagram_received,
                                                  bytes, addr, NULL)
                     : NULL;
  Py_XDECREF(bytes);
  Py_XDECREF(addr);
  if (!r) protocol_failed(self, "Exception in callback protocol.datagram_received()", 0);
  Py_XDECREF(r);
}

static void dg_error(aloop_datagram_transport *d, int err, void *ctx) {
  Transport *self = ctx;
  if (self->core->closing) return;
  PyObject *exc = error_from(err);
  PyObject *r = exc ? call_protocol(self, self->st->str_error_received, exc) : NULL;
  Py_XDECREF(exc);
  if (!r) protocol_failed(self, "Exception in callback protocol.error_received()", 0);
  Py_XDECREF(r);
}

static void dg_lost(aloop_datagram_transport *d, int err, void *ctx) {
  Transport *self = ctx;
  self->d = NULL;
  transport_lost(self, err);
}

static void dg_pause(aloop_datagram_transport *d, void *ctx) { flow_changed(ctx, 1); }
static void dg_resume(aloop_datagram_transport *d, void *ctx) { flow_changed(ctx, 0); }

static const aloop_datagram_protocol datagram_protocol = {
    .connection_made = dg_made, .datagram_received = dg_received, .error_received = dg_error,
    .connection_lost = dg_lost, .pause_writing = dg_pause,        .resume_writing = dg_resume};

/* asyncio's sendto: an empty datagram is not sent; on a connected endpoint the address must be
 * None or the peer's; after the connection is lost, writes are dropped and logged as asyncio's. */
static PyObject *dg_sendto(Transport *self, PyObject *args) {
  PyObject *data, *addr = Py_None;
  if (!PyArg_ParseTuple(args, "O|O:sendto", &data, &addr)) return NULL;
  if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data))
    return PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.200s'",
                        Py_TYPE(data)->tp_name);
  Py_ssize_t len = PyObject_Length(data);
  if (len < 0) return NULL;
  if (len == 0) Py_RETURN_NONE;
  if (self->address != Py_None && addr != Py_None) {
    int same = PyObject_RichCompareBool(addr, self->address, Py_EQ);
    if (same < 0) return NULL;
    if (!same)
      return PyErr_Format(PyExc_ValueError, "Invalid address: must be None or %S", self->address);
    addr = Py_None;
  }
  if (!self->d || aloop_datagram_is_closing(self->d)) {
    if (self->address != Py_None && ++self->writes_after_loss >= WRITES_AFTER_LOSS_LOGGED) {
      PyObject *r = PyObject_CallMethod(self->st->logger, "warning", "s",
                                        "socket.send() raised exception.");
      if (!r) return NULL;
      Py_DECREF(r);
    }
    Py_RETURN_NONE;
  }
  aloop_sockaddr to, *top = NULL;
  if (addr != Py_None) {
    aloop_sockaddr self_addr;
    if (aloop_datagram_sockname(self->d, &self_addr) < 0) self_addr.addr.ss_family = AF_INET;
    if (parse_address(self_addr.addr.ss_family, addr, &to.addr, &to.len) < 0) return NULL;
    top = &to;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return NULL;
  int err = aloop_datagram_sendto(self->d, view.buf, (size_t)view.len, top);
  PyBuffer_Release(&view);
  if (err == -ENOMEM) return PyErr_NoMemory();
  if (err < 0) {
    PyObject *exc = error_from(err); /* asyncio: the socket's own error, to error_received */
    PyObject *r = exc ? call_protocol(self, self->st->str_error_received, exc) : NULL;
    Py_XDECREF(exc);
    if (!r) return NULL;
    Py_DECREF(r);
  }
  Py_RETURN_NONE;
}

static PyObject *dg_repr(Transport *self) {
  return PyUnicode_FromFormat("<aloop DatagramTransport fd=%d%s>",
                              self->d ? aloop_datagram_fd(self->d) : -1,
                              self->d ? "" : " closed");
}

static PyMethodDef dg_methods[] = {
    {"sendto", (PyCFunction)dg_sendto, METH_VARARGS, NULL},
    BASE_TRANSPORT_METHODS
    {NULL, NULL, 0, NULL},
};

static PyType_Slot dg_slots[] = {
    {Py_tp_dealloc, tr_dealloc}, {Py_tp_traverse, tr_traverse}, {Py_tp_clear, tr_clear},
    {Py_tp_methods, dg_methods}, {Py_tp_members, tr_members},   {Py_tp_getset, tr_getset},
    {Py_tp_repr, dg_repr},       {0, NULL},
};

static PyType_Spec dg_spec = {
    .name = "aloop._aloop.DatagramTransport",
    .basicsize = sizeof(Transport),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = dg_slots,
};

/* close(): every transport still open is aborted and let go of without a word to its protocol
 * (asyncio's close does not call connection_lost either); its socket is closed. */
static void end_transports(LoopCore *self) {
  PyObject *it = PyObject_GetIter(self->transports), *tr;
  while (it && (tr = PyIter_Next(it))) {
    if (((Transport *)tr)->t) aloop_transport_abort(((Transport *)tr)->t);
    if (((Transport *)tr)->d) aloop_datagram_abort(((Transport *)tr)->d);
    Py_DECREF(tr);
  }
  Py_XDECREF(it);
  for (int i = 0; i < CLOSE_WAIT_ITERATIONS && PySet_GET_SIZE(self->transports); i++)
    aloop_run_once(self->loop, CLOSE_WAIT_NS);
}

/* ---- lifetime --------------------------------------------------------------------------------------- */

static PyObject *core_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"backend", NULL};
  const char *backend = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|z:LoopCore", kwlist, &backend)) return NULL;
  LoopCore *self = (LoopCore *)type->tp_alloc(type, 0);
  if (!self) return NULL;
  self->readers = PyDict_New();
  self->writers = PyDict_New();
  self->ops = PySet_New(NULL);
  self->transports = PySet_New(NULL);
  if (!self->readers || !self->writers || !self->ops || !self->transports) {
    Py_DECREF(self);
    return NULL;
  }
  char why[256] = "";
  aloop_options opts = {.size = sizeof opts, .backend = backend, .error = why,
                        .error_size = sizeof why};
  self->wake[0] = self->wake[1] = -1;
  PyObject *m = PyType_GetModuleByDef(type, &aloop_module);
  self->st = m ? PyModule_GetState(m) : NULL;
  if (!self->st) {
    Py_DECREF(self);
    return NULL;
  }
  self->loop = aloop_new(&opts);
  if (!self->loop) {
    int err = errno;
    PyErr_Format(err == ALOOP_EBACKEND || err == ALOOP_EUNAVAIL ? PyExc_ValueError : PyExc_OSError,
                 "aloop: cannot create a loop on %s: %s", backend ? backend : "the default driver",
                 why[0] ? why : aloop_strerror(-err));
    Py_DECREF(self);
    return NULL;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, self->wake) < 0 ||
      aloop_add_reader(self->loop, self->wake[0], on_wakeup, self) < 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

/* Cancel what is in flight and let the driver confirm it, so no buffer is still lent to the
 * kernel when the loop is freed; ready callbacks are dropped, as asyncio's close drops them. */
static void drain_ops(LoopCore *self) {
  PyObject *it = PyObject_GetIter(self->ops), *op;
  while (it && (op = PyIter_Next(it))) {
    if (((Op *)op)->af) aloop_future_cancel(((Op *)op)->af);
    Py_DECREF(op);
  }
  Py_XDECREF(it);
  for (int i = 0; i < CLOSE_WAIT_ITERATIONS; i++) {
    aloop_run_once(self->loop, PySet_GET_SIZE(self->ops) ? CLOSE_WAIT_NS : 0);
    if (!PySet_GET_SIZE(self->ops)) break;
  }
}

static void forget_watchers(LoopCore *self, PyObject *table, int write) {
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(table, &pos, &key, &value)) {
    int fd = (int)PyLong_AsLong(key);
    if (write) aloop_remove_writer(self->loop, fd);
    else aloop_remove_reader(self->loop, fd);
  }
  PyDict_Clear(table);
}

static void free_loop(LoopCore *self) {
  if (!self->loop) return;
  self->closing = 1;
  drain_ops(self);
  end_transports(self);
  forget_watchers(self, self->readers, 0);
  forget_watchers(self, self->writers, 1);
  aloop_run_once(self->loop, 0); /* the handles still queued drop their references */
  if (self->wake[0] >= 0) aloop_remove_reader(self->loop, self->wake[0]);
  if (aloop_free(self->loop) == 0) {
    self->loop = NULL;
    drop_scheduled(self);
    for (int i = 0; i < 2; i++)
      if (self->wake[i] >= 0) close(self->wake[i]);
    self->wake[0] = self->wake[1] = -1;
  }
}

static PyObject *core_close(LoopCore *self, PyObject *unused) {
  if (self->closed) Py_RETURN_NONE;
  self->closed = 1;
  free_loop(self);
  if (PyErr_Occurred()) return NULL;
  Py_RETURN_NONE;
}

static int core_traverse(LoopCore *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->readers);
  Py_VISIT(self->writers);
  Py_VISIT(self->ops);
  Py_VISIT(self->transports);
  Py_VISIT(self->exc);
  Py_VISIT(self->task_factory);
  Py_VISIT(self->exception_handler);
  Py_VISIT(self->dict);
  return 0;
}

static int core_clear(LoopCore *self) {
  Py_CLEAR(self->readers);
  Py_CLEAR(self->writers);
  Py_CLEAR(self->exc);
  Py_CLEAR(self->task_factory);
  Py_CLEAR(self->exception_handler);
  Py_CLEAR(self->dict);
  return 0;
}

static void core_dealloc(LoopCore *self) {
  PyObject_GC_UnTrack(self);
  if (self->weakrefs) PyObject_ClearWeakRefs((PyObject *)self);
  if (self->loop && self->readers && self->writers && self->ops && self->transports)
    free_loop(self);
  core_clear(self);
  Py_CLEAR(self->ops);
  Py_CLEAR(self->transports);
  PyTypeObject *tp = Py_TYPE(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyObject *core_get_closed(LoopCore *self, void *unused) {
  return PyBool_FromLong(self->closed);
}

static PyObject *core_get_wakeup_fd(LoopCore *self, void *unused) {
  return PyLong_FromLong(self->wake[1]);
}

static PyObject *core_get_backend(LoopCore *self, void *unused) {
  if (!self->loop) Py_RETURN_NONE;
  return PyUnicode_FromString(aloop_backend_name(self->loop));
}

/* ---- the module --------------------------------------------------------------------------------- */

static PyObject *mod_backends(PyObject *module, PyObject *unused) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, sizeof info / sizeof info[0]);
  if (n > sizeof info / sizeof info[0]) n = sizeof info / sizeof info[0];
  PyObject *list = PyList_New(0);
  for (size_t i = 0; list && i < n; i++) {
    PyObject *t = Py_BuildValue("(sOs)", info[i].name, info[i].available ? Py_True : Py_False,
                                info[i].available ? "" : info[i].reason);
    if (!t || PyList_Append(list, t) < 0) Py_CLEAR(list);
    Py_XDECREF(t);
  }
  return list;
}

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef core_methods[] = {
    {"time", (PyCFunction)core_time, METH_NOARGS, "The loop's monotonic clock, in seconds."},
    {"call_soon", (PyCFunction)(void (*)(void))core_call_soon, FASTKW, NULL},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))core_call_soon_threadsafe, FASTKW, NULL},
    {"call_later", (PyCFunction)(void (*)(void))core_call_later, FASTKW, NULL},
    {"call_at", (PyCFunction)(void (*)(void))core_call_at, FASTKW, NULL},
    {"create_future", (PyCFunction)core_create_future, METH_NOARGS, NULL},
    {"create_task", (PyCFunction)(void (*)(void))core_create_task, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"set_task_factory", (PyCFunction)core_set_task_factory, METH_O, NULL},
    {"get_task_factory", (PyCFunction)core_get_task_factory, METH_NOARGS, NULL},
    {"get_debug", (PyCFunction)core_get_debug, METH_NOARGS, NULL},
    {"run_in_executor", (PyCFunction)(void (*)(void))core_run_in_executor, METH_FASTCALL, NULL},
    {"set_default_executor", (PyCFunction)core_set_default_executor, METH_O, NULL},
    {"set_exception_handler", (PyCFunction)core_set_exception_handler, METH_O, NULL},
    {"get_exception_handler", (PyCFunction)core_get_exception_handler, METH_NOARGS, NULL},
    {"call_exception_handler", (PyCFunction)core_call_exception_handler, METH_O, NULL},
    {"_call_handle_soon", (PyCFunction)core_call_handle_soon, METH_O, NULL},
    {"_timer_handle_cancelled", (PyCFunction)core_timer_handle_cancelled, METH_O, NULL},
    {"run_forever", (PyCFunction)core_run_forever, METH_NOARGS, "Run until stop() is called."},
    {"run_until_complete", (PyCFunction)core_run_until_complete, METH_O, NULL},
    {"is_running", (PyCFunction)core_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)core_is_closed, METH_NOARGS, NULL},
    {"stop", (PyCFunction)core_stop, METH_NOARGS, NULL},
    {"_close", (PyCFunction)core_close, METH_NOARGS, "Free the aloop loop."},
    {"add_reader", (PyCFunction)(void (*)(void))core_add_reader, METH_FASTCALL, NULL},
    {"add_writer", (PyCFunction)(void (*)(void))core_add_writer, METH_FASTCALL, NULL},
    {"remove_reader", (PyCFunction)core_remove_reader, METH_O, NULL},
    {"remove_writer", (PyCFunction)core_remove_writer, METH_O, NULL},
    {"_sock_recv", (PyCFunction)core_sock_recv, METH_VARARGS, NULL},
    {"_sock_recv_into", (PyCFunction)core_sock_recv_into, METH_VARARGS, NULL},
    {"_sock_sendall", (PyCFunction)core_sock_sendall, METH_VARARGS, NULL},
    {"_sock_accept", (PyCFunction)core_sock_accept, METH_VARARGS, NULL},
    {"_sock_connect", (PyCFunction)core_sock_connect, METH_VARARGS, NULL},
    {"_sock_recvfrom_into", (PyCFunction)core_sock_recvfrom_into, METH_VARARGS, NULL},
    {"_sock_sendto", (PyCFunction)core_sock_sendto, METH_VARARGS, NULL},
    {"_sock_sendfile", (PyCFunction)core_sock_sendfile, METH_VARARGS, NULL},
    {"_socket_transport", (PyCFunction)core_socket_transport, METH_VARARGS, NULL},
    {"_pipe_transport", (PyCFunction)core_pipe_transport, METH_VARARGS, NULL},
    {"_datagram_transport", (PyCFunction)core_datagram_transport, METH_VARARGS, NULL},
    {"_pidfd_wait", (PyCFunction)core_pidfd_wait, METH_VARARGS, NULL},
    {"_close_fd", (PyCFunction)core_close_fd, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"_debug", T_BOOL, offsetof(LoopCore, debug), 0, NULL},
    {"_readers", T_OBJECT, offsetof(LoopCore, readers), READONLY, "fd -> Handle"},
    {"_writers", T_OBJECT, offsetof(LoopCore, writers), READONLY, "fd -> Handle"},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(LoopCore, weakrefs), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(LoopCore, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef core_getset[] = {
    {"_closed", (getter)core_get_closed, NULL, NULL, NULL},
    {"_thread_id", (getter)core_get_thread_id, NULL, NULL, NULL},
    {"_wakeup_fd", (getter)core_get_wakeup_fd, NULL, "The socket signals write to.", NULL},
    {"backend", (getter)core_get_backend, NULL, "The aloop driver this loop runs on.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot core_slots[] = {
    {Py_tp_new, core_new},
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {Py_tp_methods, core_methods},
    {Py_tp_members, core_members},
    {Py_tp_getset, core_getset},
    {0, NULL},
};

static PyType_Spec core_spec = {
    .name = "aloop._aloop.LoopCore",
    .basicsize = sizeof(LoopCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = core_slots,
};

static PyType_Slot op_slots[] = {
    {Py_tp_dealloc, op_dealloc},
    {Py_tp_traverse, op_traverse},
    {Py_tp_call, op_call},
    {0, NULL},
};

static PyType_Spec op_spec = {
    .name = "aloop._aloop.SocketOperation",
    .basicsize = sizeof(Op),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = op_slots,
};

static PyMethodDef module_methods[] = {
    {"backends", mod_backends, METH_NOARGS,
     "The compiled drivers in auto's order: (name, available, reason) each."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *m) {
  module_state *st = PyModule_GetState(m);
  PyObject *events = PyImport_ImportModule("asyncio.events");
  if (!events) return -1;
  st->handle_type = PyObject_GetAttrString(events, "Handle");
  st->timer_type = PyObject_GetAttrString(events, "TimerHandle");
  Py_DECREF(events);
  if (!st->handle_type || !st->timer_type) return -1;
  PyObject *tasks = PyImport_ImportModule("asyncio.tasks");
  if (!tasks) return -1;
  st->task_type = PyObject_GetAttrString(tasks, "Task");
  st->set_task_name = PyObject_GetAttrString(tasks, "_set_task_name");
  Py_DECREF(tasks);
  PyObject *futures = PyImport_ImportModule("asyncio.futures");
  if (!futures) return -1;
  st->future_type = PyObject_GetAttrString(futures, "Future");
  Py_DECREF(futures);
  if (!st->task_type || !st->set_task_name || !st->future_type) return -1;
  struct {
    const char *module, *name;
    PyObject **slot;
  } wanted[] = {
      {"asyncio.events", "_get_running_loop", &st->get_running_loop},
      {"asyncio.events", "_set_running_loop", &st->set_running_loop},
      {"sys", "get_asyncgen_hooks", &st->get_asyncgen_hooks},
      {"sys", "set_asyncgen_hooks", &st->set_asyncgen_hooks},
      {"signal", "set_wakeup_fd", &st->set_wakeup_fd},
      {"asyncio.futures", "isfuture", &st->isfuture},
      {"asyncio.tasks", "ensure_future", &st->ensure_future},
      {"asyncio.base_events", "_run_until_complete_cb", &st->until_complete_cb},
      {"asyncio.log", "logger", &st->logger},
      {"concurrent.futures", "ThreadPoolExecutor", &st->thread_pool},
      {"asyncio.futures", "wrap_future", &st->wrap_future},
      {"asyncio.protocols", "BufferedProtocol", &st->buffered_protocol_type},
      {"asyncio.format_helpers", "_format_callback_source", &st->format_callback_source},
  };
  for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
    PyObject *mod = PyImport_ImportModule(wanted[i].module);
    if (!mod) return -1;
    *wanted[i].slot = PyObject_GetAttrString(mod, wanted[i].name);
    Py_DECREF(mod);
    if (!*wanted[i].slot) return -1;
  }
  find_handle_slots(st);
  st->core_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &core_spec, NULL);
  st->op_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &op_spec, NULL);
  st->transport_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &tr_spec, NULL);
  st->datagram_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &dg_spec, NULL);
  if (!st->core_type || !st->op_type || !st->transport_type || !st->datagram_type) return -1;
  if (PyModule_AddObjectRef(m, "LoopCore", (PyObject *)st->core_type) < 0 ||
      PyModule_AddObjectRef(m, "Transport", (PyObject *)st->transport_type) < 0 ||
      PyModule_AddObjectRef(m, "DatagramTransport", (PyObject *)st->datagram_type) < 0)
    return -1;
  struct {
    const char *name;
    PyObject **slot;
  } names[] = {
      {"connection_made", &st->str_connection_made}, {"data_received", &st->str_data_received},
      {"eof_received", &st->str_eof_received},       {"connection_lost", &st->str_connection_lost},
      {"pause_writing", &st->str_pause_writing},     {"resume_writing", &st->str_resume_writing},
      {"get_buffer", &st->str_get_buffer},           {"buffer_updated", &st->str_buffer_updated},
      {"datagram_received", &st->str_datagram_received},
      {"error_received", &st->str_error_received},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!(*names[i].slot = PyUnicode_InternFromString(names[i].name))) return -1;
  return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
  module_state *st = PyModule_GetState(m);
  Py_VISIT(st->handle_type);
  Py_VISIT(st->timer_type);
  Py_VISIT(st->future_type);
  Py_VISIT(st->task_type);
  Py_VISIT(st->set_task_name);
  Py_VISIT(st->get_running_loop);
  Py_VISIT(st->set_running_loop);
  Py_VISIT(st->get_asyncgen_hooks);
  Py_VISIT(st->set_asyncgen_hooks);
  Py_VISIT(st->set_wakeup_fd);
  Py_VISIT(st->isfuture);
  Py_VISIT(st->ensure_future);
  Py_VISIT(st->until_complete_cb);
  Py_VISIT(st->logger);
  Py_VISIT(st->thread_pool);
  Py_VISIT(st->wrap_future);
  Py_VISIT(st->buffered_protocol_type);
  Py_VISIT(st->format_callback_source);
  Py_VISIT(st->core_type);
  Py_VISIT(st->op_type);
  Py_VISIT(st->transport_type);
  Py_VISIT(st->datagram_type);
  return 0;
}

static int module_clear(PyObject *m) {
  module_state *st = PyModule_GetState(m);
  Py_CLEAR(st->handle_type);
  Py_CLEAR(st->timer_type);
  Py_CLEAR(st->future_type);
  Py_CLEAR(st->task_type);
  Py_CLEAR(st->set_task_name);
  Py_CLEAR(st->get_running_loop);
  Py_CLEAR(st->set_running_loop);
  Py_CLEAR(st->get_asyncgen_hooks);
  Py_CLEAR(st->set_asyncgen_hooks);
  Py_CLEAR(st->set_wakeup_fd);
  Py_CLEAR(st->isfuture);
  Py_CLEAR(st->ensure_future);
  Py_CLEAR(st->until_complete_cb);
  Py_CLEAR(st->logger);
  Py_CLEAR(st->thread_pool);
  Py_CLEAR(st->wrap_future);
  Py_CLEAR(st->buffered_protocol_type);
  Py_CLEAR(st->format_callback_source);
  Py_CLEAR(st->str_connection_made);
  Py_CLEAR(st->str_data_received);
  Py_CLEAR(st->str_eof_received);
  Py_CLEAR(st->str_datagram_received);
  Py_CLEAR(st->str_error_received);
  Py_CLEAR(st->str_connection_lost);
  Py_CLEAR(st->str_pause_writing);
  Py_CLEAR(st->str_resume_writing);
  Py_CLEAR(st->str_get_buffer);
  Py_CLEAR(st->str_buffer_updated);
  Py_CLEAR(st->core_type);
  Py_CLEAR(st->op_type);
  Py_CLEAR(st->transport_type);
  Py_CLEAR(st->datagram_type);
  return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef aloop_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aloop._aloop",
    .m_doc = "aloop's event loop core for asyncio.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
};

PyMODINIT_FUNC PyInit__aloop(void);
PyMODINIT_FUNC PyInit__aloop(void) { return PyModuleDef_Init(&aloop_module); }
