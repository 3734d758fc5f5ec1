// The store conformance suite: every Store backend (memory, raft, etcd) must pass all of it.
// Tests use revisions relative to the store's current one and keys under a per-test random prefix,
// so a backend whose store is shared or not empty (an external etcd) can run the suite too.
import { randomBytes } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { CompactedError, FutureRevisionError, type Compare, type Store, type WatchEvent } from '../../control-plane/store/store.js';
import { until } from './eventually.js';

interface Batch {
  revision: number;
  events: WatchEvent[];
}

/** Collects watch batches and lets a test wait for a condition on them. */
class Collector {
  readonly batches: Batch[] = [];
  readonly errors: Error[] = [];
  readonly handler = (events: WatchEvent[], revision: number): void => {
    this.batches.push({ revision, events });
  };
  readonly onError = (err: Error): void => {
    this.errors.push(err);
  };
  get events(): WatchEvent[] {
    return this.batches.flatMap((b) => b.events);
  }
  async waitForEvents(count: number, timeoutMs = 5000): Promise<WatchEvent[]> {
    await until(`${count} watch events`, () => this.events.length >= count, timeoutMs, 5);
    return this.events;
  }
}

/** Lets queued deliveries run, to check that nothing more arrives. */
async function settle(ms = 50): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

function uniquePrefix(): string {
  return `/conformance/${randomBytes(6).toString('hex')}/`;
}

function summary(events: WatchEvent[]): string[] {
  return events.map((e) => `${e.type} ${e.kv.key} ${e.type === 'put' ? e.kv.value : ''}`.trimEnd());
}

