// Join tokens against a real 3-node cluster: a real `tsd join` whose token pins another CA stops
// before it sends anything (one TLS handshake, no gRPC call); a rotated-out token is refused and
// the current one works; and while a node joins, its token shows in no process's argv, and
// afterwards in no log, audit log or file of the cluster.
import test from 'ava';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';

import { addNetnsNode, nodeLayout, nodeTsdArgv } from '../../cli/local-cluster/netns-cluster.js';
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { parseIdentity } from '../../common/identity/certificate.js';
import { parseJoinToken } from '../../common/identity/join-token.js';
import { checkExpectedServer } from '../../common/transport/mutual-tls.js';
import { TlsIdentity } from '../../common/transport/tls-identity.js';
import type { JoinTokenResponse__Output } from '../../proto/gen/tessera/api/v1/JoinTokenResponse.js';
import type { IssuedCertificate__Output } from '../../proto/gen/tessera/dispatcher/v1/IssuedCertificate.js';
import type { NodeRemoveResponse__Output } from '../../proto/gen/tessera/api/v1/NodeRemoveResponse.js';
import { dispatcherClient, dispatcherSession, nodeCaClient, refusalOf, unary } from './grpc-calls.js';
import { nodeIdentityFromDisk } from './identities.js';
import {
  auditEntries,
  listAll,
  nodeObject,
  readTsdLog,
  startSecurityCluster,
  system,
  tsdLogPath,
  type ScratchNamespace,
  type SecurityCluster,
} from './security-cluster.js';

const TSD_MAIN = join(process.cwd(), 'dist', 'daemon', 'main.js');

let cluster: SecurityCluster;
let managerTls: string;
let clusterId: string;
let clusterRootPem: string;
/** Every token minted in this file: none may show up anywhere afterwards. */
const minted: string[] = [];
const clients: Array<{ close(): void }> = [];

async function mintWorkerToken(): Promise<string> {
  const { token } = await unary<JoinTokenResponse__Output>((o, cb) => cluster.root.joinToken({ role: 'worker', rotate: true }, o, cb));
  minted.push(token);
  return token;
}

interface TsdRun {
  code: number | null;
  output: string;
}

/**
 * A real `tsd join` with the token in TESSERA_JOIN_TOKEN, run in a namespace of its own on the
 * underlay as the node `index` (200+) of the cluster's layout would be; waits for it to exit.
 */
async function tsdJoin(namespace: ScratchNamespace, index: number, token: string): Promise<TsdRun> {
  const layout = { ...nodeLayout(cluster.options, 200 + index), underlayAddress: namespace.address };
  const argv = ['join', ...nodeTsdArgv(layout, cluster.options), cluster.state.managerAddress];
  try {
    const { stdout, stderr } = await system('nsenter', [`--net=/run/netns/${namespace.netns}`, process.execPath, TSD_MAIN, ...argv], {
      env: { TESSERA_JOIN_TOKEN: token },
    });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as Error & { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : null, output: `${e.stdout ?? ''}${e.stderr ?? ''}${typeof e.code === 'number' ? '' : e.message}` };
  }
}

/** Counts the TCP connections a namespace opens to the managers' port (nftables, in that namespace only). */
async function countConnections(namespace: ScratchNamespace): Promise<() => Promise<number>> {
  const nft = (args: string[]) => system('nsenter', [`--net=/run/netns/${namespace.netns}`, 'nft', ...args]);
  await nft(['add', 'table', 'inet', 'sec']);
  await nft(['add', 'chain', 'inet', 'sec', 'out', '{ type filter hook output priority 0 ; }']);
  await nft(['add', 'rule', 'inet', 'sec', 'out', 'tcp', 'dport', '7420', 'tcp', 'flags', '&', '(syn|ack)', '==', 'syn', 'counter']);
  return async () => {
    const { stdout } = await nft(['list', 'chain', 'inet', 'sec', 'out']);
    const packets = /counter packets (\d+)/.exec(stdout)?.[1];
    if (packets === undefined) throw new Error(`no counter in: ${stdout}`);
    return Number(packets);
  };
}

function joinCredentials(): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(clusterRootPem), null, null, {
    checkServerIdentity: (_host, cert) => checkExpectedServer(cert, { kind: 'cluster-node', clusterId, role: 'manager' }),
  });
}

async function nodeCaJoin(nodeName: string, token: string): Promise<{ issued: IssuedCertificate__Output; keyPem: string }> {
  const client = nodeCaClient(managerTls, joinCredentials());
  clients.push(client);
  const keys = await generateKeyPair();
  const csrPem = await createCsr(keys, { commonNameHint: nodeName });
  const issued = await unary<IssuedCertificate__Output>((o, cb) =>
    client.join({ nodeName, tokenSecret: parseJoinToken(token).secret, csrPem, address: '' }, o, cb),
  );
  return { issued, keyPem: keys.keyPem };
}

