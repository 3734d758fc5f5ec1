// Fuzzing the API server's apply path (issue 12 §5): seeded mutations of valid apply requests
// (services, networks, secrets, configs, volumes) and hand-written nasties (huge keys and strings,
// deep nesting, replicas out of range or of the wrong type, NUL bytes, prototype-pollution keys,
// oversized requests) against the real ApiServer on the memory store. Every request must end in
// success or in our own validation error (ApiError, INVALID_ARGUMENT, message ≤ 4 KiB); a refused
// request must leave the store exactly as it was. The whole run is bounded (about 15 s); the seed
// is logged, and TESSERA_FUZZ_SEED replays a run.
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';

import { ApiError } from '../../control-plane/api/errors.js';
import { MAX_ERROR_MESSAGE_BYTES, MAX_REPLICAS, MAX_REQUEST_BYTES } from '../../common/resources/limits.js';
import { validateObject } from '../../common/resources/schema.js';
import type { Service } from '../../common/resources/types.js';
import { memoryApi, stopMemoryApi, type MemoryApi } from '../helpers/memory-api.js';

/** Total time for the seeded mutations; the nasties run before them, unbounded by it. */
const MUTATION_BUDGET_MS = 12_000;

// ---- a small seeded PRNG (mulberry32), so a failing run can be replayed from its seed ----

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** Valid requests to mutate: each a list of objects applied together. */
function validRequests(): Json[][] {
  const meta = (name: string, stack = 'fz') => ({ name, stack });
  const web = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { ...meta('web'), labels: { tier: 'front' } },
    spec: {
      image: 'registry.local/busybox:latest',
      command: ['sh', '-c', 'sleep 1000'],
      env: { A: 'b' },
      replicas: 3,
      ports: [{ target: 80, published: 8080 }],
      resources: { limits: { memory: '64Mi', cpus: '500m' } },
      placement: { constraints: ['node.labels.zone==a'] },
      restart: { condition: 'on-failure', delay: '5s' },
      networks: [{ name: 'back', aliases: ['web'] }],
      secrets: [{ source: 'token', target: 'token' }],
      configs: [{ source: 'conf', target: '/etc/conf' }],
      mounts: [{ type: 'volume', source: 'data', target: '/data' }],
      updateConfig: { parallelism: 1, order: 'start-first' },
      healthcheck: { test: ['CMD', 'true'], intervalMs: 1000 },
    },
  };
  const network = { apiVersion: 'tessera/v1', kind: 'Network', metadata: meta('back'), spec: { driver: 'overlay', subnets: ['10.20.0.0/24'] } };
  const secret = { apiVersion: 'tessera/v1', kind: 'Secret', metadata: meta('token'), spec: { data: b64('s3cret') } };
  const config = { apiVersion: 'tessera/v1', kind: 'Config', metadata: meta('conf'), spec: { data: b64('key=value\n') } };
  const volume = { apiVersion: 'tessera/v1', kind: 'Volume', metadata: meta('data'), spec: { driver: 'local' } };
  const job = { apiVersion: 'tessera/v1', kind: 'Service', metadata: meta('once'), spec: { image: 'busybox', mode: 'replicated-job', replicas: 2 } };
  const global = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: meta('agent'),
    spec: { image: 'busybox', mode: 'global', dependsOn: [{ service: 'web', condition: 'service_started' }] },
  };
  return [[web, network, secret, config, volume], [job], [global], [network, secret], [web, network, secret, config, volume, job]];
}

