/* The conformance suite's test cases, one per feature file. Adding a file: add it here. */
#ifndef ALOOP_TEST_CASES_H
#define ALOOP_TEST_CASES_H
#include <check.h>

#define CONFORMANCE_CASES(X) \
  X(lifecycle)               \
  X(call_soon)               \
  X(timers)                  \
  X(io)                      \
  X(run_stop)                \
  X(threadsafe)              \
  X(signals)                 \
  X(fd_limits)               \
  X(futures)                 \
  X(tasks)                   \
  X(sockops)                 \
  X(executor)                \
  X(transport)               \
  X(server)                  \
  X(streams)                 \
  X(fd_reuse)                \
  X(threads)                 \
  X(large_buffers)           \
  X(paused_close)            \
  X(embed)                   \
  X(datagram)                \
  X(pipes)                   \
  X(process)                 \
  X(tls)                     \
  X(file)                    \
  X(sendfile)                \
  X(wait_hooks)

#define DECLARE_CASE(name) TCase *conformance_##name(void);
CONFORMANCE_CASES(DECLARE_CASE)
#undef DECLARE_CASE

#endif
