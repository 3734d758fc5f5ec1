// The messages between a fleet process (fleet-main.ts) and its parent (fleet-process.ts), with
// their checks. Events travel as tuples: 100,000 tasks make a few hundred thousand of them.
import type { HollowEvent, HollowEventKind } from './hollow-worker.js';

export interface SimSettings {
  startLatencyMs: number;
  jitter: number;
  failureRate: number;
  seed: number;
}

export interface StartMessage {
  type: 'start';
  managers: string[];
  token: string;
  namePrefix: string;
  count: number;
  /** Two octets, e.g. "10.240": node i advertises <prefix>.<i / 250>.<i % 250 + 1>, an address of its own. */
  addressPrefix: string;
  concurrency: number;
  sim: SimSettings;
}

export type EncodedEvent = [at: number, kind: number, task: string, slot: string, node: string];

export type FleetToParent =
  { type: 'ready'; joinMs: number; connectMs: number } | { type: 'events'; events: EncodedEvent[] } | { type: 'failed'; message: string };

const KINDS: readonly HollowEventKind[] = ['assigned', 'run', 'end', 'failed'];

export function encodeEvents(events: readonly HollowEvent[]): EncodedEvent[] {
  return events.map((e) => [e.at, KINDS.indexOf(e.kind), e.task, e.slot, e.node]);
}

export function decodeEvents(events: readonly EncodedEvent[]): HollowEvent[] {
  return events.map(([at, kind, task, slot, node]) => {
    const decoded = KINDS[kind];
    if (decoded === undefined) throw new Error(`fleet event kind ${kind} is not one of 0..${KINDS.length - 1}`);
    return { at, kind: decoded, task, slot, node };
  });
}

function fail(what: string): never {
  throw new Error(`fleet start message: ${what}`);
}

function positiveInteger(value: unknown, what: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) fail(`${what} must be an integer 1..${max}`);
  return value;
}

function fraction(value: unknown, what: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) fail(`${what} must be a number 0..1`);
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) fail(`${what} must be a non-empty string of at most 256 characters`);
  return value;
}

function octetPair(value: unknown): string {
  if (typeof value !== 'string' || !/^(\d{1,3})\.(\d{1,3})$/.test(value) || value.split('.').some((o) => Number(o) > 255))
    fail('addressPrefix must be two octets, e.g. "10.240"');
  return value;
}

export function parseStartMessage(raw: unknown): StartMessage {
  const m = raw as Partial<Record<keyof StartMessage, unknown>> | null;
  if (!m || m.type !== 'start') fail('not a start message');
  const managers = m.managers;
  if (!Array.isArray(managers) || managers.length === 0 || managers.length > 16) fail('managers must list 1..16 addresses');
  const sim = (m.sim ?? {}) as Partial<Record<keyof SimSettings, unknown>>;
  const latency = sim.startLatencyMs;
  if (typeof latency !== 'number' || !(latency >= 0 && latency <= 600_000)) fail('sim.startLatencyMs must be 0..600000');
  return {
    type: 'start',
    managers: managers.map((a, i) => text(a, `managers[${i}]`)),
    token: text(m.token, 'token'),
    namePrefix: text(m.namePrefix, 'namePrefix'),
    count: positiveInteger(m.count, 'count', 10_000),
    addressPrefix: octetPair(m.addressPrefix),
    concurrency: positiveInteger(m.concurrency, 'concurrency', 1_000),
    sim: {
      startLatencyMs: latency,
      jitter: fraction(sim.jitter, 'sim.jitter'),
      failureRate: fraction(sim.failureRate, 'sim.failureRate'),
      seed: positiveInteger(sim.seed, 'sim.seed', 2 ** 31 - 1),
    },
  };
}

export { seededRandom } from '../helpers/seeded-random.js';