/** An object with an own enumerable key, even "__proto__" (an object literal would set the prototype instead). */
function withKey(target: { [key: string]: Json }, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function deepList(depth: number): Json {
  let value: Json = [];
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

/** Values a mutation puts somewhere: wrong types, limits and just past them, odd strings. */
function nastyValue(rand: () => number): Json {
  const pick = Math.floor(rand() * 24);
  switch (pick) {
    case 0:
      return null;
    case 1:
      return -1;
    case 2:
      return 1.5;
    case 3:
      return '3';
    case 4:
      return 1_000_000;
    case 5:
      return Number.MAX_SAFE_INTEGER;
    case 6:
      return MAX_REPLICAS;
    case 7:
      return MAX_REPLICAS + 1;
    case 8:
      return 1e308;
    case 9:
      return true;
    case 10:
      return '';
    case 11:
      return 'a\0b';
    case 12:
      return 'x'.repeat(Math.floor(rand() * 300_000));
    case 13:
      return [];
    case 14:
      return {};
    // Shallow enough for the test's own JSON.stringify; the nasties send far deeper nesting as text.
    case 15:
      return deepList(1 + Math.floor(rand() * 500));
    case 16:
      return ['sh', '-c'];
    case 17:
      return { ['k'.repeat(Math.floor(rand() * 200_000))]: 1 };
    case 18:
      return '\ud800'; // a lone surrogate
    case 19:
      return 'node.labels.zone==' + ' '.repeat(50_000) + 'a';
    case 20:
      return 'é'.repeat(200);
    case 21:
      return 0;
    case 22:
      return '5s';
    default:
      return 'registry.local/busybox:latest';
  }
}

const NASTY_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'imagee', 'replica', '', '\0', 'k'.repeat(100_000)];

/** Every (container, key) in the document, to pick a place to mutate. */
function places(root: Json): Array<{ container: Json[] | { [key: string]: Json }; key: string | number }> {
  const out: Array<{ container: Json[] | { [key: string]: Json }; key: string | number }> = [];
  const stack: Json[] = [root];
  // Not `stack.pop()!`: that would also take null out of the type, and null is a Json value here.
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (Array.isArray(node))
      node.forEach((v, i) => {
        out.push({ container: node, key: i });
        stack.push(v);
      });
    else if (node !== null && typeof node === 'object')
      for (const [k, v] of Object.entries(node)) {
        out.push({ container: node, key: k });
        stack.push(v);
      }
  }
  return out;
}

function mutate(request: Json[], rand: () => number): void {
  const steps = 1 + Math.floor(rand() * 3);
  for (let s = 0; s < steps; s++) {
    const all = places(request);
    const place = all[Math.floor(rand() * all.length)];
    const op = Math.floor(rand() * 6);
    if (!place || op === 5) {
      // The request itself: a duplicate object, or a foreign one.
      const other = [JSON.parse(JSON.stringify(request[0] ?? null)) as Json, 'not an object', null, { kind: 'Task' }, { kind: 'Node' }][
        Math.floor(rand() * 5)
      ]!;
      request.push(other);
      continue;
    }
    const { container, key } = place;
    if (op === 0) {
      if (Array.isArray(container)) container.splice(Number(key), 1);
      else delete container[key as string];
    } else if (op === 1 || op === 2) {
      if (Array.isArray(container)) container[Number(key)] = nastyValue(rand);
      else withKey(container, key as string, nastyValue(rand));
    } else if (op === 3) {
      const target = Array.isArray(container) ? container : container;
      const value = (target as { [k: string]: Json })[key as string];
      if (value !== null && typeof value === 'object' && !Array.isArray(value))
        withKey(value, NASTY_KEYS[Math.floor(rand() * NASTY_KEYS.length)]!, nastyValue(rand));
      else if (Array.isArray(value)) value.push(nastyValue(rand));
    } else {
      // Swap a value for one found elsewhere in the request: right type at the wrong place.
      const donor = all[Math.floor(rand() * all.length)]!;
      const value = (donor.container as { [k: string]: Json })[donor.key as string] ?? null;
      if (Array.isArray(container)) container[Number(key)] = JSON.parse(JSON.stringify(value)) as Json;
      else withKey(container, key as string, JSON.parse(JSON.stringify(value)) as Json);
    }
  }
}

// ---- the invariants ----

async function storeState(api: MemoryApi): Promise<string> {
  const { kvs, revision } = await api.store.range('');
  return JSON.stringify({ revision, kvs: kvs.map((kv) => [kv.key, kv.modRevision]) });
}

interface Outcome {
  applied: boolean;
  message?: string;
}

/** Applies the request and checks what every request must satisfy, whatever it holds. */
async function applyChecked(t: ExecutionContext, api: MemoryApi, objectsJson: string[], what: string, pruneStacks: string[] = []): Promise<Outcome> {
  const before = await storeState(api);
  try {
    await api.server.apply(objectsJson, false, pruneStacks);
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== grpc.status.INVALID_ARGUMENT) {
      t.fail(`${what}: not a validation error: ${err instanceof Error ? `${err.name}: ${err.message.slice(0, 500)}\n${err.stack ?? ''}` : String(err)}`);
      return { applied: false };
    }
    const bytes = Buffer.byteLength(err.message);
    if (bytes > MAX_ERROR_MESSAGE_BYTES) t.fail(`${what}: error message of ${bytes} bytes`);
    if ((await storeState(api)) !== before) t.fail(`${what}: refused, but the store changed`);
    return { applied: false, message: err.message };
  }
  // Whatever was accepted is within the limits and valid when read back.
  const { kvs } = await api.store.range('/tessera/objects/Service/');
  for (const kv of kvs) {
    const stored = JSON.parse(kv.value) as Service;
    if ((stored.spec.replicas ?? 1) > MAX_REPLICAS) t.fail(`${what}: stored ${stored.metadata.name} with replicas ${stored.spec.replicas}`);
    if (!validateObject(stored).ok) t.fail(`${what}: stored ${stored.metadata.name} is not valid when read back`);
  }
  return { applied: true };
}

