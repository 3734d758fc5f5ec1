// Users against a real 3-node cluster: certificates the cluster issues (IssueUserCertificate on the
// root socket; key and CSR made here), used over mutual TLS on the manager's port. An operator
// deploys but cannot reach into the node (admission) or administer the cluster; a viewer reads
// but changes nothing and sees no Config data. Then the audit log: every change tried here, refused
// or not, is recorded with who and the result, and none of the secret material.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

import type { Config, Secret, Service, Volume } from '../../common/resources/types.js';
import { REDACTED } from '../../control-plane/api/stack-objects.js';
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import type { TesseraClient } from '../../proto/gen/tessera/api/v1/Tessera.js';
import type { ApplyResponse__Output } from '../../proto/gen/tessera/api/v1/ApplyResponse.js';
import type { ClusterInfoResponse__Output } from '../../proto/gen/tessera/api/v1/ClusterInfoResponse.js';
import type { GetResponse__Output } from '../../proto/gen/tessera/api/v1/GetResponse.js';
import type { ListResponse__Output } from '../../proto/gen/tessera/api/v1/ListResponse.js';
import type { WatchEvent__Output } from '../../proto/gen/tessera/api/v1/WatchEvent.js';
import { apiClient, refusalOf, unary, type Refusal } from './grpc-calls.js';
import { issueUserIdentity, type Identity } from './identities.js';
import { auditEntries, startSecurityCluster, storeFingerprint, type SecurityCluster } from './security-cluster.js';

const STACK = 'sec';
/** base64 of the texts below; neither may ever appear in the audit log. */
const CONFIG_TEXT = 'db-password-in-a-config=correct-horse-battery-staple';
const SECRET_TEXT = 'the-secret-value-9f8e7d';

let cluster: SecurityCluster;
let operator: { identity: Identity; api: TesseraClient };
let viewer: { identity: Identity; api: TesseraClient };
const clients: TesseraClient[] = [];

function object(kind: 'Service', name: string, spec: Partial<Service['spec']>): Service;
function object(kind: 'Volume', name: string, spec: Volume['spec']): Volume;
function object(kind: 'Config' | 'Secret', name: string, spec: { data: string }): Config | Secret;
function object(kind: string, name: string, spec: object): object {
  const base = { apiVersion: 'tessera/v1', kind, metadata: { name, stack: STACK } };
  return kind === 'Service' ? { ...base, spec: { image: 'busybox', replicas: 0, ...spec } } : { ...base, spec };
}

function apply(client: TesseraClient, ...objects: object[]): Promise<ApplyResponse__Output> {
  return unary((options, callback) => client.apply({ objectsJson: objects.map((o) => JSON.stringify(o)), dryRun: false, pruneStacks: [] }, options, callback));
}

function list(client: TesseraClient, kind: string): Promise<ListResponse__Output> {
  return unary((options, callback) => client.list({ kind, stack: STACK, allStacks: false }, options, callback));
}

function base64(text: string): string {
  return Buffer.from(text).toString('base64');
}

/** A server stream as one promise: resolved at its end, rejected with its error. */
function streamEnd(stream: grpc.ClientReadableStream<unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on('data', () => undefined);
    stream.on('end', () => resolve());
    stream.on('error', reject);
  });
}

async function user(name: string, role: 'operator' | 'viewer'): Promise<{ identity: Identity; api: TesseraClient }> {
  const identity = await issueUserIdentity(cluster.root, name, role);
  const api = apiClient(await cluster.tlsAddress(), identity.security);
  clients.push(api);
  return { identity, api };
}

test.before(async () => {
  cluster = await startSecurityCluster({ slot: 1 });
  operator = await user('olive', 'operator');
  viewer = await user('vera', 'viewer');
  // Local root puts a Config and a Secret in the stack for the readers below.
  await apply(cluster.root, object('Config', 'app-config', { data: base64(CONFIG_TEXT) }), object('Secret', 'app-secret', { data: base64(SECRET_TEXT) }));
});

test.after.always(async () => {
  for (const client of clients) client.close();
  await (cluster as SecurityCluster | undefined)?.destroy();
});

test.serial('7. an operator cannot add capabilities beyond the default set: refused naming the field, nothing applied', async (t) => {
  const before = await storeFingerprint(cluster.root);
  // With a harmless service in the same request: the apply is all or nothing.
  const refused = await refusalOf(
    'operator Apply with capAdd ALL',
    apply(operator.api, object('Service', 'harmless', {}), object('Service', 'cap-all', { capAdd: ['ALL'] })),
  );
  t.is(refused.codeName, 'PERMISSION_DENIED', refused.details);
  t.regex(refused.details, /Service sec\/cap-all: spec\.capAdd\[0\]: ALL is not allowed for operators/);
  const sysAdmin = await refusalOf('operator Apply with capAdd SYS_ADMIN', apply(operator.api, object('Service', 'cap-admin', { capAdd: ['SYS_ADMIN'] })));
  t.regex(sysAdmin.details, /spec\.capAdd\[0\]: SYS_ADMIN is not allowed for operators/);
  t.deepEqual(await storeFingerprint(cluster.root), before);
});

