// The line diff and per-object rendering behind `tsctl diff`.
import test from 'ava';

import { unifiedDiff } from '../../cli/manifest/line-diff.js';
import { renderChange } from '../../cli/manifest/object-diff.js';
import type { Service } from '../../common/resources/types.js';

test('unified diff: equal texts give nothing; a change shows with context and hunk header', (t) => {
  t.is(unifiedDiff('a\nb\n', 'a\nb\n'), '');
  const old = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'].join('\n');
  const now = old.replace('five', 'FIVE');
  t.is(
    unifiedDiff(old, now, { oldLabel: 'a', newLabel: 'b' }),
    ['--- a', '+++ b', '@@ -2,7 +2,7 @@', ' two', ' three', ' four', '-five', '+FIVE', ' six', ' seven', ' eight', ''].join('\n'),
  );
  t.is(unifiedDiff('', 'x\ny\n'), ['--- current', '+++ new', '@@ -0,0 +1,2 @@', '+x', '+y', ''].join('\n'));
  // Two changes far apart are two hunks.
  const long = Array.from({ length: 30 }, (_, i) => `l${i}`).join('\n');
  const twice = long.replace('l2\n', 'L2\n').replace('l27', 'L27');
  t.is(unifiedDiff(long, twice).match(/^@@/gm)?.length, 2);
});

test('object changes: created, configured (spec diff), unchanged, pruned', (t) => {
  const web = (replicas: number): Service => ({
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name: 'web', stack: 'shop', uid: 'u', generation: 3 },
    spec: { image: 'busybox', replicas },
  });
  const configured = renderChange({ kind: 'Service', stack: 'shop', name: 'web', action: 'configured', current: web(1), planned: web(2) });
  t.true(configured.differs);
  t.is(
    configured.text,
    [
      'service/shop/web configured',
      '--- service/shop/web (cluster)',
      '+++ service/shop/web (files)',
      '@@ -1,3 +1,3 @@',
      ' spec:',
      '   image: busybox',
      '-  replicas: 1',
      '+  replicas: 2',
      '',
    ].join('\n'),
  );
  t.deepEqual(renderChange({ kind: 'Service', stack: '', name: 'web', action: 'unchanged', planned: web(1) }), {
    text: 'service/web unchanged\n',
    differs: false,
  });
  t.regex(renderChange({ kind: 'Service', stack: '', name: 'web', action: 'created', planned: web(1) }).text, /^service\/web created\n--- \/dev\/null\n/);
  t.regex(
    renderChange({ kind: 'Service', stack: '', name: 'web', action: 'pruned', current: web(1) }).text,
    /^service\/web pruned\n--- service\/web \(cluster\)\n\+\+\+ \/dev\/null\n@@ -1,3 \+0,0 @@\n-spec:/,
  );
});
