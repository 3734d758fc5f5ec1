// The scraping half of `npm run bench:scrape`, run inside the node's network namespace (tsd's
// metrics port is on 127.0.0.1 there): HTTPS with a viewer's client certificate, as Prometheus
// scrapes. It reads one command per line on stdin and answers one JSON line on stdout:
//   "keep"  GET /metrics on the kept-alive connection (what Prometheus does between scrapes)
//   "fresh" GET /metrics on a new connection (TLS handshake included)
// The answer: {"ms": client-observed time from request to the body's last byte, "bytes",
// "status", "series": sample lines, "containerSeries": lines of the container_* families,
// "reused": whether the request went on a connection already open}.
// Usage: scrape-client.ts PEM_DIR URL
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

const [pemDir, url] = process.argv.slice(2);
if (pemDir === undefined || url === undefined) throw new Error('usage: scrape-client.ts PEM_DIR URL');
const tls = {
  ca: readFileSync(join(pemDir, 'ca.pem')),
  cert: readFileSync(join(pemDir, 'cert.pem')),
  key: readFileSync(join(pemDir, 'key.pem')),
};
const kept = new Agent({ ...tls, keepAlive: true, maxSockets: 1 });

interface Answer {
  ms: number;
  bytes: number;
  status: number;
  series: number;
  containerSeries: number;
  reused: boolean;
}

function scrape(fresh: boolean): Promise<Answer> {
  const agent = fresh ? new Agent({ ...tls, keepAlive: false }) : kept;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(url!, { agent, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const ms = performance.now() - started;
        const body = Buffer.concat(chunks).toString('utf8');
        const samples = body.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
        if (fresh) agent.destroy();
        resolve({
          ms,
          bytes: Buffer.byteLength(body),
          status: res.statusCode ?? 0,
          series: samples.length,
          containerSeries: samples.filter((line) => line.startsWith('container_')).length,
          reused: req.reusedSocket,
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.end();
  });
}

// One command at a time: the benchmark waits for each answer before it sends the next.
for await (const line of createInterface({ input: process.stdin })) {
  const command = line.trim();
  if (command === '') continue;
  try {
    if (command !== 'keep' && command !== 'fresh') throw new Error(`unknown command "${command}"`);
    process.stdout.write(`${JSON.stringify(await scrape(command === 'fresh'))}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
  }
}
kept.destroy();
