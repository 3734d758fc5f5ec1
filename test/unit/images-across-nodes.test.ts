// The pure parts of images across nodes: validation of what agents and managers send each other
// about images (common/images/peer-messages.ts), the leader's inventory and its choice of peers
// (control-plane/dispatcher/image-locations.ts), ImageList's NODES (control-plane/api/image-list.ts),
// and the agent's side of the session (agent/session/image-channel.ts) with a recorded "send".
import test from 'ava';
import { createHash } from 'node:crypto';

import {
  MAX_INVENTORY_IMAGES,
  MAX_LOCATION_PEERS,
  holdingOf,
  parseInventory,
  parseLocation,
  parsePeerAddress,
  parsePeerReference,
  parseRevocations,
  type ImageHolding,
  type ImageHoldingWire,
} from '../../common/images/peer-messages.js';
import { ImageLocations } from '../../control-plane/dispatcher/image-locations.js';
import { startImageSession } from '../../control-plane/dispatcher/image-session.js';
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import { imageListOf } from '../../control-plane/api/image-list.js';
import { ImageChannel } from '../../agent/session/image-channel.js';
import { PeerBlobFetcher } from '../../agent/images/peer/peer-fetch.js';
import type { AgentMessage } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import type { ImageRecord } from '../../common/images/types.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const IDX = `sha256:${'9'.repeat(64)}`;
const BUSYBOX = 'docker.io/library/busybox:latest';

function wire(overrides: Partial<ImageHoldingWire> = {}): ImageHoldingWire {
  return { reference: 'busybox', manifestDigest: D1, indexDigest: '', size: 1234, createdAt: '2026-01-01T00:00:00Z', ...overrides };
}

function holding(reference: string, manifestDigest: string, extra: Partial<ImageHolding> = {}): ImageHolding {
  return { reference, manifestDigest, size: 10, createdAt: '2026-01-01T00:00:00Z', ...extra };
}

test('an inventory is normalised and checked entry by entry', (t) => {
  t.deepEqual(parseInventory([wire(), wire({ reference: D2, manifestDigest: D2, indexDigest: IDX })], 'inv'), [
    { reference: BUSYBOX, manifestDigest: D1, size: 1234, createdAt: '2026-01-01T00:00:00Z' },
    { reference: D2, manifestDigest: D2, indexDigest: IDX, size: 1234, createdAt: '2026-01-01T00:00:00Z' },
  ]);
});

