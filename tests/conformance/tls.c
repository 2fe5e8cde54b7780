/* TLS on transports and streams: 16 MiB each way through an echo with bounded write buffers,
 * half-close with close_notify, certificates that fail (wrong name, expired, unknown CA) in words,
 * plain text to a TLS port, a peer that leaves mid-handshake, the handshake timeout, STARTTLS,
 * ALPN and SNI, 1,000 handshakes at once, and a Python ssl server as the peer. The certificates are made by the test (OpenSSL's
 * library, P-256 keys) in a temporary directory: a CA, a server certificate for localhost and
 * 127.0.0.1 signed by it, one for other.test (SNI), an expired one, and a self-signed one. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "harness.h"

/* ---- certificates ------------------------------------------------------------------------------ */

static char dir[64];

static char *path_of(const char *name) {
  static char paths[8][128];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 128, "%s/%s", dir, name);
  return p;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  ck_assert_ptr_nonnull(ext);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, valid from `from` to `to` seconds from now, signed by
 * issuer/issuer_key (NULL: self-signed); a CA, or a server for the names in san. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long from,
                       long to, const char *san) {
  static long serial = 1;
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), from);
  X509_gmtime_adj(X509_getm_notAfter(x), to);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  if (san) {
    add_ext(x, issuer ? issuer : x, NID_subject_alt_name, san);
    add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:FALSE");
  } else {
    add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  ck_assert_int_gt(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()), 0);
  return x;
}

static void write_pem(const char *name, X509 *cert, EVP_PKEY *key) {
  FILE *f = fopen(path_of(name), "w");
  ck_assert_ptr_nonnull(f);
  if (cert) ck_assert_int_eq(PEM_write_X509(f, cert), 1);
  if (key) ck_assert_int_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
  fclose(f);
}

