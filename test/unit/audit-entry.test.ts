import test from 'ava';

import { API_METHODS, isMutating } from '../../control-plane/auth/authorization.js';

import { AUDITED_METHODS, auditEntry, describeRequest, MAX_AUDIT_MESSAGE_CHARS } from '../../control-plane/audit/audit-entry.js';

function manifest(kind: string, name: string, stack?: string, spec: object = {}): string {
  return JSON.stringify({ apiVersion: 'tessera/v1', kind, metadata: stack === undefined ? { name } : { name, stack }, spec });
}

/** An Apply request as grpc-js decodes it (camelCase fields, defaults filled in). */
function applyRequest(objectsJson: string[], pruneStacks: string[] = []): object {
  return { objectsJson, dryRun: false, pruneStacks };
}

const SECRET_DATA = Buffer.from('correct horse battery staple').toString('base64');

test('every mutating method of the API is audited, and no read-only one', (t) => {
  // The authorization policy says which methods change something; the audit log describes exactly those.
  t.deepEqual([...AUDITED_METHODS].sort(), API_METHODS.filter((m) => isMutating(m)).sort());
});

test('Apply lists kind, stack and name of each object, and the stacks it prunes', (t) => {
  const request = applyRequest([manifest('Service', 'web', 'shop'), manifest('Network', 'backend'), '{not json', '[1,2]', '{"kind":7}'], ['shop', '']);
  t.deepEqual(describeRequest('Apply', request).objects, [
    { kind: 'PruneStack', name: 'shop' },
    { kind: 'PruneStack', name: '(default stack)' },
    { kind: 'Service', stack: 'shop', name: 'web' },
    { kind: 'Network', name: 'backend' },
    { kind: '?', name: '<unparseable object 3>' },
    { kind: '?', name: '<unparseable object 4>' },
    { kind: '?', name: '?' },
  ]);
});

test('Apply with the proto field names (keepCase) is described too', (t) => {
  const request = { objects_json: [manifest('Volume', 'data')], dry_run: true, prune_stacks: [] };
  t.deepEqual(describeRequest('Apply', request).objects, [{ kind: 'Volume', name: 'data' }]);
});

test('Delete lists its refs; Scale its service', (t) => {
  const refs = [
    { kind: 'Service', stack: 'shop', name: 'web' },
    { kind: 'Secret', stack: '', name: 'token' },
  ];
  t.deepEqual(describeRequest('Delete', { refs }).objects, [
    { kind: 'Service', stack: 'shop', name: 'web' },
    { kind: 'Secret', name: 'token' },
  ]);
  t.deepEqual(describeRequest('Scale', { ref: { kind: 'Service', stack: '', name: 'api' }, replicas: 3 }).objects, [{ kind: 'Service', name: 'api' }]);
});

test('node, membership, token, user, CA and image methods name what they change', (t) => {
  const cases: Array<[string, object, object]> = [
    ['UpdateNode', { name: 'node-2', availability: 'drain', addLabels: { zone: 'a' }, removeLabels: [] }, { kind: 'Node', name: 'node-2' }],
    ['RemoveNode', { name: 'node-3', force: true }, { kind: 'Node', name: 'node-3' }],
    ['JoinToken', { role: 'manager', rotate: true }, { kind: 'JoinToken', name: 'manager' }],
    ['ClusterMemberChange', { action: 'add', name: 'm-4', address: '10.0.0.4:4243' }, { kind: 'ClusterMember', name: 'm-4' }],
    ['IssueUserCertificate', { name: 'alice', role: 'operator', csrPem: 'CSR', validityMs: 0 }, { kind: 'User', name: 'alice' }],
    ['RotateCa', {}, { kind: 'RootCA', name: 'cluster' }],
    ['ImagePull', { reference: 'docker.io/library/nginx:1.27' }, { kind: 'Image', name: 'docker.io/library/nginx:1.27' }],
    ['ImagePullProgress', { reference: 'alpine:3' }, { kind: 'Image', name: 'alpine:3' }],
    ['ImageRemove', { reference: 'sha256:0123456789ab' }, { kind: 'Image', name: 'sha256:0123456789ab' }],
    ['ImageLoad', {}, { kind: 'Image', name: '(uploaded archive)' }],
    ['ImagePrune', {}, { kind: 'Image', name: '(unused images)' }],
  ];
  for (const [method, request, object] of cases) t.deepEqual(describeRequest(method, request).objects, [object], method);
  // A push names the image and where it went; without a target, the image's own name.
  t.deepEqual(describeRequest('ImagePush', { reference: 'busybox', target: '127.0.0.1:5000/team/busybox:v1' }).objects, [
    { kind: 'Image', name: 'busybox' },
    { kind: 'PushTarget', name: '127.0.0.1:5000/team/busybox:v1' },
  ]);
  t.deepEqual(describeRequest('ImagePush', { reference: 'registry.example/app:v2', target: '' }).objects, [
    { kind: 'Image', name: 'registry.example/app:v2' },
    { kind: 'PushTarget', name: 'registry.example/app:v2' },
  ]);
});

test('a method is found by its gRPC path; a read-only method lists no objects', (t) => {
  t.deepEqual(describeRequest('/tessera.api.v1.Tessera/RemoveNode', { name: 'n1', force: false }).objects, [{ kind: 'Node', name: 'n1' }]);
  t.deepEqual(describeRequest('Get', { ref: { kind: 'Secret', stack: '', name: 'token' } }).objects, []);
});

