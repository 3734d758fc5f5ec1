// Admission levels (issue 15) through the real API server over real mutual TLS on 127.0.0.1, with
// certificates the test CA issues through real CSRs, on a memory store: an operator refused
// privileged features with the field and level named (dry run alike, nothing half-applied); a
// restricted stack refusing a root user, a writable rootfs and a missing userns, and keeping its
// level; an admin changing the cluster default with `tsctl cluster update`, which an operator may
// not (PERMISSION_DENIED), both audited. No cluster, no containers: the images and logs the server
// is built with are never used here.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';

import { connect, type ApiCallError, type ApiClient } from '../../cli/client.js';
import { STACK_ADMISSION_LABEL } from '../../common/resources/admission-levels.js';
import type { UserRole } from '../../common/identity/certificate.js';
import type { AuditRecord } from '../../control-plane/api/server.js';
import { CLUSTER_SETTINGS_KEY } from '../../control-plane/api/admission-store.js';
import type { MemoryStore } from '../../control-plane/store/memory-store.js';
import { serveMtlsApi } from '../helpers/mtls-api.js';
import type { TestPki } from '../helpers/test-pki.js';
import { tsctlWithContext as tsctl, writeUserContext } from '../helpers/tsctl-context.js';
import { apiClient, unary } from '../security/grpc-calls.js';
import type { ClusterInfoResponse__Output } from '../../proto/gen/tessera/api/v1/ClusterInfoResponse.js';

interface Fixture {
  pki: TestPki;
  dir: string;
  address: string;
  audit: AuditRecord[];
  store: MemoryStore;
  client(name: string, role: UserRole): Promise<ApiClient>;
  context(name: string, role: UserRole): Promise<string>;
}

async function startFixture(t: { teardown(fn: () => Promise<void> | void): void }): Promise<Fixture> {
  const audit: AuditRecord[] = [];
  const { pki, dir, store, address } = await serveMtlsApi(t, { prefix: 'tessera-admission-api-', deps: () => ({ audit: (record) => audit.push(record) }) });
  const clients: ApiClient[] = [];
  t.teardown(() => {
    for (const c of clients) c.close();
  });
  return {
    pki,
    dir,
    address,
    audit,
    store,
    client: async (name, role) => {
      const client = connect(address, await pki.user(name, role));
      clients.push(client);
      return client;
    },
    context: (name, role) => writeUserContext({ pki, dir, address }, name, role),
  };
}

function service(stack: string, name: string, spec: Record<string, unknown>, labels?: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name, stack, ...(labels ? { labels } : {}) },
    spec: { image: 'busybox', replicas: 0, ...spec },
  });
}

const HARDENED = { userns: 'auto', user: '1000', readOnly: true, capDrop: ['ALL'] };
const RESTRICTED = { [STACK_ADMISSION_LABEL]: 'restricted' };

/** The refusal of `call`: its gRPC code and message (the call must fail). */
async function refusal(t: { throwsAsync: (p: Promise<unknown>) => Promise<unknown> }, call: Promise<unknown>): Promise<{ code: grpc.status; message: string }> {
  const error = (await t.throwsAsync(call)) as ApiCallError;
  return { code: error.code, message: error.message };
}

/** ClusterInfo as a user of `role` sees it (tsctl has no command for it; the raw client asks). */
async function clusterInfo(f: Fixture, name: string, role: UserRole): Promise<ClusterInfoResponse__Output> {
  const client = apiClient(f.address, await f.pki.user(name, role));
  try {
    return await unary<ClusterInfoResponse__Output>((options, callback) => client.clusterInfo({}, options, callback));
  } finally {
    client.close();
  }
}

async function serviceNames(client: ApiClient, stack: string): Promise<string[]> {
  return (await client.list({ kind: 'Service', stack })).objectsJson.map((json) => (JSON.parse(json) as { metadata: { name: string } }).metadata.name).sort();
}

