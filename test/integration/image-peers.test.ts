// The node-to-node blob service with real parts: two (or more) real image stores, the real
// ImagePeer server and client over real mutual TLS on loopback, with certificates from a real
// cluster CA (test-pki.ts). What is NOT real here: the manager's answer to "which peers hold it"
// (a function returning the peers we started — the dispatcher side is unit-tested and runs in
// test/e2e/images-across-nodes.test.ts), and the registry, replaced by a fetch that records and
// fails, so that any attempt to reach one shows.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { LocalImageStore } from '../../agent/images/image-store.js';
import { PeerAccess } from '../../agent/images/peer/peer-access.js';
import { PeerBlobClient } from '../../agent/images/peer/peer-blob-client.js';
import { addImagePeerService } from '../../agent/images/peer/peer-blob-server.js';
import type { PeerRef } from '../../common/images/peer-messages.js';
import { parseIdentity } from '../../common/identity/certificate.js';
import { nodeOnlyServerCredentials, type TransportSecurity } from '../../common/transport/credentials.js';
import { buildBusyboxImage, buildLayeredImage, type LayeredImage } from '../helpers/busybox-image.js';
import { freePort } from '../helpers/free-port.js';
import { testPki, type TestPki } from '../helpers/test-pki.js';

const run = promisify(execFile);
const LAYERED = 'docker.io/tessera/layered:v1';

let workDir: string;
let pki: TestPki;
let layered: LayeredImage;
let source: LocalImageStore;
let honest: PeerRef;
let askerSecurity: TransportSecurity & { mode: 'mtls' };

interface Served {
  peer: PeerRef;
  access: PeerAccess;
  server: grpc.Server;
}

/** An ImagePeer server as a worker runs it, for node `nodeName`, serving what `blobPath` names. */
async function serve(nodeName: string, blobPath: (digest: string) => string, revoked: string[] | 'no list yet'): Promise<Served> {
  const security = await pki.node(nodeName, 'worker');
  const access = new PeerAccess(pki.clusterId);
  if (revoked !== 'no list yet') access.setRevoked(revoked);
  const server = new grpc.Server();
  addImagePeerService(server, { blobPath, authorize: (call) => void access.authorize(call), log: () => undefined });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', nodeOnlyServerCredentials(security), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return { peer: { nodeName, address: `127.0.0.1:${port}` }, access, server };
}

const servers: grpc.Server[] = [];
async function started(nodeName: string, blobPath: (digest: string) => string, revoked: string[] | 'no list yet' = []): Promise<Served> {
  const served = await serve(nodeName, blobPath, revoked);
  servers.push(served.server);
  return served;
}

/** A node's store that may only get images from `peers`; every registry request is recorded and fails. */
async function asker(peers: PeerRef[], security: TransportSecurity = askerSecurity) {
  const root = await mkdtemp(join(workDir, 'asker-'));
  const registryCalls: string[] = [];
  const logs: string[] = [];
  const store = new LocalImageStore({
    root,
    credentialsFile: join(root, 'no-credentials.json'),
    log: (m) => logs.push(m),
    registry: { sleep: () => Promise.resolve(), retry: { maxAttempts: 1 } },
    fetch: (input) => {
      registryCalls.push(String(input instanceof Request ? input.url : input));
      return Promise.reject(new Error('this test has no registry'));
    },
  });
  const client = new PeerBlobClient({ security, clusterId: pki.clusterId, firstChunkTimeoutMs: 3000, idleTimeoutMs: 3000 });
  store.setPeerSource({
    locate: () => Promise.resolve({ manifestDigest: layered.manifestDigest, peers }),
    open: (peer, digest, limits) => client.open(peer, digest, limits),
  });
  return { store, root, registryCalls, logs, client };
}

