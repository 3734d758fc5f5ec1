// A node's identity on disk (daemon/identity/cert-files.ts), where `tsd join` reads its token
// (join-token-source.ts) and when it renews (renewal.ts renewalDelayMs): real files in a temporary
// directory, real certificates from a real CA, and stdin through a real child process.
import test from 'ava';
import { spawn } from 'node:child_process';
import { chmod, link as linkFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { joinPem } from '../../common/identity/x509.js';
import type { TlsMaterial } from '../../common/transport/tls-identity.js';
import { issueNodeCertificate } from '../../control-plane/ca/issue.js';
import { type CaMaterial, createRootCA } from '../../control-plane/ca/root-ca.js';
import { type DaemonConfig, defaultConfig } from '../../daemon/config.js';
import {
  type CertPaths,
  certPaths,
  persistIdentity,
  readCaFiles,
  readNodeCertificates,
  shredCaFiles,
  writeNodeCertificates,
} from '../../daemon/identity/cert-files.js';
import { readJoinToken, TOKEN_ENV } from '../../daemon/identity/join-token-source.js';
import { renewalDelayMs } from '../../daemon/identity/renewal.js';

const CLUSTER = 'cluster-f';
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TOKEN = `TSJT-1-${'ab'.repeat(32)}-${'a'.repeat(26)}`;

let cas: Promise<[CaMaterial, CaMaterial]> | undefined;
const sharedCas = (): Promise<[CaMaterial, CaMaterial]> => (cas ??= Promise.all([createRootCA({ clusterId: CLUSTER }), createRootCA({ clusterId: CLUSTER })]));

/** A node's real TLS material: its key, its chain from `ca`, and `ca` as the root it trusts. */
async function material(ca: CaMaterial, nodeId: string): Promise<TlsMaterial> {
  const keys = await generateKeyPair();
  const leaf = await issueNodeCertificate(ca, await createCsr(keys, { commonNameHint: nodeId }), { nodeId, role: 'worker', clusterId: CLUSTER });
  return { trustedRootPems: [ca.certPem], certChainPem: joinPem([leaf, ca.certPem]), keyPem: keys.keyPem };
}

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-identity-files-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

async function filesOf(paths: CertPaths): Promise<{ key: string; chain: string; roots: string }> {
  const [key, chain, roots] = await Promise.all([readFile(paths.nodeKey, 'utf8'), readFile(paths.nodeChain, 'utf8'), readFile(paths.roots, 'utf8')]);
  return { key, chain, roots };
}

test('writeNodeCertificates: the directory 0700, every file 0600, and the identity reads back', async (t) => {
  const [ca] = await sharedCas();
  const paths = certPaths(await tempDir(t));
  const mine = await material(ca, 'node-1');
  await writeNodeCertificates(paths, mine);

  t.is(await modeOf(paths.dir), 0o700);
  for (const file of [paths.nodeKey, paths.nodeChain, paths.roots]) t.is(await modeOf(file), 0o600, file);
  t.deepEqual((await readdir(paths.dir)).sort(), ['node.crt', 'node.key', 'roots.pem'], 'no temporary file is left behind');

  const read = await readNodeCertificates(paths);
  t.deepEqual(read?.material, mine);
  t.is(read?.subject.cn, 'node-1');
  t.is(read?.subject.ou, 'worker');
  t.is(read?.subject.o, CLUSTER);
});

test('writeNodeCertificates tightens a directory that was 0755 and a leftover temporary file that was 0644', async (t) => {
  const [ca] = await sharedCas();
  const paths = certPaths(await tempDir(t));
  await mkdir(paths.dir, { mode: 0o755 });
  await chmod(paths.dir, 0o755);
  await writeFile(`${paths.nodeKey}.tmp`, 'left over from a crash', { mode: 0o644 });
  await chmod(`${paths.nodeKey}.tmp`, 0o644);
  await writeNodeCertificates(paths, await material(ca, 'node-1'));
  t.is(await modeOf(paths.dir), 0o700);
  t.is(await modeOf(paths.nodeKey), 0o600);
});

test('readNodeCertificates: undefined before the node joined; a partial identity is refused naming the directory', async (t) => {
  const [ca] = await sharedCas();
  const dataRoot = await tempDir(t);
  const paths = certPaths(dataRoot);
  t.is(await readNodeCertificates(paths), undefined, 'no certs directory at all');
  await mkdir(paths.dir, { mode: 0o700 });
  t.is(await readNodeCertificates(paths), undefined, 'an empty certs directory');

  const mine = await material(ca, 'node-1');
  const partials: Array<[string, Partial<Record<'nodeKey' | 'nodeChain' | 'roots', string>>]> = [
    ['a key without its chain', { nodeKey: mine.keyPem }],
    ['a chain without its key', { nodeChain: mine.certChainPem }],
    ['a key and a chain without roots', { nodeKey: mine.keyPem, nodeChain: mine.certChainPem }],
  ];
  for (const [what, files] of partials) {
    await rm(paths.dir, { recursive: true, force: true });
    await mkdir(paths.dir, { mode: 0o700 });
    for (const [name, text] of Object.entries(files) as Array<[keyof typeof files, string]>) await writeFile(paths[name], text, { mode: 0o600 });
    const err = await t.throwsAsync(readNodeCertificates(paths), undefined, what);
    t.true(err.message.includes(paths.dir), `${what}: ${err.message}`);
    t.regex(err.message, /only part of a node identity/, what);
  }
});

test('persistIdentity serializes overlapping writes: fired without waiting, the files end as the last material, whole', async (t) => {
  const [ca, otherCa] = await sharedCas();
  const paths = certPaths(await tempDir(t));
  const materials = await Promise.all(Array.from({ length: 6 }, (_, i) => material(i % 2 === 0 ? ca : otherCa, `node-${i}`)));
  const writes = materials.map((m) => persistIdentity(paths, () => m));
  const results = await Promise.allSettled(writes);
  t.deepEqual(
    results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
    [],
    'every write succeeded',
  );

  const last = materials[materials.length - 1] as TlsMaterial;
  t.deepEqual(await filesOf(paths), { key: last.keyPem, chain: last.certChainPem, roots: last.trustedRootPems.join('') });
  t.is((await readNodeCertificates(paths))?.subject.cn, `node-${materials.length - 1}`);
  t.deepEqual((await readdir(paths.dir)).sort(), ['node.crt', 'node.key', 'roots.pem']);
});

test('persistIdentity writes the material as it is when the write runs, and a failed write does not stop the next', async (t) => {
  const [ca] = await sharedCas();
  const paths = certPaths(await tempDir(t));
  const [first, second] = await Promise.all([material(ca, 'node-a'), material(ca, 'node-b')]);
  let current = first;
  const failing = persistIdentity(paths, () => {
    throw new Error('material not ready');
  });
  const early = persistIdentity(paths, () => current);
  current = second;
  await t.throwsAsync(failing, { message: 'material not ready' });
  await early;
  t.is((await filesOf(paths)).key, second.keyPem, 'the queued write took the material current when it ran');
});

test('CA files an older version wrote: read back (current and next), then overwritten and removed together', async (t) => {
  const [ca, next] = await sharedCas();
  const paths = certPaths(await tempDir(t));
  t.is(await readCaFiles(paths), undefined);
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  const written: Array<[string, string]> = [
    [paths.caCert, ca.certPem],
    [paths.caKey, ca.keyPem],
    [paths.caNextCert, next.certPem],
    [paths.caNextKey, next.keyPem],
  ];
  for (const [file, text] of written) await writeFile(file, text, { mode: 0o600 });
  t.deepEqual(await readCaFiles(paths), ca);
  t.deepEqual(await readCaFiles(paths, 'next'), next);
  // A hard link sees the inode the file had: after the shred it holds zeros, not the key.
  const link = join(paths.dir, 'ca-key-link');
  await linkFile(paths.caKey, link);
  await shredCaFiles(paths);
  t.is(await readCaFiles(paths), undefined);
  t.is(await readCaFiles(paths, 'next'), undefined);
  const left = await readFile(link);
  t.is(left.length, Buffer.byteLength(ca.keyPem));
  t.true(
    left.every((b) => b === 0),
    'the key file was overwritten with zeros before it was removed',
  );
});

const configWithTokenFile = (tokenFile: string | undefined): DaemonConfig => ({ ...defaultConfig(), tokenFile });

test('readJoinToken --token-file: a 0600 file is read; 0644 and 0640 are refused naming the mode; a directory, an oversized file and a missing one are refused naming the path', async (t) => {
  const dir = await tempDir(t);
  const write = async (name: string, text: string, mode: number): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, text, { mode });
    await chmod(path, mode);
    return path;
  };
  t.is(await readJoinToken(configWithTokenFile(await write('token', `${TOKEN}\n`, 0o600))), `${TOKEN}\n`);
  t.is((await readJoinToken(configWithTokenFile(await write('exactly-1k', 'x'.repeat(1024), 0o400)))).length, 1024);

  for (const mode of [0o644, 0o640, 0o604]) {
    const path = await write(`token-${mode.toString(8)}`, TOKEN, mode);
    const err = await t.throwsAsync(readJoinToken(configWithTokenFile(path)));
    t.true(err.message.includes(path), err.message);
    t.true(err.message.includes(`mode ${mode.toString(8)}`), err.message);
  }

  const directory = join(dir, 'a-directory');
  await mkdir(directory, { mode: 0o700 });
  const notFile = await t.throwsAsync(readJoinToken(configWithTokenFile(directory)));
  t.is(notFile.message, `--token-file ${directory}: not a regular file`);

  const big = await write('big', 'x'.repeat(1025), 0o600);
  const tooBig = await t.throwsAsync(readJoinToken(configWithTokenFile(big)));
  t.is(tooBig.message, `--token-file ${big}: 1025 bytes, which is not a token`);

  const missing = join(dir, 'missing');
  const absent = await t.throwsAsync(readJoinToken(configWithTokenFile(missing)));
  t.true(absent.message.startsWith(`--token-file ${missing}: `), absent.message);
  t.false(absent.message.includes(TOKEN));
});

