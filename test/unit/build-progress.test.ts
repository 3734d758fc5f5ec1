// How tsctl build shows progress (issue 18): the plain lines a log gets (step, CACHED, output,
// DONE, a few lines per pull), the terminal frame (spinner and clock on running steps with their
// last output lines, results on finished ones, a bar per transfer, redrawn in place), the wire's
// messages turned back into events, and the lines a success prints. Pure: fake streams, fake clock.
import test from 'ava';

import { PlainBuildProgress, TtyBuildProgress, resultLines, stepLabel } from '../../cli/build/progress.js';
import { buildErrorOf, progressOf, type BuildEvent } from '../../cli/build/run-build.js';
import { ProgressWriter, progressMessage } from '../../control-plane/api/build-stream.js';
import type { BuildOutput } from '../../proto/gen/tessera/api/v1/BuildOutput.js';
import type { BuildProgress } from '../../common/build/builder.js';
import type { BuildOutput__Output } from '../../proto/gen/tessera/api/v1/BuildOutput.js';

function sink(): { text: string; write(s: string): void; columns?: number } {
  return {
    text: '',
    write(s: string) {
      this.text += s;
    },
  };
}

const EVENTS: BuildEvent[] = [
  { kind: 'context', phase: 'walked', entries: 12, bytes: 0, totalBytes: 20_480 },
  { kind: 'accepted', node: 'node n1' },
  { kind: 'context', phase: 'received', entries: 12, bytes: 20_480, totalBytes: 20_480 },
  { kind: 'step', stage: 'build', step: 1, totalSteps: 3, instruction: 'FROM busybox' },
  { kind: 'pull', reference: 'busybox', bytes: 0, totalBytes: 4096 },
  { kind: 'pull', reference: 'busybox', bytes: 100, totalBytes: 4096 },
  { kind: 'pull', reference: 'busybox', bytes: 4096, totalBytes: 4096 },
  { kind: 'done', step: 1, durationMs: 120 },
  { kind: 'step', stage: 'build', step: 2, totalSteps: 3, instruction: 'COPY . /src' },
  { kind: 'cached', step: 2 },
  { kind: 'step', stage: '1', step: 3, totalSteps: 3, instruction: 'RUN make' },
  { kind: 'output', step: 3, line: 'cc -o app main.c' },
  { kind: 'done', step: 3, durationMs: 1234 },
];

test('plain output: one line per event that says something new, numbered by step', (t) => {
  const out = sink();
  const renderer = new PlainBuildProgress(out);
  for (const e of EVENTS) renderer.event(e);
  t.is(
    out.text,
    [
      '#0 context: 12 entries, 20.0 KiB to send',
      '#0 building on node n1',
      '#0 context sent: 20.0 KiB',
      '#1 [build 1/3] FROM busybox',
      '#0 pulling busybox 0 B/4.0 KiB',
      '#0 pulling busybox 4.0 KiB/4.0 KiB',
      '#1 DONE 0.1s',
      '#2 [build 2/3] COPY . /src',
      '#2 CACHED',
      '#3 [stage-1 3/3] RUN make',
      '#3 cc -o app main.c',
      '#3 DONE 1.2s',
      '',
    ].join('\n'),
  );
});

test('the terminal frame: spinner and clock on a running step with its last output, results on the others', (t) => {
  let now = 1_000_000;
  const out = sink();
  const renderer = new TtyBuildProgress(out, () => now);
  for (const e of EVENTS.slice(0, 11)) renderer.event(e);
  for (let i = 0; i < 7; i++) renderer.event({ kind: 'output', step: 3, line: `line ${i}` });
  now += 2500;
  t.deepEqual(renderer.frame(), [
    '[+] Building 2.5s (2/3)',
    ' => context: 12 entries, 20.0 KiB sent',
    ' => [build 1/3] FROM busybox  DONE 0.1s',
    ' => [build 2/3] COPY . /src  CACHED',
    ' => [stage-1 3/3] RUN make  ⠋ 2.5s',
    '    | line 2',
    '    | line 3',
    '    | line 4',
    '    | line 5',
    '    | line 6',
    ' => pulling busybox [====================] 4.0 KiB/4.0 KiB',
  ]);
  renderer.tick();
  t.regex(renderer.frame()[4]!, /RUN make {2}⠙ 2\.5s$/);
  renderer.event({ kind: 'done', step: 3, durationMs: 2500 });
  t.is(renderer.frame()[4], ' => [stage-1 3/3] RUN make  DONE 2.5s');
  t.is(renderer.frame().length, 6, 'the output lines go when the step is done');
  // Redrawn in place: the cursor goes back up over the previous frame, and lines it no longer has are cleared.
  t.true(out.text.includes('\x1b[11A'));
  t.true(out.text.includes('\r\x1b[2K\n\x1b['));
});