test('a malformed request is described with ? rather than refused', (t) => {
  t.deepEqual(describeRequest('UpdateNode', { name: 42 }).objects, [{ kind: 'Node', name: '?' }]);
  t.deepEqual(describeRequest('Scale', null).objects, [{ kind: '?', name: '?' }]);
  t.deepEqual(describeRequest('Delete', { refs: 'web' }).objects, []);
  t.deepEqual(describeRequest('Apply', { objectsJson: [7] }).objects, [{ kind: '?', name: '<unparseable object 1>' }]);
});

test('at most 100 objects are listed, then how many more', (t) => {
  const many = Array.from({ length: 150 }, (_, i) => manifest('Config', `c${i}`));
  const applied = describeRequest('Apply', applyRequest(many)).objects;
  t.is(applied.length, 101);
  t.deepEqual(applied[99], { kind: 'Config', name: 'c99' });
  t.deepEqual(applied[100], { kind: '…', name: 'and 50 more' });

  const refs = Array.from({ length: 250 }, (_, i) => ({ kind: 'Service', stack: '', name: `s${i}` }));
  const deleted = describeRequest('Delete', { refs }).objects;
  t.is(deleted.length, 101);
  t.deepEqual(deleted[100], { kind: '…', name: 'and 150 more' });

  const pruneOnly = describeRequest('Apply', applyRequest([manifest('Service', 'web')], ['a', 'b'])).objects;
  t.is(pruneOnly.length, 3);
});

test('names and stacks are cut to 253 characters, without splitting a character', (t) => {
  const long = 'n'.repeat(300);
  const [object] = describeRequest('Apply', applyRequest([manifest('Service', long, long)])).objects;
  t.is(object?.name.length, 253);
  t.is(object?.stack?.length, 253);
  t.true(object?.name.endsWith('…'));
  // A pair of UTF-16 units straddling the cut is dropped whole.
  const emoji = `${'x'.repeat(251)}😀tail`;
  const cut = describeRequest('RemoveNode', { name: emoji }).objects[0]?.name ?? '';
  t.is(cut, `${'x'.repeat(251)}…`);
});

test("a Secret's data never appears in the entry, but changes its digest", (t) => {
  const request = applyRequest([manifest('Secret', 'db-password', 'shop', { data: SECRET_DATA })]);
  const entry = auditEntry({
    time: new Date('2026-01-02T03:04:05Z'),
    caller: { kind: 'user', name: 'alice', role: 'operator', serial: '0a1b' },
    method: 'Apply',
    request,
    result: { ok: true },
    manager: 'node-1',
  });
  const serialized = JSON.stringify(entry);
  t.false(serialized.includes(SECRET_DATA));
  t.false(serialized.includes('correct horse'));
  t.deepEqual(entry.objects, [{ kind: 'Secret', stack: 'shop', name: 'db-password' }]);
  t.regex(entry.digest, /^sha256:[0-9a-f]{64}$/);

  const otherData = applyRequest([manifest('Secret', 'db-password', 'shop', { data: Buffer.from('another secret').toString('base64') })]);
  t.not(describeRequest('Apply', otherData).digest, entry.digest);
  t.is(describeRequest('Apply', request).digest, entry.digest);
});

test('a CSR never appears in the entry, but changes its digest', (t) => {
  const csrPem = '-----BEGIN CERTIFICATE REQUEST-----\nMIIBszCCAVkCAQAw\n-----END CERTIFICATE REQUEST-----\n';
  const described = describeRequest('IssueUserCertificate', { name: 'bob', role: 'viewer', csrPem, validityMs: 0 });
  t.false(JSON.stringify(described).includes('MIIBszCCAVkCAQAw'));
  t.not(describeRequest('IssueUserCertificate', { name: 'bob', role: 'viewer', csrPem: `${csrPem} `, validityMs: 0 }).digest, described.digest);
});

test('the digest does not depend on the order of the request fields', (t) => {
  const a = describeRequest('UpdateNode', { name: 'n1', availability: 'pause', addLabels: { a: '1', b: '2' }, removeLabels: [] });
  const b = describeRequest('UpdateNode', { removeLabels: [], addLabels: { b: '2', a: '1' }, availability: 'pause', name: 'n1' });
  t.is(a.digest, b.digest);
  t.not(describeRequest('UpdateNode', { name: 'n1', availability: 'drain', addLabels: { a: '1', b: '2' }, removeLabels: [] }).digest, a.digest);
});

test('an entry names the caller and its certificate, and bounds a failure message', (t) => {
  const common = { time: new Date('2026-01-02T03:04:05.678Z'), method: '/tessera.api.v1.Tessera/Delete', request: { refs: [] }, manager: 'node-1' };
  const denied = auditEntry({
    ...common,
    caller: { kind: 'node', nodeId: 'node-7', role: 'worker', serial: 'ff01' },
    result: { ok: false, code: 'PERMISSION_DENIED', message: 'm'.repeat(2000) },
  });
  t.is(denied.time, '2026-01-02T03:04:05.678Z');
  t.is(denied.caller, 'node:node-7 (worker)');
  t.is(denied.certificateSerial, 'ff01');
  t.is(denied.method, 'Delete');
  t.is(denied.manager, 'node-1');
  t.true(!denied.result.ok && denied.result.code === 'PERMISSION_DENIED' && denied.result.message.length === MAX_AUDIT_MESSAGE_CHARS);

  const local = auditEntry({ ...common, caller: { kind: 'local-root' }, result: { ok: true } });
  t.is(local.caller, 'local:root');
  t.false('certificateSerial' in local);
  t.deepEqual(local.result, { ok: true });
});
