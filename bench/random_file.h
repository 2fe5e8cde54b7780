/* The benchmarks' source files: pseudo-random bytes (xorshift64, so no filesystem can compress or
 * deduplicate them), written and synced once before any run, and a checksum (FNV-1a over 8-byte
 * words, the tail byte by byte) that the copies and transfers are checked against. */
#ifndef ALOOP_BENCH_RANDOM_FILE_H
#define ALOOP_BENCH_RANDOM_FILE_H
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RANDOM_FILE_SEED UINT64_C(0xcbf29ce484222325)

/* h carried across calls; whole transfers in order give the file's checksum as long as every
 * call but the last covers a multiple of 8 bytes. */
static inline uint64_t random_file_mix(uint64_t h, const void *buf, size_t n) {
  const unsigned char *p = buf;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * UINT64_C(0x100000001b3);
  }
  for (; i < n; i++) h = (h ^ p[i]) * UINT64_C(0x100000001b3);
  return h;
}

/* size bytes at path, synced (its writeback would otherwise slow down whichever run comes
 * first); *sum gets their checksum. 0, or -1 with errno. */
static inline int write_random_file(const char *path, int64_t size, uint64_t *sum) {
  enum { BLOCK = 1 << 20 };
  uint64_t *block = malloc(BLOCK), x = 0x9e3779b97f4a7c15u, h = RANDOM_FILE_SEED;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int rc = block && fd >= 0 ? 0 : -1;
  for (int64_t done = 0; rc == 0 && done < size; done += BLOCK) {
    for (size_t i = 0; i < BLOCK / 8; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      block[i] = x;
    }
    size_t n = size - done < BLOCK ? (size_t)(size - done) : BLOCK;
    if (write(fd, block, n) != (ssize_t)n) rc = -1;
    h = random_file_mix(h, block, n);
  }
  if (rc == 0 && fdatasync(fd) < 0) rc = -1;
  if (fd >= 0) close(fd);
  free(block);
  *sum = h;
  return rc;
}
#endif
