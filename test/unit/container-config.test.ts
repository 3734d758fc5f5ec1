import test from 'ava';

import { unhonouredFields } from '../../control-plane/api/unhonoured-fields.js';
import { API_VERSION, type Service } from '../../common/resources/types.js';
import { resolveProcess, resolveSecurity, resolveUser } from '../../agent/worker/container-config.js';
import { stopSignalOf } from '../../agent/worker/task-runner.js';

const DEFAULTS = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_RAW'];
const ALL = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_RAW', 'CAP_SYS_ADMIN', 'CAP_NET_ADMIN'];

test('command replaces the entrypoint and drops the image Cmd; args replace Cmd', (t) => {
  const image = { entrypoint: ['/entry'], cmd: ['serve'], env: ['PATH=/bin', 'A=image'], workingDir: '/app', user: 'nobody' };
  t.deepEqual(resolveProcess({ image: 'x' }, image, 'h').args, ['/entry', 'serve']);
  t.deepEqual(resolveProcess({ image: 'x', command: ['sh'] }, image, 'h').args, ['sh']);
  t.deepEqual(resolveProcess({ image: 'x', args: ['debug'] }, image, 'h').args, ['/entry', 'debug']);
  const p = resolveProcess({ image: 'x', env: { A: 'service' } }, image, 'h');
  t.true(p.env.includes('A=service') && p.env.includes('PATH=/bin') && p.env.includes('HOSTNAME=h'));
  t.is(p.cwd, '/app');
  t.is(p.user, 'nobody');
  t.throws(() => resolveProcess({ image: 'x' }, {}, 'h'), { message: /no command to run/ });
});

test("users resolve by name or number against the image's files", (t) => {
  const passwd = [{ name: 'nobody', uid: 65534, gid: 65534 }];
  const groups = [{ name: 'staff', gid: 50 }];
  t.deepEqual(resolveUser('nobody', passwd, groups), { uid: 65534, gid: 65534 });
  t.deepEqual(resolveUser('1000:staff', passwd, groups), { uid: 1000, gid: 50 });
  t.throws(() => resolveUser('ghost', passwd, groups), { message: /user "ghost" is not in the image/ });
});

test('cap_add and cap_drop adjust the default set, ALL included', (t) => {
  t.deepEqual(resolveSecurity({ image: 'x', capAdd: ['NET_ADMIN'], capDrop: ['kill'] }, DEFAULTS, ALL).capabilities, [
    'CAP_CHOWN',
    'CAP_NET_ADMIN',
    'CAP_NET_RAW',
  ]);
  t.deepEqual(resolveSecurity({ image: 'x', capDrop: ['ALL'], capAdd: ['CHOWN'] }, DEFAULTS, ALL).capabilities, ['CAP_CHOWN']);
  t.is(resolveSecurity({ image: 'x', capAdd: ['ALL'] }, DEFAULTS, ALL).capabilities.length, ALL.length);
});

test('ulimits map to rlimits; unknown ones are refused by name', (t) => {
  t.deepEqual(resolveSecurity({ image: 'x', ulimits: { nofile: { soft: 1024, hard: 2048 } } }, DEFAULTS, ALL).rlimits, [
    { type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 },
  ]);
  t.throws(() => resolveSecurity({ image: 'x', ulimits: { files: { soft: 1, hard: 1 } } }, DEFAULTS, ALL), { message: /ulimits\.files: unknown limit/ });
});

test('stop signals accept both spellings', (t) => {
  t.is(stopSignalOf(undefined), 'SIGTERM');
  t.is(stopSignalOf('QUIT'), 'SIGQUIT');
  t.is(stopSignalOf('SIGINT'), 'SIGINT');
});

test('fields the cluster does not act on yet are named, not ignored', (t) => {
  const svc: Service = {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: 'a' },
    spec: { image: 'x', logging: { driver: 'syslog' }, mode: 'replicated-job', restart: { condition: 'any' } } as Service['spec'],
  };
  const problems = unhonouredFields(svc);
  t.true(problems.some((p) => p.startsWith('spec.logging: not supported')));
  // A job restarting on success is not "not yet" but invalid: the schema refuses it (manifest-schema.test.ts).
  // Jobs, completion dependencies and restart windows are honoured.
  t.deepEqual(
    unhonouredFields({
      ...svc,
      spec: {
        image: 'x',
        mode: 'replicated-job',
        dependsOn: [{ service: 'j', condition: 'service_completed_successfully' }],
        restart: { maxAttempts: 2, windowMs: 60_000 },
      },
    }),
    [],
  );
  t.deepEqual(unhonouredFields({ ...svc, spec: { image: 'x', mode: 'global', readOnly: true } }), []);
  // Health checks, start order and name resolution settings are honoured (issue 6).
  t.deepEqual(
    unhonouredFields({
      ...svc,
      spec: {
        image: 'x',
        healthcheck: { test: ['CMD', 'true'] },
        dependsOn: [{ service: 'db', condition: 'service_healthy' }],
        extraHosts: [{ hostname: 'h', address: '10.0.0.1' }],
        dns: { servers: ['10.0.0.53'] },
      },
    }),
    [],
  );
  // Rolling updates and rollbacks are honoured by the service controller (rollout.ts).
  t.deepEqual(
    unhonouredFields({ ...svc, spec: { image: 'x', updateConfig: { parallelism: 2, order: 'start-first' }, rollbackConfig: { failureAction: 'continue' } } }),
    [],
  );
});
