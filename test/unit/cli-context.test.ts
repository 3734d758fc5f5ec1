// The tsctl context file with client certificates (issue 14): what is read back is what was
// written, every field is checked with errors naming the file and the field, and the address
// decides the transport: a unix socket is plaintext, host:port takes the context's certificate.
import test, { type ExecutionContext } from 'ava';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { candidateServers, noClientCertificateMessage, securityFor } from '../../cli/connection.js';
import { chooseServer, DEFAULT_SERVER, readContext, writeContext, type CliContext, type ContextTls } from '../../cli/context.js';
import { MAX_CONTEXT_PEM_BYTES, MAX_CONTEXT_SERVERS } from '../../cli/context-schema.js';
import { testPki } from '../helpers/test-pki.js';

async function scratch(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-cli-context-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs fn with environment variables set (or removed, for undefined), restoring them after. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T> | T): Promise<T> {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  try {
    return await fn();
  } finally {
    apply(before);
  }
}

/** Real certificates: a viewer's, from a test CA. */
async function userTls(): Promise<ContextTls> {
  const pki = await testPki();
  const { material } = (await pki.user('vera', 'viewer')).identity;
  return {
    clusterId: pki.clusterId,
    trustedRootPems: [...material.trustedRootPems],
    certChainPem: material.certChainPem,
    keyPem: material.keyPem,
    user: 'vera',
  };
}

async function contextError(t: ExecutionContext, path: string, content: unknown): Promise<string> {
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return ((await t.throwsAsync(readContext(path))) as Error).message;
}

test.serial('a context with certificates is written 0600 and read back as written; a wider file is narrowed', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'context.json');
  const context: CliContext = { server: '10.0.0.1:7420', servers: ['10.0.0.1:7420', '10.0.0.2:7420'], tls: await userTls() };
  await writeFile(path, '{"server":"unix:/old.sock"}\n', { mode: 0o644 });
  await chmod(path, 0o644);
  await withEnv({ TESSERA_CONTEXT: path }, () => writeContext(context));
  t.is((await stat(path)).mode & 0o777, 0o600);
  t.deepEqual(await readContext(path), context);
});

test('an older context ({server, local}) still reads; servers alone make the first the server', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'context.json');
  await writeFile(path, JSON.stringify({ server: 'unix:/var/lib/tessera/tsd.sock', local: { pid: 42, config: {} } }));
  t.deepEqual(await readContext(path), { server: 'unix:/var/lib/tessera/tsd.sock', local: { pid: 42, config: {} } } as unknown as CliContext);
  await writeFile(path, JSON.stringify({ servers: ['m1:7420', 'm2:7420'] }));
  t.deepEqual(await readContext(path), { server: 'm1:7420', servers: ['m1:7420', 'm2:7420'] });
});

test('every field is checked, and the error names the file and the field', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'context.json');
  const tls = await userTls();
  const cases: Array<[unknown, string]> = [
    ['not json', 'not a valid tsctl context'],
    [[], 'must hold a JSON object'],
    [{ server: 7420 }, '"server" must be a non-empty string'],
    [{ server: 'm:1', servers: [] }, '"servers" must be a non-empty list'],
    [
      { server: 'm:1', servers: Array.from({ length: MAX_CONTEXT_SERVERS + 1 }, (_, i) => `m${i}:1`) },
      `lists ${MAX_CONTEXT_SERVERS + 1} entries, at most ${MAX_CONTEXT_SERVERS}`,
    ],
    [{ server: 'm:1', servers: ['m:1', 5] }, '"servers[1]" must be a non-empty string'],
    [{ server: 'm:1', tls: 'yes' }, '"tls" must be an object'],
    [{ server: 'm:1', tls: { ...tls, clusterId: undefined } }, '"tls.clusterId" must be a non-empty string'],
    [{ server: 'm:1', tls: { ...tls, trustedRootPems: [tls.trustedRootPems[0], 'junk'] } }, '"tls.trustedRootPems[1]" holds no PEM CERTIFICATE'],
    [{ server: 'm:1', tls: { ...tls, keyPem: tls.certChainPem } }, '"tls.keyPem" holds no PEM PRIVATE KEY'],
    [{ server: 'm:1', tls: { ...tls, certChainPem: tls.certChainPem + 'x'.repeat(MAX_CONTEXT_PEM_BYTES) } }, '"tls.certChainPem" is'],
    // Under the character limit, over the byte limit: each "é" is two bytes of UTF-8.
    [
      { server: 'm:1', tls: { ...tls, keyPem: tls.keyPem + 'é'.repeat(MAX_CONTEXT_PEM_BYTES / 2) } },
      `"tls.keyPem" is more than ${MAX_CONTEXT_PEM_BYTES} bytes`,
    ],
    [{ server: 'm:1', local: 3 }, '"local" must be an object'],
  ];
  for (const [content, expected] of cases) {
    const message = await contextError(t, path, content);
    t.true(message.startsWith(`${path}: not a valid tsctl context`), message);
    t.true(message.includes(expected), `${message}\n  expected to include: ${expected}`);
  }
});

test('a unix socket is plaintext; host:port takes mutual TLS expecting a manager of the context’s cluster', async (t) => {
  const tls = await userTls();
  t.deepEqual(securityFor('unix:/var/lib/tessera/tsd.sock', tls), { mode: 'insecure' });
  t.deepEqual(securityFor('unix:/run/x.sock', undefined), { mode: 'insecure' });
  const security = securityFor('10.0.0.1:7420', tls);
  if (security.mode !== 'mtls') return t.fail('expected mutual TLS');
  t.deepEqual(security.expected, { kind: 'cluster-node', clusterId: tls.clusterId, role: 'manager' });
  t.is(security.identity.material.keyPem, tls.keyPem);
  t.deepEqual(security.identity.material.trustedRootPems, tls.trustedRootPems);
});

test('host:port without a client certificate is refused with what to do instead', (t) => {
  for (const address of ['10.0.0.1:7420', '127.0.0.1:7420']) {
    const err = t.throws(() => securityFor(address, undefined));
    t.is(err.message, noClientCertificateMessage(address));
    t.is(
      err.message,
      `${address} takes mutual TLS: this context has no client certificate; on a manager use its root socket (unix:/var/lib/tessera/tsd.sock), elsewhere ask an admin for one (tsctl cluster user add NAME --role viewer)`,
    );
  }
});

test.serial('--server beats $TESSERA_SERVER beats the context beats the root socket; the context’s servers follow its own', async (t) => {
  const context: CliContext = { server: 'm2:7420', servers: ['m1:7420', 'm2:7420', 'm3:7420'] };
  await withEnv({ TESSERA_SERVER: undefined }, () => {
    t.is(chooseServer(undefined, undefined), DEFAULT_SERVER);
    t.is(DEFAULT_SERVER, 'unix:/var/lib/tessera/tsd.sock');
    t.is(chooseServer(undefined, context), 'm2:7420');
    t.is(chooseServer('x:1', context), 'x:1');
    t.deepEqual(candidateServers(undefined, context), ['m2:7420', 'm1:7420', 'm3:7420']);
    t.deepEqual(candidateServers('x:1', context), ['x:1']);
    t.deepEqual(candidateServers(undefined, undefined), [DEFAULT_SERVER]);
  });
  await withEnv({ TESSERA_SERVER: 'env:1' }, () => {
    t.is(chooseServer(undefined, context), 'env:1');
    t.is(chooseServer('x:1', context), 'x:1');
    t.deepEqual(candidateServers(undefined, context), ['env:1']);
  });
});
