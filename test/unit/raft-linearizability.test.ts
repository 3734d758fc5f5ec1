// The linearizability checker used by the Raft simulation, on histories whose verdict is known.
import test from 'ava';
import { checkKvHistory, type KvOperation } from '../sim/linearizability.js';

const put = (clientId: number, key: string, value: string, call: number, ret: number): KvOperation => ({
  clientId,
  input: { kind: 'put', key, value },
  output: ret === Infinity ? undefined : { kind: 'put' },
  call,
  ret,
});
const get = (clientId: number, key: string, value: string | null, call: number, ret: number): KvOperation => ({
  clientId,
  input: { kind: 'get', key },
  output: { kind: 'get', value },
  call,
  ret,
});
const cas = (clientId: number, key: string, expected: string | null, value: string, ok: boolean | undefined, call: number, ret: number): KvOperation => ({
  clientId,
  input: { kind: 'cas', key, expected, value },
  output: ok === undefined ? undefined : { kind: 'cas', ok },
  call,
  ret,
});

test('sequential history is linearizable', (t) => {
  t.true(checkKvHistory([put(1, 'x', 'a', 0, 1), get(1, 'x', 'a', 2, 3), put(1, 'x', 'b', 4, 5), get(2, 'x', 'b', 6, 7)]).ok);
});

test('empty history and a read of an absent key are linearizable', (t) => {
  t.true(checkKvHistory([]).ok);
  t.true(checkKvHistory([get(1, 'x', null, 0, 1)]).ok);
});

test('concurrent put and get may see either value', (t) => {
  t.true(checkKvHistory([put(1, 'x', 'a', 0, 10), get(2, 'x', 'a', 1, 2)]).ok);
  t.true(checkKvHistory([put(1, 'x', 'a', 0, 10), get(2, 'x', null, 1, 2)]).ok);
});

test('stale read after a completed write is NOT linearizable', (t) => {
  const r = checkKvHistory([put(1, 'x', 'a', 0, 1), put(1, 'x', 'b', 2, 3), get(2, 'x', 'a', 4, 5)]);
  t.false(r.ok);
  t.is(r.badKey, 'x');
});

test('read of a value never written is NOT linearizable', (t) => {
  t.false(checkKvHistory([put(1, 'x', 'a', 0, 1), get(2, 'x', 'zzz', 2, 3)]).ok);
});

test('two reads that disagree on order are NOT linearizable', (t) => {
  // Both puts are concurrent with everything, but once a reader saw b after a, nobody may see a
  // after having seen b... here reader 3 sees b then a while reader 4 sees a then b, all sequential per reader.
  const h = [
    put(1, 'x', 'a', 0, 100),
    put(2, 'x', 'b', 0, 100),
    get(3, 'x', 'a', 10, 11),
    get(3, 'x', 'b', 12, 13),
    get(4, 'x', 'b', 14, 15),
    get(4, 'x', 'a', 16, 17),
  ];
  t.false(checkKvHistory(h).ok);
});

test('concurrent reads may see puts in one consistent order', (t) => {
  const h = [put(1, 'x', 'a', 0, 100), put(2, 'x', 'b', 0, 100), get(3, 'x', 'a', 10, 11), get(4, 'x', 'b', 12, 13), get(3, 'x', 'b', 14, 15)];
  t.true(checkKvHistory(h).ok);
});

test('compare-and-swap: both succeeding on the same expected value is NOT linearizable', (t) => {
  const h = [put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', true, 2, 10), cas(3, 'x', 'a', 'c', true, 3, 9)];
  t.false(checkKvHistory(h).ok);
  const ok = [put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', true, 2, 10), cas(3, 'x', 'a', 'c', false, 3, 9), get(1, 'x', 'b', 11, 12)];
  t.true(checkKvHistory(ok).ok);
});

test('cas failure when the expected value is there is NOT linearizable', (t) => {
  t.false(checkKvHistory([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', false, 2, 3)]).ok);
});

test('a write with unknown outcome may or may not have happened', (t) => {
  t.true(checkKvHistory([put(1, 'x', 'a', 0, Infinity), get(2, 'x', 'a', 5, 6)]).ok);
  t.true(checkKvHistory([put(1, 'x', 'a', 0, Infinity), get(2, 'x', null, 5, 6)]).ok);
  // ...but not both ways: once seen, it cannot vanish.
  t.false(checkKvHistory([put(1, 'x', 'a', 0, Infinity), get(2, 'x', 'a', 5, 6), get(2, 'x', null, 7, 8)]).ok);
  // An unknown cas takes effect only if its expectation held.
  t.false(checkKvHistory([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'zz', 'b', undefined, 2, Infinity), get(3, 'x', 'b', 5, 6)]).ok);
});

test('a write cannot take effect before it is invoked', (t) => {
  t.false(checkKvHistory([get(2, 'x', 'a', 0, 1), put(1, 'x', 'a', 2, 3)]).ok);
});

test('keys are checked independently; the failing key is named', (t) => {
  const h = [put(1, 'x', 'a', 0, 1), get(2, 'x', 'a', 2, 3), put(1, 'y', 'a', 0, 1), put(1, 'y', 'b', 2, 3), get(2, 'y', 'a', 4, 5)];
  const r = checkKvHistory(h);
  t.false(r.ok);
  t.is(r.badKey, 'y');
});

test('many concurrent operations with a valid order are found quickly (memoization)', (t) => {
  const h: KvOperation[] = [];
  // 10 concurrent puts, then reads of the value one of them wrote: without the cache the search
  // would try up to 10! orders; with it, at most 2^10 subsets x values.
  for (let i = 0; i < 10; i++) h.push(put(i, 'x', `v${i}`, 0, 100));
  h.push(get(99, 'x', 'v7', 101, 102), get(99, 'x', 'v7', 103, 104));
  const r = checkKvHistory(h);
  t.true(r.ok);
  t.true(r.steps < 200_000, `steps ${r.steps}`);
});

test('a non-linearizable history hidden among many concurrent ops is still rejected', (t) => {
  const h: KvOperation[] = [];
  for (let i = 0; i < 12; i++) h.push(put(i, 'x', `v${i}`, 0, 100));
  h.push(get(99, 'x', 'v3', 101, 102), get(98, 'x', 'v4', 103, 104));
  t.false(checkKvHistory(h).ok);
});
