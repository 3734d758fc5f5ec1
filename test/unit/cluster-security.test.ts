// The cluster's identity state in the store (control-plane/ca/cluster-security.ts, cluster-meta.ts):
// the real MemoryStore, real root CAs and two ClusterSecurity instances on one store standing for
// two managers, which must see each other's token rotations and revocations through their watch.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';

import { caDigest } from '../../common/identity/certificate.js';
import { generateJoinSecret, hashJoinSecret, parseJoinToken } from '../../common/identity/join-token.js';
import { randomSerial } from '../../common/identity/x509.js';
import { CLUSTER_META_KEY, type ClusterMeta, ISSUED_PREFIX, parseClusterMeta, parseIssued, REVOCATIONS_KEY } from '../../control-plane/ca/cluster-meta.js';
import { ClusterSecurity } from '../../control-plane/ca/cluster-security.js';
import { type CaMaterial, createRootCA } from '../../control-plane/ca/root-ca.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import type { TxnRequest, TxnResponse } from '../../control-plane/store/store.js';
import { until } from '../helpers/eventually.js';

const HOUR = 60 * 60 * 1000;

/** The real MemoryStore, counting the transactions whose comparison failed (a CAS conflict shows as one). */
class CountingStore extends MemoryStore {
  failedTxns = 0;

  override async txn(request: TxnRequest): Promise<TxnResponse> {
    const response = await super.txn(request);
    if (!response.succeeded) this.failedTxns++;
    return response;
  }
}

let roots: Promise<[CaMaterial, CaMaterial]> | undefined;
/** Two roots of cluster-a (an old and a new one) made once for the file: key generation is the slow part. */
function clusterRoots(): Promise<[CaMaterial, CaMaterial]> {
  roots ??= Promise.all([createRootCA({ clusterId: 'cluster-a' }), createRootCA({ clusterId: 'cluster-a' })]);
  return roots;
}

function freshMeta(clusterId: string, rootPems: string[]): ClusterMeta {
  return {
    clusterId,
    trustedRootPems: rootPems,
    tokenHashes: { worker: hashJoinSecret(generateJoinSecret()), manager: hashJoinSecret(generateJoinSecret()) },
    nodeCertValidityMs: HOUR,
  };
}

interface Manager {
  security: ClusterSecurity;
  logs: string[];
  /** Bumped by onChange. */
  changes: { count: number };
}

async function openManager(store: MemoryStore, fresh: ClusterMeta): Promise<Manager> {
  const logs: string[] = [];
  const security = await ClusterSecurity.open(
    store,
    () => fresh,
    (line) => logs.push(line),
  );
  const changes = { count: 0 };
  security.onChange(() => changes.count++);
  return { security, logs, changes };
}

/** A store with two managers on it, both closed (and the store with them) when the test ends. */
async function twoManagers<S extends MemoryStore>(
  t: { teardown(fn: () => Promise<void>): void },
  store: S,
): Promise<{ a: Manager; b: Manager; initial: ClusterMeta; store: S }> {
  const [oldRoot] = await clusterRoots();
  const meta = freshMeta('cluster-a', [oldRoot.certPem]);
  const a = await openManager(store, meta);
  const b = await openManager(store, freshMeta('cluster-a', [oldRoot.certPem]));
  t.teardown(async () => {
    await a.security.close();
    await b.security.close();
    await store.close();
  });
  return { a, b, initial: meta, store };
}

const secretOf = (token: string): string => parseJoinToken(token).secret;

test('open writes the fresh meta only when the store has none; a second open with another fresh meta reads the first', async (t) => {
  const [oldRoot, otherRoot] = await clusterRoots();
  const store = new MemoryStore();
  const first = freshMeta('cluster-a', [oldRoot.certPem]);
  const second = freshMeta('cluster-b', [otherRoot.certPem]);
  const a = await openManager(store, first);
  const b = await openManager(store, second);
  t.teardown(async () => {
    await a.security.close();
    await b.security.close();
    await store.close();
  });

  t.deepEqual(a.security.meta, first);
  t.deepEqual(b.security.meta, first, 'the second manager took the meta already in the store, not its own fresh one');
  t.is(b.security.clusterId, 'cluster-a');
  const stored = await store.get(CLUSTER_META_KEY);
  t.is(stored?.version, 1, 'the meta was written exactly once');
  t.deepEqual(parseClusterMeta(stored?.value ?? ''), first);
  t.deepEqual(a.logs, []);
  t.deepEqual(b.logs, []);
});

