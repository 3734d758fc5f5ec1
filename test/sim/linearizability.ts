// A linearizability checker for a key-value register model, in the style of Wing & Gong with
// Lowe's memoization (as in Porcupine): depth-first search over the order in which pending
// operations take effect, caching (set of linearized ops, model state) pairs already explored.
// The history is first split per key (P-compositionality: a KV map is linearizable iff each key
// is).

export type KvInput =
  { kind: 'put'; key: string; value: string } | { kind: 'get'; key: string } | { kind: 'cas'; key: string; expected: string | null; value: string };

/** undefined output = the operation's outcome is unknown (it may or may not have taken effect). */
export type KvOutput = { kind: 'put' } | { kind: 'get'; value: string | null } | { kind: 'cas'; ok: boolean };

export interface KvOperation {
  clientId: number;
  input: KvInput;
  output: KvOutput | undefined;
  /** Invocation time. */
  call: number;
  /** Response time; Infinity when no response was seen. */
  ret: number;
}

export interface CheckResult {
  ok: boolean;
  /** The key whose sub-history is not linearizable. */
  badKey?: string;
  /** Search steps, over all keys. */
  steps: number;
  /** The search gave up (budget exhausted): result unknown, reported as ok=false with timedOut. */
  timedOut?: boolean;
}

type State = string | null;

function stepModel(state: State, op: KvOperation): { ok: boolean; next: State } {
  const { input, output } = op;
  switch (input.kind) {
    case 'put':
      return { ok: true, next: input.value };
    case 'get':
      if (output === undefined) return { ok: true, next: state };
      return { ok: output.kind === 'get' && output.value === state, next: state };
    case 'cas': {
      const hit = state === input.expected;
      if (output !== undefined && (output.kind !== 'cas' || output.ok !== hit)) return { ok: false, next: state };
      return { ok: true, next: hit ? input.value : state };
    }
  }
}

interface Node {
  op: number;
  isCall: boolean;
  time: number;
  prev: Node | undefined;
  next: Node | undefined;
  match: Node | undefined; // call -> its return
}

function checkKey(ops: KvOperation[], budget: { steps: number; max: number }): boolean | 'timeout' {
  // Ops whose outcome is unknown and that are reads have no effect: drop them.
  const events: Array<{ op: number; isCall: boolean; time: number }> = [];
  ops.forEach((o, i) => {
    if (o.ret < o.call) throw new Error(`linearizability: operation ${i} returns (${o.ret}) before it is called (${o.call})`);
    events.push({ op: i, isCall: true, time: o.call }, { op: i, isCall: false, time: o.ret });
  });
  // Calls before returns at equal times: treat touching operations as concurrent (lenient).
  events.sort((x, y) => x.time - y.time || (x.isCall === y.isCall ? 0 : x.isCall ? -1 : 1));
  const head: Node = { op: -1, isCall: false, time: -Infinity, prev: undefined, next: undefined, match: undefined };
  let tail = head;
  const calls = new Map<number, Node>();
  for (const e of events) {
    const n: Node = { op: e.op, isCall: e.isCall, time: e.time, prev: tail, next: undefined, match: undefined };
    tail.next = n;
    tail = n;
    if (e.isCall) calls.set(e.op, n);
    else (calls.get(e.op) as Node).match = n;
  }
  const lift = (call: Node): void => {
    (call.prev as Node).next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match as Node;
    (ret.prev as Node).next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Node): void => {
    const ret = call.match as Node;
    (ret.prev as Node).next = ret;
    if (ret.next) ret.next.prev = ret;
    (call.prev as Node).next = call;
    if (call.next) call.next.prev = call;
  };
  const words = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const cacheKey = (state: State): string => `${words.join(',')}|${state === null ? '\u0000' : state}`;
  const cache = new Set<string>();
  const stack: Array<{ call: Node; state: State }> = [];
  let state: State = null;
  let entry = head.next;
  while (head.next !== undefined) {
    if (++budget.steps > budget.max) return 'timeout';
    const e = entry as Node;
    if (e.isCall) {
      const op = ops[e.op] as KvOperation;
      const r = stepModel(state, op);
      if (r.ok) {
        const w = e.op >>> 5;
        const bit = 1 << (e.op & 31);
        words[w] = (words[w] as number) | bit;
        const key = cacheKey(r.next);
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ call: e, state });
          state = r.next;
          lift(e);
          entry = head.next;
          continue;
        }
        words[w] = (words[w] as number) & ~bit;
      }
      entry = e.next;
    } else {
      // Every operation with a known response has been placed; ones with none may never have
      // happened, so the rest can be left out.
      if (e.time === Infinity) return true;
      const top = stack.pop();
      if (!top) return false;
      const w = top.call.op >>> 5;
      words[w] = (words[w] as number) & ~(1 << (top.call.op & 31));
      state = top.state;
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return true;
}

export function checkKvHistory(history: KvOperation[], maxSteps = 5_000_000): CheckResult {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of history) {
    if (op.output === undefined && op.input.kind === 'get') continue;
    const list = byKey.get(op.input.key);
    if (list) list.push(op);
    else byKey.set(op.input.key, [op]);
  }
  const budget = { steps: 0, max: maxSteps };
  for (const [key, ops] of [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const r = checkKey(ops, budget);
    if (r === 'timeout') return { ok: false, badKey: key, steps: budget.steps, timedOut: true };
    if (!r) return { ok: false, badKey: key, steps: budget.steps };
  }
  return { ok: true, steps: budget.steps };
}
