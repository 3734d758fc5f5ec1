import test from 'ava';

import { lastLines, logText } from '../../agent/worker/log-source.js';

test('shim JSON lines show their text; other lines show as they are', (t) => {
  t.is(logText('{"time":"2026-11-22T23:00:00.000000001Z","stream":"stdout","log":"hello\\n"}'), 'hello');
  t.is(logText('{"time":"t","stream":"stderr","log":"no newline"}'), 'no newline');
  t.is(logText('plain text'), 'plain text');
  t.is(logText('{not json'), '{not json');
  t.is(logText('{"other":1}'), '{"other":1}');
});

test('tail keeps the last lines and drops the trailing empty one', (t) => {
  t.deepEqual(lastLines('a\nb\nc\n', 2), ['b', 'c']);
  t.deepEqual(lastLines('a\nb\n', 0), ['a', 'b']);
});
