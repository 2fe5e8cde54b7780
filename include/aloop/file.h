/* File I/O as futures: open, read and write at an offset (one buffer or several), fsync, stat and
 * close, without blocking the loop. Included by aloop.h.
 *
 * One contract on every driver, two ways of keeping it. On io_uring each call is one request the
 * kernel completes (openat, read/readv, write/writev, fsync, statx, close): a read the page cache
 * can serve costs no thread at all, and what must wait for the disk waits in the kernel's own
 * workers. On select and libev (and on io_uring with ALOOP_IO_URING=no-file-ops, or a kernel
 * before 5.6) the same syscalls run on the loop's executor (ALOOP_EXECUTOR_THREADS threads,
 * shared with aloop_run_in_executor and aloop_getaddrinfo): each operation costs two thread
 * hand-offs and a wake-up of the loop, and at most ALOOP_EXECUTOR_THREADS run at once, the rest
 * wait their turn. One exception: a read at an offset that the page cache holds whole (or up to
 * the file's end) is made at once on the loop's thread with preadv2(RWF_NOWAIT), which never
 * waits for the disk, and its future is done before the call returns; what is not cached goes to
 * the executor (ALOOP_FILE_NOWAIT=0 sends every read there). aloop_file_native says which
 * applies.
 *
 * Each function returns a future (one reference for the caller; see future.h), or NULL without
 * memory. Its outcome is the syscall's: >= 0 (an fd, a count, 0), or a negative errno whose
 * message says what failed in words, e.g. "cannot open /no/such: No such file or directory" or
 * "cannot read fd 7: Is a directory". Arguments a syscall would refuse fail the same way,
 * through the future: a negative fd (-EBADF), an offset below -1 or an iovcnt out of range
 * (-EINVAL), a NULL path or stat output (-EFAULT).
 *
 * Buffers, iovec buffers, `struct stat` outputs are the caller's and must stay valid until the
 * future is done, also after a cancel: the future is done only once neither the kernel nor a
 * thread touches them any more. Paths and iovec arrays are copied.
 *
 * Cancelling (aloop_future_cancel): an operation not yet begun is dropped (-ECANCELED). One that
 * has begun is asked to stop where it can: on io_uring a read that sleeps (a pipe or FIFO with no
 * data) ends with -ECANCELED; a regular file's read or write, an fsync, and everything the
 * executor has started run to their end, and then the future has their result, as when a socket
 * operation's cancel loses the race (net.h). So a read of a FIFO that gets no data is cancellable
 * on io_uring, while on the executor it holds its thread until data comes (and aloop_free waits
 * for it): read pipes with aloop_connect_read_pipe instead. An open whose cancel lost the race
 * closes the fd it got and ends with -ECANCELED, since nobody would close it otherwise. */
#ifndef ALOOP_FILE_H
#define ALOOP_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An offset meaning "at the file position, moving it", as read(2) and write(2) do: the only one a
 * pipe or FIFO takes. Several operations at the position at once have no defined order. */
#define ALOOP_FILE_POSITION (-1)

/* Whether this loop's file operations are kernel requests (io_uring) rather than executor jobs. */
ALOOP_API bool aloop_file_native(const aloop_loop *loop);

/* openat(AT_FDCWD, path, flags | O_CLOEXEC, mode). Outcome: the new fd, yours to close (with
 * aloop_file_close or close(2)). Errors: open(2)'s (-ENOENT, -EISDIR, -EACCES...). */
ALOOP_API aloop_future *aloop_file_open(aloop_loop *loop, const char *path, int flags, mode_t mode);

/* Read up to n bytes into buf at offset (>= 0, the file position unchanged, as pread(2); or
 * ALOOP_FILE_POSITION). Outcome: the count, short at the end of the file (0 past it), or an error
 * (-EBADF: fd not open for reading; -EISDIR: a directory; -ESPIPE: an offset on a pipe). */
ALOOP_API aloop_future *aloop_file_read(aloop_loop *loop, int fd, void *buf, size_t n,
                                        int64_t offset);
/* Write n bytes of buf at offset, as pwrite(2) (or ALOOP_FILE_POSITION). Outcome: the count,
 * which may be short as pwrite's (a full disk): write the rest with another call. */
ALOOP_API aloop_future *aloop_file_write(aloop_loop *loop, int fd, const void *buf, size_t n,
                                         int64_t offset);
/* The same with iovcnt buffers (1 to IOV_MAX), filled or written in order, as preadv(2) and
 * pwritev(2). The iov array is copied; the buffers it points to are the caller's. */
ALOOP_API aloop_future *aloop_file_readv(aloop_loop *loop, int fd, const struct iovec *iov,
                                         int iovcnt, int64_t offset);
ALOOP_API aloop_future *aloop_file_writev(aloop_loop *loop, int fd, const struct iovec *iov,
                                          int iovcnt, int64_t offset);

/* fsync(2), or fdatasync(2) when datasync is true. Outcome: 0. */
ALOOP_API aloop_future *aloop_file_fsync(aloop_loop *loop, int fd, bool datasync);

/* fstat(2) / stat(2) (symbolic links followed), through statx: on success *out is filled (on the
 * loop's thread, when the future completes) and the outcome is 0. */
ALOOP_API aloop_future *aloop_file_fstat(aloop_loop *loop, int fd, struct stat *out);
ALOOP_API aloop_future *aloop_file_stat(aloop_loop *loop, const char *path, struct stat *out);

/* close(2). Outcome: 0, or close's error (the fd is closed all the same, as close(2) says).
 * Await the operations on fd first: one in flight keeps the file open until it ends (the kernel
 * holds a reference), but one still queued on the executor would find the fd closed (-EBADF) or,
 * if the number was reused meanwhile, another file. File operations keep no state on the fd in
 * the loop, so aloop_close does not stop them either; for an fd the loop watches or runs socket
 * operations on, use aloop_close. */
ALOOP_API aloop_future *aloop_file_close(aloop_loop *loop, int fd);

#ifdef __cplusplus
}
#endif
#endif
