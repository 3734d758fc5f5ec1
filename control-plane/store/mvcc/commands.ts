// What the Raft store replicates: one command per log entry, as JSON bytes. Commands also arrive
// from the network (a follower forwards a client's write to the leader), so decoding validates
// every field and names what is wrong. Results travel back the same way.
import { CompactedError, FutureRevisionError, type TxnOp, type TxnRequest, type TxnResponse } from '../store.js';

export type StoreCommand =
  | { op: 'txn'; txn: TxnRequest }
  | { op: 'compact'; revision: number }
  /** Records where a member is reached; replicated so every member can dial every other. */
  | { op: 'member'; id: string; address: string };

export type CommandResult =
  { ok: 'txn'; response: TxnResponse } | { ok: 'done' } | { error: { name: string; message: string; requested?: number; current?: number } };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(c: StoreCommand): Uint8Array {
  return encoder.encode(JSON.stringify(c));
}

function fail(what: string): never {
  throw new Error(`store command: ${what}`);
}

function isString(v: unknown): v is string {
  return typeof v === 'string';
}

function validateOp(op: unknown, where: string): TxnOp {
  if (typeof op !== 'object' || op === null) fail(`${where} is not an object`);
  const o = op as Record<string, unknown>;
  switch (o['type']) {
    case 'put':
      if (!isString(o['key']) || !isString(o['value'])) fail(`${where}: put needs string key and value`);
      return { type: 'put', key: o['key'] as string, value: o['value'] as string };
    case 'delete':
    case 'get':
      if (!isString(o['key'])) fail(`${where}: ${String(o['type'])} needs a string key`);
      return { type: o['type'], key: o['key'] as string };
    case 'deletePrefix':
    case 'range':
      if (!isString(o['prefix'])) fail(`${where}: ${String(o['type'])} needs a string prefix`);
      return o['type'] === 'range' ? { type: 'range', prefix: o['prefix'] as string } : { type: 'deletePrefix', prefix: o['prefix'] as string };
    default:
      return fail(`${where}: unknown op type ${JSON.stringify(o['type'])}`);
  }
}

export function validateTxnRequest(txn: unknown): TxnRequest {
  if (typeof txn !== 'object' || txn === null) fail('txn is not an object');
  const t = txn as Record<string, unknown>;
  if (!Array.isArray(t['compare']) || !Array.isArray(t['success'])) fail('txn needs compare and success arrays');
  const compare = (t['compare'] as unknown[]).map((c, i) => {
    if (typeof c !== 'object' || c === null) fail(`compare[${i}] is not an object`);
    const r = c as Record<string, unknown>;
    if (!isString(r['key'])) fail(`compare[${i}].key must be a string`);
    if (!['value', 'version', 'createRevision', 'modRevision'].includes(String(r['target'])))
      fail(`compare[${i}].target ${JSON.stringify(r['target'])} is unknown`);
    if (!['=', '!=', '<', '>'].includes(String(r['op']))) fail(`compare[${i}].op ${JSON.stringify(r['op'])} is unknown`);
    if (!isString(r['value']) && typeof r['value'] !== 'number') fail(`compare[${i}].value must be a string or number`);
    return r as unknown as TxnRequest['compare'][number];
  });
  const success = (t['success'] as unknown[]).map((op, i) => validateOp(op, `success[${i}]`));
  if (t['failure'] !== undefined && !Array.isArray(t['failure'])) fail('txn failure must be an array');
  const failure = ((t['failure'] as unknown[] | undefined) ?? []).map((op, i) => validateOp(op, `failure[${i}]`));
  return { compare, success, failure };
}

export function decodeCommand(data: Uint8Array): StoreCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (err) {
    return fail(`not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null) fail('not an object');
  const c = parsed as Record<string, unknown>;
  switch (c['op']) {
    case 'txn':
      return { op: 'txn', txn: validateTxnRequest(c['txn']) };
    case 'compact':
      if (!Number.isSafeInteger(c['revision']) || (c['revision'] as number) < 0) fail('compact revision must be a non-negative integer');
      return { op: 'compact', revision: c['revision'] as number };
    case 'member':
      if (!isString(c['id']) || c['id'] === '' || !isString(c['address']) || c['address'] === '') fail('member needs non-empty id and address');
      return { op: 'member', id: c['id'] as string, address: c['address'] as string };
    default:
      return fail(`unknown op ${JSON.stringify(c['op'])}`);
  }
}

export function errorResult(err: unknown): CommandResult {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e instanceof CompactedError) return { error: { name: e.name, message: e.message, requested: e.requested, current: e.compactRevision } };
  if (e instanceof FutureRevisionError) return { error: { name: e.name, message: e.message, requested: e.requested, current: e.current } };
  return { error: { name: e.name, message: e.message } };
}

/** The error a CommandResult carries, rebuilt with its original class where the contract names one. */
export function resultError(r: Extract<CommandResult, { error: unknown }>): Error {
  const { name, message, requested, current } = r.error;
  if (name === 'CompactedError') return new CompactedError(requested ?? 0, current ?? 0);
  if (name === 'FutureRevisionError') return new FutureRevisionError(requested ?? 0, current ?? 0);
  const e = new Error(message);
  e.name = name;
  return e;
}

export function encodeResult(r: CommandResult): string {
  return JSON.stringify(r);
}

export function decodeResult(json: string): CommandResult {
  // From another member (a forwarded write's answer): checked before it is trusted.
  const r: unknown = JSON.parse(json);
  if (typeof r !== 'object' || r === null || !('ok' in r || 'error' in r)) throw new Error('store command result: malformed');
  return r as CommandResult;
}