export function storeConformance(name: string, makeStore: () => Promise<Store>, cleanup?: (s: Store) => Promise<void>): void {
  // Each test gets its own store, closed (and cleaned up) afterwards even if the test fails.
  const withStore =
    (body: (t: ExecutionContext, store: Store, p: string) => Promise<void>) =>
    async (t: ExecutionContext): Promise<void> => {
      const store = await makeStore();
      try {
        await body(t, store, uniquePrefix());
      } finally {
        if (cleanup) await cleanup(store);
        else await store.close();
      }
    };

  const it = (title: string, body: (t: ExecutionContext, store: Store, p: string) => Promise<void>): void => {
    test(`${name}: ${title}`, withStore(body));
  };

  it('revisions are global and increase by one per write', async (t, s, p) => {
    const r0 = await s.currentRevision();
    t.true(r0 >= 1);
    t.is((await s.put(`${p}a`, '1')).revision, r0 + 1);
    t.is((await s.put(`${p}b`, '1')).revision, r0 + 2);
    t.is((await s.put(`${p}a`, '2')).revision, r0 + 3);
    t.is((await s.delete(`${p}b`)).revision, r0 + 4);
    t.is(await s.currentRevision(), r0 + 4);
  });

  it('put, get and delete', async (t, s, p) => {
    t.is(await s.get(`${p}k`), undefined);
    const first = await s.put(`${p}k`, 'v1');
    t.is(first.prev, undefined);
    t.is((await s.get(`${p}k`))?.value, 'v1');
    const second = await s.put(`${p}k`, 'v2');
    t.is(second.prev?.value, 'v1');
    t.is((await s.get(`${p}k`))?.value, 'v2');
    const del = await s.delete(`${p}k`);
    t.is(del.deleted, 1);
    t.is(del.revision, second.revision + 1);
    t.is(await s.get(`${p}k`), undefined);
  });

  it('deleting an absent key writes nothing', async (t, s, p) => {
    const r0 = await s.currentRevision();
    const del = await s.delete(`${p}nothing`);
    t.is(del.deleted, 0);
    t.is(del.revision, r0);
    t.is(await s.currentRevision(), r0);
  });

  it('values are stored verbatim', async (t, s, p) => {
    const value = JSON.stringify({ text: 'ünïcødé ✓ "quoted"\n', empty: '' });
    await s.put(`${p}json`, value);
    await s.put(`${p}empty`, '');
    t.is((await s.get(`${p}json`))?.value, value);
    t.is((await s.get(`${p}empty`))?.value, '');
  });

  it('range returns keys under the prefix, sorted', async (t, s, p) => {
    for (const k of ['c', 'a', 'b/2', 'b/1', 'b', 'ab']) await s.put(`${p}dir/${k}`, k);
    await s.put(`${p}dir2/x`, 'outside');
    await s.put(`${p}di`, 'outside');
    const all = await s.range(`${p}dir/`);
    t.deepEqual(
      all.kvs.map((kv) => kv.key),
      ['a', 'ab', 'b', 'b/1', 'b/2', 'c'].map((k) => `${p}dir/${k}`),
    );
    t.is(all.revision, await s.currentRevision());
    t.deepEqual(
      (await s.range(`${p}dir/b/`)).kvs.map((kv) => kv.value),
      ['1', '2'].map((x) => `b/${x}`),
    );
    t.deepEqual((await s.range(`${p}nothing/`)).kvs, []);
  });

  it('range at a past revision sees the store as it was', async (t, s, p) => {
    await s.put(`${p}a`, 'a1');
    const { revision: r1 } = await s.put(`${p}b`, 'b1');
    await s.put(`${p}a`, 'a2');
    await s.delete(`${p}b`);
    await s.put(`${p}c`, 'c1');
    const past = await s.range(p, { revision: r1 });
    t.is(past.revision, r1);
    t.deepEqual(
      past.kvs.map((kv) => [kv.key, kv.value]),
      [
        [`${p}a`, 'a1'],
        [`${p}b`, 'b1'],
      ],
    );
    const now = await s.range(p);
    t.deepEqual(
      now.kvs.map((kv) => [kv.key, kv.value]),
      [
        [`${p}a`, 'a2'],
        [`${p}c`, 'c1'],
      ],
    );
  });

  it('range at a future revision fails', async (t, s, p) => {
    await s.put(`${p}a`, '1');
    const r = await s.currentRevision();
    await t.throwsAsync(() => s.range(p, { revision: r + 10 }), { instanceOf: FutureRevisionError });
  });

  it('createRevision, modRevision and version', async (t, s, p) => {
    const { revision: r1 } = await s.put(`${p}k`, 'v1');
    let kv = await s.get(`${p}k`);
    t.like(kv, { createRevision: r1, modRevision: r1, version: 1 });
    const { revision: r2 } = await s.put(`${p}k`, 'v2');
    kv = await s.get(`${p}k`);
    t.like(kv, { createRevision: r1, modRevision: r2, version: 2 });
    await s.put(`${p}other`, 'x');
    t.like(await s.get(`${p}k`), { modRevision: r2, version: 2 });
    await s.delete(`${p}k`);
    const { revision: r3 } = await s.put(`${p}k`, 'v3');
    t.like(await s.get(`${p}k`), { createRevision: r3, modRevision: r3, version: 1, value: 'v3' });
  });

  it('txn compares every target with every operator', async (t, s, p) => {
    const k = `${p}k`;
    const { revision: created } = await s.put(k, 'm');
    const { revision: modified } = await s.put(k, 'm2');
    const cases: Array<[Compare['target'], Compare['op'], string | number, boolean]> = [
      ['value', '=', 'm2', true],
      ['value', '=', 'm', false],
      ['value', '!=', 'm', true],
      ['value', '!=', 'm2', false],
      ['value', '<', 'n', true],
      ['value', '<', 'a', false],
      ['value', '>', 'a', true],
      ['value', '>', 'n', false],
      ['version', '=', 2, true],
      ['version', '=', 1, false],
      ['version', '!=', 1, true],
      ['version', '<', 3, true],
      ['version', '<', 2, false],
      ['version', '>', 1, true],
      ['version', '>', 2, false],
      ['createRevision', '=', created, true],
      ['createRevision', '=', modified, false],
      ['createRevision', '<', modified, true],
      ['createRevision', '>', 0, true],
      ['createRevision', '!=', created, false],
      ['modRevision', '=', modified, true],
      ['modRevision', '=', created, false],
      ['modRevision', '>', created, true],
      ['modRevision', '<', modified, false],
      ['modRevision', '!=', created, true],
    ];
    for (const [target, op, value, expected] of cases) {
      const res = await s.txn({ compare: [{ key: k, target, op, value }], success: [] });
      t.is(res.succeeded, expected, `${target} ${op} ${value}`);
    }
    // Several compares must all hold.
    const both = await s.txn({
      compare: [
        { key: k, target: 'version', op: '=', value: 2 },
        { key: k, target: 'value', op: '=', value: 'wrong' },
      ],
      success: [],
    });
    t.false(both.succeeded);
  });

  it('txn compares against an absent key see zeros and no value', async (t, s, p) => {
    const k = `${p}absent`;
    const cases: Array<[Compare['target'], Compare['op'], string | number, boolean]> = [
      ['version', '=', 0, true],
      ['createRevision', '=', 0, true],
      ['modRevision', '=', 0, true],
      ['modRevision', '>', 0, false],
      ['value', '=', '', false],
      ['value', '!=', 'x', false],
    ];
    for (const [target, op, value, expected] of cases) {
      const res = await s.txn({ compare: [{ key: k, target, op, value }], success: [] });
      t.is(res.succeeded, expected, `${target} ${op} ${JSON.stringify(value)}`);
    }
  });

  it('compare-and-swap: the second of two writers with the same read conflicts', async (t, s, p) => {
    const k = `${p}cas`;
    await s.put(k, 'v0');
    const read = (await s.get(k))!.modRevision;
    const swap = (value: string) =>
      s.txn({
        compare: [{ key: k, target: 'modRevision', op: '=', value: read }],
        success: [{ type: 'put', key: k, value }],
        failure: [{ type: 'get', key: k }],
      });
    const first = await swap('A');
    const second = await swap('B');
    t.true(first.succeeded);
    t.false(second.succeeded);
    t.is((await s.get(k))?.value, 'A');
    const failed = second.results[0];
    t.is(failed?.type === 'get' ? failed.kv?.value : undefined, 'A');
    t.is(second.revision, first.revision, 'a failed txn that only reads writes nothing');
  });

  it('create-if-absent with createRevision = 0', async (t, s, p) => {
    const k = `${p}once`;
    const create = (value: string) => s.txn({ compare: [{ key: k, target: 'createRevision', op: '=', value: 0 }], success: [{ type: 'put', key: k, value }] });
    t.true((await create('first')).succeeded);
    t.false((await create('second')).succeeded);
    t.is((await s.get(k))?.value, 'first');
  });

  it('a multi-op txn is atomic at one revision', async (t, s, p) => {
    await s.put(`${p}c`, 'old');
    const r0 = await s.currentRevision();
    const w = new Collector();
    const watch = await s.watch(p, 0, w.handler);
    const res = await s.txn({
      compare: [],
      success: [
        { type: 'put', key: `${p}a`, value: '1' },
        { type: 'put', key: `${p}b`, value: '2' },
        { type: 'delete', key: `${p}c` },
        { type: 'get', key: `${p}a` },
      ],
    });
    t.true(res.succeeded);
    t.is(res.revision, r0 + 1);
    t.is((await s.get(`${p}a`))?.modRevision, r0 + 1);
    t.is((await s.get(`${p}b`))?.modRevision, r0 + 1);
    t.is(await s.get(`${p}c`), undefined);
    t.deepEqual(
      res.results.map((r) => r.type),
      ['put', 'put', 'delete', 'get'],
    );
    const got = res.results[3];
    t.is(got?.type === 'get' ? got.kv?.value : undefined, '1', 'reads in a txn see its earlier writes');
    await w.waitForEvents(3);
    await settle();
    t.is(w.batches.length, 1, 'one revision, one batch');
    t.is(w.batches[0]?.revision, r0 + 1);
    t.deepEqual(summary(w.events), [`put ${p}a 1`, `put ${p}b 2`, `delete ${p}c`]);
    watch.cancel();
  });

  it('the failure branch runs when a compare fails', async (t, s, p) => {
    await s.put(`${p}flag`, 'off');
    const res = await s.txn({
      compare: [{ key: `${p}flag`, target: 'value', op: '=', value: 'on' }],
      success: [{ type: 'put', key: `${p}result`, value: 'success' }],
      failure: [
        { type: 'put', key: `${p}result`, value: 'failure' },
        { type: 'range', prefix: `${p}` },
      ],
    });
    t.false(res.succeeded);
    t.is((await s.get(`${p}result`))?.value, 'failure');
    const range = res.results[1];
    t.deepEqual(range?.type === 'range' ? range.kvs.map((kv) => kv.key) : [], [`${p}flag`, `${p}result`]);
  });

  it('a txn without writes leaves the revision unchanged', async (t, s, p) => {
    await s.put(`${p}a`, '1');
    const r0 = await s.currentRevision();
    const res = await s.txn({
      compare: [],
      success: [
        { type: 'get', key: `${p}a` },
        { type: 'range', prefix: p },
      ],
    });
    t.is(res.revision, r0);
    t.is(await s.currentRevision(), r0);
  });

  it('a txn that writes one key twice is rejected and writes nothing', async (t, s, p) => {
    const r0 = await s.currentRevision();
    await t.throwsAsync(() =>
      s.txn({
        compare: [],
        success: [
          { type: 'put', key: `${p}x`, value: '1' },
          { type: 'put', key: `${p}x`, value: '2' },
        ],
      }),
    );
    t.is(await s.get(`${p}x`), undefined);
    t.is(await s.currentRevision(), r0);
  });

  it('deletePrefix removes exactly the keys under the prefix at one revision', async (t, s, p) => {
    await s.put(`${p}d/1`, 'a');
    await s.put(`${p}d/2`, 'b');
    await s.put(`${p}d2`, 'keep');
    const r0 = await s.currentRevision();
    const res = await s.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: `${p}d/` }] });
    t.is(res.revision, r0 + 1);
    const del = res.results[0];
    t.is(del?.type === 'delete' ? del.deleted : -1, 2);
    t.deepEqual(del?.type === 'delete' ? del.prev.map((kv) => kv.value).sort() : [], ['a', 'b']);
    t.deepEqual(
      (await s.range(p)).kvs.map((kv) => kv.key),
      [`${p}d2`],
    );
  });

  it('watch delivers puts and deletes in order with previous values', async (t, s, p) => {
    const w = new Collector();
    const watch = await s.watch(p, 0, w.handler);
    const { revision: r1 } = await s.put(`${p}k`, 'v1');
    const { revision: r2 } = await s.put(`${p}k`, 'v2');
    const { revision: r3 } = await s.delete(`${p}k`);
    const events = await w.waitForEvents(3);
    t.deepEqual(
      w.batches.map((b) => b.revision),
      [r1, r2, r3],
    );
    t.deepEqual(summary(events), [`put ${p}k v1`, `put ${p}k v2`, `delete ${p}k`]);
    t.is(events[0]?.prev, undefined);
    t.like(events[0]?.kv, { version: 1, createRevision: r1, modRevision: r1 });
    t.like(events[1]?.prev, { value: 'v1', modRevision: r1 });
    t.like(events[1]?.kv, { version: 2, createRevision: r1, modRevision: r2 });
    t.like(events[2]?.prev, { value: 'v2', modRevision: r2 });
    t.is(events[2]?.kv.modRevision, r3);
    watch.cancel();
  });

  it('watch delivers asynchronously, never inside the writer', async (t, s, p) => {
    const w = new Collector();
    const watch = await s.watch(p, 0, w.handler);
    const pending = s.put(`${p}k`, 'v');
    t.is(w.events.length, 0);
    await pending;
    await w.waitForEvents(1);
    t.pass();
    watch.cancel();
  });

  it('watch from a past revision replays history, then goes live', async (t, s, p) => {
    const { revision: r1 } = await s.put(`${p}a`, '1');
    await s.put(`${p}a`, '2');
    await s.delete(`${p}a`);
    const w = new Collector();
    const watch = await s.watch(p, r1 + 1, w.handler);
    await w.waitForEvents(2);
    t.deepEqual(summary(w.events), [`put ${p}a 2`, `delete ${p}a`]);
    t.like(w.events[0]?.prev, { value: '1' });
    await s.put(`${p}b`, 'live');
    await w.waitForEvents(3);
    t.deepEqual(summary(w.events).slice(2), [`put ${p}b live`]);
    const revisions = w.batches.map((b) => b.revision);
    t.deepEqual(
      revisions,
      [...revisions].sort((a, b) => a - b),
    );
    watch.cancel();
  });

  it('list at R then watch from R+1 misses nothing and repeats nothing', async (t, s, p) => {
    await s.put(`${p}a`, '1');
    const list = await s.range(p);
    await s.put(`${p}b`, '2');
    const w = new Collector();
    const watch = await s.watch(p, list.revision + 1, w.handler);
    await s.put(`${p}c`, '3');
    await w.waitForEvents(2);
    await settle();
    t.deepEqual(summary(w.events), [`put ${p}b 2`, `put ${p}c 3`]);
    watch.cancel();
  });

  it('watch from 0 sees only new changes', async (t, s, p) => {
    await s.put(`${p}old`, 'x');
    const w = new Collector();
    const watch = await s.watch(p, 0, w.handler);
    await s.put(`${p}new`, 'y');
    await w.waitForEvents(1);
    await settle();
    t.deepEqual(summary(w.events), [`put ${p}new y`]);
    watch.cancel();
  });

  it('watch sees only its prefix', async (t, s, p) => {
    const w = new Collector();
    const watch = await s.watch(`${p}mine/`, 0, w.handler);
    await s.put(`${p}mine2`, 'no');
    await s.put(`${p}other/x`, 'no');
    await s.txn({
      compare: [],
      success: [
        { type: 'put', key: `${p}mine/a`, value: 'yes' },
        { type: 'put', key: `${p}other/y`, value: 'no' },
      ],
    });
    await w.waitForEvents(1);
    await settle();
    t.deepEqual(summary(w.events), [`put ${p}mine/a yes`]);
    watch.cancel();
  });

  it('cancel stops delivery', async (t, s, p) => {
    const w = new Collector();
    const watch = await s.watch(p, 0, w.handler);
    await s.put(`${p}a`, '1');
    await w.waitForEvents(1);
    watch.cancel();
    await s.put(`${p}a`, '2');
    await settle();
    t.is(w.events.length, 1);
  });

  it('several watchers each get the full stream', async (t, s, p) => {
    const ws = [new Collector(), new Collector(), new Collector()];
    const watches = await Promise.all(ws.map((w) => s.watch(p, 0, w.handler)));
    for (let i = 0; i < 10; i++) await s.put(`${p}k${i}`, String(i));
    for (const w of ws) t.is((await w.waitForEvents(10)).length, 10);
    for (const w of watches) w.cancel();
  });

  it('compaction: reads and watches below the compacted revision fail', async (t, s, p) => {
    const { revision: r1 } = await s.put(`${p}a`, '1');
    const { revision: r2 } = await s.put(`${p}a`, '2');
    await s.put(`${p}b`, '1');
    await s.delete(`${p}b`);
    const { revision: r5 } = await s.put(`${p}c`, '1');
    await s.compact(r2);
    await t.throwsAsync(() => s.range(p, { revision: r1 }), { instanceOf: CompactedError });
    await t.throwsAsync(() => s.watch(p, r1, () => {}), { instanceOf: CompactedError });
    // The compacted revision itself is still readable and watchable.
    t.deepEqual(
      (await s.range(p, { revision: r2 })).kvs.map((kv) => kv.value),
      ['2'],
    );
    const w = new Collector();
    const watch = await s.watch(p, r2, w.handler);
    await w.waitForEvents(4);
    t.deepEqual(
      w.batches.map((b) => b.revision),
      [r2, r2 + 1, r2 + 2, r5],
    );
    watch.cancel();
    t.deepEqual(
      (await s.range(p)).kvs.map((kv) => `${kv.key}=${kv.value}`),
      [`${p}a=2`, `${p}c=1`],
    );
    t.like(await s.get(`${p}a`), { createRevision: r1, modRevision: r2, version: 2 });
    const future = (await s.currentRevision()) + 1;
    await t.throwsAsync(() => s.compact(future), { instanceOf: FutureRevisionError });
  });

  it('a slow watcher does not block writers or other watchers', async (t, s, p) => {
    const total = 200;
    const slow = new Collector();
    const fast = new Collector();
    const busy = (events: WatchEvent[], revision: number): void => {
      const until = Date.now() + 2;
      while (Date.now() < until) {
        // Simulates a handler doing expensive work per batch.
      }
      slow.handler(events, revision);
    };
    const w1 = await s.watch(p, 0, busy);
    const w2 = await s.watch(p, 0, fast.handler);
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < total; i++) writes.push(s.put(`${p}k${String(i).padStart(4, '0')}`, String(i)));
    const results = (await Promise.all(writes)) as Array<{ revision: number }>;
    t.is(new Set(results.map((r) => r.revision)).size, total);
    await fast.waitForEvents(total, 20_000);
    await slow.waitForEvents(total, 20_000);
    for (const c of [slow, fast]) {
      const revs = c.batches.map((b) => b.revision);
      t.deepEqual(
        revs,
        [...revs].sort((a, b) => a - b),
      );
      t.is(new Set(revs).size, total);
    }
    w1.cancel();
    w2.cancel();
  });

  it('close ends watches and rejects further calls', async (t, s, p) => {
    const w = new Collector();
    await s.watch(p, 0, w.handler, w.onError);
    await s.put(`${p}a`, '1');
    await w.waitForEvents(1);
    await s.close();
    await until('watch error after close', () => w.errors.length > 0, 5000, 5);
    await t.throwsAsync(() => s.put(`${p}a`, '2'));
    await t.throwsAsync(() => s.get(`${p}a`));
    t.is(w.events.length, 1);
    await s.close(); // closing twice is harmless
  });
}