test.before(async () => {
  cluster = await startSecurityCluster({ slot: 2 });
  managerTls = await cluster.tlsAddress();
  const manager = await nodeIdentityFromDisk(cluster.node('node-1').dataRoot);
  clusterId = manager.subject.o;
  clusterRootPem = manager.security.identity.material.trustedRootPems[0]!;
});

test.after.always(async () => {
  for (const client of clients) client.close();
  await (cluster as SecurityCluster | undefined)?.destroy();
});

test.serial('6. tsd join with a token pinning another CA exits before it sends anything: one TLS handshake, no call, no Node', async (t) => {
  const token = await mintWorkerToken();
  const parsed = parseJoinToken(token);
  // One hex digit of the pinned CA digest changed: a well-formed token of some other cluster.
  const flipped = `${parsed.caDigest[0] === '0' ? '1' : '0'}${parsed.caDigest.slice(1)}`;
  const wrongCa = token.replace(parsed.caDigest, flipped);
  t.not(wrongCa, token);
  const namespace = await cluster.scratchNamespace(1);
  const connections = await countConnections(namespace);
  const managerLogBefore = await readTsdLog(cluster.node('node-1'));
  const nodesBefore = (await listAll(cluster.root)).filter((o) => o.kind === 'Node').length;

  const tsd = await tsdJoin(namespace, 1, wrongCa);
  t.not(tsd.code, 0, tsd.output);
  t.regex(
    tsd.output,
    /refusing to join through .*: the manager's root CA has digest [0-9a-f]{64}, the join token pins [0-9a-f]{64}: this is not the cluster the token belongs to/,
  );
  t.false(tsd.output.includes(parsed.secret), "tsd's output does not echo the token's secret");
  t.is(await connections(), 1, 'exactly one connection reached the manager: the handshake that read its chain; no gRPC channel followed');
  t.is((await listAll(cluster.root)).filter((o) => o.kind === 'Node').length, nodesBefore, 'no Node was made');
  const managerLogAfter = await readTsdLog(cluster.node('node-1'));
  const newLines = managerLogAfter.slice(managerLogBefore.length);
  t.false(/node-201|join/i.test(newLines), `the manager logged nothing of it: ${newLines}`);
});

test.serial('11. a rotated-out token is refused ("not valid"), by tsd join and at NodeCA.Join; the current one works', async (t) => {
  const tokenA = await mintWorkerToken();
  const tokenB = await mintWorkerToken();

  const refused = await refusalOf('NodeCA.Join with the rotated-out token A', nodeCaJoin('joiner-a', tokenA));
  t.is(refused.codeName, 'PERMISSION_DENIED', refused.details);
  t.regex(refused.details, /join refused for node joiner-a: the join token is not valid for this cluster \(wrong, or rotated out\)/);
  t.false(refused.details.includes(parseJoinToken(tokenA).secret));
  t.is(await nodeObject(cluster.root, 'joiner-a'), undefined);

  const namespace = await cluster.scratchNamespace(2);
  const tsd = await tsdJoin(namespace, 2, tokenA);
  t.not(tsd.code, 0, tsd.output);
  t.regex(tsd.output, /the join token is not valid for this cluster \(wrong, or rotated out\)/);
  t.is(await nodeObject(cluster.root, 'node-202'), undefined);

  // Token B joins: a worker certificate for the name asked, from this cluster's CA, that opens a session.
  const { issued, keyPem } = await nodeCaJoin('joiner-b', tokenB);
  const subject = parseIdentity(issued.certChainPem);
  t.deepEqual({ cn: subject.cn, ou: subject.ou, o: subject.o }, { cn: 'joiner-b', ou: 'worker', o: clusterId });
  t.like(await nodeObject(cluster.root, 'joiner-b'), { spec: { role: 'worker' } });
  const identity = new TlsIdentity({ trustedRootPems: issued.trustedRootPems, certChainPem: issued.certChainPem, keyPem });
  const dispatcher = dispatcherClient(managerTls, { mode: 'mtls', identity, expected: { kind: 'cluster-node', clusterId, role: 'manager' } });
  clients.push(dispatcher);
  const session = await dispatcherSession(
    dispatcher,
    [
      {
        register: { nodeName: 'joiner-b', description: { hostname: 'joiner-b', address: '', memoryBytes: 1, nanoCpus: 1, engineLabels: {}, localSubnet: '' } },
      },
    ],
    1500,
  );
  t.is(session.error, undefined, session.error?.details);
  t.is(session.received[0]?.session?.nodeName, 'joiner-b', 'the manager opened the session');
  const removed = await unary<NodeRemoveResponse__Output>((o, cb) => cluster.root.removeNode({ name: 'joiner-b', force: true }, o, cb));
  t.true(removed.revokedSerials.includes(subject.serial));
});