test('rotateToken: TSJT-1-<digest of trustedRootPems[0]>-<secret>; the new secret maps to its role, the previous one of that role stops, the other role is untouched', async (t) => {
  const { a } = await twoManagers(t, new MemoryStore());
  const security = a.security;
  const rootDigest = caDigest(security.meta.trustedRootPems[0] ?? '');

  const worker1 = await security.rotateToken('worker');
  t.regex(worker1, /^TSJT-1-[0-9a-f]{64}-[a-z2-7]{26}$/);
  t.is(parseJoinToken(worker1).caDigest, rootDigest);
  t.is(security.roleForSecret(secretOf(worker1)), 'worker');

  const manager1 = await security.rotateToken('manager');
  t.is(security.roleForSecret(secretOf(manager1)), 'manager');
  t.is(security.roleForSecret(secretOf(worker1)), 'worker', 'a manager token rotation leaves the worker token alone');

  const worker2 = await security.rotateToken('worker');
  t.not(secretOf(worker2), secretOf(worker1));
  t.is(security.roleForSecret(secretOf(worker2)), 'worker');
  t.is(security.roleForSecret(secretOf(worker1)), undefined, 'the rotated-out worker secret no longer matches');
  t.is(security.roleForSecret(secretOf(manager1)), 'manager', 'the manager token is unaffected by the worker rotation');

  // Anything but a well-formed current secret grants nothing.
  t.is(security.roleForSecret(''), undefined);
  t.is(security.roleForSecret(`${secretOf(worker2)}a`), undefined);
  t.is(security.roleForSecret(secretOf(worker2).toUpperCase()), undefined);
});

test('rotateToken pins trustedRootPems[0] also while a second root is trusted (the old root, which managers still present)', async (t) => {
  const { a } = await twoManagers(t, new MemoryStore());
  const [oldRoot, newRoot] = await clusterRoots();
  await a.security.updateMeta((meta) => ({ ...meta, trustedRootPems: [oldRoot.certPem, newRoot.certPem] }));
  const token = await a.security.rotateToken('worker');
  t.is(parseJoinToken(token).caDigest, caDigest(oldRoot.certPem));
  t.not(parseJoinToken(token).caDigest, caDigest(newRoot.certPem));
});

test('the store never holds a token or its secret, in any key or value at any revision; only the hash', async (t) => {
  const { a, b, store } = await twoManagers(t, new MemoryStore());
  const tokens = [
    await a.security.rotateToken('worker'),
    await a.security.rotateToken('manager'),
    await b.security.rotateToken('worker'),
    await b.security.rotateToken('manager'),
  ];
  const current = await a.security.rotateToken('worker');
  tokens.push(current);

  const last = await store.currentRevision();
  let scanned = 0;
  for (let revision = 1; revision <= last; revision++) {
    for (const kv of (await store.range('', { revision })).kvs) {
      scanned++;
      for (const token of tokens) {
        const secret = secretOf(token);
        t.false(kv.key.includes(secret) || kv.value.includes(secret), `${kv.key} at revision ${revision} holds a join secret`);
        t.false(kv.value.includes(token), `${kv.key} at revision ${revision} holds a join token`);
      }
    }
  }
  t.true(scanned > 0);
  // The scan looked at the right place: the meta holds the current secret's hash.
  t.true((await store.get(CLUSTER_META_KEY))?.value.includes(hashJoinSecret(secretOf(current))));
});

