// The progress display of `stack deploy` / `apply`: bars redrawn in place on a terminal, change
// lines elsewhere. The stream is a fake that records what is written (no terminal needed).
import test from 'ava';

import type { ServiceConvergence } from '../../cli/output/convergence.js';
import { formatPlainLine, formatTtyLine, PlainProgress, progressBar, progressRenderer, TtyProgress, type ServiceLine } from '../../cli/output/progress.js';

class FakeStream {
  readonly writes: string[] = [];
  constructor(readonly columns?: number) {}
  write(text: string): boolean {
    this.writes.push(text);
    return true;
  }
  get text(): string {
    return this.writes.join('');
  }
}

const state = (phase: ServiceConvergence['phase'], ready: number, desired: number, detail = ''): ServiceConvergence => ({ phase, ready, desired, detail });
const line = (name: string, s: ServiceConvergence): ServiceLine => ({ name, state: s });

/** What a terminal would show after the writes: applies \r, ESC[2K, ESC[nA and newlines to a screen. */
function screen(text: string): string[] {
  const rows: string[] = [''];
  let row = 0;
  for (let i = 0; i < text.length; i++) {
    // ESC then "[nA" (cursor up) or "[2K" (clear the line)
    const esc = text[i] === '\x1b' ? /^\[(\d*)([AK])/.exec(text.slice(i + 1)) : null;
    if (esc) {
      if (esc[2] === 'A') row = Math.max(0, row - Number(esc[1] || 1));
      else rows[row] = '';
      i += esc[0].length;
    } else if (text[i] === '\r') {
      // column 0; the next clear empties the line
    } else if (text[i] === '\n') {
      row += 1;
      rows[row] ??= '';
    } else rows[row] = (rows[row] ?? '') + text.charAt(i);
  }
  return rows.filter((r, i) => r !== '' || i < row);
}

test('progressBar fills by the share of ready tasks', (t) => {
  t.is(progressBar(0, 4, 8), '[        ]');
  t.is(progressBar(2, 4, 8), '[===>    ]');
  t.is(progressBar(4, 4, 8), '[========]');
  t.is(progressBar(9, 4, 8), '[========]', 'more than desired is full, not overflowing');
  t.is(progressBar(0, 0, 8), '[========]', 'nothing desired is done');
});

test('TTY lines: name padded, counts, bar and what the service waits for', (t) => {
  t.is(formatTtyLine(line('web', state('converging', 1, 3, 'starting')), 5), 'web    1/3 running    [=====>              ]  starting');
  t.is(formatTtyLine(line('api', state('converged', 2, 2)), 3), 'api  2/2 running    [====================]  converged');
  t.regex(formatTtyLine(line('db', state('failed', 0, 1, 'rolled back: unhealthy')), 2), /failed: rolled back: unhealthy$/);
});

test('TTY renderer redraws the same lines in place', (t) => {
  const out = new FakeStream(120);
  const tty = new TtyProgress(out);
  tty.update([line('web', state('converging', 0, 3, 'starting')), line('api', state('pending', 0, 1, 'waiting for the controller'))]);
  t.false(out.writes[0]!.includes('\x1b[2A'), 'the first frame does not move up');
  tty.update([line('web', state('converging', 2, 3, 'starting')), line('api', state('converged', 1, 1))]);
  t.true(out.writes[1]!.startsWith('\x1b[2A'), 'later frames go back up over the previous one');
  tty.finish([line('web', state('converged', 3, 3)), line('api', state('converged', 1, 1))]);
  t.deepEqual(screen(out.text), ['web  3/3 running    [====================]  converged', 'api  1/1 running    [====================]  converged']);
});

test('TTY lines are cut to the terminal width so a wrapped line never breaks the redraw', (t) => {
  const out = new FakeStream(40);
  new TtyProgress(out).update([line('web', state('converging', 0, 3, 'restarting after: image app:1: manifest unknown'))]);
  for (const row of screen(out.text)) t.true(row.length < 40, row);
});

test('TTY renderer clears lines left over from a longer earlier frame', (t) => {
  const out = new FakeStream(120);
  const tty = new TtyProgress(out);
  tty.update([line('a', state('converging', 0, 1, 'starting')), line('b', state('converging', 0, 1, 'starting'))]);
  tty.update([line('a', state('converged', 1, 1))]);
  t.deepEqual(screen(out.text), ['a  1/1 running    [====================]  converged']);
});

test('plain renderer prints a line only when a service changes', (t) => {
  const out = new FakeStream();
  const plain = new PlainProgress(out);
  plain.update([line('web', state('pending', 0, 3, 'waiting for the controller')), line('api', state('converging', 0, 1, 'starting'))]);
  plain.update([line('web', state('pending', 0, 3, 'waiting for the controller')), line('api', state('converging', 0, 1, 'starting'))]);
  plain.update([line('web', state('converging', 2, 3, 'starting')), line('api', state('converging', 0, 1, 'starting'))]);
  plain.finish([line('web', state('converged', 3, 3)), line('api', state('failed', 0, 1, '3 tasks failed: image api:1: not found'))]);
  t.deepEqual(out.text.split('\n'), [
    'web: 0/3 running (waiting for the controller)',
    'api: 0/1 running (starting)',
    'web: 2/3 running (starting)',
    'web: converged (3/3 running)',
    'api: failed: 3 tasks failed: image api:1: not found (0/1 running)',
    '',
  ]);
  t.false(out.text.includes('\x1b'), 'no escape sequences outside a terminal');
});

test('formatPlainLine and the renderer choice', (t) => {
  t.is(formatPlainLine(line('web', state('converging', 1, 2, ''))), 'web: 1/2 running');
  t.true(progressRenderer(new FakeStream(), true) instanceof TtyProgress);
  t.true(progressRenderer(new FakeStream(), false) instanceof PlainProgress);
});

test('TTY renderer writes nothing when the frame has not changed', (t) => {
  const out = new FakeStream(120);
  const tty = new TtyProgress(out);
  const frame = [line('web', state('converging', 1, 2, 'starting'))];
  tty.update(frame);
  tty.update(frame);
  t.is(out.writes.length, 1);
  tty.update([line('web', state('converged', 2, 2))]);
  t.is(out.writes.length, 2);
});