test('a bad inventory entry refuses the whole report, naming the entry and the field', (t) => {
  t.throws(() => parseInventory([wire(), wire({ manifestDigest: 'sha256:abc' })], 'inventory of n2'), {
    message: /inventory of n2: image #1: manifest digest "sha256:abc" is not "sha256:" followed by 64/,
  });
  t.throws(() => parseInventory([wire({ indexDigest: 'md5:00' })], 'inv'), { message: /image #0: index digest/ });
  t.throws(() => parseInventory([wire({ reference: 'UPPER/Case:x' })], 'inv'), { message: /image #0: image reference "UPPER\/Case:x"/ });
  t.throws(() => parseInventory([wire({ reference: '' })], 'inv'), { message: /image reference is empty/ });
  t.throws(() => parseInventory([wire({ reference: `a/${'b'.repeat(600)}` })], 'inv'), { message: /more than 512/ });
  t.throws(() => parseInventory([wire({ size: -1 })], 'inv'), { message: /size -1 is not a whole number/ });
  t.throws(() => parseInventory([wire({ createdAt: 'x'.repeat(65) })], 'inv'), { message: /created_at is 65 characters/ });
  const tooMany = Array.from({ length: MAX_INVENTORY_IMAGES + 1 }, () => wire());
  t.throws(() => parseInventory(tooMany, 'inv'), { message: /10001 images reported, more than 10000/ });
});

test('peer addresses must be host:port', (t) => {
  t.is(parsePeerAddress('172.31.9.2:7420', 'p'), '172.31.9.2:7420');
  t.is(parsePeerAddress('[fd00::1]:7420', 'p'), '[fd00::1]:7420');
  t.is(parsePeerAddress('node-2.example:1', 'p'), 'node-2.example:1');
  for (const bad of ['172.31.9.2', '172.31.9.2:0', '172.31.9.2:70000', 'a b:1', 'http://x:1', ':7420', '']) {
    t.throws(() => parsePeerAddress(bad, 'p'), { message: /is not host:port/ }, bad);
  }
});

test("a manager's location answer is checked before a blob is asked for", (t) => {
  t.is(parseLocation({ manifestDigest: '', peers: [] }, 'loc'), undefined, 'no digest, no peers: nobody holds it');
  t.deepEqual(parseLocation({ manifestDigest: D1, peers: [{ nodeName: 'node-2', address: '10.0.0.2:7420' }] }, 'loc'), {
    manifestDigest: D1,
    peers: [{ nodeName: 'node-2', address: '10.0.0.2:7420' }],
  });
  t.throws(() => parseLocation({ manifestDigest: '', peers: [{ nodeName: 'n', address: 'a:1' }] }, 'loc'), { message: /peers are named but no manifest/ });
  t.throws(() => parseLocation({ manifestDigest: D1, peers: [] }, 'loc'), { message: /no peer/ });
  t.throws(() => parseLocation({ manifestDigest: 'sha256:x', peers: [{ nodeName: 'n', address: 'a:1' }] }, 'loc'), { message: /manifest digest/ });
  t.throws(() => parseLocation({ manifestDigest: D1, peers: [{ nodeName: '../etc', address: 'a:1' }] }, 'loc'), { message: /peer #0: node name/ });
  t.throws(() => parseLocation({ manifestDigest: D1, peers: [{ nodeName: 'n', address: 'nowhere' }] }, 'loc'), { message: /peer #0: peer address/ });
  const many = Array.from({ length: MAX_LOCATION_PEERS + 1 }, (_, i) => ({ nodeName: `n${i}`, address: `10.0.0.${i + 1}:7420` }));
  t.throws(() => parseLocation({ manifestDigest: D1, peers: many }, 'loc'), { message: /17 peers, more than 16/ });
});

test('revoked serials are normalised, and a malformed one refuses the list', (t) => {
  t.deepEqual(parseRevocations(['00AB12', 'ff'], 'rev'), ['ab12', 'ff']);
  t.throws(() => parseRevocations(['ab', 'not-hex'], 'rev'), { message: /rev: serial #1: .*not 1-40 hex digits/ });
});

test('a locate request names an image reference or a digest', (t) => {
  t.is(parsePeerReference('busybox', 'q'), BUSYBOX);
  t.is(parsePeerReference(D1, 'q'), D1);
  t.is(parsePeerReference(`busybox@${D1}`, 'q'), `docker.io/library/busybox@${D1}`);
  t.throws(() => parsePeerReference('busy box', 'q'), { message: /q: image reference "busy box"/ });
});

test('a record becomes a holding with its index digest when it has one', (t) => {
  const record: ImageRecord = {
    reference: BUSYBOX,
    digest: D1,
    indexDigest: IDX,
    configDigest: D2,
    layers: [],
    size: 5,
    config: {},
    createdAt: 'c',
  };
  t.deepEqual(holdingOf(record), { reference: BUSYBOX, manifestDigest: D1, indexDigest: IDX, size: 5, createdAt: 'c' });
});

test('locate names the other nodes holding a tag, never the asker, never a node that serves no blobs', (t) => {
  const locations = new ImageLocations(() => 0);
  const s1 = {};
  const s2 = {};
  const s3 = {};
  const s4 = {};
  locations.connected('node-1', '10.0.0.1:7420', s1);
  locations.connected('node-2', '10.0.0.2:7420', s2);
  locations.connected('node-3', '10.0.0.3:7420', s3);
  locations.connected('node-4', undefined, s4);
  locations.report('node-1', s1, [holding(BUSYBOX, D1)]);
  locations.report('node-2', s2, [holding(BUSYBOX, D1)]);
  locations.report('node-4', s4, [holding(BUSYBOX, D1)]);
  const found = locations.locate(BUSYBOX, 'node-3');
  t.is(found?.manifestDigest, D1);
  t.deepEqual(found?.peers.map((p) => p.nodeName).sort(), ['node-1', 'node-2']);
  t.deepEqual(locations.locate(BUSYBOX, 'node-1')?.peers, [{ nodeName: 'node-2', address: '10.0.0.2:7420' }]);
  t.is(locations.locate('docker.io/library/alpine:latest', 'node-3'), undefined);
});

test('a tag held with different manifests resolves to the one most nodes hold, the smallest digest on a tie', (t) => {
  const locations = new ImageLocations(() => 0);
  const owners = [{}, {}, {}, {}];
  for (const [i, digest] of [D2, D1, D2, D1].entries()) {
    locations.connected(`n${i}`, `10.0.0.${i + 1}:7420`, owners[i]!);
    locations.report(`n${i}`, owners[i]!, [holding(BUSYBOX, digest)]);
  }
  t.is(locations.locate(BUSYBOX, 'asker')?.manifestDigest, D1, 'two against two: the smaller digest');
  locations.disconnected('n1', owners[1]!);
  const answer = locations.locate(BUSYBOX, 'asker');
  t.is(answer?.manifestDigest, D2);
  t.deepEqual(answer?.peers.map((p) => p.nodeName).sort(), ['n0', 'n2']);
});

test('by digest, any holding of that manifest or index answers, whatever its name', (t) => {
  const locations = new ImageLocations();
  const owner = {};
  locations.connected('n1', '10.0.0.1:7420', owner);
  locations.report('n1', owner, [holding('docker.io/x/app:v1', D1, { indexDigest: IDX })]);
  t.is(locations.locate(`docker.io/other/name@${D1}`, 'me')?.manifestDigest, D1);
  t.is(locations.locate(`docker.io/x/app@${IDX}`, 'me')?.manifestDigest, D1, 'an index digest gives the manifest the holder chose');
  t.is(locations.locate(D1, 'me')?.manifestDigest, D1);
  t.is(locations.locate(`docker.io/x/app@${D2}`, 'me'), undefined);
});

test("peers are shuffled (spreading the load) and capped; an old session's end does not drop a newer session's report", (t) => {
  let seed = 0.37;
  const locations = new ImageLocations(() => (seed = (seed * 7.13) % 1));
  for (let i = 0; i < 20; i++) {
    const owner = {};
    locations.connected(`n${String(i).padStart(2, '0')}`, `10.0.1.${i + 1}:7420`, owner);
    locations.report(`n${String(i).padStart(2, '0')}`, owner, [holding(BUSYBOX, D1)]);
  }
  const peers = locations.locate(BUSYBOX, 'asker')?.peers ?? [];
  t.is(peers.length, MAX_LOCATION_PEERS);
  t.is(new Set(peers.map((p) => p.nodeName)).size, MAX_LOCATION_PEERS);

  const fresh = new ImageLocations();
  const oldSession = {};
  const newSession = {};
  fresh.connected('n', '10.0.0.1:7420', oldSession);
  fresh.connected('n', '10.0.0.1:7420', newSession);
  fresh.report('n', oldSession, [holding(BUSYBOX, D2)]);
  fresh.report('n', newSession, [holding(BUSYBOX, D1)]);
  fresh.disconnected('n', oldSession);
  t.is(fresh.locate(BUSYBOX, 'me')?.manifestDigest, D1, 'the report of the old session was ignored and its end dropped nothing');
  fresh.disconnected('n', newSession);
  t.is(fresh.locate(BUSYBOX, 'me'), undefined);
});

test('held() groups by reference and manifest with the sorted nodes; ImageList adds the local records and the answering node', (t) => {
  const locations = new ImageLocations();
  const [a, b] = [{}, {}];
  locations.connected('node-2', '10.0.0.2:7420', a);
  locations.connected('node-1', '10.0.0.1:7420', b);
  locations.report('node-2', a, [holding(BUSYBOX, D1), holding('docker.io/x/only-there:v1', D2)]);
  locations.report('node-1', b, [holding(BUSYBOX, D1)]);
  const held = locations.held();
  t.deepEqual(
    held.map((h) => [h.reference, h.nodes]),
    [
      [BUSYBOX, ['node-1', 'node-2']],
      ['docker.io/x/only-there:v1', ['node-2']],
    ],
  );
  const local: ImageRecord[] = [
    { reference: BUSYBOX, digest: D1, configDigest: D2, layers: [], size: 99, config: {}, createdAt: 'local' },
    { reference: 'docker.io/x/new:v1', digest: D2, configDigest: D2, layers: [], size: 7, config: {}, createdAt: 'new' },
  ];
  t.deepEqual(imageListOf(local, held, 'node-1'), [
    { reference: BUSYBOX, digest: D1, size: 99, createdAt: 'local', nodes: ['node-1', 'node-2'] },
    { reference: 'docker.io/x/new:v1', digest: D2, size: 7, createdAt: 'new', nodes: ['node-1'] },
    { reference: 'docker.io/x/only-there:v1', digest: D2, size: 10, createdAt: '2026-01-01T00:00:00Z', nodes: ['node-2'] },
  ]);
  t.deepEqual(
    imageListOf(local, undefined, 'node-1').map((i) => i.nodes),
    [['node-1'], ['node-1']],
    'a manager that does not lead knows its own node only',
  );
});

test('the agent reports its inventory at attach and after changes, one report per burst, none without a session', async (t) => {
  let inventory: ImageHolding[] = [holding(BUSYBOX, D1)];
  const sent: AgentMessage[] = [];
  const logs: string[] = [];
  const channel = new ImageChannel({ inventory: () => Promise.resolve(inventory), log: (m) => logs.push(m) });
  channel.inventoryChanged();
  await new Promise((r) => setTimeout(r, 10));
  t.is(sent.length, 0, 'no session: nothing sent');
  channel.attach((m) => sent.push(m));
  await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(sent, [
    { imageInventory: { images: [{ reference: BUSYBOX, manifestDigest: D1, indexDigest: '', size: 10, createdAt: '2026-01-01T00:00:00Z' }] } },
  ]);
  inventory = [];
  channel.inventoryChanged();
  channel.inventoryChanged();
  channel.inventoryChanged();
  await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(sent.slice(1), [{ imageInventory: { images: [] } }]);
  t.deepEqual(logs, []);
});

test('locate resolves with the validated answer, fails on a session end, a bad answer or a timeout', async (t) => {
  const sent: AgentMessage[] = [];
  const revoked: string[][] = [];
  const logs: string[] = [];
  const channel = new ImageChannel({
    inventory: () => Promise.resolve([]),
    onRevocations: (s) => revoked.push(s),
    log: (m) => logs.push(m),
    locateTimeoutMs: 50,
  });
  await t.throwsAsync(channel.locate(BUSYBOX), { message: /no session with a manager/ });
  channel.attach((m) => sent.push(m));

  const answered = channel.locate(BUSYBOX);
  const ask = sent.find((m) => m.imageLocate)?.imageLocate;
  t.is(ask?.reference, BUSYBOX);
  channel.onMessage({
    kind: 'imageLocation',
    imageLocation: { requestId: Number(ask?.requestId), manifestDigest: D1, peers: [{ nodeName: 'node-2', address: '10.0.0.2:7420' }] },
  });
  t.deepEqual(await answered, { manifestDigest: D1, peers: [{ nodeName: 'node-2', address: '10.0.0.2:7420' }] });

  const bad = channel.locate(BUSYBOX);
  const badAsk = sent.filter((m) => m.imageLocate).at(-1)?.imageLocate;
  channel.onMessage({ kind: 'imageLocation', imageLocation: { requestId: Number(badAsk?.requestId), manifestDigest: D1, peers: [] } });
  await t.throwsAsync(bad, { message: /no peer/ });

  await t.throwsAsync(channel.locate(BUSYBOX), { message: /did not say within 50 ms/ });
  const cut = channel.locate(BUSYBOX);
  channel.detach('stream ended');
  await t.throwsAsync(cut, { message: /session with the manager ended \(stream ended\)/ });

  channel.onMessage({ kind: 'peerRevocations', peerRevocations: { serials: ['0A', 'bb'] } });
  channel.onMessage({ kind: 'peerRevocations', peerRevocations: { serials: ['zz'] } });
  t.deepEqual(revoked, [['0a', 'bb']], 'a malformed list is ignored, never half applied');
  t.regex(logs.join('\n'), /ignoring a revocation list/);
});

test("the leader's side of a session: inventory kept, bad reports dropped whole, locates answered, revocations sent when they change", (t) => {
  const locations = new ImageLocations(() => 0);
  const other = {};
  locations.connected('node-1', '10.0.0.1:7420', other);
  locations.report('node-1', other, [holding(BUSYBOX, D1)]);
  const sent: ManagerMessage[] = [];
  const logs: string[] = [];
  let serials = ['ab'];
  const listeners = new Set<() => void>();
  const session = startImageSession(
    {
      locations,
      revocations: {
        serials: () => serials,
        subscribe: (l) => {
          listeners.add(l);
          return () => listeners.delete(l);
        },
      },
      log: (m) => logs.push(m),
    },
    'node-2',
    '10.0.0.2:7420',
    {},
    (m) => sent.push(m),
  );
  t.deepEqual(sent.shift(), { peerRevocations: { serials: ['ab'] } }, 'the list goes out at the start');
  for (const listener of listeners) listener();
  t.deepEqual(sent, [], 'an unchanged list is not sent again');
  serials = ['ab', 'cd'];
  for (const listener of listeners) listener();
  t.deepEqual(sent.shift(), { peerRevocations: { serials: ['ab', 'cd'] } });

  session.onMessage({ kind: 'imageInventory', imageInventory: { images: [wire({ reference: 'docker.io/x/y:1', manifestDigest: D2 })] } });
  t.deepEqual(locations.locate('docker.io/x/y:1', 'node-1')?.peers, [{ nodeName: 'node-2', address: '10.0.0.2:7420' }]);
  session.onMessage({ kind: 'imageInventory', imageInventory: { images: [wire(), wire({ manifestDigest: 'nope' })] } });
  t.is(locations.locate('docker.io/x/y:1', 'node-1'), undefined, 'a bad report replaced the good one with nothing');
  t.regex(logs.join('\n'), /image inventory of node-2: image #1: manifest digest "nope"/);

  session.onMessage({ kind: 'imageLocate', imageLocate: { requestId: 7, reference: 'busybox' } });
  t.deepEqual(sent.shift(), { imageLocation: { requestId: 7, manifestDigest: D1, peers: [{ nodeName: 'node-1', address: '10.0.0.1:7420' }] } });
  session.onMessage({ kind: 'imageLocate', imageLocate: { requestId: 8, reference: 'Not A Reference' } });
  t.deepEqual(sent.shift(), { imageLocation: { requestId: 8, manifestDigest: '', peers: [] } }, 'a bad request gets an empty answer');
  session.end();
  t.is(listeners.size, 0);
  t.deepEqual(
    locations.held().map((h) => h.nodes),
    [['node-1']],
  );
});

test('the fetcher takes each blob from the first peer that gives it right, never asks a failed peer again, and stops after 4 failed peers', async (t) => {
  // The peers are a function here (the real client over mutual TLS is in test/integration/image-peers.test.ts).
  const good = Buffer.from('{"the":"manifest"}');
  const digest = `sha256:${createHash('sha256').update(good).digest('hex')}`;
  const asked: string[] = [];
  const behaviour: Record<string, () => AsyncIterable<Uint8Array>> = {
    wrong: async function* () {
      yield Buffer.from('{"not":"it"}');
    },
    down: async function* () {
      yield* [];
      throw new Error('connection refused');
    },
    right: async function* () {
      yield good.subarray(0, 5);
      yield good.subarray(5);
    },
  };
  const source = {
    open: (peer: { nodeName: string }) => {
      asked.push(peer.nodeName);
      return behaviour[peer.nodeName.split('-')[0]!]!();
    },
  };
  const peers = (...names: string[]) => names.map((nodeName, i) => ({ nodeName, address: `10.0.0.${i + 1}:7420` }));
  const logs: string[] = [];
  const fetcher = new PeerBlobFetcher(peers('wrong-1', 'down-1', 'right-1'), source, (m) => logs.push(m));
  t.deepEqual(await fetcher.bytes(digest, 1024, 'manifest'), good);
  t.deepEqual(asked, ['wrong-1', 'down-1', 'right-1']);
  t.regex(logs[0] ?? '', /manifest from peer wrong-1: digest mismatch/);
  t.regex(logs[1] ?? '', /connection refused/);
  asked.length = 0;
  t.deepEqual(await fetcher.bytes(digest, 1024, 'again'), good);
  t.deepEqual(asked, ['right-1'], 'the failed peers are not asked again');

  asked.length = 0;
  const many = new PeerBlobFetcher(peers('down-1', 'down-2', 'wrong-3', 'down-4', 'right-5', 'right-6'), source, () => undefined);
  await t.throwsAsync(many.bytes(digest, 1024, 'config'), { message: /config: no peer gave it \(.*4 peers failed already, the most tried for one image\)/ });
  t.deepEqual(asked, ['down-1', 'down-2', 'wrong-3', 'down-4']);
});