test("two managers see each other's token rotation through the watch", async (t) => {
  const { a, b } = await twoManagers(t, new MemoryStore());
  const before = a.changes.count;
  const workerFromA = await a.security.rotateToken('worker');
  await until('manager b to accept the worker token minted by a', () => b.security.roleForSecret(secretOf(workerFromA)) === 'worker');

  const workerFromB = await b.security.rotateToken('worker');
  await until('manager a to accept the worker token minted by b', () => a.security.roleForSecret(secretOf(workerFromB)) === 'worker');
  t.is(a.security.roleForSecret(secretOf(workerFromA)), undefined, "a's own token was rotated out by b");
  t.is(b.security.roleForSecret(secretOf(workerFromA)), undefined);
  t.true(a.changes.count > before, 'onChange told manager a about the change');
  t.deepEqual(a.security.meta, b.security.meta);
});

test('recordIssued + revokeNode revoke every unexpired serial of the node, on both managers; other nodes keep theirs', async (t) => {
  const { a, b } = await twoManagers(t, new MemoryStore());
  const future = new Date(Date.now() + HOUR);
  const expired = randomSerial();
  const [first, second, other] = [randomSerial(), randomSerial(), randomSerial()];
  await a.security.recordIssued('node-1', expired, new Date(Date.now() - 1000), 'digest-old');
  await a.security.recordIssued('node-1', first, future, 'digest-old');
  await b.security.recordIssued('node-1', second, future, 'digest-new');
  await b.security.recordIssued('node-2', other, future, 'digest-new');
  t.deepEqual(
    (await a.security.issuedTo('node-1')).map((r) => r.serial),
    [first, second],
    'an expired record is dropped when the next one is recorded',
  );

  const before = a.changes.count;
  const revoked = await b.security.revokeNode('node-1', 'node removed');
  t.deepEqual(revoked, [first, second]);
  t.true(b.security.isRevoked(first) && b.security.isRevoked(second), 'the revoking manager knows at once');
  await until('manager a to learn both revocations', () => a.security.isRevoked(first) && a.security.isRevoked(second));
  t.true(a.changes.count > before);
  for (const security of [a.security, b.security]) {
    t.false(security.isRevoked(other), "node-2's certificate stays valid");
    t.false(security.isRevoked(expired));
    // Serials compare in any hex spelling.
    t.true(security.isRevoked(`00${first.toUpperCase()}`));
  }
  t.deepEqual(await a.security.issuedTo('node-1'), []);
  t.deepEqual(
    (await a.security.issuedTo('node-2')).map((r) => r.serial),
    [other],
  );

  // A second removal adds to the list; the first node's serials stay revoked.
  t.deepEqual(await a.security.revokeNode('node-2', 'node removed'), [other]);
  await until('manager b to learn the second revocation', () => b.security.isRevoked(other));
  t.true(b.security.isRevoked(first));
});

test('a malformed meta or revocation list in the store is ignored: the last good state holds and a log line names the key', async (t) => {
  const { a, b, store } = await twoManagers(t, new MemoryStore());
  const worker = await a.security.rotateToken('worker');
  const serial = randomSerial();
  await a.security.recordIssued('node-1', serial, new Date(Date.now() + HOUR), 'digest');
  await a.security.revokeNode('node-1', 'removed');
  await until('manager b to follow the good writes', () => b.security.isRevoked(serial) && b.security.roleForSecret(secretOf(worker)) === 'worker');
  const goodMeta = a.security.meta;
  const changesBefore = [a.changes.count, b.changes.count];

  await store.put(CLUSTER_META_KEY, JSON.stringify({ ...goodMeta, trustedRootPems: [] }));
  await store.put(REVOCATIONS_KEY, '{"not":"a list"}');
  for (const [name, manager] of [
    ['a', a],
    ['b', b],
  ] as const) {
    await until(
      () => `manager ${name} to log both malformed keys; it logged ${JSON.stringify(manager.logs)}`,
      () =>
        manager.logs.some((line) => line.includes(`malformed ${CLUSTER_META_KEY}`) && line.includes('trustedRootPems')) &&
        manager.logs.some((line) => line.includes(`malformed ${REVOCATIONS_KEY}`)),
    );
    t.deepEqual(manager.security.meta, goodMeta, `manager ${name} kept the last good meta`);
    t.is(manager.security.roleForSecret(secretOf(worker)), 'worker');
    t.true(manager.security.isRevoked(serial), `manager ${name} kept the last good revocation list`);
  }
  t.deepEqual([a.changes.count, b.changes.count], changesBefore, 'an ignored write is not reported as a change');

  // Changing the meta on top of a malformed one is refused, naming the key, rather than guessing.
  const refused = await t.throwsAsync(a.security.rotateToken('manager'));
  t.true(refused.message.includes(CLUSTER_META_KEY), refused.message);

  // A good write afterwards is followed again.
  const repaired = { ...goodMeta, nodeCertValidityMs: 2 * HOUR };
  await store.put(CLUSTER_META_KEY, JSON.stringify(repaired));
  await until(
    'both managers to follow the repaired meta',
    () => a.security.meta.nodeCertValidityMs === 2 * HOUR && b.security.meta.nodeCertValidityMs === 2 * HOUR,
  );
});