test('an operator is refused privileged features, naming field and level; a dry run refuses the same; nothing of the apply is written', async (t) => {
  const f = await startFixture(t);
  const operator = await f.client('olive', 'operator');
  const objects = [
    service('shop', 'harmless', {}),
    service('shop', 'web', { capAdd: ['NET_ADMIN'], mounts: [{ type: 'bind', source: '/etc', target: '/host-etc' }], sysctls: { 'net.core.somaxconn': '1' } }),
  ];
  for (const dryRun of [true, false]) {
    const refused = await refusal(t, operator.apply({ objectsJson: objects, dryRun }));
    t.is(refused.code, grpc.status.PERMISSION_DENIED, refused.message);
    t.regex(refused.message, /nothing applied; 3 field\(s\) not permitted/);
    t.regex(refused.message, /Service shop\/web: spec\.mounts\[0\]: a bind mount of host path \/etc is not allowed for operators \(admission level baseline: /);
    t.regex(refused.message, /Service shop\/web: spec\.capAdd\[0\]: NET_ADMIN is not allowed for operators \(admission level baseline: /);
    t.regex(refused.message, /Service shop\/web: spec\.sysctls\["net\.core\.somaxconn"\]: not allowed for operators \(admission level baseline: /);
  }
  t.deepEqual(await serviceNames(operator, 'shop'), []);
  const volume = JSON.stringify({
    apiVersion: 'tessera/v1',
    kind: 'Volume',
    metadata: { name: 'host', stack: 'shop' },
    spec: { driverOpts: { type: 'none', o: 'bind', device: '/' } },
  });
  t.regex(
    (await refusal(t, operator.apply({ objectsJson: [volume] }))).message,
    /Volume shop\/host: spec\.driverOpts\.o: bind bind-mounts a path of the node \(\/\), which is not allowed for operators \(admission level baseline\)/,
  );
  // The operator may not ask for privileged either.
  const privileged = await refusal(t, operator.apply({ objectsJson: [service('shop', 'web', {}, { [STACK_ADMISSION_LABEL]: 'privileged' })] }));
  t.is(privileged.code, grpc.status.PERMISSION_DENIED);
  t.regex(privileged.message, /only an admin may set stack shop to admission level privileged/);
  // An admin, with the cluster default untouched (privileged), applies what it could before levels existed.
  const admin = await f.client('ada', 'admin');
  t.is((await admin.apply({ objectsJson: objects })).results.length, 2);
});

test('a restricted stack refuses a root user, a writable rootfs and a missing userns, and keeps its level for later applies', async (t) => {
  const f = await startFixture(t);
  const operator = await f.client('olive', 'operator');
  const refused = await refusal(
    t,
    operator.apply({ objectsJson: [service('vault', 'db', { capDrop: ['ALL'], user: 'root' }, RESTRICTED), service('vault', 'ok', HARDENED)] }),
  );
  t.is(refused.code, grpc.status.PERMISSION_DENIED, refused.message);
  t.regex(refused.message, /Service vault\/db: spec\.userns: \(none\) is not allowed in stack vault \(admission level restricted: set userns: auto/);
  t.regex(refused.message, /Service vault\/db: spec\.user: root is not allowed in stack vault \(admission level restricted: /);
  t.regex(refused.message, /Service vault\/db: spec\.readOnly: \(none\) is not allowed in stack vault \(admission level restricted: set readOnly: true/);
  t.notRegex(refused.message, /vault\/ok/);
  t.deepEqual(await serviceNames(operator, 'vault'), [], 'the hardened service in the same request was not applied either');

  // Hardened: applied, and the stack's level is stored with it.
  const applied = await operator.apply({ objectsJson: [service('vault', 'db', HARDENED, RESTRICTED)] });
  t.is(applied.results[0]?.action, 'created');
  // A later apply without the label is still held to restricted (a dry run says so too).
  for (const dryRun of [true, false]) {
    const unlabelled = await refusal(t, operator.apply({ objectsJson: [service('vault', 'cache', { ...HARDENED, readOnly: false })], dryRun }));
    t.regex(unlabelled.message, /Service vault\/cache: spec\.readOnly: false is not allowed in stack vault \(admission level restricted/);
  }
  // An operator may not loosen it; an admin may.
  const loosen = await refusal(t, operator.apply({ objectsJson: [service('vault', 'cache', {}, { [STACK_ADMISSION_LABEL]: 'baseline' })] }));
  t.is(loosen.code, grpc.status.PERMISSION_DENIED);
  t.regex(loosen.message, /only an admin may loosen stack vault from admission level restricted to baseline/);
  const admin = await f.client('ada', 'admin');
  await admin.apply({ objectsJson: [service('vault', 'cache', {}, { [STACK_ADMISSION_LABEL]: 'baseline' })] });
  t.is((await operator.apply({ objectsJson: [service('vault', 'cache2', {})] })).results[0]?.action, 'created');
  t.deepEqual(await serviceNames(operator, 'vault'), ['cache', 'cache2', 'db']);
});

test('an admin changes the cluster default with tsctl cluster update; an operator may not (PERMISSION_DENIED); both are audited', async (t) => {
  const f = await startFixture(t);
  const adminContext = await f.context('ada', 'admin');
  const operatorContext = await f.context('olive', 'operator');
  const admin = await f.client('ada', 'admin');
  const operator = await f.client('olive', 'operator');
  t.is((await clusterInfo(f, 'vera', 'viewer')).defaultAdmission, 'privileged');

  const denied = await tsctl(operatorContext, ['cluster', 'update', '--default-admission', 'privileged']);
  t.is(denied.code, 1, denied.stdout);
  t.regex(denied.stderr, /permission denied: user:olive \(operator\) may not call UpdateCluster/);
  const deniedRpc = await refusal(t, operator.updateCluster({ defaultAdmission: 'privileged' }));
  t.is(deniedRpc.code, grpc.status.PERMISSION_DENIED);

  const changed = await tsctl(adminContext, ['cluster', 'update', '--default-admission', 'restricted']);
  t.is(changed.code, 0, changed.stderr);
  t.is(changed.stdout, 'default admission level: restricted\n');
  t.is((await clusterInfo(f, 'vera', 'viewer')).defaultAdmission, 'restricted');
  t.regex((await tsctl(adminContext, ['cluster', 'update', '--default-admission', 'lax'])).stderr, /expected privileged, baseline, restricted, got "lax"/);

  // The default holds admins too: a stricter cluster says so by name.
  const held = await refusal(t, admin.apply({ objectsJson: [service('shop', 'web', { capAdd: ['SYS_ADMIN'] })] }));
  t.regex(held.message, /Service shop\/web: spec\.capAdd\[0\]: SYS_ADMIN is not allowed by the cluster default \(admission level restricted: /);
  t.regex(held.message, /spec\.userns: \(none\) is not allowed by the cluster default/);
  t.is((await operator.apply({ objectsJson: [service('shop', 'web', HARDENED)] })).results[0]?.action, 'created');

  // Back to baseline: the operator's floor still holds, the admin's hardened-less service passes.
  await admin.updateCluster({ defaultAdmission: 'baseline' });
  t.is((await admin.apply({ objectsJson: [service('shop', 'plain', {})] })).results[0]?.action, 'created');

  const updates = f.audit.filter((r) => r.method === 'UpdateCluster');
  t.deepEqual(
    updates.map((r) => [r.caller.kind === 'user' ? r.caller.name : r.caller.kind, r.error === undefined ? 'ok' : (r.error as { code?: number }).code]),
    // "lax" was refused by tsctl itself, before any call.
    [
      ['olive', grpc.status.PERMISSION_DENIED],
      ['olive', grpc.status.PERMISSION_DENIED],
      ['ada', 'ok'],
      ['ada', 'ok'],
    ],
  );
});

test('a cluster settings value that does not parse refuses every Apply (fail closed) until an admin sets the default again', async (t) => {
  const f = await startFixture(t);
  const admin = await f.client('ada', 'admin');
  await f.store.put(CLUSTER_SETTINGS_KEY, '{"defaultAdmission":"lax"}');
  const refused = await refusal(t, admin.apply({ objectsJson: [service('shop', 'web', {})] }));
  t.regex(refused.message, /\/tessera\/settings\/cluster: defaultAdmission is not an admission level/);
  t.regex((await clusterInfo(f, 'vera', 'viewer')).defaultAdmission, /^unreadable \(/);
  t.is((await admin.updateCluster({ defaultAdmission: 'baseline' })).defaultAdmission, 'baseline');
  t.is((await admin.apply({ objectsJson: [service('shop', 'web', {})] })).results[0]?.action, 'created');
});