async function sha256File(path: string): Promise<string> {
  return `sha256:${createHash('sha256')
    .update(await readFile(path))
    .digest('hex')}`;
}

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-image-peers-'));
  pki = await testPki();
  askerSecurity = await pki.node('node-b', 'worker');
  const busybox = await buildBusyboxImage(join(workDir, 'busybox'));
  layered = await buildLayeredImage(join(workDir, 'layered'), { extraLayers: 2, layerBytes: 300 * 1024, base: busybox, seed: 5 });
  // Name the layout as containerd does, so `load` records it under LAYERED.
  const indexPath = join(layered.ociLayoutDir, 'index.json');
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as { manifests: Array<{ annotations?: Record<string, string> }> };
  for (const entry of index.manifests) entry.annotations = { ...entry.annotations, 'io.containerd.image.name': LAYERED };
  await writeFile(indexPath, JSON.stringify(index));
  const tarball = join(workDir, 'layered.tar');
  await run('tar', ['-C', layered.ociLayoutDir, '-cf', tarball, 'oci-layout', 'index.json', 'blobs']);
  source = new LocalImageStore({ root: join(workDir, 'source'), credentialsFile: join(workDir, 'no-credentials.json') });
  await source.load(tarball);
  honest = (await started('node-a', (digest) => source.blobPath(digest))).peer;
});

