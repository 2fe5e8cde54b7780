/* TLS inside a transport (include/aloop/tls.h): OpenSSL speaks to the transport through a BIO of
 * our own, so records go out through the transport's send path (tried at once, queued only when
 * the socket is full: no second buffer between OpenSSL and the socket) and come in from the
 * transport's reads (lent for the call; only what the protocol did not take before pausing is
 * copied and kept). The protocol above sees plain bytes with the same calls as without TLS. It
 * must never let a failed handshake reach a protocol as a connection, nor block: every OpenSSL
 * call here works on memory and answers at once. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core.h"
#include "transport_internal.h"

/* The largest record's plain bytes: one SSL_read never gives more. */
enum { RECORD_MAX = 16 * 1024 };

struct aloop_tls_context {
  SSL_CTX *ssl;
  atomic_int refs;
  bool server;
  unsigned char *alpn; /* wire format: length-prefixed names */
  size_t alpn_len;
  aloop_tls_sni_fn sni;
  void *sni_arg;
  int64_t handshake_ns, shutdown_ns;
};

/* Told once how the handshake ended: 0, or the error and why. */
typedef void (*handshake_fn)(aloop_transport *t, int err, const char *why, void *arg);

struct aloop__tls {
  SSL *ssl;
  aloop_tls_context *ctx;
  bool established, upgrade, eof_wanted, shutdown_sent;
  bool eof_told;              /* the protocol heard of the end of stream */
  aloop_handle timer;         /* the handshake's, then the shutdown's */
  const unsigned char *in;    /* records to read: lent by the transport, or in `kept` */
  size_t in_len;
  unsigned char *kept;        /* records the protocol did not want yet (it paused) */
  bool in_kept;               /* `in` points into `kept` */
  unsigned char *pending;     /* plain bytes written before the handshake was done */
  size_t pending_len;
  handshake_fn told;          /* NULL once told */
  void *told_arg;
};

/* ---- words ----------------------------------------------------------------------------------- */

/* Why OpenSSL failed, in words: the certificate check's own reason when it was that. Clears the
 * thread's error queue. */
static void ssl_words(SSL *ssl, int ssl_err, char *why, size_t n) {
  unsigned long code = ERR_peek_last_error();
  long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (verify != X509_V_OK && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    snprintf(why, n, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
  else if (code && ERR_reason_error_string(code))
    snprintf(why, n, "%s", ERR_reason_error_string(code));
  else if (code)
    ERR_error_string_n(code, why, n);
  else if (ssl_err == SSL_ERROR_SYSCALL)
    snprintf(why, n, "unexpected end of stream");
  else
    snprintf(why, n, "TLS error %d", ssl_err);
  ERR_clear_error();
}

/* ---- contexts -------------------------------------------------------------------------------- */

static aloop_tls_context *context_new(bool server, char *why, size_t n) {
  aloop_tls_context *c = calloc(1, sizeof *c);
  SSL_CTX *ssl = c ? SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) : NULL;
  if (!ssl) {
    if (c) ssl_words(NULL, 0, why, n);
    else snprintf(why, n, "out of memory");
    free(c);
    return NULL;
  }
  c->ssl = ssl;
  c->server = server;
  atomic_init(&c->refs, 1);
  c->handshake_ns = ALOOP_TLS_HANDSHAKE_TIMEOUT_NS;
  c->shutdown_ns = ALOOP_TLS_SHUTDOWN_TIMEOUT_NS;
  SSL_CTX_set_app_data(ssl, c);
  SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
  SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  /* An idle connection gives its record buffers back (34 KiB each otherwise). */
  SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  return c;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
  (void)ssl;
  aloop_tls_context *c = arg;
  unsigned char *chosen;
  if (SSL_select_next_proto(&chosen, outlen, c->alpn, (unsigned)c->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* nothing in common: go on without */
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

static int servername(SSL *ssl, int *alert, void *arg) {
  (void)alert;
  aloop_tls_context *c = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  aloop_tls_context *other = name && c->sni ? c->sni(name, c->sni_arg) : NULL;
  if (other && other != c && other->server) SSL_set_SSL_CTX(ssl, other->ssl);
  return SSL_TLSEXT_ERR_OK;
}

aloop_tls_context *aloop_tls_server_context(const char *cert_chain_file, const char *key_file,
                                            char *why, size_t n) {
  ERR_clear_error();
  aloop_tls_context *c = context_new(true, why, n);
  if (!c) return NULL;
  char words[200];
  const char *what = NULL, *file = NULL;
  if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_chain_file) != 1)
    what = "cannot load the certificate chain from", file = cert_chain_file;
  else if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) != 1)
    what = "cannot load the private key from", file = key_file;
  else if (SSL_CTX_check_private_key(c->ssl) != 1)
    what = "the private key does not match the certificate in", file = cert_chain_file;
  if (what) {
    ssl_words(NULL, 0, words, sizeof words);
    snprintf(why, n, "%s %s: %s", what, file, words);
    aloop_tls_context_free(c);
    return NULL;
  }
  SSL_CTX_set_tlsext_servername_callback(c->ssl, servername);
  SSL_CTX_set_tlsext_servername_arg(c->ssl, c);
  return c;
}