static void make_certificates(void) {
  strcpy(dir, "/tmp/aloop-tls-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  const long day = 24 * 3600;
  EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
  X509 *ca = make_cert(ca_key, "aloop test CA", NULL, NULL, -day, 30 * day, NULL);
  X509 *server = make_cert(key, "localhost", ca, ca_key, -day, 30 * day,
                           "DNS:localhost,IP:127.0.0.1");
  X509 *other = make_cert(key, "other.test", ca, ca_key, -day, 30 * day, "DNS:other.test");
  X509 *expired = make_cert(key, "localhost", ca, ca_key, -3 * day, -day,
                            "DNS:localhost,IP:127.0.0.1");
  X509 *self = make_cert(key, "localhost", NULL, NULL, -day, 30 * day, "DNS:localhost,IP:127.0.0.1");
  write_pem("ca.pem", ca, NULL);
  write_pem("key.pem", NULL, key);
  write_pem("server.pem", server, NULL);
  write_pem("other.pem", other, NULL);
  write_pem("expired.pem", expired, NULL);
  write_pem("self.pem", self, NULL);
  X509_free(ca), X509_free(server), X509_free(other), X509_free(expired), X509_free(self);
  EVP_PKEY_free(ca_key), EVP_PKEY_free(key);
}

static void remove_certificates(void) {
  const char *names[] = {"ca.pem", "key.pem", "server.pem", "other.pem", "expired.pem", "self.pem"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(path_of(names[i]));
  rmdir(dir);
}

static aloop_tls_context *server_ctx(const char *cert) {
  char why[256];
  aloop_tls_context *c = aloop_tls_server_context(path_of(cert), path_of("key.pem"), why, sizeof why);
  ck_assert_msg(c != NULL, "server context: %s", why);
  return c;
}

static aloop_tls_context *client_ctx(const char *ca) {
  char why[256];
  aloop_tls_context *c = aloop_tls_client_context(path_of(ca), why, sizeof why);
  ck_assert_msg(c != NULL, "client context: %s", why);
  return c;
}

/* ---- servers and clients ------------------------------------------------------------------------- */

static int64_t run(aloop_future *f) {
  int64_t outcome = aloop_run_until_complete(L, f);
  aloop_future_release(f);
  return outcome;
}

static aloop_server *start(aloop_stream_fn fn, void *arg, aloop_tls_context *tls) {
  aloop_server_options opts = {.size = sizeof opts, .tls = tls};
  aloop_future *f = aloop_start_server(L, fn, arg, "127.0.0.1", 0, &opts);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_server *s = aloop_future_data(f);
  aloop_future_release(f);
  return s;
}

static void stop_server(aloop_server *s) {
  aloop_server_close(s);
  ck_assert_int_eq(run_within(aloop_server_wait_closed(s), 60 * SEC), 0);
  aloop_server_free(s);
}

/* open_connection_with TLS: the stream, or NULL with the future's outcome and words. */
static aloop_stream *connect_tls(aloop_server *server, aloop_tls_context *tls, const char *name,
                                 int64_t *outcome, char *why, size_t n) {
  aloop_connect_options o = {.size = sizeof o, .tls = tls, .server_hostname = name};
  aloop_future *f = aloop_open_connection_with(L, "127.0.0.1", aloop_server_port(server), &o);
  ck_assert_ptr_nonnull(f);
  *outcome = aloop_run_until_complete(L, f);
  if (why) snprintf(why, n, "%s", aloop_future_message(f));
  aloop_stream *s = *outcome == 0 ? aloop_future_data(f) : NULL;
  aloop_future_release(f);
  return s;
}

static void close_stream(aloop_stream *s) { ck_assert_int_ge(run(aloop_stream_close(s)), -ECONNRESET); }

static int64_t echo(aloop_stream *s, void *arg) {
  (void)arg;
  char buf[16 * 1024]; /* each connection's own: a read completes into it while the task waits */
  int64_t n;
  while ((n = aloop_await(aloop_stream_read(s, buf, sizeof buf))) > 0) {
    aloop_stream_write(s, buf, (size_t)n);
    if ((n = aloop_await(aloop_stream_drain(s))) < 0) break;
  }
  return n;
}

/* ---- 16 MiB each way ---------------------------------------------------------------------------- */

enum { BULK = 16 * 1024 * 1024, PIECE = 48 * 1024 };

struct bulk {
  aloop_stream *s;
  size_t max_buffered; /* the client's write buffer at its largest */
  uint64_t sum_out, sum_in;
};

static unsigned char byte_at(size_t i) { return (unsigned char)(i * 7 + i / 4099); }

static int64_t send_bulk(void *arg) {
  struct bulk *b = arg;
  static unsigned char piece[PIECE];
  for (size_t off = 0; off < BULK; off += PIECE) {
    size_t k = BULK - off < PIECE ? BULK - off : PIECE;
    for (size_t i = 0; i < k; i++) piece[i] = byte_at(off + i);
    ck_assert_int_eq(aloop_stream_write(b->s, piece, k), 0);
    size_t buffered = aloop_transport_get_write_buffer_size(aloop_stream_transport(b->s));
    if (buffered > b->max_buffered) b->max_buffered = buffered;
    int64_t err = aloop_await(aloop_stream_drain(b->s));
    if (err < 0) return err;
  }
  return aloop_stream_write_eof(b->s);
}

static int64_t receive_bulk(void *arg) {
  struct bulk *b = arg;
  static unsigned char buf[64 * 1024];
  size_t got = 0;
  int64_t n;
  while ((n = aloop_await(aloop_stream_read(b->s, buf, sizeof buf))) > 0) {
    for (int64_t i = 0; i < n; i++)
      if (buf[i] != byte_at(got + (size_t)i)) return aloop_task_error(-EILSEQ, "byte %zu differs", got + (size_t)i);
    got += (size_t)n;
  }
  return n < 0 ? n : (int64_t)got;
}

START_TEST(test_16_mib_each_way_through_a_tls_echo_with_bounded_write_buffers) {
  aloop_tls_context *sc = server_ctx("server.pem"), *cc = client_ctx("ca.pem");
  aloop_server *server = start(echo, NULL, sc);
  aloop_tls_context_free(sc); /* the server holds its own reference */
  int64_t outcome;
  char why[256];
  struct bulk b = {.s = connect_tls(server, cc, "localhost", &outcome, why, sizeof why)};
  ck_assert_msg(b.s != NULL, "connect: %s", why);
  ck_assert_str_eq(aloop_transport_tls_version(aloop_stream_transport(b.s)), "TLSv1.3");
  aloop_future *tx = aloop_task_spawn(L, send_bulk, &b, NULL);
  aloop_future *rx = aloop_task_spawn(L, receive_bulk, &b, NULL);
  ck_assert_int_eq(run_within(tx, 100 * SEC), 0);
  ck_assert_int_eq(run_within(rx, 100 * SEC), BULK); /* then close_notify: the end of stream */
  /* High mark (64 KiB) plus the piece that crossed it, in records. */
  ck_assert_msg(b.max_buffered <= 64 * 1024 + PIECE + 4096, "write buffer reached %zu bytes",
                b.max_buffered);
  close_stream(b.s);
  stop_server(server);
  aloop_tls_context_free(cc);
}
END_TEST

/* ---- half-close ----------------------------------------------------------------------------------- */

static int64_t count_then_answer(aloop_stream *s, void *arg) {
  (void)arg;
  char buf[4096], line[64];
  int64_t n, total = 0;
  while ((n = aloop_await(aloop_stream_read(s, buf, sizeof buf))) > 0) total += n;
  if (n < 0) return n;
  int k = snprintf(line, sizeof line, "got %lld\n", (long long)total);
  aloop_stream_write(s, line, (size_t)k); /* after the peer's close_notify: our side still writes */
  return aloop_await(aloop_stream_drain(s));
}

START_TEST(test_half_close_sends_close_notify_and_the_answer_still_comes_back) {
  aloop_tls_context *sc = server_ctx("server.pem"), *cc = client_ctx("ca.pem");
  aloop_server *server = start(count_then_answer, NULL, sc);
  int64_t outcome;
  char why[256], line[64];
  aloop_stream *s = connect_tls(server, cc, NULL, &outcome, why, sizeof why);
  ck_assert_msg(s != NULL, "connect: %s", why);
  static char data[100 * 1024];
  ck_assert_int_eq(aloop_stream_write(s, data, sizeof data), 0);
  ck_assert_int_eq(aloop_stream_write_eof(s), 0);
  ck_assert_int_eq(aloop_stream_write(s, "x", 1), -EPIPE);
  int64_t n = run_within(aloop_stream_readline(s, line, sizeof line), 60 * SEC);
  ck_assert_int_gt(n, 0);
  ck_assert_str_eq(line, "got 102400\n");
  ck_assert_int_eq(run_within(aloop_stream_read(s, line, sizeof line), 60 * SEC), 0);
  close_stream(s);
  stop_server(server);
  aloop_tls_context_free(sc), aloop_tls_context_free(cc);
}
END_TEST

/* ---- certificates that fail ----------------------------------------------------------------------- */

static void expect_refused(const char *cert, const char *ca, const char *name, const char *words) {
  aloop_tls_context *sc = server_ctx(cert), *cc = client_ctx(ca);
  aloop_server *server = start(echo, NULL, sc);
  int64_t outcome;
  char why[256];
  aloop_stream *s = connect_tls(server, cc, name, &outcome, why, sizeof why);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(outcome, -ALOOP_ETLS);
  ck_assert_msg(strstr(why, words) != NULL, "the error says '%s', not '%s'", why, words);
  /* The server hears the client's alert: one report, and it goes on serving. */
  ck_assert_int_eq(run_at_most(L, 200 * MS), 0);
  reports_expected = reports.count;
  ck_assert_int_ge(reports.count, 1);
  ck_assert_str_eq(reports.source, "tls");
  aloop_tls_context *good = server_ctx("server.pem");
  aloop_server *other = start(echo, NULL, good);
  s = connect_tls(other, cc, "localhost", &outcome, why, sizeof why);
  ck_assert_msg(s != NULL, "a good certificate after a bad one: %s", why);
  close_stream(s);
  stop_server(other);
  stop_server(server);
  aloop_tls_context_free(sc), aloop_tls_context_free(cc), aloop_tls_context_free(good);
}

START_TEST(test_a_wrong_hostname_fails_the_handshake_in_words) {
  expect_refused("server.pem", "ca.pem", "wrong.example", "hostname mismatch");
}
END_TEST

START_TEST(test_an_expired_certificate_fails_the_handshake_in_words) {
  expect_refused("expired.pem", "ca.pem", "localhost", "certificate has expired");
}
END_TEST

START_TEST(test_an_unknown_ca_fails_the_handshake_in_words) {
  expect_refused("self.pem", "ca.pem", "localhost", "certificate verify failed");
}
END_TEST

/* ---- hostile peers ------------------------------------------------------------------------------- */

/* A plain TCP connection to the server: its fd (blocking, with a 30 s receive timeout). */
static int raw_connect(aloop_server *server) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)aloop_server_port(server)),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval patience = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Runs the loop until fd sees its end (or 30 s): what it read. */
static ssize_t read_to_end(int fd, char *buf, size_t n) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  size_t got = 0;
  for (int i = 0; i < 3000; i++) {
    ssize_t k = read(fd, buf + got, n - got);
    if (k == 0 || (k < 0 && errno != EAGAIN)) return (ssize_t)got;
    if (k > 0) got += (size_t)k;
    run_at_most(L, 10 * MS);
  }
  return -1;
}

