// Admission levels (issue 15): every rule at privileged, baseline and restricted, allowed cases
// included; how the level is decided from role, stack and cluster default; who may set or loosen
// a stack's level; the stored settings; and Compose's x-tessera extension. Fixtures pass the
// schema first, so they are objects the API server would accept from an admin.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { admissionProblems, type AdmissionObject } from '../../common/resources/admission.js';
import {
  changeStackLevel,
  decideLevel,
  declaredStackLevels,
  isAdmissionLevel,
  isStricter,
  STACK_ADMISSION_LABEL,
  type AdmissionLevel,
  type LevelDecision,
} from '../../common/resources/admission-levels.js';
import { parseClusterSettings, parseStackSettings, updateClusterSettingsText, updateStackSettingsText } from '../../common/resources/admission-settings.js';
import { validateStackObject } from '../../common/resources/schema.js';
import { loadCompose } from '../../cli/compose/load.js';
import { applyStackExtension, readStackExtension } from '../../cli/compose/stack-extension.js';
import { clusterUpdateRequest } from '../../cli/commands/cluster-update.js';
import type { StackObject } from '../../common/resources/types.js';

function object(kind: string, spec: Record<string, unknown>, name = 'web', labels?: Record<string, string>): AdmissionObject {
  const candidate = { apiVersion: 'tessera/v1', kind, metadata: { name, stack: 'shop', ...(labels ? { labels } : {}) }, spec };
  const result = validateStackObject(candidate);
  if (!result.ok) throw new Error(`fixture ${kind} ${name} does not pass the schema: ${JSON.stringify(result.issues)}`);
  return candidate;
}

/** A service that meets restricted: own user namespace, non-root, read-only rootfs, ALL dropped. */
const HARDENED = { userns: 'auto', user: '1000', readOnly: true, capDrop: ['ALL'] };
const service = (spec: Record<string, unknown>) => object('Service', { image: 'busybox', ...spec });
const at = (level: AdmissionLevel, source: LevelDecision['source'] = 'stack'): LevelDecision => ({ level, source, stack: 'shop' });
/** The fields refused, without the prose: what each rule is about. */
const fields = (o: AdmissionObject, level: AdmissionLevel) => admissionProblems(o, at(level)).map((p) => /^\w+ shop\/\w+: ([^:]+):/.exec(p)?.[1] ?? p);

// ---- the rules, level by level ----------------------------------------------------------------

const BASELINE_CASES: Array<[string, AdmissionObject, string[]]> = [
  ['a host bind mount', service({ ...HARDENED, mounts: [{ type: 'bind', source: '/etc', target: '/e' }] }), ['spec.mounts[0]']],
  ['a capability beyond the defaults', service({ ...HARDENED, capAdd: ['SYS_ADMIN'] }), ['spec.capAdd[0]']],
  ['a sysctl outside the safe list', service({ ...HARDENED, sysctls: { 'net.core.somaxconn': '1024' } }), ['spec.sysctls["net.core.somaxconn"]']],
  [
    'a Volume binding a node path',
    object('Volume', { driver: 'local', driverOpts: { type: 'none', o: 'bind', device: '/srv' } }, 'data'),
    ['spec.driverOpts.o'],
  ],
  [
    'a Volume mounting a device',
    object('Volume', { driver: 'local', driverOpts: { type: 'ext4', device: '/dev/sdb' } }, 'data'),
    ['spec.driverOpts.type', 'spec.driverOpts.device'],
  ],
];

for (const [what, refused, expected] of BASELINE_CASES) {
  test(`${what}: allowed at privileged, refused at baseline and restricted`, (t) => {
    t.deepEqual(admissionProblems(refused, at('privileged')), []);
    t.deepEqual(fields(refused, 'baseline'), expected);
    t.deepEqual(fields(refused, 'restricted'), expected);
  });
}