aloop_tls_context *aloop_tls_client_context(const char *ca_file, char *why, size_t n) {
  ERR_clear_error();
  aloop_tls_context *c = context_new(false, why, n);
  if (!c) return NULL;
  int ok = ca_file ? SSL_CTX_load_verify_locations(c->ssl, ca_file, NULL)
                   : SSL_CTX_set_default_verify_paths(c->ssl);
  if (ok != 1) {
    char words[200];
    ssl_words(NULL, 0, words, sizeof words);
    snprintf(why, n, "cannot load CA certificates from %s: %s",
             ca_file ? ca_file : "the system's store", words);
    aloop_tls_context_free(c);
    return NULL;
  }
  SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
  return c;
}

void aloop_tls_context_set_verify(aloop_tls_context *c, bool verify) {
  if (!c->server) SSL_CTX_set_verify(c->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
}

int aloop_tls_context_set_alpn(aloop_tls_context *c, const char *const *protocols, size_t count) {
  size_t len = 0;
  for (size_t i = 0; i < count; i++) {
    size_t k = strlen(protocols[i]);
    if (k == 0 || k > 255) return -EINVAL;
    len += 1 + k;
  }
  if (!len) return -EINVAL;
  unsigned char *wire = malloc(len), *p = wire;
  if (!wire) return -ENOMEM;
  for (size_t i = 0; i < count; i++) {
    size_t k = strlen(protocols[i]);
    *p++ = (unsigned char)k;
    memcpy(p, protocols[i], k);
    p += k;
  }
  free(c->alpn);
  c->alpn = wire;
  c->alpn_len = len;
  if (c->server) {
    SSL_CTX_set_alpn_select_cb(c->ssl, select_alpn, c);
  } else if (SSL_CTX_set_alpn_protos(c->ssl, wire, (unsigned)len) != 0) {
    return -ENOMEM; /* OpenSSL's inverted convention: non-zero is the failure */
  }
  return 0;
}

void aloop_tls_context_set_sni(aloop_tls_context *c, aloop_tls_sni_fn fn, void *arg) {
  c->sni = fn;
  c->sni_arg = arg;
}

void aloop_tls_context_set_timeouts(aloop_tls_context *c, int64_t handshake_ns,
                                    int64_t shutdown_ns) {
  if (handshake_ns > 0) c->handshake_ns = handshake_ns;
  if (shutdown_ns > 0) c->shutdown_ns = shutdown_ns;
}

void *aloop_tls_context_ssl_ctx(aloop_tls_context *c) { return c->ssl; }

aloop_tls_context *aloop__tls_context_ref(aloop_tls_context *c) {
  if (c) atomic_fetch_add(&c->refs, 1);
  return c;
}

void aloop_tls_context_free(aloop_tls_context *c) {
  if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
  SSL_CTX_free(c->ssl);
  free(c->alpn);
  free(c);
}

/* ---- the BIO between OpenSSL and the transport ----------------------------------------------- */

static int bio_write(BIO *b, const char *data, int len) {
  aloop_transport *t = BIO_get_data(b);
  struct iovec iov = {(void *)data, (size_t)len};
  /* Sent now or queued (copied); a failure is the transport's, which connection_lost reports. */
  return aloop__transport_send(t, &iov, 1) < 0 ? -1 : len;
}

static int bio_read(BIO *b, char *out, int len) {
  aloop_transport *t = BIO_get_data(b);
  struct aloop__tls *tls = t->tls;
  BIO_clear_retry_flags(b);
  if (!tls->in_len) {
    BIO_set_retry_read(b); /* nothing yet: the next read brings more */
    return -1;
  }
  size_t k = tls->in_len < (size_t)len ? tls->in_len : (size_t)len;
  memcpy(out, tls->in, k);
  tls->in += k;
  tls->in_len -= k;
  return (int)k;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* writes are already on their way */
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_method;
static void make_bio_method(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "aloop transport");
  if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
      BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
    bio_method = m;
  else
    BIO_meth_free(m);
}

/* ---- the connection -------------------------------------------------------------------------- */

static void tell(aloop_transport *t, int err, const char *why) {
  struct aloop__tls *tls = t->tls;
  handshake_fn told = tls->told;
  if (!told) return;
  tls->told = NULL;
  told(t, err, why, tls->told_arg);
}

static void handshake_failed(aloop_transport *t, int err, const char *why) {
  struct aloop__tls *tls = t->tls;
  aloop_cancel(t->loop, tls->timer);
  tls->timer = (aloop_handle){0};
  if (tls->told) {
    tell(t, err, why); /* the caller hears (and may have silenced the protocol) */
  } else if (err != -ECONNRESET) { /* a peer that goes away is its connection's own news */
    char peer[ALOOP_SOCKADDR_STRLEN] = "?";
    aloop_sockaddr addr;
    if (aloop_transport_peername(t, &addr) == 0) aloop_sockaddr_str(&addr, peer, sizeof peer);
    aloop__report(t->loop, err, t->fd, "tls", "%s: TLS handshake failed: %s", peer, why);
  }
  aloop__transport_lose(t, err);
}

static void handshake_timeout(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_transport *t = arg;
  char why[64];
  t->tls->timer = (aloop_handle){0};
  snprintf(why, sizeof why, "the TLS handshake took longer than %.0f s",
           (double)t->tls->ctx->handshake_ns / 1e9);
  handshake_failed(t, -ETIMEDOUT, why);
}

static void shutdown_timeout(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_transport *t = arg;
  t->tls->timer = (aloop_handle){0};
  aloop_transport_abort(t); /* the peer does not take what is queued, close_notify included */
}

/* Plain bytes into records, out through the transport. */
static int write_plain(aloop_transport *t, const void *data, size_t n) {
  struct aloop__tls *tls = t->tls;
  while (n) {
    int k = n > INT32_MAX ? INT32_MAX : (int)n;
    ERR_clear_error();
    int r = SSL_write(tls->ssl, data, k);
    if (r <= 0) {
      char why[200];
      int e = SSL_get_error(tls->ssl, r);
      ssl_words(tls->ssl, e, why, sizeof why);
      if (!t->closing) aloop_transport_fail(t, -ALOOP_ETLS, "TLS write failed: %s", why);
      return -ALOOP_ETLS;
    }
    data = (const char *)data + r;
    n -= (size_t)r;
  }
  return 0;
}

static void send_close_notify(aloop_transport *t) {
  struct aloop__tls *tls = t->tls;
  if (tls->shutdown_sent || !tls->established || t->aborting) return;
  tls->shutdown_sent = true;
  ERR_clear_error();
  SSL_shutdown(tls->ssl); /* writes close_notify; the answer, if any, is not waited for */
  ERR_clear_error();
}

static void established(aloop_transport *t) {
  struct aloop__tls *tls = t->tls;
  tls->established = true;
  aloop_cancel(t->loop, tls->timer);
  tls->timer = (aloop_handle){0};
  tell(t, 0, NULL);
  if (!tls->upgrade && !t->closing && t->proto->connection_made)
    t->proto->connection_made(t, t->ctx);
  if (tls->pending_len && !t->closing) {
    unsigned char *p = tls->pending;
    size_t n = tls->pending_len;
    tls->pending = NULL;
    tls->pending_len = 0;
    write_plain(t, p, n);
    free(p);
  }
  if (tls->eof_wanted && !t->closing) {
    send_close_notify(t);
    aloop__transport_shutdown_write(t);
  }
}

/* The handshake's next step with what has come in. */
static void handshake(aloop_transport *t) {
  struct aloop__tls *tls = t->tls;
  ERR_clear_error();
  int r = SSL_do_handshake(tls->ssl);
  if (r == 1) {
    established(t);
    return;
  }
  int e = SSL_get_error(tls->ssl, r);
  if (e == SSL_ERROR_WANT_READ) return;
  char why[200];
  ssl_words(tls->ssl, e, why, sizeof why);
  handshake_failed(t, -ALOOP_ETLS, why);
}

/* One SSL_read into the protocol: > 0 bytes given, else SSL_get_error's answer (negated). */
static int read_into_protocol(aloop_transport *t) {
  SSL *ssl = t->tls->ssl;
  int r;
  ERR_clear_error();
  if (t->proto->get_buffer) { /* straight into the protocol's buffer: no copy of ours */
    size_t room = 0;
    void *buf = t->proto->get_buffer(t, RECORD_MAX, &room, t->ctx);
    if (!buf || !room) {
      aloop_transport_fail(t, -ENOBUFS, "the protocol gave no buffer to read into");
      return -SSL_ERROR_SSL;
    }
    r = SSL_read(ssl, buf, room > INT32_MAX ? INT32_MAX : (int)room);
    if (r > 0) t->proto->buffer_updated(t, (size_t)r, t->ctx);
  } else {
    unsigned char buf[RECORD_MAX];
    r = SSL_read(ssl, buf, sizeof buf);
    if (r > 0 && t->proto->data_received) t->proto->data_received(t, buf, (size_t)r, t->ctx);
  }
  return r > 0 ? r : -SSL_get_error(ssl, r);
}

/* Keep the records not read yet: the transport's buffer is only lent. */
static int keep_input(struct aloop__tls *tls) {
  if (!tls->in_len) {
    free(tls->kept);
    tls->kept = NULL;
    tls->in = NULL;
    tls->in_kept = false;
    return 0;
  }
  if (tls->in_kept) {
    memmove(tls->kept, tls->in, tls->in_len);
  } else {
    unsigned char *k = malloc(tls->in_len);
    if (!k) return -ENOMEM;
    memcpy(k, tls->in, tls->in_len);
    free(tls->kept);
    tls->kept = k;
    tls->in_kept = true;
  }
  tls->in = tls->kept;
  return 0;
}

static void tell_eof(aloop_transport *t) {
  t->tls->eof_told = true;
  aloop__transport_deliver_eof(t);
}

void aloop__tls_pump(aloop_transport *t) {
  struct aloop__tls *tls = t->tls;
  if (!tls->established) {
    handshake(t);
    if (!tls->established) return;
  }
  while (!t->read_paused && !t->closing) {
    int r = read_into_protocol(t);
    if (r > 0) continue;
    if (r == -SSL_ERROR_WANT_READ) break;
    if (r == -SSL_ERROR_ZERO_RETURN) { /* close_notify: the peer's end of stream */
      t->eof_received = true;
      if (t->reading) aloop__op_cancel(t->loop, &t->rop);
      if (!tls->eof_told) tell_eof(t);
      return;
    }
    if (!t->closing) {
      char why[200];
      ssl_words(tls->ssl, -r, why, sizeof why);
      aloop_transport_fail(t, -ALOOP_ETLS, "TLS: %s", why);
    }
    return;
  }
  if (!t->read_paused && !t->closing && t->eof_received && !tls->eof_told &&
      !aloop__tls_has_input(t))
    tell_eof(t); /* the socket ended without close_notify: an end all the same, as asyncio's */
}

void aloop__tls_received(aloop_transport *t, const void *data, size_t n) {
  struct aloop__tls *tls = t->tls;
  if (tls->in_len) { /* behind records kept from before: append */
    unsigned char *k = realloc(tls->kept, tls->in_len + n); /* kept starts at in (keep_input) */
    if (!k) {
      aloop_transport_fail(t, -ENOMEM, "cannot keep TLS records");
      return;
    }
    memcpy(k + tls->in_len, data, n);
    tls->kept = k;
    tls->in = k;
    tls->in_len += n;
  } else {
    tls->in = data;
    tls->in_len = n;
  }
  if (!t->read_paused) aloop__tls_pump(t);
  if (keep_input(tls) < 0) aloop_transport_fail(t, -ENOMEM, "cannot keep TLS records");
}

void aloop__tls_ended(aloop_transport *t) {
  if (!t->tls->established) {
    handshake_failed(t, -ECONNRESET, "the peer closed the connection during the TLS handshake");
    return;
  }
  if (t->read_paused) t->eof_pending = true; /* resume_reading brings the rest, then the end */
  else aloop__tls_pump(t);
}

bool aloop__tls_has_input(const aloop_transport *t) {
  return t->tls->in_len || SSL_pending(t->tls->ssl) > 0;
}

bool aloop__tls_established(const aloop_transport *t) { return t->tls->established; }

size_t aloop__tls_pending(const aloop_transport *t) { return t->tls->pending_len; }

int aloop__tls_writev(aloop_transport *t, const struct iovec *iov, int iovcnt) {
  struct aloop__tls *tls = t->tls;
  if (tls->eof_wanted) return -EPIPE;
  for (int i = 0; i < iovcnt; i++) {
    if (!iov[i].iov_len) continue;
    if (tls->established) {
      int err = write_plain(t, iov[i].iov_base, iov[i].iov_len);
      if (err < 0) return 0; /* the error goes to connection_lost */
      continue;
    }
    unsigned char *p = realloc(tls->pending, tls->pending_len + iov[i].iov_len);
    if (!p) {
      aloop_transport_fail(t, -ENOMEM, "cannot keep bytes for the TLS handshake's end");
      return -ENOMEM;
    }
    memcpy(p + tls->pending_len, iov[i].iov_base, iov[i].iov_len);
    tls->pending = p;
    tls->pending_len += iov[i].iov_len;
  }
  aloop__transport_check_high(t);
  return 0;
}

int aloop__tls_write_eof(aloop_transport *t) {
  struct aloop__tls *tls = t->tls;
  if (tls->eof_wanted) return 0;
  tls->eof_wanted = true;
  if (!tls->established) return 0; /* after the handshake and the bytes waiting for it */
  send_close_notify(t);
  return aloop__transport_shutdown_write(t);
}

void aloop__tls_close(aloop_transport *t) {
  struct aloop__tls *tls = t->tls;
  send_close_notify(t);
  aloop_cancel(t->loop, tls->timer);
  tls->timer = (aloop_handle){0};
  if (!t->aborting && (t->wq || t->sending))
    aloop_call_later(t->loop, tls->ctx->shutdown_ns, shutdown_timeout, t, &tls->timer);
}

void aloop__tls_free(aloop_transport *t) {
  struct aloop__tls *tls = t->tls;
  char why[96];
  snprintf(why, sizeof why, "the connection ended during the TLS handshake: %s",
           t->lost_err ? aloop_strerror(t->lost_err) : "closed");
  tell(t, t->lost_err ? t->lost_err : -ECONNABORTED, why);
  aloop_cancel(t->loop, tls->timer);
  SSL_free(tls->ssl);
  aloop_tls_context_free(tls->ctx);
  free(tls->kept);
  free(tls->pending);
  free(tls);
  t->tls = NULL;
}

/* Give t a TLS layer; the handshake starts with aloop__tls_begin. */
int aloop__tls_attach(aloop_transport *t, aloop_tls_context *c, bool server,
                      const char *server_hostname, handshake_fn told, void *told_arg) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, make_bio_method);
  if (!bio_method) return -ENOMEM;
  if (server != c->server) return -EINVAL;
  struct aloop__tls *tls = calloc(1, sizeof *tls);
  SSL *ssl = tls ? SSL_new(c->ssl) : NULL;
  BIO *bio = ssl ? BIO_new(bio_method) : NULL;
  if (!bio) {
    SSL_free(ssl);
    free(tls);
    ERR_clear_error();
    return -ENOMEM;
  }
  BIO_set_data(bio, t);
  SSL_set_bio(ssl, bio, bio); /* one BIO both ways: SSL_free frees it once */
  int ok = 1;
  if (server) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    if (server_hostname && *server_hostname) {
      struct in6_addr ip;
      bool literal = inet_pton(AF_INET, server_hostname, &ip) == 1 ||
                     inet_pton(AF_INET6, server_hostname, &ip) == 1;
      if (literal) { /* an address is checked as one, and is no name to ask for */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_hostname);
      } else {
        ok = SSL_set_tlsext_host_name(ssl, server_hostname) && SSL_set1_host(ssl, server_hostname);
      }
    }
  }
  if (ok != 1) {
    SSL_free(ssl);
    free(tls);
    ERR_clear_error();
    return -EINVAL;
  }
  *tls = (struct aloop__tls){.ssl = ssl, .ctx = aloop__tls_context_ref(c), .told = told,
                             .told_arg = told_arg};
  t->tls = tls;
  return 0;
}