START_TEST(test_plain_text_to_a_tls_port_is_closed_with_one_report_and_serving_goes_on) {
  aloop_tls_context *sc = server_ctx("server.pem"), *cc = client_ctx("ca.pem");
  aloop_server *server = start(echo, NULL, sc);
  int fd = raw_connect(server);
  const char *request = "GET / HTTP/1.0\r\n\r\n";
  ck_assert_int_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
  char buf[256];
  ck_assert_int_ge(read_to_end(fd, buf, sizeof buf), 0); /* an alert, then the end */
  close(fd);
  ck_assert_int_eq(reports.count, 1);
  ck_assert_str_eq(reports.source, "tls");
  ck_assert_msg(strstr(reports.message, "TLS handshake failed"), "%s", reports.message);
  reports_expected = 1;
  int64_t outcome;
  aloop_stream *s = connect_tls(server, cc, NULL, &outcome, buf, sizeof buf);
  ck_assert_msg(s != NULL, "after plain text: %s", buf);
  close_stream(s);
  stop_server(server);
  aloop_tls_context_free(sc), aloop_tls_context_free(cc);
}
END_TEST

START_TEST(test_a_peer_that_leaves_mid_handshake_costs_nothing) {
  aloop_tls_context *sc = server_ctx("server.pem"), *cc = client_ctx("ca.pem");
  aloop_server *server = start(echo, NULL, sc);
  for (int i = 0; i < 20; i++) {
    int fd = raw_connect(server);
    /* The start of a ClientHello record, then gone. */
    const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
    ck_assert_int_eq(write(fd, hello, sizeof hello), (ssize_t)sizeof hello);
    if (i % 2) { /* half of them with a reset */
      struct linger lg = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
  }
  for (int i = 0; i < 100 && aloop_server_connections(server); i++) run_at_most(L, 20 * MS);
  ck_assert_int_eq(aloop_server_connections(server), 0);
  ck_assert_int_eq(reports.count, 0); /* a peer that leaves is its connection's own news */
  int64_t outcome;
  char why[256];
  aloop_stream *s = connect_tls(server, cc, NULL, &outcome, why, sizeof why);
  ck_assert_msg(s != NULL, "%s", why);
  close_stream(s);
  stop_server(server);
  aloop_tls_context_free(sc), aloop_tls_context_free(cc);
}
END_TEST

START_TEST(test_a_handshake_that_never_comes_times_out) {
  aloop_tls_context *sc = server_ctx("server.pem");
  aloop_tls_context_set_timeouts(sc, 300 * MS, 0);
  aloop_server *server = start(echo, NULL, sc);
  int64_t began = aloop_time(L);
  int fd = raw_connect(server); /* says nothing */
  char buf[64];
  ck_assert_int_eq(read_to_end(fd, buf, sizeof buf), 0);
  ck_assert_int_ge(aloop_time(L) - began, 300 * MS); /* never early */
  close(fd);
  ck_assert_int_eq(reports.count, 1);
  ck_assert_msg(strstr(reports.message, "took longer than"), "%s", reports.message);
  reports_expected = 1;
  stop_server(server);
  aloop_tls_context_free(sc);
}
END_TEST

/* ---- STARTTLS --------------------------------------------------------------------------------------- */

static aloop_tls_context *starttls_server_ctx;

static int64_t starttls_server(aloop_stream *s, void *arg) {
  (void)arg;
  char line[64];
  int64_t n = aloop_await(aloop_stream_readline(s, line, sizeof line));
  if (n <= 0 || strcmp(line, "STARTTLS\n")) return aloop_task_error(-EPROTO, "no STARTTLS");
  aloop_stream_write(s, "OK\n", 3);
  aloop_future *up = aloop_start_tls(aloop_stream_transport(s), starttls_server_ctx, true, NULL);
  if (!up) return -errno;
  if ((n = aloop_await(up)) < 0) return n;
  while ((n = aloop_await(aloop_stream_readline(s, line, sizeof line))) > 0) {
    aloop_stream_write(s, line, (size_t)n);
    if ((n = aloop_await(aloop_stream_drain(s))) < 0) break;
  }
  return n;
}

START_TEST(test_starttls_upgrades_an_open_connection) {
  starttls_server_ctx = server_ctx("server.pem");
  aloop_tls_context *cc = client_ctx("ca.pem");
  aloop_server *server = start(starttls_server, NULL, NULL);
  aloop_future *f = aloop_open_connection(L, "127.0.0.1", aloop_server_port(server), 0);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_stream *s = aloop_future_data(f);
  aloop_future_release(f);
  char line[64];
  aloop_stream_write(s, "STARTTLS\n", 9);
  ck_assert_int_eq(run_within(aloop_stream_readline(s, line, sizeof line), 30 * SEC), 3);
  ck_assert_ptr_null(aloop_transport_tls_version(aloop_stream_transport(s)));
  aloop_future *up = aloop_start_tls(aloop_stream_transport(s), cc, false, "localhost");
  ck_assert_ptr_nonnull(up);
  ck_assert_int_eq(run_within(up, 30 * SEC), 0);
  ck_assert_ptr_nonnull(aloop_transport_tls_version(aloop_stream_transport(s)));
  ck_assert_ptr_null(aloop_start_tls(aloop_stream_transport(s), cc, false, "localhost"));
  ck_assert_int_eq(errno, EINVAL); /* already TLS */
  aloop_stream_write(s, "secret\n", 7);
  ck_assert_int_eq(run_within(aloop_stream_readline(s, line, sizeof line), 30 * SEC), 7);
  ck_assert_str_eq(line, "secret\n");
  close_stream(s);
  stop_server(server);
  aloop_tls_context_free(starttls_server_ctx), aloop_tls_context_free(cc);
}
END_TEST

/* ---- ALPN and SNI ------------------------------------------------------------------------------------ */

static aloop_tls_context *other_ctx;
static char sni_asked[64];

static aloop_tls_context *choose(const char *name, void *arg) {
  (void)arg;
  snprintf(sni_asked, sizeof sni_asked, "%s", name);
  return strcmp(name, "other.test") ? NULL : other_ctx;
}

static char server_alpn[32];

static int64_t note_alpn(aloop_stream *s, void *arg) {
  const char *p = aloop_transport_tls_alpn(aloop_stream_transport(s));
  snprintf(server_alpn, sizeof server_alpn, "%s", p ? p : "(none)");
  return echo(s, arg);
}

START_TEST(test_alpn_picks_a_common_protocol_and_sni_chooses_the_certificate) {
  aloop_tls_context *sc = server_ctx("server.pem"), *cc = client_ctx("ca.pem");
  other_ctx = server_ctx("other.pem");
  const char *server_protocols[] = {"h2", "http/1.1"}, *client_protocols[] = {"http/1.1", "x"};
  ck_assert_int_eq(aloop_tls_context_set_alpn(sc, server_protocols, 2), 0);
  ck_assert_int_eq(aloop_tls_context_set_alpn(other_ctx, server_protocols, 2), 0);
  ck_assert_int_eq(aloop_tls_context_set_alpn(cc, client_protocols, 2), 0);
  ck_assert_int_eq(aloop_tls_context_set_alpn(cc, NULL, 0), -EINVAL);
  aloop_tls_context_set_sni(sc, choose, NULL);
  aloop_server *server = start(note_alpn, NULL, sc);
  int64_t outcome;
  char why[256];
  /* other.test is only on the certificate SNI chooses: the check passes only if it was chosen. */
  aloop_stream *s = connect_tls(server, cc, "other.test", &outcome, why, sizeof why);
  ck_assert_msg(s != NULL, "%s", why);
  ck_assert_str_eq(sni_asked, "other.test");
  ck_assert_str_eq(aloop_transport_tls_alpn(aloop_stream_transport(s)), "http/1.1");
  char line[8];
  aloop_stream_write(s, "ping\n", 5);
  ck_assert_int_eq(run_within(aloop_stream_readline(s, line, sizeof line), 30 * SEC), 5);
  ck_assert_str_eq(server_alpn, "http/1.1");
  close_stream(s);
  stop_server(server);
  aloop_tls_context_free(sc), aloop_tls_context_free(cc), aloop_tls_context_free(other_ctx);
}
END_TEST

/* ---- a thousand handshakes at once ---------------------------------------------------------------- */

enum { HANDSHAKES = 1000 };

/* The child's side: HANDSHAKES non-blocking OpenSSL clients driven together with poll(), each
 * sending one line and reading its echo. Exit 0 when all did. */
static int many_clients(int port, const char *ca) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) return 1;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  static SSL *ssl[HANDSHAKES];
  static struct pollfd pfd[HANDSHAKES];
  static int state[HANDSHAKES]; /* 0 handshake, 1 write, 2 read, 3 done */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < HANDSHAKES; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return 2;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    ssl[i] = SSL_new(ctx);
    SSL_set_fd(ssl[i], fd);
    SSL_set1_host(ssl[i], "localhost");
    SSL_set_connect_state(ssl[i]);
    pfd[i] = (struct pollfd){.fd = fd, .events = POLLOUT};
  }
  int done = 0;
  for (int rounds = 0; done < HANDSHAKES && rounds < 100000; rounds++) {
    if (poll(pfd, HANDSHAKES, 30000) <= 0) return 3;
    for (int i = 0; i < HANDSHAKES; i++) {
      if (!pfd[i].revents || state[i] == 3) continue;
      int r, e;
      char buf[16];
      if (state[i] == 0) r = SSL_do_handshake(ssl[i]);
      else if (state[i] == 1) r = SSL_write(ssl[i], "hi\n", 3);
      else r = SSL_read(ssl[i], buf, sizeof buf);
      if (r > 0) {
        if (++state[i] == 3) done++, pfd[i].events = 0;
        else pfd[i].events = state[i] == 1 ? POLLOUT : POLLIN;
        continue;
      }
      e = SSL_get_error(ssl[i], r);
      if (e == SSL_ERROR_WANT_READ) pfd[i].events = POLLIN;
      else if (e == SSL_ERROR_WANT_WRITE) pfd[i].events = POLLOUT;
      else return 4;
    }
  }
  return done == HANDSHAKES ? 0 : 5;
}