function serviceJson(spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 'web', stack: 'fz' }): string {
  return JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata, spec: { image: 'busybox', ...spec } });
}

/** Hand-written inputs, each a request (list of JSON texts) and whether it must be refused. */
function nasties(): Array<{ what: string; objects: string[]; refused: boolean; prune?: string[] }> {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const deepMap = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  const list: Array<{ what: string; objects: string[]; refused: boolean; prune?: string[] }> = [
    { what: 'a 3 MiB unknown key', objects: [serviceJson({ ['k'.repeat(3 * 1024 * 1024)]: 1 })], refused: true },
    { what: 'a 16 MiB unknown key', objects: [serviceJson({ ['k'.repeat(16 * 1024 * 1024)]: 1 })], refused: true },
    { what: 'a 1 MiB near-typo key', objects: [serviceJson({ [`image${'e'.repeat(1024 * 1024)}`]: 1 })], refused: true },
    { what: 'a 3 MiB image', objects: [serviceJson({ image: 'b'.repeat(3 * 1024 * 1024) })], refused: false },
    { what: 'a 3 MiB name', objects: [serviceJson({}, { name: 'n'.repeat(3 * 1024 * 1024) })], refused: true },
    { what: 'a 3 MiB stack', objects: [serviceJson({}, { name: 'web', stack: 's'.repeat(3 * 1024 * 1024) })], refused: true },
    {
      what: 'a 3 MiB constraint of spaces',
      objects: [serviceJson({ placement: { constraints: [`node.labels.a==x${' '.repeat(3 * 1024 * 1024)}y`] } })],
      refused: false,
    },
    {
      what: 'a 3 MiB Secret',
      objects: [
        JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name: 's' }, spec: { data: Buffer.alloc(2 * 1024 * 1024).toString('base64') } }),
      ],
      refused: true,
    },
    {
      what: 'a Secret of invalid base64',
      objects: [JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name: 's' }, spec: { data: '!'.repeat(1_000_000) } })],
      refused: true,
    },
    { what: 'a request over 4 MiB', objects: [serviceJson({ env: { A: 'x'.repeat(MAX_REQUEST_BYTES) } })], refused: true },
    { what: '1001 objects', objects: Array.from({ length: 1001 }, (_, i) => serviceJson({}, { name: `w${i}` })), refused: true },
    { what: '1000 bad objects', objects: Array.from({ length: 1000 }, (_, i) => serviceJson({ replicas: -i - 1 }, { name: `w${i}` })), refused: true },
    {
      what: 'command nested 500,000 deep',
      objects: [`{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web"},"spec":{"image":"b","command":${deep(500_000)}}}`],
      refused: true,
    },
    {
      what: 'an unknown key holding 500,000 levels of mappings',
      objects: [`{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web"},"spec":{"image":"b","x":${deepMap(500_000)}}}`],
      refused: true,
    },
    { what: 'a whole object nested 1,000,000 deep', objects: [deep(1_000_000)], refused: true },
    {
      what: 'labels nested 100,000 deep',
      objects: [`{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web","labels":${deepMap(100_000)}},"spec":{"image":"b"}}`],
      refused: true,
    },
    { what: 'a NUL in the name', objects: [serviceJson({}, { name: 'we\0b' })], refused: true },
    { what: 'a NUL in the image', objects: [serviceJson({ image: 'busy\0box' })], refused: true },
    { what: 'a NUL in an env value', objects: [serviceJson({ env: { A: 'x\0y' } })], refused: true },
    { what: 'a lone surrogate in the name', objects: [serviceJson({}, { name: '\ud800' })], refused: true },
    {
      what: '__proto__ at the top',
      objects: ['{"__proto__":{"polluted":1},"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web"},"spec":{"image":"b"}}'],
      refused: true,
    },
    {
      what: '__proto__ in spec',
      objects: ['{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web"},"spec":{"image":"b","__proto__":{"replicas":1000000}}}'],
      refused: true,
    },
    {
      what: '__proto__ in env',
      objects: ['{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web"},"spec":{"image":"b","env":{"__proto__":{"polluted":1}}}}'],
      refused: true,
    },
    {
      what: '__proto__ in labels',
      objects: ['{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web","labels":{"__proto__":"x"}},"spec":{"image":"b"}}'],
      refused: true,
    },
    {
      what: 'constructor and prototype as keys',
      objects: ['{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web"},"spec":{"image":"b","constructor":{"prototype":{"polluted":1}}}}'],
      refused: true,
    },
    { what: 'constructor as an env name', objects: [serviceJson({ env: { constructor: 'c', toString: 't' } })], refused: false },
    { what: 'kind __proto__', objects: ['{"apiVersion":"tessera/v1","kind":"__proto__","metadata":{"name":"web"},"spec":{}}'], refused: true },
    { what: 'kind Task', objects: ['{"apiVersion":"tessera/v1","kind":"Task","metadata":{"name":"web"},"spec":{}}'], refused: true },
    { what: 'not JSON', objects: ['{', '', 'nul', '1e999999'], refused: true },
    { what: 'JSON that is no object', objects: ['null', '[]', '1', '"str"', 'true'], refused: true },
    { what: 'a prune stack of 3 MiB', objects: [serviceJson({})], prune: ['s'.repeat(3 * 1024 * 1024)], refused: true },
    { what: 'a prune stack with a NUL', objects: [serviceJson({})], prune: ['a\0b'], refused: true },
  ];
  for (const replicas of ['1e6', '9007199254740991', '-1', '1.5', '"3"', '1e308', '-1e308', 'null', '[]', '{}', '100001']) {
    list.push({
      what: `replicas ${replicas}`,
      objects: [`{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web"},"spec":{"image":"b","replicas":${replicas}}}`],
      refused: true,
    });
  }
  list.push({
    what: 'replicas 100000',
    objects: ['{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"big"},"spec":{"image":"b","replicas":100000}}'],
    refused: false,
  });
  return list;
}

