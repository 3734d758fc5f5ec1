// The --trace-gc-nvp reader bench:scrape uses (test/bench/gc-trace.ts), on lines as node 20 prints them.
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseGcTrace, summariseGc } from '../bench/gc-trace.js';

const run = promisify(execFile);

const SCAVENGE =
  '[6285:0x6e7ee70]      156 ms: pause=25.3 mutator=8.5 gc=s reduce_memory=0 time_to_safepoint=0.00 scavenge=25.23 total_size_before=4255008 total_size_after=4053056 allocated=691288 promoted=591032';
const MARK_COMPACT = '[6285:0x6e7ee70]      170 ms: pause=4.2 mutator=3.6 gc=mc reduce_memory=0 allocated=240248 promoted=0';

test('each collection line gives its pause, kind and allocation; other lines are skipped', (t) => {
  const text = ['tsd: listening', SCAVENGE, '', MARK_COMPACT, 'pause=oops gc=s allocated=1', 'a line that says pause= but has no kind'].join('\n');
  t.deepEqual(parseGcTrace(text), [
    { pauseMs: 25.3, kind: 's', allocatedBytes: 691288 },
    { pauseMs: 4.2, kind: 'mc', allocatedBytes: 240248 },
  ]);
});

test('the summary counts pauses over the threshold, the longest and the allocation', (t) => {
  const summary = summariseGc(parseGcTrace([SCAVENGE, MARK_COMPACT].join('\n')), 5);
  t.is(summary.count, 2);
  t.is(summary.over, 1);
  t.is(summary.maxPauseMs, 25.3);
  t.is(summary.allocatedBytes, 691288 + 240248);
  t.is(summary.maxAllocatedBytes, 691288);
  t.deepEqual(
    [...summary.byKind],
    [
      ['s', 1],
      ['mc', 1],
    ],
  );
  t.is(summariseGc([], 5).maxPauseMs, 0);
});

test("node's own --trace-gc-nvp output parses: one collection per forced gc()", async (t) => {
  const { stdout } = await run(process.execPath, ['--trace-gc-nvp', '--expose-gc', '-e', 'gc(); gc();']);
  const events = parseGcTrace(stdout);
  t.is(events.filter((e) => e.kind === 'mc').length, 2, stdout.slice(0, 400));
  t.true(events.every((e) => e.pauseMs >= 0 && e.allocatedBytes >= 0));
});