START_TEST(test_a_thousand_handshakes_at_once) {
  aloop_tls_context *sc = server_ctx("server.pem");
  aloop_server *server = start(echo, NULL, sc);
  int port = aloop_server_port(server);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) _exit(many_clients(port, path_of("ca.pem")));
  run_until_child_exits(L, pid, 100 * SEC);
  stop_server(server);
  aloop_tls_context_free(sc);
}
END_TEST

/* ---- sendfile over TLS: the copy through the layer ------------------------------------------------- */

enum { FILE_SIZE = 3 * 1024 * 1024 + 17 };
static int file_fd = -1;

static int64_t send_the_file(aloop_stream *s, void *arg) {
  (void)arg;
  int64_t n = aloop_await(aloop_transport_sendfile(aloop_stream_transport(s), file_fd, 0, 0));
  return n == FILE_SIZE ? 0 : aloop_task_error(n < 0 ? n : -EIO, "sent %lld", (long long)n);
}

START_TEST(test_sendfile_over_tls_goes_through_the_layer) {
  char path[] = "/tmp/aloop-tls-file-XXXXXX";
  file_fd = mkstemp(path);
  ck_assert_int_ge(file_fd, 0);
  unlink(path);
  static unsigned char data[FILE_SIZE];
  for (size_t i = 0; i < FILE_SIZE; i++) data[i] = byte_at(i);
  ck_assert_int_eq(write(file_fd, data, FILE_SIZE), FILE_SIZE);
  aloop_tls_context *sc = server_ctx("server.pem"), *cc = client_ctx("ca.pem");
  aloop_server *server = start(send_the_file, NULL, sc);
  int64_t outcome;
  char why[256];
  struct bulk b = {.s = connect_tls(server, cc, "localhost", &outcome, why, sizeof why)};
  ck_assert_msg(b.s != NULL, "connect: %s", why);
  ck_assert_int_eq(run_within(aloop_task_spawn(L, receive_bulk, &b, NULL), 60 * SEC), FILE_SIZE);
  close_stream(b.s);
  stop_server(server);
  close(file_fd);
  aloop_tls_context_free(sc), aloop_tls_context_free(cc);
}
END_TEST