test('parseClusterMeta names the key and the field that is wrong', async (t) => {
  const [oldRoot, newRoot] = await clusterRoots();
  const good = freshMeta('cluster-a', [oldRoot.certPem]);
  const withRotation: ClusterMeta = {
    ...good,
    rotation: { newRootPem: newRoot.certPem, crossSignedPem: newRoot.certPem, startedAt: new Date(0).toISOString() },
  };
  t.deepEqual(parseClusterMeta(JSON.stringify(good)), good);
  t.deepEqual(parseClusterMeta(JSON.stringify(withRotation)), withRotation);
  t.false('extra' in parseClusterMeta(JSON.stringify({ ...good, extra: 'dropped' })), 'unknown fields are not carried along');

  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{', /not JSON/],
    ['null', 'null', /clusterId/],
    ['no cluster id', JSON.stringify({ ...good, clusterId: undefined }), /clusterId/],
    ['cluster id not a DNS label', JSON.stringify({ ...good, clusterId: 'Cluster_A' }), /clusterId/],
    ['no roots', JSON.stringify({ ...good, trustedRootPems: [] }), /trustedRootPems/],
    ['a root that is not a string', JSON.stringify({ ...good, trustedRootPems: [42] }), /trustedRootPems/],
    ['roots not a list', JSON.stringify({ ...good, trustedRootPems: oldRoot.certPem }), /trustedRootPems/],
    ['no manager hash', JSON.stringify({ ...good, tokenHashes: { worker: good.tokenHashes.worker } }), /tokenHashes/],
    ['a hash of another kind', JSON.stringify({ ...good, tokenHashes: { ...good.tokenHashes, worker: `md5:${'0'.repeat(32)}` } }), /tokenHashes/],
    ['a plaintext secret instead of a hash', JSON.stringify({ ...good, tokenHashes: { ...good.tokenHashes, worker: generateJoinSecret() } }), /tokenHashes/],
    ['validity too short', JSON.stringify({ ...good, nodeCertValidityMs: 1000 }), /nodeCertValidityMs/],
    ['validity as a string', JSON.stringify({ ...good, nodeCertValidityMs: String(HOUR) }), /nodeCertValidityMs/],
    ['rotation incomplete', JSON.stringify({ ...good, rotation: { newRootPem: newRoot.certPem } }), /rotation/],
  ];
  for (const [what, text, field] of cases) {
    const err = t.throws(() => parseClusterMeta(text), undefined, what);
    t.true(err.message.startsWith(`${CLUSTER_META_KEY}: `), `${what}: ${err.message}`);
    t.regex(err.message, field, what);
  }
});

test('parseIssued names the node key and the entry that is wrong', (t) => {
  t.deepEqual(parseIssued('[{"serial":"0a","notAfter":"2030-01-01T00:00:00.000Z","rootDigest":"d","extra":1}]', 'node-1'), [
    { serial: '0a', notAfter: '2030-01-01T00:00:00.000Z', rootDigest: 'd' },
  ]);
  t.throws(() => parseIssued('{}', 'node-1'), { message: `${ISSUED_PREFIX}node-1: expected a list` });
  t.throws(() => parseIssued('[{"serial":"0a","notAfter":"x"},{"serial":1}]', 'node-2'), { message: new RegExp(`^${ISSUED_PREFIX}node-2: entry 1 `) });
});

