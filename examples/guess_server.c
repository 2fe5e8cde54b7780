/* aloop-guess-server: the guessing game of the asyncio socket tutorial, on streams and tasks.
 * The client keeps a secret; the server guesses it, told after each guess whether it got warmer
 * or colder (protocol in guess.h). One task and one session per connection, any number at once;
 * a session ends quietly at end of stream, and a bad line gets an ERROR line, never a crash.
 *   aloop-guess-server [--backend NAME] [--host H] [--port N]   (port 0: any free port, said at
 *   start). SIGINT or SIGTERM stops it.
 * The server guesses like a binary search on hot and cold: the numbers that fit every report so
 * far are an interval (minus the guesses made), and each guess is the reflection of the previous
 * one across its middle, so that "Warmer" or "Colder" keeps one half. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "guess.h"

enum {
  LINE_MAX_BYTES = 256, /* longer lines are refused in words, and the connection ends */
  MAX_GUESSES = 64,     /* per session: far more than a range within GUESS_LIMIT needs */
};

struct session {
  bool started, over;
  int64_t lo, hi;               /* the numbers that fit every report so far */
  int64_t guesses[MAX_GUESSES]; /* made in this session, to never guess one twice */
  int nguesses;
  bool has_prev, awaiting_report;
  int64_t prev;                 /* the previous guess reported on */
};

/* ---- guessing ------------------------------------------------------------------------------ */

static bool guessed(const struct session *s, int64_t n) {
  for (int i = 0; i < s->nguesses; i++)
    if (s->guesses[i] == n) return true;
  return false;
}

/* The number nearest to target in [lo, hi] not guessed yet; false if there is none. At most
 * nguesses numbers are taken, so the search is short. */
static bool nearest_free(const struct session *s, int64_t target, int64_t *out) {
  for (int64_t d = 0; d <= s->nguesses && d <= s->hi - s->lo; d++) {
    int64_t below = target - d, above = target + d;
    if (below >= s->lo && !guessed(s, below)) return *out = below, true;
    if (above <= s->hi && !guessed(s, above)) return *out = above, true;
  }
  return false;
}

static bool next_guess(const struct session *s, int64_t *out) {
  if (s->lo > s->hi) return false;
  int64_t target = s->lo + (s->hi - s->lo) / 2;
  if (s->has_prev) { /* the reflection of prev: their midpoint splits the interval in two */
    target = s->lo + s->hi - s->prev;
    target = target < s->lo ? s->lo : target > s->hi ? s->hi : target;
  }
  return nearest_free(s, target, out);
}

static int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/* Keep the numbers for which guess n against prev gives `outcome`. Closer to n than to prev
 * means beyond their midpoint on n's side (2c > n + prev when n > prev). */
static void narrow(struct session *s, int64_t n, enum guess_outcome outcome) {
  int64_t sum = n + s->prev;
  int64_t above = floor_half(sum) + 1, below = -floor_half(-sum) - 1; /* c > sum/2, c < sum/2 */
  bool keep_upper = (outcome == GUESS_WARMER) == (n > s->prev);
  if (outcome == GUESS_UNSURE) { /* as far as before: exactly their midpoint, if it is whole */
    int64_t mid = sum / 2;
    if (sum % 2 || mid < s->lo || mid > s->hi) s->lo = s->hi + 1; /* nothing fits */
    else s->lo = s->hi = mid;
  } else if (keep_upper) {
    if (above > s->lo) s->lo = above;
  } else if (below < s->hi) {
    s->hi = below;
  }
}

/* ---- the protocol -------------------------------------------------------------------------- */

/* Answer one request line (words split on blanks) into `reply`. */
static void answer(struct session *s, char **w, int nw, char *reply, size_t cap) {
  int64_t a, b;
  if (nw == 3 && !strcmp(w[0], "PARAMS")) {
    if (!guess_parse_number(w[1], &a) || !guess_parse_number(w[2], &b) || a > b) {
      snprintf(reply, cap, "ERROR PARAMS wants two whole numbers, lower <= upper, within %lld",
               (long long)GUESS_LIMIT);
      return;
    }
    *s = (struct session){.started = true, .lo = a, .hi = b};
    snprintf(reply, cap, "OK");
  } else if (nw == 1 && !strcmp(w[0], "NUMBER")) {
    if (!s->started || s->over) snprintf(reply, cap, "ERROR no session: send PARAMS lower upper");
    else if (s->awaiting_report) snprintf(reply, cap, "ERROR REPORT the last number first");
    else if (s->nguesses == MAX_GUESSES) snprintf(reply, cap, "ERROR too many guesses");
    else if (!next_guess(s, &a)) snprintf(reply, cap, "ERROR no number fits the reports");
    else {
      s->guesses[s->nguesses++] = a;
      s->awaiting_report = true;
      snprintf(reply, cap, "NUMBER %lld", (long long)a);
    }
  } else if (nw == 3 && !strcmp(w[0], "REPORT")) {
    int outcome = guess_outcome_parse(w[2]);
    if (!s->awaiting_report || !guess_parse_number(w[1], &a) || a != s->guesses[s->nguesses - 1])
      snprintf(reply, cap, "ERROR REPORT the number the server gave last");
    else if (outcome < 0)
      snprintf(reply, cap, "ERROR the outcome is Correct, Warmer, Colder or Unsure");
    else if (!s->has_prev && outcome != GUESS_CORRECT && outcome != GUESS_UNSURE)
      snprintf(reply, cap, "ERROR a first guess is Correct or Unsure");
    else {
      if (outcome == GUESS_CORRECT) s->over = true;
      else if (s->has_prev) narrow(s, a, (enum guess_outcome)outcome);
      s->awaiting_report = false;
      s->has_prev = true;
      s->prev = a;
      snprintf(reply, cap, "OK");
    }
  } else {
    snprintf(reply, cap, "ERROR unknown request: PARAMS lower upper, NUMBER or REPORT n outcome");
  }
}