void aloop__tls_begin(aloop_transport *t) {
  struct aloop__tls *tls = t->tls;
  if (aloop_call_later(t->loop, tls->ctx->handshake_ns, handshake_timeout, t, &tls->timer) < 0) {
    handshake_failed(t, -ENOMEM, "cannot start the TLS handshake's timer");
    return;
  }
  handshake(t); /* a client's hello goes out now */
}

/* ---- upgrading and asking ---------------------------------------------------------------------- */

static void finish_future(aloop_transport *t, int err, const char *why, void *arg) {
  (void)t;
  aloop_future *f = arg;
  if (err) aloop_future_set_error(f, err, "%s", why);
  else aloop_future_set_result(f, 0);
  aloop_future_release(f);
}

aloop_future *aloop_start_tls(aloop_transport *t, aloop_tls_context *c, bool server_side,
                              const char *server_hostname) {
  int err = t->file || t->tls ? -EINVAL : t->closing ? -EPIPE : !t->made ? -ENOTCONN : 0;
  aloop_future *f = err ? NULL : aloop_future_new(t->loop, "start_tls");
  if (!err && !f) err = -ENOMEM;
  if (!err && (err = aloop__tls_attach(t, c, server_side, server_hostname, finish_future,
                                       aloop_future_ref(f))) < 0)
    aloop_future_release(f); /* the reference the layer would have held */
  if (err) {
    aloop_future_release(f);
    errno = -err;
    return NULL;
  }
  t->tls->upgrade = true;
  free(t->held); /* plain bytes not delivered: the peer sent them too early */
  t->held = NULL;
  t->held_len = 0;
  aloop__tls_begin(t);
  return f;
}

