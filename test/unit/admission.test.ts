// The baseline level as operators meet it (issues 14 and 15): each rule with an object it passes and
// one it refuses, the messages naming object, field and level, and the shared lists held to the agent's runtime. Fixtures are
// run through the schema first, so they are objects the API server would accept from an admin.
import test from 'ava';

import { baselineProblems, DOCKER_DEFAULT_CAPABILITIES, SAFE_SYSCTLS, type AdmissionObject } from '../../common/resources/admission.js';
import { validateStackObject } from '../../common/resources/schema.js';
import { DEFAULT_CAPABILITIES, isCapabilityName } from '../../agent/runtime/capabilities.js';
import { sysctlProblem } from '../../agent/runtime/security-plan.js';

function object(kind: string, spec: Record<string, unknown>, name = 'web', stack?: string): AdmissionObject {
  const candidate = { apiVersion: 'tessera/v1', kind, metadata: { name, ...(stack ? { stack } : {}) }, spec };
  const result = validateStackObject(candidate);
  if (!result.ok) throw new Error(`fixture ${kind} ${name} does not pass the schema: ${JSON.stringify(result.issues)}`);
  return candidate;
}
const service = (spec: Record<string, unknown>, stack?: string) => object('Service', { image: 'busybox', ...spec }, 'web', stack);
const volume = (driverOpts?: Record<string, string>) => object('Volume', { driver: 'local', ...(driverOpts ? { driverOpts } : {}) }, 'data');

test("the default capabilities are the agent runtime's, all of them real capability names", (t) => {
  t.deepEqual([...DOCKER_DEFAULT_CAPABILITIES].sort(), [...DEFAULT_CAPABILITIES].sort());
  for (const cap of DOCKER_DEFAULT_CAPABILITIES) t.true(isCapabilityName(cap), cap);
});

test('every safe sysctl is one the agent can set in a container (namespaced)', (t) => {
  t.is(SAFE_SYSCTLS.length, 10);
  for (const key of SAFE_SYSCTLS) t.is(sysctlProblem(key), undefined, key);
});

test('a service within the baseline passes', (t) => {
  const ok = service({
    mounts: [
      { type: 'volume', source: 'data', target: '/data' },
      { type: 'volume', target: '/cache' },
      { type: 'tmpfs', target: '/tmp' },
    ],
    capAdd: ['NET_BIND_SERVICE', 'CHOWN', 'AUDIT_WRITE'],
    capDrop: ['ALL'],
    sysctls: { 'net.ipv4.ip_local_port_range': '1024 65000', 'kernel.shm_rmid_forced': '1', 'net.ipv4.tcp_keepalive_time': '60' },
  });
  t.deepEqual(baselineProblems(ok), []);
});

test('capability names are accepted with or without CAP_, in any case', (t) => {
  const names = ['CAP_KILL', 'cap_kill', 'kill', 'Net_Raw', 'SYS_CHROOT'];
  t.deepEqual(baselineProblems({ kind: 'Service', metadata: { name: 'web' }, spec: { image: 'busybox', capAdd: names } }), []);
});

test('a host bind mount is refused', (t) => {
  t.deepEqual(
    baselineProblems(
      service({
        mounts: [
          { type: 'tmpfs', target: '/tmp' },
          { type: 'bind', source: '/etc', target: '/host-etc' },
        ],
      }),
    ),
    ['Service web: spec.mounts[1]: a bind mount of host path /etc is not allowed for operators (admission level baseline: use a volume or a tmpfs mount)'],
  );
});

test('ALL and capabilities beyond the default set are refused, one message each', (t) => {
  t.deepEqual(baselineProblems(service({ capAdd: ['ALL', 'CHOWN', 'NET_ADMIN', 'SYS_ADMIN'] })), [
    "Service web: spec.capAdd[0]: ALL is not allowed for operators (admission level baseline: only Docker's default capabilities)",
    "Service web: spec.capAdd[2]: NET_ADMIN is not allowed for operators (admission level baseline: only Docker's default capabilities)",
    "Service web: spec.capAdd[3]: SYS_ADMIN is not allowed for operators (admission level baseline: only Docker's default capabilities)",
  ]);
  const lower = baselineProblems({ kind: 'Service', metadata: { name: 'web' }, spec: { capAdd: ['cap_sys_ptrace', 'all'] } });
  t.is(lower.length, 2);
});

