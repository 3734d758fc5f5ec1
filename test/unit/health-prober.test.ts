// The prober's loop with a scripted probe in place of an exec (the real exec into a container is
// covered by test/e2e/health.test.ts): the schedule, what gets reported, and stopping.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';

import { HealthProber, type ProbeOutcome } from '../../agent/worker/health/health-prober.js';
import type { HealthConfig, HealthState } from '../../agent/worker/health/health-state.js';

const config: HealthConfig = { args: ['check'], intervalMs: 20, timeoutMs: 1000, startPeriodMs: 0, startIntervalMs: 5, retries: 2 };

function scripted(outcomes: Array<ProbeOutcome | Error>): { run: () => Promise<ProbeOutcome>; calls: () => number } {
  let i = 0;
  return {
    run: async () => {
      const next = outcomes[Math.min(i++, outcomes.length - 1)]!;
      if (next instanceof Error) throw next;
      return next;
    },
    calls: () => i,
  };
}

const ok: ProbeOutcome = { exitCode: 0, output: 'ok', timedOut: false };
const bad: ProbeOutcome = { exitCode: 1, output: 'bad', timedOut: false };

test('reports only changes: healthy once, then the failing streak, then unhealthy', async (t) => {
  const probe = scripted([ok, ok, ok, bad, bad, bad]);
  const reports: HealthState[] = [];
  const prober = new HealthProber({ config, runProbe: probe.run, onChange: (s) => reports.push(s), log: () => {} });
  prober.start();
  while (probe.calls() < 6) await sleep(5);
  await sleep(10);
  prober.stop();
  t.deepEqual(
    reports.map((r) => [r.status, r.failingStreak]),
    [
      ['healthy', 0],
      ['healthy', 1],
      ['unhealthy', 2],
      ['unhealthy', 3],
    ],
  );
});

test('a probe that cannot run is a failure with the reason as its output; a timeout is a failure', async (t) => {
  const probe = scripted([new Error('exec in container x: it is stopped, not running'), { exitCode: -1, output: '', timedOut: true }]);
  const reports: HealthState[] = [];
  const prober = new HealthProber({ config, runProbe: probe.run, onChange: (s) => reports.push(s), log: () => {} });
  prober.start();
  while (reports.length < 2) await sleep(5);
  prober.stop();
  t.is(reports[1]!.status, 'unhealthy');
  t.deepEqual(
    reports[1]!.log.map((r) => [r.exitCode, r.output]),
    [
      [-1, 'exec in container x: it is stopped, not running'],
      [-1, 'Health check exceeded timeout (1000 ms)'],
    ],
  );
});

test('stop: no probe and no report afterwards, also for a probe in flight', async (t) => {
  let release: (o: ProbeOutcome) => void = () => {};
  let calls = 0;
  const reports: HealthState[] = [];
  const prober = new HealthProber({
    config,
    runProbe: () => {
      calls++;
      return new Promise((resolve) => (release = resolve));
    },
    onChange: (s) => reports.push(s),
    log: () => {},
  });
  prober.start();
  while (calls === 0) await sleep(5);
  prober.stop();
  release(ok);
  await sleep(60);
  t.is(calls, 1);
  t.deepEqual(reports, []);
});

test('resume: an adopted container carries on from the health last reported', async (t) => {
  const probe = scripted([bad]);
  const reports: HealthState[] = [];
  const prober = new HealthProber({
    config,
    runProbe: probe.run,
    onChange: (s) => reports.push(s),
    log: () => {},
    resume: { status: 'healthy', failingStreak: 1 },
  });
  t.is(prober.current.status, 'healthy');
  prober.start();
  while (reports.length < 1) await sleep(5);
  prober.stop();
  t.deepEqual([reports[0]!.status, reports[0]!.failingStreak], ['unhealthy', 2]);
});
