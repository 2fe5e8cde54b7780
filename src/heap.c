/* The timer heap. Pure data structure: no clock, no loop; tested on its own in tests/unit. */
#include <errno.h>
#include <stdlib.h>

#include "core.h"

static int earlier(const struct aloop__handle *a, const struct aloop__handle *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void place(struct aloop__heap *heap, size_t i, struct aloop__handle *h) {
  heap->items[i] = h;
  h->heap_index = (uint32_t)i;
}

static void sift_up(struct aloop__heap *heap, size_t i) {
  struct aloop__handle *h = heap->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(h, heap->items[parent])) break;
    place(heap, i, heap->items[parent]);
    i = parent;
  }
  place(heap, i, h);
}

static void sift_down(struct aloop__heap *heap, size_t i) {
  struct aloop__handle *h = heap->items[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= heap->len) break;
    if (child + 1 < heap->len && earlier(heap->items[child + 1], heap->items[child])) child++;
    if (!earlier(heap->items[child], h)) break;
    place(heap, i, heap->items[child]);
    i = child;
  }
  place(heap, i, h);
}

int aloop__heap_push(struct aloop__heap *heap, struct aloop__handle *h) {
  if (heap->len == heap->cap) {
    size_t cap = heap->cap ? heap->cap * 2 : 64;
    if (cap > UINT32_MAX) return -ENOMEM;
    struct aloop__handle **items = realloc(heap->items, cap * sizeof *items);
    if (!items) return -ENOMEM;
    heap->items = items;
    heap->cap = cap;
  }
  heap->items[heap->len] = h;
  sift_up(heap, heap->len++);
  return 0;
}

struct aloop__handle *aloop__heap_top(const struct aloop__heap *heap) {
  return heap->len ? heap->items[0] : NULL;
}

void aloop__heap_remove(struct aloop__heap *heap, struct aloop__handle *h) {
  size_t i = h->heap_index;
  struct aloop__handle *last = heap->items[--heap->len];
  if (i == heap->len) return;
  place(heap, i, last);
  /* The moved item may belong above or below its new position. */
  if (i > 0 && earlier(last, heap->items[(i - 1) / 2]))
    sift_up(heap, i);
  else
    sift_down(heap, i);
}

void aloop__heap_free(struct aloop__heap *heap) {
  free(heap->items);
  heap->items = NULL;
  heap->len = heap->cap = 0;
}
