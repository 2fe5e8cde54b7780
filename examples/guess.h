/* The guessing game's protocol, shared by its server and client (examples/guess_server.c,
 * examples/guess_client.c). Lines, one request and one answer each:
 *   PARAMS lower upper       -> OK                 a new session over [lower, upper]
 *   NUMBER                   -> NUMBER n           the server's next guess, never one it made
 *   REPORT n outcome         -> OK                 how guess n compares with the client's secret
 *   anything else, or out of turn -> ERROR words   and the session goes on
 * An outcome is Correct, Warmer or Colder (closer to the secret than the previous guess, or
 * farther), or Unsure (the first guess, or as far as the previous one). */
#ifndef ALOOP_EXAMPLE_GUESS_H
#define ALOOP_EXAMPLE_GUESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum guess_outcome { GUESS_CORRECT, GUESS_WARMER, GUESS_COLDER, GUESS_UNSURE, GUESS_OUTCOMES };

static const char *const guess_outcome_names[GUESS_OUTCOMES] = {"Correct", "Warmer", "Colder",
                                                                "Unsure"};

/* The bounds every number in the game keeps within, so that sums and distances cannot overflow. */
#define GUESS_LIMIT INT64_C(1000000000)

/* Guess n against secret s; prev is the previous guess of the session, if has_prev. */
static inline enum guess_outcome guess_judge(int64_t n, int64_t s, int64_t prev, bool has_prev) {
  if (n == s) return GUESS_CORRECT;
  if (!has_prev) return GUESS_UNSURE;
  int64_t d = llabs(n - s), before = llabs(prev - s);
  return d < before ? GUESS_WARMER : d > before ? GUESS_COLDER : GUESS_UNSURE;
}

/* The outcome named by word, or -1. */
static inline int guess_outcome_parse(const char *word) {
  for (int i = 0; i < GUESS_OUTCOMES; i++)
    if (!strcmp(word, guess_outcome_names[i])) return i;
  return -1;
}

/* A whole decimal number within GUESS_LIMIT. */
static inline bool guess_parse_number(const char *word, int64_t *out) {
  char *end;
  long long v = strtoll(word, &end, 10);
  if (!*word || *end || v < -GUESS_LIMIT || v > GUESS_LIMIT) return false;
  *out = v;
  return true;
}

#endif
