#!/usr/bin/env node
// Reference peer for aloop's echo benchmark: a TCP echo server on Node's own event
// loop (libuv) written the way Node users write one: net.createServer and
// socket.on('data', d => socket.write(d)) with Nagle off. That is the common and
// fastest idiom; socket.pipe(socket) would add stream machinery to every chunk.
// The load client is ping-pong (it sends one message and waits for all of it to
// come back), so at most one message per connection is ever buffered and write()'s
// return value needs no handling.
//
// --tls-cert FILE --tls-key FILE serve TLS instead: tls.createServer with that certificate chain
// and key (PEM), the same data handler on each secure connection.
//
// Prints "echo-node: listening on HOST:PORT" once listening; on SIGINT/SIGTERM closes
// the server, destroys open sockets, prints "echo-node: stopped" and exits 0.
'use strict';

const fs = require('fs');
const net = require('net');
const tls = require('tls');

const USAGE = 'usage: echo_node.js [--host HOST] [--port PORT] [--tls-cert FILE --tls-key FILE]\n' +
  '  (defaults 127.0.0.1, 8888; port 0 = ephemeral; with both TLS files it serves TLS)';
const OPTIONS = ['--host', '--port', '--tls-cert', '--tls-key'];

function usageError(msg) {
  process.stderr.write(`echo_node.js: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8888 };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    }
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (!OPTIONS.includes(arg)) usageError(`unknown argument: ${argv[i]}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) usageError(`${arg} needs a value`);
      value = argv[++i];
    }
    if (arg === '--host') {
      if (value === '') usageError('empty host');
      opts.host = value;
    } else if (arg === '--tls-cert') {
      opts.cert = value;
    } else if (arg === '--tls-key') {
      opts.key = value;
    } else {
      if (!/^[0-9]+$/.test(value) || Number(value) > 65535) usageError(`invalid port: ${value}`);
      opts.port = Number(value);
    }
  }
  if (!opts.cert !== !opts.key) usageError('--tls-cert and --tls-key go together');
  return opts;
}

// The TLS options (certificate chain and key read once), or null for plain TCP.
function tlsOptions(opts) {
  if (!opts.cert) return null;
  try {
    return { cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key) };
  } catch (err) {
    process.stderr.write(`echo-node: cannot read ${err.path}: ${err.message}\n`);
    process.exit(1);
  }
}

const opts = parseArgs(process.argv.slice(2));
const sockets = new Set();

function echo(socket) {
  socket.setNoDelay(true);
  sockets.add(socket);
  socket.on('data', (d) => socket.write(d));
  socket.on('error', () => {}); // ECONNRESET and the like: the socket is destroyed, the server lives
  socket.on('close', () => sockets.delete(socket));
}

const secure = tlsOptions(opts);
const server = secure ? tls.createServer(secure, echo) : net.createServer(echo);
// A handshake that fails (a client gone mid-handshake) ends that connection only.
if (secure) server.on('tlsClientError', () => {});

server.on('error', (err) => {
  process.stderr.write(`echo-node: cannot listen on ${opts.host}:${opts.port}: ${err.message}\n`);
  process.exit(1);
});

server.listen({ host: opts.host, port: opts.port, backlog: 1024 }, () => {
  const a = server.address();
  const host = a.family === 'IPv6' || a.family === 6 ? `[${a.address}]` : a.address;
  process.stdout.write(`echo-node: listening on ${host}:${a.port}\n`);
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => {
    process.stdout.write('echo-node: stopped\n', () => process.exit(0));
  });
  for (const s of sockets) s.destroy();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