test('a long build keeps the frame short: earlier finished steps are counted, not drawn', (t) => {
  const renderer = new TtyBuildProgress(sink(), () => 0);
  for (let step = 1; step <= 20; step++) {
    renderer.event({ kind: 'step', stage: '0', step, totalSteps: 20, instruction: `RUN step ${step}` });
    renderer.event({ kind: 'done', step, durationMs: 10 });
  }
  const frame = renderer.frame();
  t.is(frame[1], ' => … 8 earlier steps');
  t.is(frame.length, 2 + 12);
  t.is(frame.at(-1), ' => [stage-0 20/20] RUN step 20  DONE 0.0s');
});

test('progress crosses the wire and back unchanged; long output lines are cut', (t) => {
  const events: BuildProgress[] = [
    { kind: 'step', stage: 'build', step: 2, totalSteps: 5, instruction: 'RUN make' },
    { kind: 'cached', step: 2 },
    { kind: 'output', step: 2, line: 'hello' },
    { kind: 'done', step: 2, durationMs: 1500 },
    { kind: 'pull', reference: 'busybox', bytes: 10, totalBytes: 100 },
    { kind: 'push', reference: 'reg:5000/app:1', bytes: 10 },
  ];
  for (const event of events) {
    const wire = progressMessage(event);
    const kind = Object.keys(wire)[0] as BuildOutput__Output['kind'];
    t.deepEqual(progressOf({ ...wire, kind } as BuildOutput__Output), event);
  }
  const long = progressMessage({ kind: 'output', step: 1, line: 'x'.repeat(10_000) });
  t.is(long.output?.line?.length, 4097);
});

test('a failure from the wire is a BuildError whose message names file:line:col once', (t) => {
  const err = buildErrorOf({
    message: 'Dockerfile:4:1: unknown instruction FORM',
    file: 'Dockerfile',
    line: 4,
    column: 1,
    runFailed: false,
    exitCode: 0,
    lastLines: [],
  });
  t.is(err.message, 'Dockerfile:4:1: unknown instruction FORM');
  t.deepEqual(err.location, { file: 'Dockerfile', line: 4, column: 1 });
  t.is(err.run, undefined);
});

test('success prints the manifest digest first, then the names', (t) => {
  t.is(stepLabel('7', 1, 2), 'stage-7 1/2');
  t.deepEqual(
    resultLines({ manifestDigest: 'sha256:abc', configDigest: 'sha256:def', tags: ['app:1', 'app:latest'], layers: 3, cachedSteps: 1, ranSteps: 2 }),
    ['sha256:abc', 'tagged app:1', 'tagged app:latest', '3 layers; 2 steps run, 1 from the cache'],
  );
});

test('a client that reads slowly loses RUN output lines, counted, but never a step event', (t) => {
  const sent: BuildOutput[] = [];
  const taken: Array<() => void> = [];
  const writer = new ProgressWriter({
    write: (message, callback) => {
      sent.push(message);
      taken.push(callback);
    },
  });
  for (let i = 0; i < 1500; i++) writer.progress({ kind: 'output', step: 4, line: `line ${i}` });
  t.is(sent.length, 1000, 'a thousand messages wait for the client; the rest are dropped');
  writer.progress({ kind: 'done', step: 4, durationMs: 10 });
  t.deepEqual(sent.slice(-2), [
    { output: { step: 4, line: '(500 lines of output not shown: the client took them too slowly)' } },
    { done: { step: 4, durationMs: 10 } },
  ]);
  // Once gRPC has taken them, output flows again.
  for (const callback of taken.splice(0)) callback();
  writer.progress({ kind: 'output', step: 5, line: 'after' });
  t.deepEqual(sent.at(-1), { output: { step: 5, line: 'after' } });
});
