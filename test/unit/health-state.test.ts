import test from 'ava';

import {
  effectiveHealthConfig,
  HEALTH_DEFAULTS,
  HEALTH_LOG_LENGTH,
  HEALTH_OUTPUT_LIMIT,
  initialHealth,
  nextProbeDelay,
  probeArgs,
  recordProbe,
  reportWorthy,
  timedOutResult,
  type HealthConfig,
  type HealthState,
} from '../../agent/worker/health/health-state.js';
import { healthFields } from '../../agent/worker/health/task-health.js';

const config: HealthConfig = { args: ['true'], intervalMs: 1000, timeoutMs: 500, startPeriodMs: 0, startIntervalMs: 100, retries: 3 };
const ok = (t: number) => ({ start: t, end: t + 5, exitCode: 0, output: 'fine' });
const bad = (t: number) => ({ start: t, end: t + 5, exitCode: 1, output: 'broken' });

function run(state: HealthState, cfg: HealthConfig, results: Array<{ start: number; end: number; exitCode: number; output: string }>): HealthState {
  return results.reduce((s, r) => recordProbe(s, cfg, r), state);
}

test('one success turns starting into healthy', (t) => {
  const s = recordProbe(initialHealth(0), config, ok(1000));
  t.is(s.status, 'healthy');
  t.is(s.failingStreak, 0);
});

test('unhealthy after `retries` consecutive failures, not before', (t) => {
  let s = recordProbe(initialHealth(0), config, ok(1000));
  s = run(s, config, [bad(2000), bad(3000)]);
  t.is(s.status, 'healthy');
  t.is(s.failingStreak, 2);
  s = recordProbe(s, config, bad(4000));
  t.is(s.status, 'unhealthy');
  t.is(s.failingStreak, 3);
});

test('a success resets the streak and heals an unhealthy container', (t) => {
  let s = run(initialHealth(0), config, [bad(1000), bad(2000), ok(3000), bad(4000), bad(5000)]);
  t.is(s.status, 'healthy');
  t.is(s.failingStreak, 2);
  s = run(s, config, [bad(6000), ok(7000)]);
  t.is(s.status, 'healthy');
  t.is(s.failingStreak, 0);
});

test('a container that never succeeds goes from starting to unhealthy', (t) => {
  const s = run(initialHealth(0), config, [bad(1000), bad(2000), bad(3000)]);
  t.is(s.status, 'unhealthy');
});

test('failures inside the start period do not count while starting', (t) => {
  const cfg = { ...config, startPeriodMs: 10_000 };
  let s = run(initialHealth(0), cfg, [bad(100), bad(200), bad(300), bad(400), bad(9_999)]);
  t.is(s.status, 'starting');
  t.is(s.failingStreak, 0);
  t.is(s.log.length, HEALTH_LOG_LENGTH, 'forgiven probes are still logged');
  s = run(s, cfg, [bad(10_000), bad(11_000)]);
  t.is(s.failingStreak, 2);
  s = recordProbe(s, cfg, bad(12_000));
  t.is(s.status, 'unhealthy');
});

test('once healthy, failures inside the start period count', (t) => {
  const cfg = { ...config, startPeriodMs: 10_000 };
  const s = run(initialHealth(0), cfg, [ok(100), bad(200), bad(300), bad(400)]);
  t.is(s.status, 'unhealthy');
});

test('probes run at the start interval during the start period, at the interval after', (t) => {
  const cfg = { ...config, startPeriodMs: 10_000 };
  const s = initialHealth(0);
  t.is(nextProbeDelay(s, cfg, 500), 100);
  t.is(nextProbeDelay(s, cfg, 10_000), 1000);
  t.is(nextProbeDelay(recordProbe(s, cfg, ok(200)), cfg, 300), 1000, 'healthy ends the start period');
  t.is(nextProbeDelay(s, config, 0), 1000, 'no start period: the interval');
});

