/* Buffers of 4 GiB and more: lengths are never cut to 32 bits (a 4 GiB receive is not a 0-byte
 * one, a 4 GiB send is not a string of 0-byte sends). The buffers are sparse mappings: only the
 * pages a test writes or the kernel reads are ever touched, and unwritten pages read as zeros
 * from the kernel's shared zero page. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define HUGE_LEN ((size_t)4 << 30) /* 4 GiB: 0 in 32 bits */
enum { TAIL = 5 };                  /* bytes past 4 GiB */

static unsigned char *huge_mapping(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  ck_assert_msg(p != MAP_FAILED, "mmap of %zu bytes: %s", len, strerror(errno));
  return p;
}

START_TEST(test_a_receive_into_a_4_gib_buffer_gets_the_bytes_that_came) {
  size_t len = HUGE_LEN + TAIL;
  unsigned char *buf = huge_mapping(len);
  int sv[2];
  make_socketpair(sv);
  ck_assert_int_eq(write(sv[1], "hello", 5), 5);
  ck_assert_int_eq(run_within(aloop_sock_recv_into(L, sv[0], buf, len), 10 * SEC), 5);
  ck_assert(memcmp(buf, "hello", 5) == 0);
  /* and an exact 4 GiB one, whose length is 0 in 32 bits */
  ck_assert_int_eq(write(sv[1], "again", 5), 5);
  ck_assert_int_eq(run_within(aloop_sock_recv_into(L, sv[0], buf, HUGE_LEN), 10 * SEC), 5);
  ck_assert(memcmp(buf, "again", 5) == 0);
  munmap(buf, len);
  close(sv[0]), close(sv[1]);
}
END_TEST

/* The receiving side of the 4 GiB send, on a thread with a blocking socket: the middle is
 * discarded in the kernel (TCP's MSG_TRUNC), the first and last bytes are checked. */
struct drain {
  int fd;
  size_t total, got;
  unsigned char head[TAIL], tail[TAIL];
};

static void *drain(void *arg) {
  struct drain *d = arg;
  static char scratch[1 << 16];
  while (d->got < d->total) {
    size_t left = d->total - d->got;
    bool edge = d->got < TAIL || left <= TAIL;
    size_t want = edge ? (d->got < TAIL ? TAIL - d->got : left) : left - TAIL;
    if (want > sizeof scratch) want = sizeof scratch;
    ssize_t n = recv(d->fd, scratch, want, edge ? 0 : MSG_TRUNC);
    if (n <= 0) break;
    if (edge && d->got < TAIL) memcpy(d->head + d->got, scratch, (size_t)n);
    if (edge && left <= TAIL) memcpy(d->tail + (TAIL - left), scratch, (size_t)n);
    d->got += (size_t)n;
  }
  return NULL;
}

START_TEST(test_sendall_of_4_gib_and_more_delivers_every_byte) {
  size_t len = HUGE_LEN + TAIL;
  unsigned char *buf = huge_mapping(len);
  memcpy(buf, "first", TAIL);
  memcpy(buf + len - TAIL, "last!", TAIL);
  int lfd, cfd;
  int sfd = tcp_connected(&lfd, &cfd);
  struct drain d = {.fd = cfd, .total = len};
  ck_assert_int_eq(fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) & ~O_NONBLOCK), 0);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, drain, &d), 0);
  int64_t sent = run_within(aloop_sock_sendall(L, sfd, buf, len), 300 * SEC);
  if (sent < 0) shutdown(sfd, SHUT_RDWR); /* the reader must not wait for bytes that never come */
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(sent, (int64_t)len);
  ck_assert_uint_eq(d.got, len);
  ck_assert(memcmp(d.head, "first", TAIL) == 0);
  ck_assert(memcmp(d.tail, "last!", TAIL) == 0);
  munmap(buf, len);
  close(sfd), close(cfd), close(lfd);
}
END_TEST

TCase *conformance_large_buffers(void) {
  TCase *tc = conformance_tcase("large_buffers");
  tcase_set_timeout(tc, 600); /* 4 GiB through loopback: seconds, but the machine may be busy */
  tcase_add_test(tc, test_a_receive_into_a_4_gib_buffer_gets_the_bytes_that_came);
  tcase_add_test(tc, test_sendall_of_4_gib_and_more_delivers_every_byte);
  return tc;
}