test('concurrent updateMeta from both managers all land (compare-and-swap retried on conflict)', async (t) => {
  const store = new CountingStore();
  const { a, b, initial } = await twoManagers(t, store);
  const conflictsBefore = store.failedTxns;
  const increments = 10;
  const updates = Array.from({ length: increments }, (_, i) =>
    (i % 2 === 0 ? a : b).security.updateMeta((meta) => ({ ...meta, nodeCertValidityMs: meta.nodeCertValidityMs + 1000 })),
  );
  const [workerToken, managerToken] = await Promise.all([a.security.rotateToken('worker'), b.security.rotateToken('manager'), ...updates]);
  t.true(store.failedTxns > conflictsBefore, 'the writes did conflict, so the retry path was exercised');

  const stored = parseClusterMeta((await store.get(CLUSTER_META_KEY))?.value ?? '');
  t.is(stored.nodeCertValidityMs, initial.nodeCertValidityMs + increments * 1000, 'no increment was lost');
  t.is(stored.tokenHashes.worker, hashJoinSecret(secretOf(workerToken)));
  t.is(stored.tokenHashes.manager, hashJoinSecret(secretOf(managerToken)));
  await until('both managers to hold the final meta', () => {
    const [ma, mb] = [a.security.meta, b.security.meta];
    return JSON.stringify(ma) === JSON.stringify(stored) && JSON.stringify(mb) === JSON.stringify(stored);
  });
  t.is(a.security.roleForSecret(secretOf(workerToken)), 'worker');
  t.is(a.security.roleForSecret(secretOf(managerToken)), 'manager');
  t.is(b.security.roleForSecret(secretOf(workerToken)), 'worker');
  t.is(b.security.roleForSecret(secretOf(managerToken)), 'manager');
});

test('a manager never goes back to a state older than one it already wrote: a queued watch event of an earlier revision does not undo its own write', async (t) => {
  const { a, b } = await twoManagers(t, new MemoryStore());
  // b writes first; a's watch has that event queued (delivery is on a later turn) when a writes on top of it.
  const workerToken = await b.security.rotateToken('worker');
  const managerToken = await a.security.rotateToken('manager');
  const seen: Array<string | undefined> = [];
  a.security.onChange(() => seen.push(a.security.roleForSecret(secretOf(managerToken))));
  t.is(a.security.roleForSecret(secretOf(managerToken)), 'manager');
  // The memory store delivers watch events on the next turns of the event loop; 100 ms is ample.
  await sleep(100);
  // a's own write was read on top of b's, so it already holds b's token: the queued events are older and change nothing.
  t.is(a.security.roleForSecret(secretOf(workerToken)), 'worker', "a holds b's rotation, taken in with its own write");
  t.deepEqual(
    seen.filter((role) => role !== 'manager'),
    [],
    `every change a reported after its own rotation returned must still accept a's new manager token; a saw ${JSON.stringify(seen)}`,
  );
  t.is(a.security.roleForSecret(secretOf(managerToken)), 'manager');
});

test('a certificate recorded while its node is being revoked is not lost: it ends revoked or still on record', async (t) => {
  const { a, b } = await twoManagers(t, new MemoryStore());
  const future = new Date(Date.now() + HOUR);
  const old = randomSerial();
  await a.security.recordIssued('node-1', old, future, 'digest');
  // A renewal through manager b records its certificate while manager a removes the node.
  const renewed = randomSerial();
  const [revoked] = await Promise.all([a.security.revokeNode('node-1', 'node removed'), b.security.recordIssued('node-1', renewed, future, 'digest')]);
  t.true(revoked.includes(old));
  const onRecord = (await a.security.issuedTo('node-1')).map((r) => r.serial);
  t.true(
    a.security.isRevoked(renewed) || onRecord.includes(renewed),
    `the renewed certificate ${renewed} is neither revoked (revokeNode returned ${JSON.stringify(revoked)}) nor on record (${JSON.stringify(onRecord)}): nothing can revoke it any more`,
  );
});
