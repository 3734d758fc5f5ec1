// The API's authorization policy (issue 14): every method against every kind of caller, the
// manager node's self-only member changes, and what a viewer sees of Secrets and Configs. Pure
// functions; the only I/O is reading proto/api.proto to hold API_METHODS to the service.
import { readFileSync } from 'node:fs';

import test from 'ava';

import { API_METHODS, authorizeMemberChange, authorizeMethod, isMutating, redactFor, type ApiMethod } from '../../control-plane/auth/authorization.js';
import { describeCaller, type Caller } from '../../control-plane/auth/caller.js';
import { REDACTED, redactObject } from '../../control-plane/api/stack-objects.js';

const root: Caller = { kind: 'local-root' };
const admin: Caller = { kind: 'user', name: 'alice', role: 'admin', serial: '01' };
const operator: Caller = { kind: 'user', name: 'carol', role: 'operator', serial: '02' };
const viewer: Caller = { kind: 'user', name: 'bob', role: 'viewer', serial: '03' };
const manager: Caller = { kind: 'node', nodeId: 'node-2', role: 'manager', serial: '04' };
const worker: Caller = { kind: 'node', nodeId: 'node-3', role: 'worker', serial: '05' };

const READ: ApiMethod[] = ['Get', 'List', 'Watch', 'Logs', 'ImageList', 'ClusterInfo', 'ClusterMembers', 'Events', 'Top'];
const WORKLOAD: ApiMethod[] = ['Apply', 'Delete', 'Scale', 'ImagePull', 'ImagePullProgress', 'ImageLoad', 'ImageSave', 'ImagePush', 'Exec', 'BuildImage'];

// Written out rather than derived from the implementation's table, so the test states the matrix.
const MATRIX: Array<{ caller: Caller; allowed: readonly ApiMethod[]; why?: string }> = [
  { caller: root, allowed: API_METHODS },
  { caller: admin, allowed: API_METHODS },
  { caller: operator, allowed: [...READ, ...WORKLOAD], why: 'cluster administration is for admins only' },
  { caller: viewer, allowed: READ, why: 'viewers have read-only access' },
  {
    caller: manager,
    allowed: ['ClusterInfo', 'ClusterMemberChange', 'Logs', 'Top', 'Exec'],
    why: 'may call only ClusterInfo and ClusterMemberChange (to join itself) and Logs, Top and Exec',
  },
  { caller: worker, allowed: [], why: 'has no access to the API' },
];