/** readJoinToken with --token-file - in a child process (stdin is the child's): what it returned or threw. */
async function readTokenFromStdin(input: string): Promise<{ token?: string; error?: string }> {
  const moduleUrl = pathToFileURL(join(REPO_ROOT, 'daemon/identity/join-token-source.ts')).href;
  const configUrl = pathToFileURL(join(REPO_ROOT, 'daemon/config.ts')).href;
  const program = `
    const { readJoinToken } = await import(${JSON.stringify(moduleUrl)});
    const { defaultConfig } = await import(${JSON.stringify(configUrl)});
    try {
      process.stdout.write(JSON.stringify({ token: await readJoinToken({ ...defaultConfig(), tokenFile: '-' }) }));
    } catch (err) {
      process.stdout.write(JSON.stringify({ error: err.message }));
    }`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // The child may stop reading (an oversized token) before all is written; that is its answer, not an error here.
  child.stdin.on('error', () => undefined);
  child.stdin.end(input);
  const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode: number | null) => resolve(exitCode)));
  if (code !== 0 || stdout === '') throw new Error(`the child exited with ${code}: ${stderr.slice(0, 2000)}`);
  return JSON.parse(stdout) as { token?: string; error?: string };
}

test('readJoinToken --token-file -: the token is read from stdin; more than 1 KiB is refused', async (t) => {
  const [read, oversized] = await Promise.all([readTokenFromStdin(`${TOKEN}\n`), readTokenFromStdin('x'.repeat(4096))]);
  t.deepEqual(read, { token: `${TOKEN}\n` });
  t.deepEqual(oversized, { error: 'join token on stdin: more than 1024 bytes, which is not a token' });
});