/** Reads /proc/<pid>/cmdline of every process until stopped; returns each distinct one. */
function sampleCommandLines(onSample: () => Promise<void>): { stop: () => Promise<{ cmdlines: Set<string>; samples: number }> } {
  const cmdlines = new Set<string>();
  let samples = 0;
  const stopped = new AbortController();
  const loop = (async () => {
    while (!stopped.signal.aborted) {
      const pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
      await Promise.all(
        pids.map(async (pid) => {
          // A process that ended between readdir and read: nothing to see.
          const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
          if (text) cmdlines.add(text.replaceAll('\0', ' '));
        }),
      );
      await onSample();
      samples += 1;
      await sleep(5);
    }
  })();
  return {
    stop: async () => {
      stopped.abort();
      await loop;
      return { cmdlines, samples };
    },
  };
}

/** Regular files under `dir` (recursively) that contain any of `needles`. */
async function filesContaining(dir: string, needles: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const content = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      // A file removed while the walk ran (a rotated WAL segment): it cannot hold anything now.
      if (err.code === 'ENOENT') return Buffer.alloc(0);
      throw err;
    });
    if (needles.some((needle) => content.includes(needle))) found.push(path);
  }
  return found;
}

test.serial('12. while a node joins, its token is in no process argv; afterwards in no tsd.log, audit log or cluster file', async (t) => {
  const next = nodeLayout(cluster.options, cluster.state.nodes.length + 1);
  const tokenFile = join(next.dataRoot, 'join-token');
  let seenToken: string | undefined;
  // The token is handed to tsd in a 0600 file while it joins; reading that file is how this test learns it.
  const sampler = sampleCommandLines(async () => {
    if (seenToken !== undefined) return;
    const text = await readFile(tokenFile, 'utf8').catch(() => undefined);
    if (text?.trim()) seenToken = text.trim();
  });
  const joined = await addNetnsNode(cluster.state, cluster.options).then(
    (node) => ({ node }),
    (error: unknown) => ({ error }),
  );
  const sampled = await sampler.stop();
  if ('error' in joined) throw joined.error;
  const added = joined.node;
  t.is(added.name, next.name);
  t.truthy(seenToken, 'the join token file was seen while the node joined');
  const token = seenToken!;
  minted.push(token);
  const tokenFileMode = await stat(tokenFile).then(
    (s) => s.mode & 0o777,
    () => undefined,
  );
  t.is(tokenFileMode, undefined, 'the token file is gone once the node is in');
  t.true(sampled.samples > 10, `${sampled.samples} samples of every process's argv`);
  t.true(
    [...sampled.cmdlines].some((c) => c.includes('dist/daemon/main.js join') && c.includes(next.name)),
    "the joining node's tsd was among the sampled processes",
  );
  const secrets = minted.flatMap((m) => [m, parseJoinToken(m).secret]);
  for (const cmdline of sampled.cmdlines) {
    for (const secret of secrets) t.false(cmdline.includes(secret), `a process argv holds a token: ${cmdline.slice(0, 300)}`);
  }

  for (const node of cluster.state.nodes) {
    const log = await readFile(tsdLogPath(node), 'utf8');
    for (const secret of secrets) t.false(log.includes(secret), `${node.name}'s tsd.log holds a token`);
  }
  const auditDir = join(cluster.node('node-1').dataRoot, 'audit');
  const auditFiles = (await readdir(auditDir)).filter((name) => name.startsWith('audit.log'));
  t.true(auditFiles.length >= 1);
  t.deepEqual(await filesContaining(auditDir, secrets), [], 'no audit log file holds a token');
  t.deepEqual(await filesContaining(cluster.workDir, secrets), [], 'no file of the cluster (data roots, Raft log, snapshots, certificates) holds a token');
});

test.serial('audit: each token minted here is recorded as a JoinToken by local root, without the token', async (t) => {
  const entries = await auditEntries(cluster.root);
  const mints = entries.filter((e) => e.entry.method === 'JoinToken' && e.entry.caller === 'local:root' && e.entry.result.ok);
  // createNetnsCluster minted one for the workers; this file minted the rest.
  t.true(mints.length >= minted.length, `${mints.length} JoinToken entries for ${minted.length} tokens minted here`);
  t.like(entries.find((e) => e.entry.method === 'RemoveNode')?.entry, {
    caller: 'local:root',
    objects: [{ kind: 'Node', name: 'joiner-b' }],
    result: { ok: true },
  });
  for (const { line } of entries) {
    for (const token of minted) {
      t.false(line.includes(token) || line.includes(parseJoinToken(token).secret), `an audit line holds a token: ${line.slice(0, 200)}`);
    }
  }
});
