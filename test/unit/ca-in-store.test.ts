// The root CA's key in the replicated store (control-plane/ca/ca-record.ts, cluster-security.ts,
// daemon/ca-keeper.ts): written with the cluster's meta by the first manager, seen by a second
// manager on the same store (the real MemoryStore stands for the replicated one), rotated in one
// transaction with the meta, moved in from an older version's files (which are destroyed), and
// never returned by the API's List or Watch.
import test from 'ava';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { caDigest } from '../../common/identity/certificate.js';
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { generateJoinSecret, hashJoinSecret } from '../../common/identity/join-token.js';
import { parseCertificate } from '../../common/identity/x509.js';
import { KINDS } from '../../common/resources/types.js';
import { CA_KEY, formatCaRecord, parseCaRecord } from '../../control-plane/ca/ca-record.js';
import type { ClusterMeta } from '../../control-plane/ca/cluster-meta.js';
import { ClusterSecurity } from '../../control-plane/ca/cluster-security.js';
import { issueNodeCertificate } from '../../control-plane/ca/issue.js';
import { type CaMaterial, createRootCA } from '../../control-plane/ca/root-ca.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { CaKeeper } from '../../daemon/ca-keeper.js';
import { certPaths } from '../../daemon/identity/cert-files.js';
import { until } from '../helpers/eventually.js';
import { serveMemoryApi, stopMemoryApi } from '../helpers/memory-api.js';

let cas: Promise<[CaMaterial, CaMaterial]> | undefined;
const twoRoots = (): Promise<[CaMaterial, CaMaterial]> =>
  (cas ??= Promise.all([createRootCA({ clusterId: 'cluster-a' }), createRootCA({ clusterId: 'cluster-a' })]));

function freshMeta(rootPem: string): ClusterMeta {
  return {
    clusterId: 'cluster-a',
    trustedRootPems: [rootPem],
    tokenHashes: { worker: hashJoinSecret(generateJoinSecret()), manager: hashJoinSecret(generateJoinSecret()) },
    nodeCertValidityMs: 3600_000,
  };
}

const hashes = (): ClusterMeta['tokenHashes'] => ({ worker: hashJoinSecret(generateJoinSecret()), manager: hashJoinSecret(generateJoinSecret()) });

async function signedByKeeper(keeper: CaKeeper): Promise<string> {
  const signer = await keeper.signer();
  const leaf = await issueNodeCertificate(signer.loaded, await createCsr(await generateKeyPair(), { commonNameHint: 'n1' }), {
    nodeId: 'n1',
    role: 'worker',
    clusterId: 'cluster-a',
  });
  return parseCertificate('leaf', leaf).issuer;
}

test('the first manager stores the CA with the meta in one transaction; a second manager signs with it at once; rotation starts and completes with the meta', async (t) => {
  const [ca] = await twoRoots();
  const store = new MemoryStore();
  const log = (): void => undefined;
  const first = await ClusterSecurity.open(store, () => freshMeta(ca.certPem), log, ca);
  // The second manager has no CA of its own: it takes the store's.
  const second = await ClusterSecurity.open(store, () => freshMeta('unused'), log);
  t.teardown(async () => {
    await first.close();
    await second.close();
    await store.close();
  });
  const meta = await store.get('/tessera/cluster/meta');
  const record = await store.get(CA_KEY);
  t.is(record?.modRevision, meta?.modRevision, 'meta and CA written by one transaction');
  t.deepEqual(second.ca, { current: ca });
  const keepers = [new CaKeeper(first), new CaKeeper(second)];
  const rootSubject = parseCertificate('root', ca.certPem).subject;
  for (const keeper of keepers) t.is(await signedByKeeper(keeper), rootSubject);

  const { newRootPem } = await keepers[0]!.startRotation();
  const started = await store.get(CA_KEY);
  t.is(started?.modRevision, (await store.get('/tessera/cluster/meta'))?.modRevision, 'the new key and the rotation are one transaction');
  t.is(parseCaRecord(started!.value).next?.certPem, newRootPem);
  await until('the second manager sees the rotation', () => second.meta.rotation !== undefined && second.ca?.next !== undefined);
  const newSubject = parseCertificate('new root', newRootPem).subject;
  for (const keeper of keepers) t.is(await signedByKeeper(keeper), newSubject, 'the new root signs during the rotation, on every manager');

  t.true(await second.completeRotation(hashes()));
  t.false(await second.completeRotation(hashes()), 'completing twice is a no-op');
  await until('the first manager sees the completion', () => first.meta.rotation === undefined && first.ca?.next === undefined);
  t.is(first.ca?.current.certPem, newRootPem);
  t.false(JSON.stringify(first.ca).includes(ca.keyPem), 'the old key is gone from the record');
  t.deepEqual(first.meta.trustedRootPems, [newRootPem]);
  for (const keeper of keepers) t.is(await signedByKeeper(keeper), newSubject);
});