test.serial('7. an operator cannot mount a host path, directly or through a bind Volume: refused naming the field', async (t) => {
  const before = await storeFingerprint(cluster.root);
  const bind = await refusalOf(
    'operator Apply with a bind mount of /',
    apply(operator.api, object('Service', 'host-root', { mounts: [{ type: 'bind', source: '/', target: '/host' }] })),
  );
  t.is(bind.codeName, 'PERMISSION_DENIED', bind.details);
  t.regex(bind.details, /Service sec\/host-root: spec\.mounts\[0\]: a bind mount of host path \/ is not allowed for operators/);
  const volume = await refusalOf(
    'operator Apply of a Volume that bind-mounts /etc',
    apply(operator.api, object('Volume', 'host-etc', { driver: 'local', driverOpts: { type: 'none', o: 'bind', device: '/etc' } })),
  );
  t.is(volume.codeName, 'PERMISSION_DENIED', volume.details);
  t.regex(volume.details, /Volume sec\/host-etc: spec\.driverOpts\.o: bind bind-mounts a path of the node \(\/etc\)/);
  t.deepEqual(await storeFingerprint(cluster.root), before);
});

test.serial('7. an operator applies a plain service, and cannot administer the cluster', async (t) => {
  const applied = await apply(operator.api, object('Service', 'plain', { command: ['sleep', '1000'] }));
  t.is(applied.results[0]?.action, 'created');
  t.is((await list(cluster.root, 'Service')).objectsJson.filter((json) => (JSON.parse(json) as Service).metadata.name === 'plain').length, 1);
  const keys = await generateKeyPair();
  const csrPem = await createCsr(keys, { commonNameHint: 'olive' });
  const refusals: Array<[string, Promise<unknown>]> = [
    [
      'IssueUserCertificate (an admin certificate for itself)',
      unary((o, cb) => operator.api.issueUserCertificate({ name: 'olive', role: 'admin', csrPem, validityMs: 0 }, o, cb)),
    ],
    ['JoinToken', unary((o, cb) => operator.api.joinToken({ role: 'manager', rotate: true }, o, cb))],
    ['RemoveNode', unary((o, cb) => operator.api.removeNode({ name: 'node-2', force: true }, o, cb))],
    ['RotateCa', unary((o, cb) => operator.api.rotateCa({ statusOnly: false }, o, cb))],
    ['AuditLog', unary((o, cb) => operator.api.auditLog({ limit: 10, caller: '' }, o, cb))],
  ];
  for (const [what, call] of refusals) {
    const refused = await refusalOf(`operator ${what}`, call);
    t.is(refused.codeName, 'PERMISSION_DENIED', `${what}: ${refused.details}`);
    t.regex(refused.details, /user:olive \(operator\) may not call/, what);
  }
});

test.serial('8. a viewer changes nothing: Apply, Delete, Scale, JoinToken, ImagePush are PERMISSION_DENIED', async (t) => {
  const before = await storeFingerprint(cluster.root);
  const attempts: Array<[string, Promise<unknown>]> = [
    ['Apply', apply(viewer.api, object('Service', 'by-viewer', {}))],
    ['Delete', unary((o, cb) => viewer.api.delete({ refs: [{ kind: 'Service', stack: STACK, name: 'plain' }] }, o, cb))],
    ['Scale', unary((o, cb) => viewer.api.scale({ ref: { kind: 'Service', stack: STACK, name: 'plain' }, replicas: 5 }, o, cb))],
    ['JoinToken', unary((o, cb) => viewer.api.joinToken({ role: 'worker', rotate: false }, o, cb))],
    // A server stream: refused before the node's store or any registry is touched.
    ['ImagePush', streamEnd(viewer.api.imagePush({ reference: 'busybox', target: '127.0.0.1:5000/by-viewer/busybox:v1' }, { deadline: Date.now() + 10_000 }))],
  ];
  const refusals: Refusal[] = [];
  for (const [what, call] of attempts) refusals.push(await refusalOf(`viewer ${what}`, call));
  for (const [i, refused] of refusals.entries()) {
    const what = attempts[i]![0];
    t.is(refused.codeName, 'PERMISSION_DENIED', `${what}: ${refused.details}`);
    t.regex(refused.details, new RegExp(`user:vera \\(viewer\\) may not call ${what}`), what);
  }
  t.regex(refusals[0]!.details, /viewers have read-only access/);
  t.deepEqual(await storeFingerprint(cluster.root), before);
});

