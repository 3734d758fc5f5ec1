// Run inside a netns cluster's switch namespace (nsenter --net=...): listens on a unix socket and
// pipes every connection to HOST:PORT on the underlay. A unix socket is reached by its path from
// any network namespace, so the test process (in the host's namespace) talks to a node's TLS port
// through it byte for byte: the TLS handshake and everything after it are the client's own.
// Usage: underlay-forwarder.ts SOCKET_PATH HOST PORT; prints "listening" once it accepts, and
// exits when its standard input closes, so it never outlives the test process that started it.
import { connect, createServer, type Socket } from 'node:net';

const [socketPath, host, portText] = process.argv.slice(2);
const port = Number(portText);
if (!socketPath || !host || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: underlay-forwarder.ts SOCKET_PATH HOST PORT\n');
  process.exit(2);
}

function pipeBoth(client: Socket, upstream: Socket): void {
  client.pipe(upstream);
  upstream.pipe(client);
  // Either side closing or failing ends the pair; the error itself is the client's to see (a reset).
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
}

const server = createServer((client) => pipeBoth(client, connect(port, host)));
server.on('error', (err) => {
  process.stderr.write(`underlay forwarder: ${err.message}\n`);
  process.exit(1);
});
server.listen(socketPath, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
