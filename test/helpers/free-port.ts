// A loopback port for a server a test is about to start in another process. Chosen below the
// kernel's ephemeral range (32768–60999 by default), because a port the kernel hands out for
// listen(0) and that is then released can be taken by any outgoing connection before the server
// binds it (a benchmark that opens thousands of connections hit that: "member exited during start").
import { createServer } from 'node:net';

const LOW = 20_000;
const HIGH = 32_000;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free loopback port found in ${LOW}–${HIGH}`);
}
