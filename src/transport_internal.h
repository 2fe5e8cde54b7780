/* The transport's insides, shared by transport.c and the TLS layer in tls.c (which lives inside a
 * transport, between its operations and its protocol). Nothing else includes this. */
#ifndef ALOOP_TRANSPORT_INTERNAL_H
#define ALOOP_TRANSPORT_INTERNAL_H

#include "core.h"

struct aloop__tls;

/* Queued bytes live in chunks of at least 16 KiB, filled up before a new one is made, so that many
 * small writes become few sends. */
#define CHUNK_MIN (16 * 1024)
/* Chunks one send request covers: 16 x 16 KiB and more, a few socket buffers' worth. */
#define SEND_IOV 16

struct chunk {
  struct chunk *next;
  size_t off, len, cap;
  unsigned char data[];
};

struct aloop_transport {
  aloop_loop *loop;
  int fd;
  const aloop_protocol *proto;
  void *ctx;
  struct aloop__op rop, wop;
  struct msghdr msg;             /* wop's: the queued chunks, as iov */
  struct iovec iov[SEND_IOV];
  struct aloop__conn conn;       /* the server that accepted it, if any */
  aloop_sockaddr peer;           /* len 0 until known (accept gives it, else getpeername) */
  bool reading, sending;         /* rop / wop in flight */
  bool read_paused, eof_received;
  bool eof_pending;              /* end of stream seen while paused or with bytes held: after them */
  bool closing, aborting, lost_scheduled;
  bool eof_requested, eof_sent;
  bool write_paused;
  bool native_send;              /* the driver sends in its own batch: no inline send first */
  bool made;                     /* connection_made has run: connection_lost may follow */
  uint8_t file;                  /* a pipe, FIFO or tty (op.h's aloop__file_kind), not a socket */
  bool no_reads, no_writes;      /* a pipe transport has one direction */
  bool pushed_back;              /* paused its reading, or a bulk chunk came: reads stay bounded */
  uint32_t chunks;               /* chunks received, counted up to BOUNDED_CHUNKS */
  int lost_err;
  struct chunk *wq, *wq_last;    /* queued bytes, oldest first */
  struct chunk *spare;           /* a sent chunk bigger than CHUNK_MIN kept for the next write */
  size_t wq_bytes, high, low;
  unsigned char *held;           /* bytes that arrived while reading was paused */
  size_t held_len;
  struct aloop__tls *tls;        /* TLS between the operations and the protocol (tls.c) */
  struct tsendfile *sendfile;    /* the file being sent, if any (transport.c's sendfile section) */
};


/* transport.c, for tls.c: plain bytes to the protocol (how many it took before it paused), bytes
 * it did not take kept for later, ciphertext out (no checks: the TLS layer decides), the socket's
 * half-close, end of stream to the protocol, and a failure. */
size_t aloop__transport_deliver(aloop_transport *t, const unsigned char *data, size_t n);
int aloop__transport_hold(aloop_transport *t, const void *data, size_t n);
int aloop__transport_send(aloop_transport *t, const struct iovec *iov, int iovcnt);
int aloop__transport_shutdown_write(aloop_transport *t);
/* pause_writing if the write buffer (queue and TLS bytes waiting) went above the high mark. */
void aloop__transport_check_high(aloop_transport *t);
void aloop__transport_deliver_eof(aloop_transport *t);
void aloop__transport_lose(aloop_transport *t, int err);
/* The protocol hears nothing more (a client's failed handshake: its caller hears instead). */
void aloop__transport_silence(aloop_transport *t);

/* tls.c, for transport.c. */
void aloop__tls_begin(aloop_transport *t);       /* made: start the handshake */
void aloop__tls_received(aloop_transport *t, const void *data, size_t n); /* ciphertext in */
void aloop__tls_ended(aloop_transport *t);       /* the socket's end of stream */
void aloop__tls_pump(aloop_transport *t);        /* plain bytes out, as far as the protocol takes */
bool aloop__tls_has_input(const aloop_transport *t);
bool aloop__tls_established(const aloop_transport *t);
int aloop__tls_writev(aloop_transport *t, const struct iovec *iov, int iovcnt);
size_t aloop__tls_pending(const aloop_transport *t); /* plain bytes waiting for the handshake */
int aloop__tls_write_eof(aloop_transport *t);
void aloop__tls_close(aloop_transport *t);       /* close_notify after the queue, then close */
void aloop__tls_free(aloop_transport *t);      /* tells a caller still waiting, then frees */

#endif