/* For a connecting task: the future is done when the handshake is, and a failure silences the
 * protocol, whose caller hears it from the connect's future instead. */
static void connect_told(aloop_transport *t, int err, const char *why, void *arg) {
  if (err) aloop__transport_silence(t);
  finish_future(t, err, why, arg);
}

aloop_future *aloop__tls_connect(aloop_transport *t, aloop_tls_context *c,
                                 const char *server_hostname) {
  aloop_future *f = aloop_future_new(t->loop, "TLS handshake");
  if (!f) return NULL;
  int err = aloop__tls_attach(t, c, false, server_hostname, connect_told, aloop_future_ref(f));
  if (err < 0) {
    aloop_future_set_error(f, err, "cannot start TLS: %s", aloop_strerror(err));
    aloop_future_release(f); /* the reference the layer would have held */
  }
  return f; /* the handshake starts when the transport is made */
}

const char *aloop_transport_tls_alpn(const aloop_transport *t) {
  static _Thread_local char name[256];
  const unsigned char *p;
  unsigned len;
  if (!t->tls) return NULL;
  SSL_get0_alpn_selected(t->tls->ssl, &p, &len);
  if (!len) return NULL;
  memcpy(name, p, len);
  name[len] = 0;
  return name;
}

const char *aloop_transport_tls_version(const aloop_transport *t) {
  return t->tls && t->tls->established ? SSL_get_version(t->tls->ssl) : NULL;
}

const char *aloop_transport_tls_server_name(const aloop_transport *t) {
  return t->tls ? SSL_get_servername(t->tls->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

void *aloop_transport_tls_ssl(const aloop_transport *t) { return t->tls ? t->tls->ssl : NULL; }
