// A manager that dies without a word on the wire (a VM destroyed, power lost: no FIN, no RST) is
// reached again by the Raft leader once it is back. Three real tsd managers, each in a network
// namespace of its own (test/helpers/managers-lab.ts, running dist/). The hang this guards against
// was seen on a VM cluster: the leader's long-lived Raft stream to a slow follower had used up its
// HTTP/2 flow-control window (the follower's kernel had ACKed the bytes, its process had not read
// them), so once the follower died nothing was in flight at the TCP level: no retransmission, no
// reset, no error, and the leader never opened a new connection. The restarted follower waited for
// a leader for minutes. Keepalive pings on node-to-node channels (common/transport/credentials.ts)
// end such a connection; without them this test times out.
//
// The recipe: SIGSTOP a follower's tsd (its kernel keeps ACKing, the process reads nothing), write
// a few hundred KB through the leader so that the Raft appends to it fill the stream's window, take
// the follower's link down so that the reset its kernel sends when the process dies is lost,
// SIGKILL it, bring the link back and start tsd again on the same data root.
import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { ApiClient } from '../../cli/client.js';
import type { Config } from '../../common/resources/types.js';
import { eventually } from '../helpers/eventually.js';
import { makeLab, type Lab, type LabNode } from '../helpers/managers-lab.js';
import { parseMembers } from '../helpers/tsctl-cluster.js';

const run = promisify(execFile);
const PORT = 7420;
/**
 * Unread bytes on the victim's side of the leader's connection that show the stream's window was
 * used up: Node's (and so grpc-js's) HTTP/2 window is 64 KiB, of which the victim may have read
 * part before it was stopped without granting it again yet.
 */
const MIN_UNREAD = 32 * 1024;
/** How long no more bytes may arrive: the leader sends a heartbeat every 100 ms. */
const BLOCKED_FOR_MS = 2000;
/**
 * How long the restarted manager may take to hear from the leader: room for a loaded 2-core
 * machine (tsd's start, a keepalive round of 10 s + 10 s, reconnection), far below the hang seen
 * without keepalive (minutes, or for good). A liveness bound, not a speed assertion.
 */
const REACHED_AGAIN_MS = 90_000;

interface TcpSocket {
  local: string;
  peer: string;
  recvQ: number;
  sendQ: number;
}

/** The node's established TCP connections (ss -Htn), with their queues. */
async function established(lab: Lab, n: LabNode): Promise<TcpSocket[]> {
  const out = await lab.inNetns(n, 'ss', '-Htn', 'state', 'established');
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [recvQ, sendQ, local, peer] = line.trim().split(/\s+/);
      return { local: local!, peer: peer!, recvQ: Number(recvQ), sendQ: Number(sendQ) };
    });
}

/** Three managers: mgr-1 inits, the others join with the manager token (as in managers.test.ts). */
async function threeManagers(lab: Lab): Promise<void> {
  const [m1, ...others] = lab.nodes as [LabNode, LabNode, LabNode];
  await lab.start(m1, ['init']);
  await eventually('the first manager', async () => ((await lab.tsctl(m1, 'get', 'nodes', '-o', 'json')).includes('"ready"') ? true : undefined), 60_000);
  const token = (await lab.tsctl(m1, 'cluster', 'join-token', 'manager'))
    .trim()
    .split(/\s+/)
    .find((w) => w.startsWith('TSJT-'));
  if (!token) throw new Error('no manager join token');
  for (const m of others) {
    // Through a 0600 file, never argv; removed once the node is in.
    const tokenFile = join(m.dataRoot, 'join-token');
    await writeFile(tokenFile, token, { mode: 0o600 });
    await lab.start(m, ['join', '--token-file', tokenFile, `${m1.address}:${PORT}`]);
    await eventually(
      `${m.name} to be a voter`,
      async () => (parseMembers(await lab.tsctl(m1, 'cluster', 'members')).some((r) => r.id === m.name && r.role === 'follower') ? true : undefined),
      90_000,
    );
    await rm(tokenFile, { force: true });
  }
}

/** A Config of `bytes` random bytes: incompressible, so every byte crosses the Raft stream. */
function bulkConfig(name: string, bytes: number): Config {
  return { apiVersion: 'tessera/v1', kind: 'Config', metadata: { name, stack: 'bulk' }, spec: { data: randomBytes(bytes).toString('base64') } };
}

function resume(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // Already gone: nothing to resume.
  }
}

