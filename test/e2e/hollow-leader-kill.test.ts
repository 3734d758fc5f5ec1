// Kill -9 of the Raft leader in the middle of a rollout loses nothing and never runs a slot twice.
// Three real tsd managers (dist/, each in its own network namespace, drained so they take no tasks)
// and 50 hollow nodes (test/scale/: real joins with a worker token, real mutual-TLS agent sessions,
// heartbeats, assignments and status reports; only the containers are simulated, since 200 real
// containers per run would test this machine's disk, not the control plane). 20 services × 10
// replicas are applied; once 40 tasks run the leader is killed. The check is made from the hollow
// nodes' own view (every run of every task, with its start and end on the machine's clock): every
// slot ends up running exactly once, no two tasks of one slot ever ran at the same time, and the
// store (read through a surviving manager) says the same tasks run.
import test from 'ava';
import { join } from 'node:path';

import type { Node, Task } from '../../common/resources/types.js';
import { copyLogs } from '../helpers/cluster-logs.js';
import { eventually } from '../helpers/eventually.js';
import { HollowView } from '../scale/hollow-view.js';
import { applyServices, hollowServices, startScaleCluster } from '../scale/scale-cluster.js';

const SERVICES = 20;
const REPLICAS = 10;
const TOTAL = SERVICES * REPLICAS;
const NODES = 50;
const STACK = 'hollow';

/** Every slot of every service running exactly once, in the hollow nodes' view. */
function everySlotOnce(view: HollowView): boolean {
  const slots = view.runningBySlot();
  if (slots.size !== TOTAL) return false;
  for (const runs of slots.values()) if (runs.length !== 1) return false;
  return true;
}

test('hollow nodes: kill -9 of the leader mid-rollout converges with every slot running once, never twice', async (t) => {
  t.timeout(600_000);
  const cluster = await startScaleCluster({ from: 'dist', log: (m) => t.log(m) });
  let passed = false;
  t.teardown(async () => {
    if (!passed) {
      const dir = join(process.cwd(), 'test-logs', `hollow-leader-kill-${Date.now()}`);
      await copyLogs(dir, [
        ...cluster.managers.map((m) => ({ path: join(m.dataRoot, 'tsd.log'), name: `${m.name}.log` })),
        { path: join(cluster.lab.dir, 'fleet-hollow.log'), name: 'fleet-hollow.log' },
      ]);
      process.stderr.write(`hollow-leader-kill: logs kept in ${dir}\n`);
    }
    await cluster.destroy();
  });
  const view = new HollowView();
  const fleet = await cluster.startFleet({
    namePrefix: 'hollow',
    count: NODES,
    concurrency: 16,
    sim: { startLatencyMs: 300, jitter: 0.5, failureRate: 0, seed: 19 },
    view,
  });
  const joined = await fleet.ready;
  t.log(`${NODES} hollow nodes joined in ${Math.round(joined.joinMs)} ms, registered in ${Math.round(joined.connectMs)} ms`);
  // A node that joined long before its session started may be marked down meanwhile, and ready again at its first heartbeat.
  await eventually(
    'every hollow node to be a ready worker Node',
    async () => {
      const nodes = (await cluster.api.list({ kind: 'Node' })).objectsJson.map((j) => JSON.parse(j) as Node);
      return nodes.filter((n) => n.metadata.name.startsWith('hollow-') && n.spec.role === 'worker' && n.status.state === 'ready').length === NODES;
    },
    30_000,
  );

  const leader = await cluster.leader();
  await applyServices(cluster.api, hollowServices(STACK, 'svc', SERVICES, REPLICAS));
  await view.until('40 tasks running', () => view.runningCount() >= 40, 180_000);
  const runningAtKill = view.runningCount();
  await cluster.lab.kill9(leader);
  t.log(`killed the leader ${leader.name} with ${runningAtKill} of ${TOTAL} tasks running, ${view.assignedCount} assigned`);
  t.true(runningAtKill < TOTAL, 'the leader died mid-rollout');

  await view
    .until('every slot running once', () => everySlotOnce(view), 240_000)
    .catch(async (err: Error) => {
      // A node that was ever marked down says so in its status message once it is back.
      const wentDown = (await cluster.api.list({ kind: 'Node' })).objectsJson
        .map((j) => JSON.parse(j) as Node)
        .filter((n) => n.status.message !== 'session established');
      t.log(`nodes marked down at some point: ${wentDown.map((n) => `${n.metadata.name} (${n.status.state}: ${n.status.message ?? ''})`).join(', ')}`);
      const twice = [...view.runningBySlot()].filter(([, runs]) => runs.length > 1);
      t.log(
        `slots running twice now: ${twice.map(([slot, runs]) => `${slot}: ${runs.map((r) => `${r.task} on ${r.node} since ${new Date(r.start).toISOString()}`).join(' and ')}`).join('; ')}`,
      );
      throw err;
    });
  t.deepEqual(view.overlaps(), [], 'no slot ever ran twice at once');
  t.is(view.failedCount, 0, 'no start failed (none were simulated)');

  // The store, through a surviving manager, agrees with the nodes.
  const runningHere = new Map([...view.runningBySlot()].map(([slot, runs]) => [slot, runs[0]!.task]));
  await eventually(
    'the store to show the tasks the nodes run',
    async () => {
      for (let i = 0; i < SERVICES; i++) {
        const tasks = (await cluster.api.list({ kind: 'Task', stack: STACK, service: `svc${i}` })).objectsJson.map((j) => JSON.parse(j) as Task);
        const running = tasks.filter((task) => task.status.state === 'running' && task.desiredState === 'running');
        if (running.length !== REPLICAS) return false;
        for (const task of running) if (runningHere.get(`${STACK}/svc${i}.${task.spec.slot}`) !== task.metadata.name) return false;
      }
      return true;
    },
    120_000,
  );
  // Still nothing twice after the store settled (late reports could have started a replacement).
  t.deepEqual(view.overlaps(), []);
  t.true(everySlotOnce(view));
  passed = true;
});