test.after.always(async () => {
  for (const server of servers) server.forceShutdown();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test('an image comes from a peer, verified blob by blob, and no registry is asked', async (t) => {
  const { store, registryCalls, logs, client } = await asker([honest]);
  t.teardown(() => client.close());
  const image = await store.ensure(LAYERED);
  t.is(image.digest, layered.manifestDigest);
  t.deepEqual(registryCalls, []);
  t.is(image.layerDirs.length, 3);
  const extra = layered.extraFiles[1]!;
  t.deepEqual(await readFile(join(image.layerDirs[2]!, extra.path)), extra.content, 'the unpacked layer holds what the image put there');
  for (const digest of layered.layerDigests) t.is(await sha256File(store.blobPath(digest)), digest);
  t.deepEqual(
    (await store.list()).map((r) => r.reference),
    [LAYERED],
  );
  t.regex(logs.join('\n'), /from peers: stored \(node-a held it\)/);
  // A second ensure finds it locally: no peer, no registry.
  t.is((await store.ensure(LAYERED)).digest, layered.manifestDigest);
});

test('a peer that sends a corrupted layer is refused; the next peer gives the right bytes', async (t) => {
  const target = layered.layerDigests[1]!;
  const corrupted = join(workDir, 'corrupted-layer');
  const bytes = await readFile(source.blobPath(target));
  const middle = bytes.length >> 1;
  bytes.writeUInt8((bytes.readUInt8(middle) ^ 0xff) & 0xff, middle); // same size, other content
  await writeFile(corrupted, bytes);
  const liar = await started('node-liar', (digest) => (digest === target ? corrupted : source.blobPath(digest)));
  const { store, registryCalls, logs, client } = await asker([liar.peer, honest]);
  t.teardown(() => client.close());
  await store.ensure(LAYERED);
  t.regex(logs.join('\n'), new RegExp(`layer ${target} from peer node-liar: digest mismatch`));
  t.is(await sha256File(store.blobPath(target)), target, 'the stored blob is the real one');
  t.deepEqual(registryCalls, []);
});

test('with only lying peers nothing is stored and the registry is tried: a manifest with a wrong digest, a layer of the wrong size', async (t) => {
  const target = layered.layerDigests[2]!;
  const longer = join(workDir, 'longer-layer');
  await writeFile(longer, Buffer.concat([await readFile(source.blobPath(target)), Buffer.from('trailing')]));
  const flipped = join(workDir, 'flipped-manifest');
  const manifest = await readFile(source.blobPath(layered.manifestDigest));
  await writeFile(flipped, Buffer.from(manifest.toString('utf8').replace('"schemaVersion":2', '"schemaVersion":2 ')));
  const sizeLiar = await started('node-size', (digest) => (digest === target ? longer : source.blobPath(digest)));
  const manifestLiar = await started('node-manifest', (digest) => (digest === layered.manifestDigest ? flipped : source.blobPath(digest)));
  for (const [liar, expected] of [
    [sizeLiar, new RegExp(`peer node-size .*blob ${target}: announced \\d+ bytes, the manifest says \\d+`)],
    [manifestLiar, /manifest sha256:[0-9a-f]{64} from peer node-manifest: digest mismatch/],
  ] as const) {
    const { store, registryCalls, logs, client } = await asker([liar.peer]);
    // The task's error says why the peers could not give it, then the registry's failure.
    await t.throwsAsync(store.ensure(LAYERED), { message: /^not fetched from its peers \(.*peer.*\), nor from its registry: .*this test has no registry/ });
    client.close();
    t.regex(logs.join('\n'), expected);
    t.regex(logs.join('\n'), /not fetched from peers .*trying its registry/);
    t.true(registryCalls.length > 0, 'the registry was tried after the peers');
    t.deepEqual(await store.list(), [], 'no image was recorded');
    t.false(existsSync(store.blobPath(target)) && (await sha256File(store.blobPath(target))) !== target, 'no wrong blob is kept');
  }
});

test('a peer that is down or refuses is skipped for the next one, in bounded time', async (t) => {
  const dead: PeerRef = { nodeName: 'node-dead', address: `127.0.0.1:${await freePort()}` };
  const { store, registryCalls, logs, client } = await asker([dead, honest]);
  t.teardown(() => client.close());
  await store.ensure(LAYERED);
  t.deepEqual(registryCalls, []);
  // Asked for the manifest first; once failed it is not asked again for the other blobs.
  t.is(logs.filter((l) => l.includes('peer node-dead')).length, 1);
  t.regex(logs.join('\n'), /peer node-dead \(127\.0\.0\.1:\d+\), blob sha256:[0-9a-f]{64}: /);
});

test('a server that is not the node the manager named is refused', async (t) => {
  // honest's certificate is node-a's; the manager "said" node-x is at its address.
  const { store, logs, client } = await asker([{ nodeName: 'node-x', address: honest.address }]);
  t.teardown(() => client.close());
  await t.throwsAsync(store.ensure(LAYERED), { message: /this test has no registry/ });
  t.regex(logs.join('\n'), /peer node-x .*names node node-a, expected node-x/);
});

test('only nodes of this cluster whose certificates stand may fetch; requests are checked', async (t) => {
  const digest = layered.manifestDigest;
  const ask = async (security: TransportSecurity, peer: PeerRef = honest, blob = digest): Promise<string> => {
    const client = new PeerBlobClient({ security, clusterId: pki.clusterId, firstChunkTimeoutMs: 3000 });
    try {
      for await (const _chunk of client.open(peer, blob, { maxBytes: 1 << 20 })) {
        // Read to the end: success is the absence of an error.
      }
      return 'ok';
    } catch (err) {
      return (err as Error).message;
    } finally {
      client.close();
    }
  };
  t.is(await ask(askerSecurity), 'ok');
  t.regex(await ask(await pki.node('node-m', 'manager')), /^ok$/, 'managers are nodes too');
  t.regex(await ask(await pki.user('alice', 'admin')), /alice \(admin\) is not a node: blobs are served to nodes only/);
  const other = await testPki();
  t.notRegex(await ask(await other.node('node-b', 'worker')), /^ok$/, "another cluster's node fails the handshake");

  const revokedNode = await pki.node('node-revoked', 'worker');
  const serial = parseIdentity(revokedNode.identity.material.certChainPem).serial;
  const guarded = await started('node-g', (d) => source.blobPath(d), [serial]);
  t.regex(await ask(revokedNode, guarded.peer), /node-revoked \(serial [0-9a-f]+\) has been revoked/);
  t.is(await ask(askerSecurity, guarded.peer), 'ok');

  const fresh = await started('node-fresh', (d) => source.blobPath(d), 'no list yet');
  t.regex(await ask(askerSecurity, fresh.peer), /has not yet received the cluster's revocation list/);
  fresh.access.setRevoked([]);
  t.is(await ask(askerSecurity, fresh.peer), 'ok');

  t.regex(await ask(askerSecurity, honest, '../../etc/passwd'), /is not "sha256:" followed by 64 lowercase hex digits/);
  t.regex(await ask(askerSecurity, honest, `sha256:${'0'.repeat(64)}`), /this node does not hold blob sha256:0{64}/);
});

test('a blob larger than what the asker allows is refused before it is read', async (t) => {
  const client = new PeerBlobClient({ security: askerSecurity, clusterId: pki.clusterId });
  t.teardown(() => client.close());
  const chunks = client.open(honest, layered.layerDigests[0]!, { maxBytes: 16 });
  await t.throwsAsync(
    (async () => {
      for await (const _chunk of chunks) {
        // nothing: the first chunk already fails
      }
    })(),
    { message: /announced \d+ bytes, more than the limit of 16/ },
  );
});