test('a manager whose store holds no CA yet refuses to sign, naming why', async (t) => {
  const [ca] = await twoRoots();
  const store = new MemoryStore();
  const security = await ClusterSecurity.open(
    store,
    () => freshMeta(ca.certPem),
    () => undefined,
  );
  t.teardown(async () => {
    await security.close();
    await store.close();
  });
  await t.throwsAsync(new CaKeeper(security).signer(), { message: /store holds no cluster CA key yet/ });
});

test("an older version's ca.key and ca-next.key move into the store and the files are destroyed; a store with a CA keeps its own", async (t) => {
  const [ca, next] = await twoRoots();
  const dir = await mkdtemp(join(tmpdir(), 'tessera-ca-adopt-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const paths = certPaths(dir);
  await mkdir(paths.dir, { mode: 0o700 });
  const writeFiles = async (current: CaMaterial, rotating?: CaMaterial): Promise<void> => {
    await writeFile(paths.caCert, current.certPem, { mode: 0o600 });
    await writeFile(paths.caKey, current.keyPem, { mode: 0o600 });
    if (rotating) {
      await writeFile(paths.caNextCert, rotating.certPem, { mode: 0o600 });
      await writeFile(paths.caNextKey, rotating.keyPem, { mode: 0o600 });
    }
  };
  const store = new MemoryStore();
  const security = await ClusterSecurity.open(
    store,
    () => freshMeta(ca.certPem),
    () => undefined,
  );
  t.teardown(async () => {
    await security.close();
    await store.close();
  });
  const keeper = new CaKeeper(security);
  t.is(await keeper.adoptFiles(paths), undefined, 'nothing to adopt');
  await writeFiles(ca, next);
  t.regex((await keeper.adoptFiles(paths)) ?? '', /moved the cluster CA key from .*ca\.key into the store; the files were overwritten and removed/);
  t.deepEqual(await readdir(paths.dir), []);
  t.deepEqual(parseCaRecord((await store.get(CA_KEY))!.value), { current: ca, next });
  t.is(caDigest((await keeper.signer()).material.certPem), caDigest(ca.certPem));

  // Another manager's older files, once the store has the CA: the store's stays, the files go.
  await writeFiles(next);
  t.regex((await keeper.adoptFiles(paths)) ?? '', /store already holds the cluster CA/);
  t.deepEqual(await readdir(paths.dir), []);
  t.is(parseCaRecord((await store.get(CA_KEY))!.value).current.certPem, ca.certPem);
});

test('the API never returns the CA record: List and Watch of every kind, from revision 1', async (t) => {
  const [ca] = await twoRoots();
  const api = await serveMemoryApi('tessera-ca-api-');
  t.teardown(() => stopMemoryApi(api));
  await api.store.put(CA_KEY, formatCaRecord({ current: ca }));
  const keyBody = ca.keyPem.split('\n')[1]!;
  for (const kind of KINDS) {
    const listed = await api.client.list({ kind, stack: '', allStacks: true });
    t.false(JSON.stringify(listed).includes(keyBody), `List ${kind}`);
    const seen: string[] = [];
    const abort = new AbortController();
    const watching = api.client.watch({ kind, stack: '', allStacks: true, fromRevision: 1 }, (event) => seen.push(JSON.stringify(event)), abort.signal);
    await new Promise((resolve) => setTimeout(resolve, 100));
    abort.abort();
    await watching.catch(() => undefined);
    t.false(seen.join('').includes(keyBody), `Watch ${kind}`);
  }
  // A kind outside the list cannot name the cluster prefix either.
  await t.throwsAsync(api.client.list({ kind: '../../cluster', stack: '', allStacks: true }));
});
