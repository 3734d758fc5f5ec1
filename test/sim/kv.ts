// The replicated state machine of the simulation: a string map with put and compare-and-swap;
// reads go through ReadIndex, not the log.
import type { KvInput, KvOutput } from './linearizability.js';

export interface KvCommand {
  /** Unique per client operation, so the proposer can recognise its entry when applied. */
  requestId: string;
  input: Exclude<KvInput, { kind: 'get' }>;
}

/** Orders map entries by their (unique) keys. */
export function byKey(a: readonly [string, unknown], b: readonly [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeCommand(c: KvCommand): Uint8Array {
  return enc.encode(JSON.stringify(c));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(dec.decode(data)) as KvCommand;
}

export class KvStateMachine {
  readonly data = new Map<string, string>();

  apply(c: KvCommand): KvOutput {
    const { input } = c;
    if (input.kind === 'put') {
      this.data.set(input.key, input.value);
      return { kind: 'put' };
    }
    const current = this.data.get(input.key) ?? null;
    if (current !== input.expected) return { kind: 'cas', ok: false };
    this.data.set(input.key, input.value);
    return { kind: 'cas', ok: true };
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify([...this.data.entries()].sort(byKey)));
  }

  static restore(bytes: Uint8Array): KvStateMachine {
    const kv = new KvStateMachine();
    if (bytes.length === 0) return kv;
    for (const [k, v] of JSON.parse(dec.decode(bytes)) as Array<[string, string]>) kv.data.set(k, v);
    return kv;
  }
}
