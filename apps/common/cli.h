/* What every aloop program shares on its command line: --backend NAME (or $ALOOP_BACKEND),
 * --list-backends, and a loop created with an error message a person can act on. */
#ifndef ALOOP_CLI_H
#define ALOOP_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "aloop.h"

enum { CLI_CONTINUE = -1, CLI_EXIT_OK = 0, CLI_EXIT_USAGE = 2 };

/* Takes --backend NAME, --backend=NAME and --list-backends out of argv (the rest stay in order).
 * Returns CLI_CONTINUE, or an exit status: CLI_EXIT_OK after --list-backends, CLI_EXIT_USAGE after
 * printing what is wrong. *backend is NULL unless given. */
int cli_take_backend(int *argc, char **argv, const char *prog, const char **backend);

/* Print each compiled driver, whether it works here, and why not. */
void cli_list_backends(FILE *out);

/* A loop on `backend` (NULL: $ALOOP_BACKEND, else auto), or NULL after printing why to stderr. */
aloop_loop *cli_new_loop(const char *prog, const char *backend);

/* A listening TCP socket (non-blocking, SO_REUSEADDR, and SO_REUSEPORT if reuse_port) on
 * host:port, resolved and bound before the loop runs; *bound_port says what port 0 became. -1
 * after printing why. */
int cli_listen(const char *prog, const char *host, int port, bool reuse_port, int *bound_port);

#endif