test("a host network driver (not in the schema yet) is refused at baseline; the host's namespaces and devices have no field to ask with", (t) => {
  const host: AdmissionObject = { kind: 'Network', metadata: { name: 'front', stack: 'shop' }, spec: { driver: 'host' } };
  t.deepEqual(admissionProblems(host, at('privileged')), []);
  t.deepEqual(fields(host, 'baseline'), ['spec.driver']);
  for (const key of ['devices', 'privileged', 'networkMode', 'pid', 'ipc']) {
    t.false(validateStackObject({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name: 'web' }, spec: { image: 'busybox', [key]: true } }).ok, key);
  }
});

const RESTRICTED_CASES: Array<[string, Record<string, unknown>, string[]]> = [
  ['no userns', { userns: undefined }, ['spec.userns']],
  ['userns host', { userns: 'host' }, ['spec.userns']],
  ['no user (the image may run as root)', { user: undefined }, ['spec.user']],
  ['user 0', { user: '0' }, ['spec.user']],
  ['user 00:00', { user: '00:00' }, ['spec.user']],
  ['user root', { user: 'root' }, ['spec.user']],
  ['user root:app', { user: 'root:app' }, ['spec.user']],
  ['a writable rootfs', { readOnly: undefined }, ['spec.readOnly']],
  ['readOnly false', { readOnly: false }, ['spec.readOnly']],
  ['capabilities not dropped', { capDrop: undefined }, ['spec.capDrop']],
  ['only some capabilities dropped', { capDrop: ['NET_RAW', 'MKNOD'] }, ['spec.capDrop']],
  ['a default capability other than NET_BIND_SERVICE added', { capAdd: ['NET_BIND_SERVICE', 'CHOWN'] }, ['spec.capAdd[1]']],
  [
    'a host-mode port',
    {
      ports: [
        { target: 80, published: 8080 },
        { target: 443, published: 443, mode: 'host' },
      ],
    },
    ['spec.ports[1].mode'],
  ],
  ['all of it', { userns: undefined, user: undefined, readOnly: undefined, capDrop: undefined }, ['spec.userns', 'spec.user', 'spec.readOnly', 'spec.capDrop']],
];

for (const [what, change, expected] of RESTRICTED_CASES) {
  test(`${what}: allowed at privileged and baseline, refused at restricted`, (t) => {
    const spec: Record<string, unknown> = { ...HARDENED, ...change };
    for (const key of Object.keys(spec)) if (spec[key] === undefined) delete spec[key];
    const o = service(spec);
    t.deepEqual(admissionProblems(o, at('privileged')), []);
    t.deepEqual(admissionProblems(o, at('baseline')), []);
    t.deepEqual(fields(o, 'restricted'), expected);
  });
}

test('a hardened service passes restricted, with NET_BIND_SERVICE added, tmpfs and volume mounts, named or numeric users', (t) => {
  for (const user of ['1000', '1000:0', 'app', 'app:app', '65534']) {
    const o = service({
      ...HARDENED,
      user,
      capAdd: ['NET_BIND_SERVICE'],
      ports: [{ target: 80, published: 8080 }],
      mounts: [
        { type: 'tmpfs', target: '/tmp' },
        { type: 'volume', source: 'data', target: '/data' },
      ],
      sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' },
    });
    t.deepEqual(admissionProblems(o, at('restricted')), [], user);
  }
  // Capability names in any case, with or without CAP_ (as the runtime reads them).
  const lower: AdmissionObject = { kind: 'Service', metadata: { name: 'web' }, spec: { ...HARDENED, capDrop: ['all'], capAdd: ['cap_net_bind_service'] } };
  t.deepEqual(admissionProblems(lower, at('restricted')), []);
  t.deepEqual(
    admissionProblems(object('Volume', { driver: 'local', driverOpts: { type: 'nfs', device: ':/x', o: 'addr=10.0.0.1' } }, 'data'), at('restricted')),
    [],
  );
  t.deepEqual(admissionProblems(object('Network', { driver: 'bridge' }, 'front'), at('restricted')), []);
  t.deepEqual(admissionProblems(object('Secret', { data: 'cHc=' }, 'pw'), at('restricted')), []);
});

