/* aloop-guess-client: the player's side of the guessing game (protocol in guess.h), one task over
 * one stream. For each session it keeps a secret, starts the session with PARAMS, asks for
 * guesses and reports how each compares, at most GUESSES_MAX times; then it closes the
 * connection and waits until it is closed.
 *   aloop-guess-client [--backend NAME] [--host H] --port N [--session LOWER,UPPER,SECRET]...
 * Without --session it plays (1, 5, secret 3) and (10, 15, secret 12). Prints each guess as
 * "(number, outcome)" and a line per session; exits 0 if every session ended Correct. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "guess.h"

enum {
  GUESSES_MAX = 5,   /* per session, as in the tutorial */
  SESSIONS_MAX = 32,
  LINE_CAP = 256,
};

struct session {
  int64_t lower, upper, secret;
};

struct game {
  aloop_loop *loop;
  const char *host;
  int port;
  struct session sessions[SESSIONS_MAX];
  int nsessions, failed;
};

/* Send one request line and read its answer (without the newline). An ERROR answer or a lost
 * connection is an error of the task, with the words. */
static int64_t ask(aloop_stream *s, const char *request, char *reply, size_t cap) {
  aloop_stream_write(s, request, strlen(request));
  int64_t n = aloop_await(aloop_stream_drain(s));
  if (n < 0) return aloop_task_error(n, "sending '%.*s'", (int)strcspn(request, "\n"), request);
  n = aloop_await(aloop_stream_readline(s, reply, cap - 1));
  if (n <= 0) return aloop_task_error(n ? n : -ECONNRESET, "the server sent no answer");
  reply[n] = '\0';
  reply[strcspn(reply, "\r\n")] = '\0';
  if (!strncmp(reply, "ERROR", 5)) return aloop_task_error(-EPROTO, "the server said: %s", reply);
  return 0;
}

/* One session: 1 if it ended Correct within GUESSES_MAX guesses, 0 if not, or an error. */
static int64_t play_session(aloop_stream *s, const struct session *g) {
  char request[96], reply[LINE_CAP];
  printf("session %" PRId64 "..%" PRId64 ", secret %" PRId64 "\n", g->lower, g->upper, g->secret);
  snprintf(request, sizeof request, "PARAMS %" PRId64 " %" PRId64 "\n", g->lower, g->upper);
  int64_t err = ask(s, request, reply, sizeof reply);
  if (err < 0) return err;
  int64_t prev = 0;
  for (int k = 1; k <= GUESSES_MAX; k++) {
    int64_t n;
    if ((err = ask(s, "NUMBER\n", reply, sizeof reply)) < 0) return err;
    if (strncmp(reply, "NUMBER ", 7) || !guess_parse_number(reply + 7, &n))
      return aloop_task_error(-EPROTO, "not a guess: '%s'", reply);
    enum guess_outcome o = guess_judge(n, g->secret, prev, k > 1);
    printf("(%" PRId64 ", %s)\n", n, guess_outcome_names[o]);
    snprintf(request, sizeof request, "REPORT %" PRId64 " %s\n", n, guess_outcome_names[o]);
    if ((err = ask(s, request, reply, sizeof reply)) < 0) return err;
    if (o == GUESS_CORRECT) {
      printf("session %" PRId64 "..%" PRId64 ": Correct after %d guess%s\n", g->lower, g->upper,
             k, k > 1 ? "es" : "");
      return 1;
    }
    prev = n;
  }
  printf("session %" PRId64 "..%" PRId64 ": not found in %d guesses\n", g->lower, g->upper,
         GUESSES_MAX);
  return 0;
}

static int64_t play(void *arg) {
  struct game *game = arg;
  aloop_future *f = aloop_open_connection(game->loop, game->host, game->port, 0);
  int64_t r = aloop_await_keep(f);
  if (r < 0) {
    r = aloop_task_error(r, "connecting to %s:%d: %s", game->host, game->port,
                         aloop_future_message(f));
    aloop_future_release(f);
    return r;
  }
  aloop_stream *s = aloop_future_data(f);
  aloop_future_release(f);
  for (int i = 0; i < game->nsessions && r >= 0; i++)
    if ((r = play_session(s, &game->sessions[i])) == 0) game->failed++;
  int64_t closed = aloop_await(aloop_stream_close(s)); /* flushed, closed, and waited for */
  return r < 0 ? r : closed;
}

/* ---- the command line ---------------------------------------------------------------------- */

static bool parse_session(const char *text, struct session *g) {
  char copy[96], *save, *w[3];
  int n = 0;
  if (strlen(text) >= sizeof copy) return false;
  strcpy(copy, text);
  for (char *t = strtok_r(copy, ",", &save); t && n < 3; t = strtok_r(NULL, ",", &save)) w[n++] = t;
  return n == 3 && guess_parse_number(w[0], &g->lower) && guess_parse_number(w[1], &g->upper) &&
         guess_parse_number(w[2], &g->secret) && g->lower <= g->secret && g->secret <= g->upper;
}

static int usage(const char *prog, bool help) {
  fprintf(help ? stdout : stderr,
          "usage: %s [--backend select|libev|io_uring|auto] [--host H] --port N "
          "[--session LOWER,UPPER,SECRET]...\n", prog);
  return help ? 0 : CLI_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, const char *prog, struct game *game) {
  for (int i = 1; i < argc; i++) {
    char *end;
    if (!strcmp(argv[i], "--host") && i + 1 < argc) {
      game->host = argv[++i];
    } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      long p = strtol(argv[++i], &end, 10);
      if (*end || p <= 0 || p > 65535) return usage(prog, false);
      game->port = (int)p;
    } else if (!strcmp(argv[i], "--session") && i + 1 < argc && game->nsessions < SESSIONS_MAX) {
      if (!parse_session(argv[++i], &game->sessions[game->nsessions++])) return usage(prog, false);
    } else {
      return usage(prog, !strcmp(argv[i], "--help"));
    }
  }
  if (!game->port) return usage(prog, false);
  if (!game->nsessions) {
    game->sessions[0] = (struct session){1, 5, 3};
    game->sessions[1] = (struct session){10, 15, 12};
    game->nsessions = 2;
  }
  return CLI_CONTINUE;
}

int main(int argc, char **argv) {
  const char *prog = "aloop-guess-client", *backend;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  struct game game = {.host = "127.0.0.1"};
  if ((rc = parse_args(argc, argv, prog, &game)) != CLI_CONTINUE) return rc;
  if (!(game.loop = cli_new_loop(prog, backend))) return errno == ALOOP_EBACKEND ? CLI_EXIT_USAGE : 1;
  aloop_future *task = aloop_task_spawn(game.loop, play, &game, NULL);
  int64_t outcome = aloop_run_until_complete(game.loop, task);
  if (outcome < 0) fprintf(stderr, "%s: %s\n", prog, aloop_future_message(task));
  aloop_future_release(task);
  aloop_free(game.loop);
  if (outcome < 0) return 1;
  printf("%s: %d of %d sessions Correct within %d guesses\n", prog, game.nsessions - game.failed,
         game.nsessions, GUESSES_MAX);
  return game.failed ? 1 : 0;
}
