/* A binary min-heap of timer handles ordered by (when, seq): earliest deadline first, equal
 * deadlines in scheduling order. Each handle remembers its index so cancellation is O(log n). */
#ifndef ALOOP_HEAP_H
#define ALOOP_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct aloop__handle;

struct aloop__heap {
  struct aloop__handle **items;
  size_t len, cap;
};

int aloop__heap_push(struct aloop__heap *heap, struct aloop__handle *h); /* 0 or -ENOMEM */
struct aloop__handle *aloop__heap_top(const struct aloop__heap *heap);  /* NULL if empty */
void aloop__heap_remove(struct aloop__heap *heap, struct aloop__handle *h);
void aloop__heap_free(struct aloop__heap *heap);

#endif /* ALOOP_HEAP_H */