test('a timed-out probe is a failure with a message; output is truncated and the log bounded', (t) => {
  const timedOut = timedOutResult(1000, 1500, 500);
  t.is(timedOut.exitCode, -1);
  t.regex(timedOut.output, /exceeded timeout/);
  const s = run(initialHealth(0), config, [timedOut, timedOut, timedOut]);
  t.is(s.status, 'unhealthy');
  const long = recordProbe(initialHealth(0), config, { start: 1, end: 2, exitCode: 0, output: 'x'.repeat(10_000) });
  t.is(long.log[0]!.output.length, HEALTH_OUTPUT_LIMIT + 1);
  const many = run(
    initialHealth(0),
    config,
    Array.from({ length: 12 }, (_, i) => ok(i * 1000)),
  );
  t.is(many.log.length, HEALTH_LOG_LENGTH);
  t.is(many.log.at(-1)!.start, 11_000);
});

test('reports go out when the status or the streak changes, not on every success', (t) => {
  const a = recordProbe(initialHealth(0), config, ok(1000));
  const b = recordProbe(a, config, ok(2000));
  t.true(reportWorthy(initialHealth(0), a));
  t.false(reportWorthy(a, b));
  t.true(reportWorthy(b, recordProbe(b, config, bad(3000))));
  const fields = healthFields(run(initialHealth(0), config, [ok(1000), ok(2000), ok(3000), bad(4000)]));
  t.is(fields.health, 'healthy');
  t.is(fields.failingStreak, 1);
  t.is(fields.healthLog.length, 3);
  t.deepEqual(fields.healthLog.at(-1), { start: new Date(4000).toISOString(), end: new Date(4005).toISOString(), exitCode: 1, output: 'broken' });
});

test('probe argv: CMD and CMD-SHELL forms; malformed tests are refused', (t) => {
  t.deepEqual(probeArgs(['CMD', 'test', '-f', '/tmp/ok']), ['test', '-f', '/tmp/ok']);
  t.deepEqual(probeArgs(['CMD-SHELL', 'test -f /tmp/ok']), ['/bin/sh', '-c', 'test -f /tmp/ok']);
  t.throws(() => probeArgs(['CMD']), { message: /names no program/ });
  t.throws(() => probeArgs(['CMD-SHELL', 'a', 'b']), { message: /exactly one/ });
  t.throws(() => probeArgs(['SHELL', 'x']), { message: /must start with/ });
});

test('the service check overrides the image check field by field; NONE and disable turn it off', (t) => {
  const image = { test: ['CMD', 'img-check'], intervalMs: 7000, retries: 5 };
  t.deepEqual(effectiveHealthConfig(undefined, image), {
    args: ['img-check'],
    intervalMs: 7000,
    timeoutMs: HEALTH_DEFAULTS.timeoutMs,
    startPeriodMs: 0,
    startIntervalMs: HEALTH_DEFAULTS.startIntervalMs,
    retries: 5,
  });
  const merged = effectiveHealthConfig({ test: ['CMD-SHELL', 'svc'], timeoutMs: 100 }, image)!;
  t.deepEqual(merged.args, ['/bin/sh', '-c', 'svc']);
  t.is(merged.intervalMs, 7000);
  t.is(merged.timeoutMs, 100);
  t.is(merged.retries, 5);
  t.is(effectiveHealthConfig({ intervalMs: 1000 }, undefined), undefined, 'timings without a test anywhere: no check');
  t.is(effectiveHealthConfig({ disable: true }, image), undefined);
  t.is(effectiveHealthConfig({ test: ['NONE'] }, image), undefined);
  t.is(effectiveHealthConfig(undefined, { test: ['NONE'] }), undefined);
  t.is(effectiveHealthConfig(undefined, undefined), undefined);
  t.is(effectiveHealthConfig({ test: ['CMD', 'x'], retries: 0 }, undefined)!.retries, HEALTH_DEFAULTS.retries);
});