test('apply fuzz: hand-written nasties end in success or a clear, short validation error, and a refusal changes nothing', async (t) => {
  const api = await memoryApi('tessera-fuzz-apply-');
  t.teardown(() => stopMemoryApi(api));
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
  for (const nasty of nasties()) {
    const started = performance.now();
    const outcome = await applyChecked(t, api, nasty.objects, nasty.what, nasty.prune);
    const ms = performance.now() - started;
    t.is(!outcome.applied, nasty.refused, `${nasty.what}: ${outcome.applied ? 'applied' : `refused: ${outcome.message?.slice(0, 300) ?? ''}`}`);
    t.log(
      `${nasty.what}: ${outcome.applied ? 'applied' : 'refused'} in ${ms.toFixed(0)} ms${outcome.message ? ` (${Buffer.byteLength(outcome.message)}-byte error)` : ''}`,
    );
  }
  t.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeKeys, 'Object.prototype untouched');
  t.is(({} as Record<string, unknown>)['polluted'], undefined);
});

test('apply fuzz: seeded mutations of valid requests', async (t) => {
  const seed = Number(process.env['TESSERA_FUZZ_SEED'] ?? Date.now() % 1_000_000);
  t.log(`seed ${seed} (replay with TESSERA_FUZZ_SEED=${seed})`);
  const rand = prng(seed);
  const api = await memoryApi('tessera-fuzz-apply-');
  t.teardown(() => stopMemoryApi(api));
  const bases = validRequests();
  // The unmutated requests are valid: the fuzzing starts from what is accepted.
  for (const base of bases) {
    const outcome = await applyChecked(
      t,
      api,
      base.map((o) => JSON.stringify(o)),
      'a valid request',
    );
    t.true(outcome.applied, outcome.message);
  }

  const end = performance.now() + MUTATION_BUDGET_MS;
  let runs = 0;
  let applied = 0;
  while (performance.now() < end) {
    const request = JSON.parse(JSON.stringify(bases[Math.floor(rand() * bases.length)])) as Json[];
    mutate(request, rand);
    const prune = rand() < 0.1 ? ['fz'] : [];
    const outcome = await applyChecked(
      t,
      api,
      request.map((o) => JSON.stringify(o)),
      `seed ${seed}, run ${runs}`,
      prune,
    );
    if (outcome.applied) applied++;
    runs++;
  }
  t.log(`${runs} mutated requests: ${applied} applied, ${runs - applied} refused`);
  t.true(runs > 50, `only ${runs} runs in the time budget`);
  t.is(({} as Record<string, unknown>)['polluted'], undefined);
});
