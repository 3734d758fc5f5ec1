// `tsctl image pull` progress output: plain lines when not on a terminal, lines redrawn in place on one.
import test from 'ava';
import { PullProgressDisplay, formatBytes, shortDigest } from '../../cli/commands/image.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const MiB = 1024 * 1024;

function downloads(display: PullProgressDisplay, digest: string, total: number, steps: number): void {
  for (let i = 0; i <= steps; i++) display.update({ digest, kind: 'layer', status: 'downloading', current: Math.round((total * i) / steps), total });
}

test('without a terminal: one plain line per state, downloads at each quarter', (t) => {
  let text = '';
  const display = new PullProgressDisplay(false, (s) => (text += s));
  display.update({ digest: `sha256:${'c'.repeat(64)}`, kind: 'config', status: 'downloading', current: 0, total: 300 });
  downloads(display, A, 4 * MiB, 20);
  display.update({ digest: A, kind: 'layer', status: 'unpacking', current: 4 * MiB, total: 4 * MiB });
  display.update({ digest: A, kind: 'layer', status: 'done', current: 4 * MiB, total: 4 * MiB });
  display.update({ digest: B, kind: 'layer', status: 'exists', current: 10, total: 10 });
  t.is(
    text,
    [
      'aaaaaaaaaaaa: downloading 0 B / 4.0 MiB',
      'aaaaaaaaaaaa: downloading 1.0 MiB / 4.0 MiB',
      'aaaaaaaaaaaa: downloading 2.0 MiB / 4.0 MiB',
      'aaaaaaaaaaaa: downloading 3.0 MiB / 4.0 MiB',
      'aaaaaaaaaaaa: downloading 4.0 MiB / 4.0 MiB',
      'aaaaaaaaaaaa: unpacking',
      'aaaaaaaaaaaa: done',
      'bbbbbbbbbbbb: already present',
      '',
    ].join('\n'),
  );
  t.false(text.includes('\x1b'), 'no escape codes in captured output');
});

test('on a terminal: every layer keeps its line, redrawn in place', (t) => {
  const writes: string[] = [];
  const display = new PullProgressDisplay(true, (s) => writes.push(s));
  display.update({ digest: A, kind: 'layer', status: 'downloading', current: 0, total: MiB });
  display.update({ digest: B, kind: 'layer', status: 'downloading', current: 0, total: MiB });
  display.update({ digest: A, kind: 'layer', status: 'done', current: MiB, total: MiB });
  t.is(writes[0], '\r\x1b[2Kaaaaaaaaaaaa: downloading 0 B / 1.0 MiB\n');
  t.is(writes[1], '\x1b[1A\r\x1b[2Kaaaaaaaaaaaa: downloading 0 B / 1.0 MiB\n\r\x1b[2Kbbbbbbbbbbbb: downloading 0 B / 1.0 MiB\n');
  t.is(writes[2], '\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: done\n\r\x1b[2Kbbbbbbbbbbbb: downloading 0 B / 1.0 MiB\n');
  t.is(shortDigest(A), 'aaaaaaaaaaaa');
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(1536 * 1024), '1.5 MiB');
});