// The environment is the process's: these run one at a time.
test.serial(
  'readJoinToken from TESSERA_JOIN_TOKEN: read, then removed from the environment; with no source the error says where a token comes from',
  async (t) => {
    process.env[TOKEN_ENV] = TOKEN;
    t.teardown(() => delete process.env[TOKEN_ENV]);
    t.is(await readJoinToken(configWithTokenFile(undefined)), TOKEN);
    t.false(TOKEN_ENV in process.env, 'no process tsd starts inherits the token');

    const err = await t.throwsAsync(readJoinToken(configWithTokenFile(undefined)));
    t.regex(err.message, /--token-file/);
    t.true(err.message.includes(TOKEN_ENV));
  },
);

test.serial('readJoinToken with --token-file also removes a TESSERA_JOIN_TOKEN set beside it, so that no process tsd starts inherits it', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'token');
  await writeFile(path, TOKEN, { mode: 0o600 });
  process.env[TOKEN_ENV] = `TSJT-1-${'cd'.repeat(32)}-${'b'.repeat(26)}`;
  t.teardown(() => delete process.env[TOKEN_ENV]);
  t.is(await readJoinToken(configWithTokenFile(path)), TOKEN, 'the file wins');
  t.false(TOKEN_ENV in process.env, `${TOKEN_ENV} is still in the environment after the token was read from --token-file`);
});

test('renewalDelayMs: two thirds of the time left, at least 5 s', (t) => {
  const now = Date.UTC(2030, 0, 1);
  const at = (msLeft: number) => new Date(now + msLeft);
  const DAY = 24 * 60 * 60 * 1000;
  t.is(renewalDelayMs(at(90 * DAY), now), 60 * DAY);
  t.is(renewalDelayMs(at(90_000), now), 60_000);
  t.is(renewalDelayMs(at(10_001), now), 6_667, 'rounded down to the millisecond');
  t.is(renewalDelayMs(at(7_500), now), 5_000);
  t.is(renewalDelayMs(at(6_000), now), 5_000, 'never sooner than 5 s');
  t.is(renewalDelayMs(at(0), now), 5_000, 'an expired certificate is retried after 5 s, not in a tight loop');
  t.is(renewalDelayMs(at(-DAY), now), 5_000);
  // Without `now`, the clock's time.
  const delay = renewalDelayMs(new Date(Date.now() + 3 * 60 * 60 * 1000));
  t.true(delay > 2 * 60 * 60 * 1000 - 1000 && delay <= 2 * 60 * 60 * 1000, String(delay));
});