test('sysctls outside the safe set are refused, namespaced or not', (t) => {
  const problems = baselineProblems(service({ sysctls: { 'net.ipv4.tcp_syncookies': '1', 'net.core.somaxconn': '1024', 'kernel.msgmax': '65536' } }));
  t.is(problems.length, 2);
  t.true(
    problems[0]!.startsWith(
      'Service web: spec.sysctls["net.core.somaxconn"]: not allowed for operators (admission level baseline: only Kubernetes\' safe sysctls: ',
    ),
    problems[0],
  );
  t.true(problems[1]!.startsWith('Service web: spec.sysctls["kernel.msgmax"]: '), problems[1]);
});

test('a service in a stack is named with it, and every violation is reported', (t) => {
  const problems = baselineProblems(
    service({ mounts: [{ type: 'bind', source: '/', target: '/host' }], capAdd: ['BPF'], sysctls: { 'net.ipv4.ip_forward': '1' } }, 'shop'),
  );
  t.is(problems.length, 3);
  for (const p of problems) t.true(p.startsWith('Service shop/web: spec.'), p);
});

test('a long list of violations is cut, with the rest counted', (t) => {
  const problems = baselineProblems({ kind: 'Service', metadata: { name: 'web' }, spec: { capAdd: Array.from({ length: 60 }, () => 'SYS_ADMIN') } });
  t.is(problems.length, 51);
  t.is(problems[50], 'Service web: 10 more problem(s) not listed');
});

test('volumes without driver options, tmpfs and nfs pass', (t) => {
  t.deepEqual(baselineProblems(volume()), []);
  t.deepEqual(baselineProblems(volume({ type: 'tmpfs', device: 'tmpfs', o: 'size=64m' })), []);
  t.deepEqual(baselineProblems(volume({ type: 'nfs', device: ':/exports/data', o: 'addr=10.0.0.5,nfsvers=4' })), []);
});

test('a volume that bind-mounts a host path is refused', (t) => {
  t.deepEqual(baselineProblems(volume({ type: 'none', o: 'bind', device: '/srv/data' })), [
    'Volume data: spec.driverOpts.o: bind bind-mounts a path of the node (/srv/data), which is not allowed for operators (admission level baseline)',
  ]);
  t.is(baselineProblems(volume({ o: 'rbind,ro', device: '/' })).length, 1);
});

test("a volume that mounts the node's devices or directories is refused", (t) => {
  t.deepEqual(baselineProblems(volume({ type: 'ext4', device: '/dev/sdb1' })), [
    "Volume data: spec.driverOpts.type: ext4 is not allowed for operators (admission level baseline: only tmpfs, nfs, nfs4: other filesystems mount the node's devices or directories)",
    'Volume data: spec.driverOpts.device: /dev/sdb1 is a path on the node, which is not allowed for operators (admission level baseline)',
  ]);
  t.is(baselineProblems(volume({ type: 'overlay', device: 'overlay', o: 'lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w' })).length, 1);
  t.is(baselineProblems(volume({ type: 'tmpfs', device: '/dev/sda' })).length, 1);
});

test('overlay and bridge networks pass; any other driver is refused', (t) => {
  t.deepEqual(baselineProblems(object('Network', {}, 'front')), []);
  t.deepEqual(baselineProblems(object('Network', { driver: 'overlay' }, 'front')), []);
  t.deepEqual(baselineProblems(object('Network', { driver: 'bridge', internal: true }, 'front')), []);
  // The schema has no host driver today; the rule stands for the day one is added.
  t.deepEqual(baselineProblems({ kind: 'Network', metadata: { name: 'front' }, spec: { driver: 'host' } }), [
    'Network front: spec.driver: host is not allowed for operators (admission level baseline: only overlay and bridge networks)',
  ]);
});

test('secrets and configs pass', (t) => {
  t.deepEqual(baselineProblems(object('Secret', { data: Buffer.from('pw').toString('base64') }, 'pw')), []);
  t.deepEqual(baselineProblems(object('Config', { data: Buffer.from('a=1').toString('base64') }, 'conf')), []);
});

test('odd input is named safely and refused rather than passed', (t) => {
  const problems = baselineProblems({ kind: 'Service', metadata: { name: 'web' }, spec: { capAdd: [7, 'NET ADMIN"x'], mounts: [{ type: 'bind' }] } });
  t.deepEqual(problems, [
    'Service web: spec.mounts[0]: a bind mount of host path (none) is not allowed for operators (admission level baseline: use a volume or a tmpfs mount)',
    "Service web: spec.capAdd[0]: number is not allowed for operators (admission level baseline: only Docker's default capabilities)",
    `Service web: spec.capAdd[1]: ${JSON.stringify('NET ADMIN"x')} is not allowed for operators (admission level baseline: only Docker's default capabilities)`,
  ]);
  t.deepEqual(baselineProblems({ kind: 'Service', metadata: { name: 'web' } }), []);
});
