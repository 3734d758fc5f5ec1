// The long-lived `ip -batch` / `bridge -batch` session against real iproute2, inside a namespace
// the test creates: per-line failures are attributed to the right command, tolerated errors pass,
// and the session keeps working (and counting lines) after failures and restarts.

import test from 'ava';
import { BatchCommandError, BatchSession } from '../../agent/network/overlay/batch-session.js';
import { createNetns } from '../helpers/netns.js';

test('batch session: attributes failures to their lines, tolerates expected errors, survives a restart', async (t) => {
  const netns = await createNetns('tsovbt');
  t.teardown(() => netns.delete());
  const ip = new BatchSession('ip', netns.name);
  const bridge = new BatchSession('bridge', netns.name);
  t.teardown(() => {
    ip.close();
    bridge.close();
  });

  await ip.run([{ command: 'link add tsbt0 type bridge' }, { command: 'link set tsbt0 up' }]);
  const error = await t.throwsAsync(
    ip.run([
      { command: 'link add tsbt0 type bridge' }, // exists: not tolerated here
      { command: 'link add tsbt1 type bridge' },
      { command: 'link set nosuchdev up' },
    ]),
  );
  t.true(error instanceof BatchCommandError);
  const failures = (error as BatchCommandError).failures;
  t.deepEqual(
    failures.map((f) => f.command),
    ['link add tsbt0 type bridge', 'link set nosuchdev up'],
  );
  t.regex(failures[0]!.message, /File exists/);
  // -force: the line between the failures ran.
  const { stdout } = await netns.exec('ip', ['-j', 'link', 'show', 'tsbt1']);
  t.is((JSON.parse(stdout) as Array<{ ifname: string }>)[0]?.ifname, 'tsbt1');

  await ip.run([{ command: 'link add tsbt0 type bridge', tolerate: /File exists/ }]);
  // Concurrent batches are answered in order, each with its own outcome.
  const results = await Promise.allSettled([
    ip.run([{ command: 'link set tsbt0 mtu 1400' }]),
    ip.run([{ command: 'link set tsbt9 up' }]),
    ip.run([{ command: 'link set tsbt1 mtu 1300' }]),
  ]);
  t.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );

  await bridge.run([{ command: 'fdb show dev tsbt0' }]);
  ip.close();
  await ip.run([{ command: 'link del tsbt1' }]); // a fresh process, line numbers from 1 again
  await t.throwsAsync(ip.run([{ command: 'link del tsbt1' }]), { message: /link del tsbt1/ });
  t.throws(() => ip.run([{ command: 'link show\nlink del tsbt0' }]), { message: /must be one line/ });
});

test('batch session: a device re-created under the same name is addressed again after one failed batch', async (t) => {
  const netns = await createNetns('tsovbr');
  t.teardown(() => netns.delete());
  const ip = new BatchSession('ip', netns.name);
  t.teardown(() => ip.close());
  await ip.run([{ command: 'link add tsbr0 type bridge' }, { command: 'addr add 10.77.0.1/32 dev tsbr0' }]);
  // Someone deletes and re-creates the device: ip keeps the old ifindex cached for the name.
  await netns.exec('ip', ['link', 'del', 'tsbr0']);
  await netns.exec('ip', ['link', 'add', 'tsbr0', 'type', 'bridge']);
  await t.throwsAsync(ip.run([{ command: 'addr add 10.77.0.2/32 dev tsbr0' }]), { message: /Device not found|Cannot find device/ });
  // The failed batch retires the process: the retry resolves the name afresh.
  await ip.run([{ command: 'addr add 10.77.0.2/32 dev tsbr0' }]);
  const { stdout } = await netns.exec('ip', ['-j', 'addr', 'show', 'dev', 'tsbr0']);
  t.deepEqual(
    (JSON.parse(stdout) as Array<{ addr_info: Array<{ local: string }> }>)[0]?.addr_info.map((a) => a.local),
    ['10.77.0.2'],
  );
});