static int split(char *line, char **w, int max) {
  int n = 0;
  for (char *save, *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save))
    if (n < max) w[n++] = t; else return max + 1; /* too many words: unknown request */
  return n;
}

/* One connection's task: a session per connection, until end of stream. */
static int64_t play(aloop_stream *stream, void *arg) {
  (void)arg;
  struct session s = {0};
  char line[LINE_MAX_BYTES], reply[160];
  int64_t n;
  while ((n = aloop_await(aloop_stream_readline(stream, line, sizeof line - 1))) > 0) {
    line[n] = '\0';
    char *w[4];
    int nw = split(line, w, 3);
    if (nw == 0) continue; /* a blank line asks nothing */
    answer(&s, w, nw > 3 ? 0 : nw, reply, sizeof reply - 1);
    strcat(reply, "\n");
    aloop_stream_write(stream, reply, strlen(reply));
    if ((n = aloop_await(aloop_stream_drain(stream))) < 0) break;
  }
  if (n == -ALOOP_ELIMIT) { /* a line we will not buffer: say so, and end this connection */
    static const char too_long[] = "ERROR line too long\n";
    aloop_stream_write(stream, too_long, sizeof too_long - 1);
    return 0;
  }
  /* End of stream, with or without a last unterminated line, or a peer gone: quietly. */
  return n == -ALOOP_EINCOMPLETE || n == -ECONNRESET || n == -EPIPE ? 0 : n;
}

/* ---- the program --------------------------------------------------------------------------- */

static void on_stop_signal(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_future_cancel(arg);
}

static int usage(const char *prog, bool help) {
  fprintf(help ? stdout : stderr,
          "usage: %s [--backend select|libev|io_uring|auto] [--host H] [--port N]\n", prog);
  return help ? 0 : CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
  const char *prog = "aloop-guess-server", *backend, *host = "127.0.0.1";
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  int port = 8888;
  for (int i = 1; i < argc; i++) {
    char *end;
    if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc &&
             (port = (int)strtol(argv[++i], &end, 10), !*end) && port >= 0 && port < 65536) continue;
    else return usage(prog, !strcmp(argv[i], "--help"));
  }
  aloop_loop *loop = cli_new_loop(prog, backend);
  if (!loop) return errno == ALOOP_EBACKEND ? CLI_EXIT_USAGE : 1;
  aloop_future *f = aloop_start_server(loop, play, NULL, host, port, NULL);
  if (aloop_run_until_complete(loop, f) < 0) {
    fprintf(stderr, "%s: %s\n", prog, aloop_future_message(f));
    aloop_future_release(f);
    aloop_free(loop);
    return 1;
  }
  aloop_server *server = aloop_future_data(f);
  aloop_future_release(f);
  printf("%s: %s driver, listening on %s:%d\n", prog, aloop_backend_name(loop), host,
         aloop_server_port(server));
  fflush(stdout);
  aloop_future *forever = aloop_server_serve_forever(server);
  aloop_add_signal_handler(loop, SIGINT, on_stop_signal, forever);
  aloop_add_signal_handler(loop, SIGTERM, on_stop_signal, forever);
  aloop_run_until_complete(loop, forever);
  aloop_future_release(forever);
  aloop_future *closed = aloop_server_wait_closed(server);
  aloop_server_free(server); /* aborts the sessions still open */
  aloop_run_until_complete(loop, closed);
  aloop_future_release(closed);
  printf("%s: stopped\n", prog);
  aloop_remove_signal_handler(loop, SIGINT);
  aloop_remove_signal_handler(loop, SIGTERM);
  aloop_free(loop);
  return 0;
}