test.serial('a manager that died without a reset hears from the leader again once restarted', async (t) => {
  // Forming three managers alone takes minutes on a loaded 2-core machine.
  t.timeout(8 * 60_000);
  const lab = await makeLab({ count: 3, from: 'dist' });
  const clients: ApiClient[] = [];
  let stopped = 0;
  t.teardown(async () => {
    for (const c of clients) c.close();
    // A stopped tsd would sit out the SIGTERM of the lab's cleanup.
    if (stopped) resume(stopped);
    await lab.destroy();
  });
  const started = Date.now();
  await threeManagers(lab);
  const members = parseMembers(await lab.tsctl(lab.nodes[0]!, 'cluster', 'members'));
  const leader = lab.nodes.find((n) => n.name === members.find((m) => m.role === 'leader')?.id);
  if (!leader) throw new Error(`no leader among ${JSON.stringify(members)}`);
  const victim = lab.nodes.find((n) => n !== leader)!;
  t.log(`cluster of 3 up in ${Date.now() - started} ms; leader ${leader.name}, victim ${victim.name}`);

  // The follower's process stops reading; its kernel goes on ACKing what arrives.
  stopped = victim.pid;
  process.kill(victim.pid, 'SIGSTOP');
  const api = new ApiClient(leader.socket, 30_000);
  clients.push(api);
  // ~240 KB of entries, replicated to both followers: the stopped one gets the first 64 KiB.
  await api.apply({ objectsJson: [0, 1, 2].map((i) => JSON.stringify(bulkConfig(`blob-${i}`, 60 * 1024))) });

  // The hang's condition: the leader's stream to the victim is blocked by flow control (the
  // victim's kernel holds tens of KB its process never read, and nothing more arrives although the
  // leader sends heartbeats every 100 ms), and the leader has nothing unacknowledged on that
  // connection (so nothing will be retransmitted once the victim is gone).
  const hung = await eventually(
    "the leader's Raft stream to the stopped follower to block on flow control",
    async () => {
      const fromLeader = async () =>
        (await established(lab, victim)).find(
          (s) => s.local === `${victim.address}:${PORT}` && s.peer.startsWith(`${leader.address}:`) && s.recvQ >= MIN_UNREAD,
        );
      const before = await fromLeader();
      if (!before) return undefined;
      await sleep(BLOCKED_FOR_MS);
      const after = await fromLeader();
      if (after?.peer !== before.peer || after.recvQ !== before.recvQ) return undefined;
      const leaderSide = (await established(lab, leader)).find((s) => s.local === after.peer && s.peer === after.local);
      return leaderSide?.sendQ === 0 ? { unread: after, leaderSide } : undefined;
    },
    15_000,
  ).catch(async (err: Error) => {
    t.log(`${victim.name}:\n${await lab.inNetns(victim, 'ss', '-tni')}`);
    t.log(`${leader.name}:\n${await lab.inNetns(leader, 'ss', '-tni')}`);
    throw err;
  });
  t.log(`victim's kernel holds ${hung.unread.recvQ} unread bytes from ${hung.unread.peer}; the leader has ${hung.leaderSide.sendQ} unacknowledged`);

  // Dies without a word: with its link down the reset its kernel sends for the unread socket is lost.
  await run('ip', ['-n', victim.netns, 'link', 'set', 'eth0', 'down']);
  await lab.kill9(victim);
  stopped = 0;
  await sleep(1000);
  await run('ip', ['-n', victim.netns, 'link', 'set', 'eth0', 'up']);

  const restartedAt = Date.now();
  await lab.start(victim, ['init']);
  const reached = await eventually(
    `${victim.name} to see a leader again`,
    async () => {
      const rows = parseMembers(await lab.tsctl(victim, 'cluster', 'members'));
      return rows.some((r) => r.role === 'leader') && rows.some((r) => r.id === victim.name && r.role === 'follower') ? rows : undefined;
    },
    REACHED_AGAIN_MS,
  ).catch(async (err: Error) => {
    const stale = (await established(lab, leader)).filter((s) => s.local === hung.leaderSide.local);
    t.log(`the leader's old connection to ${victim.name}: ${stale.length > 0 ? 'still established' : 'gone'}`);
    t.log((await lab.log(victim)).split('\n').slice(-20).join('\n'));
    throw err;
  });
  t.log(`${victim.name} saw a leader ${Date.now() - restartedAt} ms after its restart: ${JSON.stringify(reached)}`);
  // It serves again: a read through its own API confirmed by the leader, with the bulk written while it was stopped.
  const configs = (JSON.parse(await lab.tsctl(victim, 'get', 'configs', '--stack', 'bulk', '-o', 'json')) as { items: Config[] }).items;
  t.deepEqual(configs.map((c) => c.metadata.name).sort(), ['blob-0', 'blob-1', 'blob-2']);
  t.false(
    (await established(lab, leader)).some((s) => s.local === hung.leaderSide.local && s.peer === hung.leaderSide.peer),
    "the leader let go of the dead process's connection",
  );
});