/* ---- Python's ssl module as the server -------------------------------------------------------------- */

/* A TLS echo server in Python (an independent implementation's handshake and records): it
 * prints its port, serves one connection, and exits 0 if the peer closed with close_notify. */
static const char python_server[] =
    "import socket, ssl, sys\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
    "ls = socket.create_server(('127.0.0.1', 0))\n"
    "print(ls.getsockname()[1], flush=True)\n"
    "ls.settimeout(60)\n"
    "conn, _ = ls.accept()\n"
    "conn.settimeout(60)\n"
    "s = ctx.wrap_socket(conn, server_side=True)\n"
    "while True:\n"
    "    data = s.recv(65536)\n"
    "    if not data:\n"
    "        break\n"
    "    s.sendall(data)\n"
    "s.unwrap()\n"
    "sys.exit(0)\n";

struct collect {
  size_t got;
  bool eof;
  aloop_future *done;
};

static void collect_data(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)t, (void)data;
  struct collect *c = ctx;
  c->got += n;
  if (c->got == 1 << 20) aloop_transport_close(t); /* close_notify, then the socket */
}

static void collect_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  aloop_future_set_result(((struct collect *)ctx)->done, err);
}

START_TEST(test_a_python_ssl_server_echoes_a_mebibyte_to_our_client) {
  int out[2];
  ck_assert_int_eq(pipe(out), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    execlp("python3", "python3", "-c", python_server, path_of("server.pem"), path_of("key.pem"),
           (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  FILE *f = fdopen(out[0], "r");
  int port = 0;
  ck_assert_int_eq(fscanf(f, "%d", &port), 1);
  fclose(f);
  static const aloop_protocol proto = {.data_received = collect_data, .connection_lost = collect_lost};
  struct collect c = {.done = aloop_future_new(L, "lost")};
  aloop_tls_context *cc = client_ctx("ca.pem");
  aloop_connect_options o = {.size = sizeof o, .tls = cc};
  aloop_future *conn = aloop_create_connection_with(L, &proto, &c, "127.0.0.1", port, &o);
  ck_assert_int_eq(aloop_run_until_complete(L, conn), 0);
  aloop_transport *t = aloop_future_data(conn);
  aloop_future_release(conn);
  static unsigned char data[1 << 20];
  ck_assert_int_eq(aloop_transport_write(t, data, sizeof data), 0);
  ck_assert_int_eq(run_within(aloop_future_ref(c.done), 60 * SEC), 0);
  aloop_future_release(c.done);
  ck_assert_int_eq(c.got, sizeof data);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the Python server: status %d", status);
  aloop_tls_context_free(cc);
}
END_TEST

/* ---- contexts -------------------------------------------------------------------------------------- */

START_TEST(test_a_context_that_cannot_load_says_why) {
  char why[256];
  ck_assert_ptr_null(aloop_tls_server_context("/nonexistent.pem", path_of("key.pem"), why, sizeof why));
  ck_assert_msg(strstr(why, "/nonexistent.pem"), "%s", why);
  ck_assert_ptr_null(aloop_tls_server_context(path_of("server.pem"), path_of("ca.pem"), why, sizeof why));
  ck_assert_msg(strstr(why, "private key"), "%s", why);
  ck_assert_ptr_null(aloop_tls_client_context("/nonexistent-ca.pem", why, sizeof why));
  ck_assert_msg(strstr(why, "/nonexistent-ca.pem"), "%s", why);
}
END_TEST

TCase *conformance_tls(void) {
  TCase *tc = conformance_tcase("tls");
  tcase_add_unchecked_fixture(tc, make_certificates, remove_certificates);
  tcase_add_test(tc, test_16_mib_each_way_through_a_tls_echo_with_bounded_write_buffers);
  tcase_add_test(tc, test_half_close_sends_close_notify_and_the_answer_still_comes_back);
  tcase_add_test(tc, test_a_wrong_hostname_fails_the_handshake_in_words);
  tcase_add_test(tc, test_an_expired_certificate_fails_the_handshake_in_words);
  tcase_add_test(tc, test_an_unknown_ca_fails_the_handshake_in_words);
  tcase_add_test(tc, test_plain_text_to_a_tls_port_is_closed_with_one_report_and_serving_goes_on);
  tcase_add_test(tc, test_a_peer_that_leaves_mid_handshake_costs_nothing);
  tcase_add_test(tc, test_a_handshake_that_never_comes_times_out);
  tcase_add_test(tc, test_starttls_upgrades_an_open_connection);
  tcase_add_test(tc, test_alpn_picks_a_common_protocol_and_sni_chooses_the_certificate);
  tcase_add_test(tc, test_a_thousand_handshakes_at_once);
  tcase_add_test(tc, test_a_context_that_cannot_load_says_why);
  tcase_add_test(tc, test_a_python_ssl_server_echoes_a_mebibyte_to_our_client);
  tcase_add_test(tc, test_sendfile_over_tls_goes_through_the_layer);
  return tc;
}