test('a capability beyond the defaults is one message at restricted, the baseline one', (t) => {
  const problems = admissionProblems(service({ ...HARDENED, capAdd: ['SYS_ADMIN', 'KILL'] }), at('restricted'));
  t.deepEqual(problems, [
    "Service shop/web: spec.capAdd[0]: SYS_ADMIN is not allowed in stack shop (admission level restricted: only Docker's default capabilities)",
    'Service shop/web: spec.capAdd[1]: KILL is not allowed in stack shop (admission level restricted: only NET_BIND_SERVICE may be added)',
  ]);
});

test('a refusal names the field, who holds the objects to the level, and the level', (t) => {
  const root = service({ ...HARDENED, user: '0' });
  t.deepEqual(admissionProblems(root, at('restricted', 'stack')), [
    "Service shop/web: spec.user: 0 is not allowed in stack shop (admission level restricted: set a user other than root (a uid other than 0, or a name other than root); without one the image's user, often root, runs)",
  ]);
  t.regex(
    admissionProblems(service({ ...HARDENED, userns: 'host' }), at('restricted', 'cluster'))[0]!,
    /^Service shop\/web: spec\.userns: host is not allowed by the cluster default \(admission level restricted: set userns: auto/,
  );
  t.regex(
    admissionProblems(service({ ...HARDENED, readOnly: false }), at('restricted'))[0]!,
    /spec\.readOnly: false is not allowed in stack shop \(admission level restricted: set readOnly: true/,
  );
  t.regex(
    admissionProblems(service({ capAdd: ['ALL'] }), at('baseline', 'role'))[0]!,
    /spec\.capAdd\[0\]: ALL is not allowed for operators \(admission level baseline: /,
  );
  const defaultStack = admissionProblems(
    { kind: 'Service', metadata: { name: 'web' }, spec: { capAdd: ['ALL'] } },
    { level: 'baseline', source: 'stack', stack: '' },
  );
  t.regex(defaultStack[0]!, /^Service web: spec\.capAdd\[0\]: ALL is not allowed in the default stack/);
});

// ---- deciding the level -------------------------------------------------------------------------

test('levels: names and order', (t) => {
  t.true(isAdmissionLevel('restricted'));
  t.false(isAdmissionLevel('Restricted'));
  t.false(isAdmissionLevel(undefined));
  t.true(isStricter('restricted', 'baseline'));
  t.true(isStricter('baseline', 'privileged'));
  t.false(isStricter('baseline', 'baseline'));
});

test('the level is the strictest of role, stack and cluster default; the narrowest reason is named on a tie', (t) => {
  const decide = (role: 'admin' | 'operator', clusterDefault: AdmissionLevel, stackLevel?: AdmissionLevel) =>
    decideLevel({ role, clusterDefault, stack: 'shop', ...(stackLevel ? { stackLevel } : {}) });
  // Nothing set: admins as before (privileged), operators baseline.
  t.like(decide('admin', 'privileged'), { level: 'privileged' });
  t.like(decide('operator', 'privileged'), { level: 'baseline', source: 'role' });
  // A stricter cluster default holds admins too.
  t.like(decide('admin', 'baseline'), { level: 'baseline', source: 'cluster' });
  t.like(decide('operator', 'restricted'), { level: 'restricted', source: 'cluster' });
  // A stricter stack level holds everyone in it; a looser one loosens nothing.
  t.like(decide('admin', 'privileged', 'restricted'), { level: 'restricted', source: 'stack' });
  t.like(decide('operator', 'restricted', 'baseline'), { level: 'restricted', source: 'cluster' });
  t.like(decide('operator', 'privileged', 'privileged'), { level: 'baseline', source: 'role' });
  // Ties: role, then stack, then cluster.
  t.like(decide('operator', 'baseline', 'baseline'), { level: 'baseline', source: 'role' });
  t.like(decide('admin', 'restricted', 'restricted'), { level: 'restricted', source: 'stack' });
});

test('who may set a stack level: operators tighten; only admins loosen or set privileged; nothing declared keeps what is stored', (t) => {
  const change = (role: 'admin' | 'operator', stored?: AdmissionLevel, requested?: AdmissionLevel) =>
    changeStackLevel({ stack: 'shop', role, ...(stored ? { stored } : {}), ...(requested ? { requested } : {}) });
  t.deepEqual(change('operator'), { allowed: true, write: false });
  t.deepEqual(change('operator', 'restricted'), { allowed: true, level: 'restricted', write: false });
  t.deepEqual(change('operator', 'restricted', 'restricted'), { allowed: true, level: 'restricted', write: false });
  t.deepEqual(change('operator', undefined, 'restricted'), { allowed: true, level: 'restricted', write: true });
  t.deepEqual(change('operator', 'baseline', 'restricted'), { allowed: true, level: 'restricted', write: true });
  t.deepEqual(change('operator', undefined, 'baseline'), { allowed: true, level: 'baseline', write: true });
  t.deepEqual(change('operator', 'restricted', 'baseline'), {
    allowed: false,
    reason: 'only an admin may loosen stack shop from admission level restricted to baseline',
  });
  t.deepEqual(change('operator', undefined, 'privileged'), { allowed: false, reason: 'only an admin may set stack shop to admission level privileged' });
  t.deepEqual(change('admin', 'restricted', 'privileged'), { allowed: true, level: 'privileged', write: true });
  t.deepEqual(changeStackLevel({ stack: '', role: 'operator', requested: 'privileged' }), {
    allowed: false,
    reason: 'only an admin may set the default stack to admission level privileged',
  });
});

test('the label declares a stack level; a value that is not a level, or two levels in one stack, are problems', (t) => {
  const labelled = (name: string, value: string, stack = 'shop') => ({
    kind: 'Service',
    metadata: { name, stack, labels: { [STACK_ADMISSION_LABEL]: value } },
  });
  const ok = declaredStackLevels([
    labelled('a', 'restricted'),
    labelled('b', 'restricted'),
    { kind: 'Volume', metadata: { name: 'v', stack: 'shop' } },
    labelled('c', 'baseline', 'other'),
  ]);
  t.deepEqual(
    [...ok.levels],
    [
      ['shop', 'restricted'],
      ['other', 'baseline'],
    ],
  );
  t.deepEqual(ok.problems, []);
  const bad = declaredStackLevels([labelled('a', 'restricted'), labelled('b', 'baseline'), labelled('c', 'strict')]);
  t.deepEqual(bad.problems, [
    'Service shop/b: metadata.labels["tessera.io/admission"]: baseline disagrees with restricted declared by Service a (a stack has one level)',
    'Service shop/c: metadata.labels["tessera.io/admission"]: "strict" is not an admission level (expected privileged, baseline, restricted)',
  ]);
});

// ---- stored settings ----------------------------------------------------------------------------

test('cluster and stack settings: parsed strictly, updated keeping keys this version does not know', (t) => {
  t.deepEqual(parseClusterSettings(undefined, 'k'), {});
  t.deepEqual(parseClusterSettings('{"defaultAdmission":"restricted","autolock":true}', 'k'), { defaultAdmission: 'restricted' });
  t.throws(() => parseClusterSettings('{"defaultAdmission":"lax"}', 'k'), { message: 'k: defaultAdmission is not an admission level' });
  t.throws(() => parseClusterSettings('[]', 'k'), { message: 'k: not a JSON object' });
  t.throws(() => parseStackSettings('{', 'k'), { message: /^k: not JSON/ });
  t.deepEqual(JSON.parse(updateClusterSettingsText('{"autolock":true}', { defaultAdmission: 'baseline' }, 'k')), {
    autolock: true,
    defaultAdmission: 'baseline',
  });
  t.deepEqual(JSON.parse(updateClusterSettingsText(undefined, { defaultAdmission: 'baseline' }, 'k')), { defaultAdmission: 'baseline' });
  // A value that is not an object is what an admin's update repairs.
  t.deepEqual(JSON.parse(updateClusterSettingsText('{oops', { defaultAdmission: 'restricted' }, 'k')), { defaultAdmission: 'restricted' });
  t.deepEqual(parseStackSettings(updateStackSettingsText(undefined, 'restricted', 'k'), 'k'), { admission: 'restricted' });
});

test('cluster update asks for what its options say, and for nothing refuses', (t) => {
  t.deepEqual(clusterUpdateRequest({ defaultAdmission: 'restricted' }), { defaultAdmission: 'restricted' });
  t.throws(() => clusterUpdateRequest({}), { message: /nothing to change/ });
});

// ---- Compose: x-tessera -------------------------------------------------------------------------

test('x-tessera: admission is read; unknown settings and levels are issues, not ignored', (t) => {
  t.deepEqual(readStackExtension({}), { extension: {}, issues: [] });
  t.deepEqual(readStackExtension({ 'x-tessera': { admission: 'restricted' } }), { extension: { admission: 'restricted' }, issues: [] });
  t.deepEqual(readStackExtension({ 'x-tessera': { admision: 'restricted', admission: 'strict' } }).issues, [
    { path: ['x-tessera', 'admision'], message: 'unknown setting "admision" (Tessera reads admission)' },
    { path: ['x-tessera', 'admission'], message: 'expected privileged, baseline, restricted, got "strict"' },
  ]);
  t.is(readStackExtension({ 'x-tessera': 'restricted' }).issues.length, 1);
});

test("x-tessera labels every object with the stack's level, and refuses what that level refuses with the Compose path", (t) => {
  const web: StackObject = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name: 'web', stack: 'shop' },
    spec: { image: 'busybox', ...HARDENED },
  } as StackObject;
  const data: StackObject = { apiVersion: 'tessera/v1', kind: 'Volume', metadata: { name: 'data', stack: 'shop', labels: { team: 'a' } }, spec: {} };
  const ok = applyStackExtension([web, data], { admission: 'restricted' }, 'shop');
  t.deepEqual(ok.issues, []);
  t.deepEqual(
    ok.objects.map((o) => o.metadata.labels),
    [{ [STACK_ADMISSION_LABEL]: 'restricted' }, { [STACK_ADMISSION_LABEL]: 'restricted', team: 'a' }],
  );
  const rootWeb = { ...web, spec: { ...web.spec, user: 'root' } } as StackObject;
  const refused = applyStackExtension([rootWeb], { admission: 'restricted' }, 'shop');
  t.is(refused.issues.length, 1);
  t.deepEqual(refused.issues[0]!.path, ['services', 'web']);
  t.regex(refused.issues[0]!.message, /^spec\.user: root is not allowed in stack shop \(admission level restricted: /);
  const disagreeing = { ...data, metadata: { ...data.metadata, labels: { [STACK_ADMISSION_LABEL]: 'baseline' } } };
  t.regex(applyStackExtension([disagreeing], { admission: 'restricted' }, 'shop').issues[0]!.message, /disagrees with x-tessera\.admission: restricted/);
  t.deepEqual(applyStackExtension([web], {}, 'shop').objects, [web]);
});

test('a Compose file with x-tessera restricted: loads when hardened (userns_mode auto), fails naming the service and field otherwise', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-admission-compose-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'compose.yaml');
  const compose = (user: string) =>
    `x-tessera:\n  admission: restricted\nservices:\n  web:\n    image: busybox\n    user: "${user}"\n    read_only: true\n    userns_mode: auto\n    cap_drop: [ALL]\n`;
  writeFileSync(file, compose('1000'));
  const project = loadCompose([file], { env: {}, projectName: 'shop' });
  const web = project.objects.find((o) => o.kind === 'Service');
  t.like(web, { metadata: { labels: { [STACK_ADMISSION_LABEL]: 'restricted' } }, spec: { userns: 'auto', user: '1000', readOnly: true } });
  writeFileSync(file, compose('0'));
  const error = t.throws(() => loadCompose([file], { env: {}, projectName: 'shop' }));
  t.regex(error.message, /services\.web.*spec\.user: 0 is not allowed in stack shop \(admission level restricted/s);
  writeFileSync(file, 'services:\n  web:\n    image: busybox\n    userns_mode: private\n');
  t.regex(t.throws(() => loadCompose([file], { env: {}, projectName: 'shop' })).message, /userns_mode.*expected auto .* or host/s);
});
