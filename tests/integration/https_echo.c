/* aloop-https-echo as a user runs it, on each compiled driver, with Python's http.client and ssl
 * modules as the client (verifying the certificate the test makes, for the name localhost): two
 * requests on one keep-alive connection, a 256 KiB POST body that comes back whole, a head over
 * the limit (431), a malformed Content-Length (400), plain text to the TLS port (closed), and a
 * request after all of those still served; SIGTERM ends it with status 0. */
#include "../run_suite.h"
#include "programs.h"

#define SERVER "examples/aloop-https-echo"

static const char client[] =
    "import http.client, socket, ssl, sys\n"
    "port, ca = int(sys.argv[1]), sys.argv[2]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "def fail(step, what):\n"
    "    print(f'{step}: {what}', file=sys.stderr); sys.exit(step)\n"
    "c = http.client.HTTPSConnection('localhost', port, context=ctx, timeout=30)\n"
    "for path in ('/one', '/two'):\n"
    "    c.request('GET', path, headers={'X-Probe': path})\n"
    "    r = c.getresponse(); body = r.read()\n"
    "    if r.status != 200 or not body.startswith(f'GET {path} HTTP/1.1\\r\\n'.encode()):\n"
    "        fail(1, (r.status, body[:80]))\n"
    "    if f'X-Probe: {path}'.encode() not in body or r.getheader('Connection') != 'keep-alive':\n"
    "        fail(2, body[:200])\n"
    "data = bytes(i * 131 % 256 for i in range(256 * 1024))\n"
    "c.request('POST', '/up', body=data)\n"
    "r = c.getresponse(); body = r.read()\n"
    "if r.status != 200 or not body.endswith(b'\\r\\n\\r\\n' + data): fail(3, (r.status, len(body)))\n"
    "c.close()\n"
    "def raw(request, plain=False):\n"
    "    s = socket.create_connection(('127.0.0.1', port), timeout=30)\n"
    "    if not plain: s = ctx.wrap_socket(s, server_hostname='localhost')\n"
    "    s.sendall(request); got = b''\n"
    "    try:\n"
    "        while chunk := s.recv(65536): got += chunk\n"
    "    except (ConnectionResetError, ssl.SSLError): pass\n"
    "    s.close(); return got\n"
    "got = raw(b'GET / HTTP/1.1\\r\\nX-Big: ' + b'x' * 20000 + b'\\r\\n\\r\\n')\n"
    "if not got.startswith(b'HTTP/1.1 431 '): fail(4, got[:80])\n"
    "got = raw(b'POST / HTTP/1.1\\r\\nContent-Length: 12abc\\r\\n\\r\\n')\n"
    "if not got.startswith(b'HTTP/1.1 400 '): fail(5, got[:80])\n"
    "got = raw(b'GET / HTTP/1.0\\r\\n\\r\\n', plain=True)\n"
    "if got.startswith(b'HTTP'): fail(6, got[:80])\n"
    "c = http.client.HTTPSConnection('localhost', port, context=ctx, timeout=30)\n"
    "c.request('GET', '/after', headers={'Connection': 'close'})\n"
    "r = c.getresponse(); body = r.read()\n"
    "if r.status != 200 or not body.startswith(b'GET /after '): fail(7, body[:80])\n";

START_TEST(test_the_https_echo_answers_each_request_with_itself_on_every_driver) {
  char dir[64], cert[96], key[96], port[16];
  make_tls_files(dir);
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  const char *drivers[8];
  size_t n = usable_drivers(drivers, 8);
  ck_assert_uint_gt(n, 0);
  for (size_t i = 0; i < n; i++) {
    const char *argv[] = {SERVER, "--backend", drivers[i], "--port", "0",
                          "--tls-cert", cert, "--tls-key", key, NULL};
    struct program p = start_program(argv, true);
    snprintf(port, sizeof port, "%d", p.port);
    int rc = run_python(client, (const char *[]){port, cert, NULL});
    ck_assert_msg(rc == 0, "%s: the Python client failed at step %d (its stderr says why)",
                  drivers[i], rc);
    stop_program(&p);
  }
  remove_dir(dir);
}
END_TEST

int main(void) {
  Suite *suite = suite_create("https_echo");
  TCase *tc = tcase_create("https_echo");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_the_https_echo_answers_each_request_with_itself_on_every_driver);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
