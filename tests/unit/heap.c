/* The timer heap on its own: order, FIFO ties, removal from anywhere. */
#include "../run_suite.h"
#include <check.h>
#include <stdlib.h>

#include "core.h"

enum { N = 5000 };
static struct aloop__handle items[N];

static void check_pops_in_order(struct aloop__heap *heap, size_t expected) {
  struct aloop__handle *prev = NULL;
  size_t popped = 0;
  struct aloop__handle *h;
  while ((h = aloop__heap_top(heap))) {
    if (prev) {
      ck_assert(prev->when <= h->when);
      if (prev->when == h->when) ck_assert_uint_lt(prev->seq, h->seq);
    }
    aloop__heap_remove(heap, h);
    prev = h;
    popped++;
  }
  ck_assert_uint_eq(popped, expected);
}

START_TEST(test_heap_yields_earliest_first_and_ties_by_sequence) {
  struct aloop__heap heap = {0};
  unsigned seed = 7;
  for (int i = 0; i < N; i++) {
    items[i] = (struct aloop__handle){.when = rand_r(&seed) % 100, .seq = (uint64_t)i + 1};
    ck_assert_int_eq(aloop__heap_push(&heap, &items[i]), 0);
  }
  check_pops_in_order(&heap, N);
  aloop__heap_free(&heap);
}
END_TEST

START_TEST(test_heap_removal_from_the_middle_keeps_the_order) {
  struct aloop__heap heap = {0};
  unsigned seed = 11;
  for (int i = 0; i < N; i++) {
    items[i] = (struct aloop__handle){.when = rand_r(&seed) % 1000, .seq = (uint64_t)i + 1};
    aloop__heap_push(&heap, &items[i]);
  }
  size_t removed = 0;
  for (int i = 0; i < N; i += 3, removed++) aloop__heap_remove(&heap, &items[i]);
  for (size_t i = 0; i < heap.len; i++) ck_assert_uint_eq(heap.items[i]->heap_index, i);
  check_pops_in_order(&heap, N - removed);
  aloop__heap_free(&heap);
}
END_TEST

int main(void) {
  Suite *s = suite_create("heap");
  TCase *tc = tcase_create("heap");
  tcase_add_test(tc, test_heap_yields_earliest_first_and_ties_by_sequence);
  tcase_add_test(tc, test_heap_removal_from_the_middle_keeps_the_order);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