test('API_METHODS lists exactly the rpcs of service Tessera in proto/api.proto', (t) => {
  const proto = readFileSync(new URL('../../proto/api.proto', import.meta.url), 'utf8');
  const service = /service Tessera \{([\s\S]*?)\n\}/.exec(proto)?.[1];
  if (service === undefined) return t.fail('service Tessera not found in proto/api.proto');
  const rpcs = [...service.matchAll(/^\s*rpc (\w+)\(/gm)].map((m) => m[1] ?? '');
  const byName = (a: string, b: string) => a.localeCompare(b);
  t.deepEqual([...API_METHODS].sort(byName), rpcs.sort(byName));
  t.is(new Set(API_METHODS).size, API_METHODS.length);
});

for (const { caller, allowed, why } of MATRIX) {
  for (const method of API_METHODS) {
    const expected = allowed.includes(method);
    test(`${describeCaller(caller)} ${expected ? 'may' : 'may not'} call ${method}`, (t) => {
      const result = authorizeMethod(caller, method);
      if (expected) return t.deepEqual(result, { allowed: true });
      if (result.allowed) return t.fail(`${describeCaller(caller)} was allowed ${method}`);
      t.true(result.reason.startsWith(`${describeCaller(caller)} may not call ${method}: `), result.reason);
      if (why !== undefined) t.true(result.reason.includes(why), result.reason);
    });
  }
}

test("a viewer's refusal reads as the issue asks", (t) => {
  t.deepEqual(authorizeMethod(viewer, 'Apply'), { allowed: false, reason: 'user:bob (viewer) may not call Apply: viewers have read-only access' });
});

test('isMutating names the calls the audit log records', (t) => {
  const mutating = API_METHODS.filter((m) => isMutating(m));
  t.deepEqual(mutating.sort(), [
    'Apply',
    'BuildImage',
    'ClusterMemberChange',
    'Delete',
    'Exec',
    'ImageLoad',
    'ImagePrune',
    'ImagePull',
    'ImagePullProgress',
    'ImagePush',
    'ImageRemove',
    'IssueUserCertificate',
    'JoinToken',
    'RemoveNode',
    'RotateCa',
    'Scale',
    'UpdateCluster',
    'UpdateNode',
  ]);
  for (const method of READ) t.false(isMutating(method), method);
});

test('a manager node may add and promote only itself', (t) => {
  t.deepEqual(authorizeMemberChange(manager, 'add', 'node-2'), { allowed: true });
  t.deepEqual(authorizeMemberChange(manager, 'promote', 'node-2'), { allowed: true });
  for (const [action, name] of [
    ['add', 'node-9'],
    ['promote', 'node-9'],
    ['remove', 'node-2'],
    ['remove', 'node-9'],
    ['ADD', 'node-2'],
  ] as const) {
    const result = authorizeMemberChange(manager, action, name);
    if (result.allowed) return t.fail(`manager was allowed to ${action} ${name}`);
    t.true(result.reason.startsWith('node:node-2 (manager) may not call ClusterMemberChange: '), result.reason);
    t.true(result.reason.includes(JSON.stringify(name)) && result.reason.includes('only add or promote itself'), result.reason);
  }
});

test('admins and local root may make any member change; users below admin and workers none', (t) => {
  for (const caller of [root, admin]) {
    for (const action of ['add', 'promote', 'remove']) t.deepEqual(authorizeMemberChange(caller, action, 'node-9'), { allowed: true });
  }
  for (const caller of [operator, viewer, worker]) {
    const result = authorizeMemberChange(caller, 'add', caller.kind === 'node' ? caller.nodeId : 'node-9');
    if (result.allowed) return t.fail(`${describeCaller(caller)} was allowed a member change`);
    t.true(result.reason.startsWith(`${describeCaller(caller)} may not call ClusterMemberChange: `), result.reason);
  }
});

const b64 = (text: string) => Buffer.from(text).toString('base64');
const stored = (kind: string, data: string) =>
  JSON.stringify({ apiVersion: 'tessera/v1', kind, metadata: { name: 'conf', stack: 'app', labels: { a: 'b' } }, spec: { data }, status: { sizeBytes: 4 } });

test('a viewer gets no Config data, in the shape Secrets are redacted for everyone', (t) => {
  const config = stored('Config', b64('a=1\n'));
  const shown = JSON.parse(redactFor(viewer, 'Config', config)) as Record<string, unknown>;
  t.deepEqual(shown['spec'], { data: REDACTED });
  t.false(JSON.stringify(shown).includes(b64('a=1\n')));
  const secretShape = redactObject(JSON.parse(stored('Secret', b64('a=1\n'))) as { kind: string });
  t.deepEqual(shown, { ...secretShape, kind: 'Config' });
});

test('a viewer gets no Secret data either, however it was stored', (t) => {
  const shown = JSON.parse(redactFor(viewer, 'Secret', stored('Secret', b64('hunter2')))) as { spec: unknown };
  t.deepEqual(shown.spec, { data: REDACTED });
});

test('other callers, and other kinds, are returned as given', (t) => {
  const config = stored('Config', b64('a=1\n'));
  for (const caller of [root, admin, operator, manager, worker]) t.is(redactFor(caller, 'Config', config), config);
  const service = JSON.stringify({ kind: 'Service', metadata: { name: 'web' }, spec: { image: 'busybox', env: { data: 'x' } } });
  t.is(redactFor(viewer, 'Service', service), service);
  t.is(redactFor(viewer, 'Task', 'not json'), 'not json');
});

test("a viewer's redaction does not trust the kind it is given, and fails closed on a corrupt Config", (t) => {
  const config = stored('Config', b64('a=1\n'));
  t.deepEqual((JSON.parse(redactFor(viewer, 'Service', config)) as { spec: unknown }).spec, { data: REDACTED });
  const corrupt = `{"kind":"Config","spec":{"data":"${b64('a=1\n')}"`;
  t.deepEqual(JSON.parse(redactFor(viewer, 'Config', corrupt)), { kind: 'Config', spec: { data: REDACTED } });
  t.deepEqual(JSON.parse(redactFor(viewer, 'Config', '["secret"]')), { kind: 'Config', spec: { data: REDACTED } });
});