test.serial('8. a viewer lists and gets, but sees no Config or Secret data (List, Get, Watch); an operator sees the Config', async (t) => {
  const nodes = await unary<ListResponse__Output>((o, cb) => viewer.api.list({ kind: 'Node', allStacks: true }, o, cb));
  t.is(nodes.objectsJson.length, 3);
  t.true((await list(viewer.api, 'Service')).objectsJson.length >= 1);

  const viewerConfig = JSON.parse((await list(viewer.api, 'Config')).objectsJson[0]!) as Config;
  t.is(viewerConfig.metadata.name, 'app-config');
  t.is(viewerConfig.spec.data, REDACTED);
  const got = await unary<GetResponse__Output>((o, cb) => viewer.api.get({ ref: { kind: 'Config', stack: STACK, name: 'app-config' } }, o, cb));
  t.is((JSON.parse(got.objectJson) as Config).spec.data, REDACTED);
  t.is((JSON.parse((await list(viewer.api, 'Secret')).objectsJson[0]!) as Secret).spec.data, REDACTED);
  // The control: the redaction is the viewer's, an operator reads the Config (Secrets stay redacted for all).
  t.is((JSON.parse((await list(operator.api, 'Config')).objectsJson[0]!) as Config).spec.data, base64(CONFIG_TEXT));

  // A Config created and deleted while the viewer watches: neither event carries its data.
  const info = await unary<ClusterInfoResponse__Output>((o, cb) => cluster.root.clusterInfo({}, o, cb));
  const events: WatchEvent__Output[] = [];
  const watch = viewer.api.watch({ kind: 'Config', stack: STACK, allStacks: false, fromRevision: info.revision + 1 });
  const watchEnded = new Promise<void>((resolve) => {
    watch.on('data', (event: WatchEvent__Output) => events.push(event));
    watch.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) t.fail(`viewer watch failed: ${err.message}`);
      resolve();
    });
    watch.on('end', () => resolve());
  });
  await apply(cluster.root, object('Config', 'watched', { data: base64(CONFIG_TEXT) }));
  await unary((o, cb) => cluster.root.delete({ refs: [{ kind: 'Config', stack: STACK, name: 'watched' }] }, o, cb));
  const deadline = Date.now() + 10_000;
  while (events.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  watch.cancel();
  await watchEnded;
  t.deepEqual(
    events.map((e) => e.type),
    ['added', 'deleted'],
  );
  for (const event of events) {
    t.false(event.objectJson.includes(base64(CONFIG_TEXT)), `${event.type} event carries no data`);
    t.is((JSON.parse(event.objectJson) as Config).spec.data, REDACTED, event.type);
  }
});

test.serial('audit: every change tried here is in the audit log with the caller, its certificate serial and the result; no secret material', async (t) => {
  const entries = await auditEntries(cluster.root);
  const find = (caller: string, method: string, name?: string) =>
    entries.filter((e) => e.entry.caller === caller && e.entry.method === method && (name === undefined || e.entry.objects.some((o) => o.name === name)));
  const olive = 'user:olive (operator)';
  const vera = 'user:vera (viewer)';

  const capAll = find(olive, 'Apply', 'cap-all')[0]?.entry;
  t.like(capAll, { certificateSerial: operator.identity.subject.serial, result: { ok: false, code: 'PERMISSION_DENIED' } });
  t.like(find(olive, 'Apply', 'host-root')[0]?.entry, { result: { ok: false, code: 'PERMISSION_DENIED' } });
  t.like(find(olive, 'Apply', 'plain')[0]?.entry, { result: { ok: true } });
  for (const method of ['IssueUserCertificate', 'JoinToken', 'RemoveNode', 'RotateCa']) {
    t.like(find(olive, method)[0]?.entry, { result: { ok: false, code: 'PERMISSION_DENIED' } }, `operator ${method}`);
  }
  for (const method of ['Apply', 'Delete', 'Scale', 'JoinToken', 'ImagePush']) {
    t.like(
      find(vera, method)[0]?.entry,
      { certificateSerial: viewer.identity.subject.serial, result: { ok: false, code: 'PERMISSION_DENIED' } },
      `viewer ${method}`,
    );
  }
  t.is(find('local:root', 'IssueUserCertificate').length, 2, 'both user certificates were issued by local root, and audited');
  t.like(find('local:root', 'Apply', 'app-secret')[0]?.entry, { result: { ok: true } });
  // Reads are not changes: the viewer's List is not in the log.
  t.is(find(vera, 'List').length, 0);

  const forbidden = [
    CONFIG_TEXT,
    base64(CONFIG_TEXT),
    SECRET_TEXT,
    base64(SECRET_TEXT),
    'BEGIN CERTIFICATE',
    'BEGIN CERTIFICATE REQUEST',
    'PRIVATE KEY',
    'TSJT-',
  ];
  for (const { line } of entries) {
    for (const text of forbidden) t.false(line.includes(text), `an audit line holds ${text}: ${line.slice(0, 200)}`);
  }
  const file = await stat(join(cluster.node('node-1').dataRoot, 'audit', 'audit.log'));
  t.is(file.mode & 0o777, 0o600, 'the audit log file is readable by root only');
});
