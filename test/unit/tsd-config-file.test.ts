// tsd's configuration file (/etc/tessera/tsd.yaml) and its default addresses: parsing and
// refusals with file:line, command-line flags winning over the file, the file's own checks
// (mode, size), the example file parsing back to the defaults, and the choice of the machine's
// address from the route table and the links.
import test from 'ava';
import { Command } from 'commander';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetworkInterfaceInfo } from 'node:os';

import { configFileText, parseConfigFile, readConfigFile } from '../../daemon/config-file.js';
import { defaultConfig } from '../../daemon/config.js';
import { chooseMachineAddress, defaultRouteLink } from '../../daemon/machine-address.js';
import { configFromCommand, withNodeOptions } from '../../daemon/node-options.js';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tsd-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('every kind of setting is read with its type: text, integer, list', (t) => {
  const settings = parseConfigFile(
    '/etc/tessera/tsd.yaml',
    [
      'data-root: /srv/tessera',
      'listen: 10.0.0.5:7420',
      'heartbeat-ms: 500',
      'insecure-registry: [reg.lan:5000]',
      'etcd-endpoints:',
      '  - http://10.0.0.9:2379',
    ].join('\n'),
  );
  t.deepEqual(settings, {
    dataRoot: '/srv/tessera',
    listen: '10.0.0.5:7420',
    heartbeatMs: 500,
    insecureRegistries: ['reg.lan:5000'],
    etcdEndpoints: ['http://10.0.0.9:2379'],
  });
});

test('unknown settings, wrong types and duplicates are refused, each naming the file and line', (t) => {
  const error = t.throws(() =>
    parseConfigFile('/etc/tessera/tsd.yaml', ['data-root: /srv', 'heartbeat-ms: fast', 'tokn-file: /root/token', 'subnet: [a]'].join('\n')),
  );
  t.regex(error.message, /tsd\.yaml:2: heartbeat-ms: expected a whole number/);
  t.regex(error.message, /tsd\.yaml:3: unknown setting "tokn-file"/);
  t.regex(error.message, /tsd\.yaml:4: subnet: expected a string/);
  const duplicate = t.throws(() => parseConfigFile('f.yaml', 'listen: a:1\nlisten: b:2\n'));
  t.regex(duplicate.message, /f\.yaml:2: .*[Uu]nique/);
  t.throws(() => parseConfigFile('f.yaml', '- a\n- b\n'), { message: /f\.yaml: expected a mapping/ });
});

test('a flag on the command line wins over the file; the file wins over the defaults', (t) => {
  const command = withNodeOptions(new Command('tsd-test')).exitOverride();
  command.parse(['--heartbeat-ms', '700'], { from: 'user' });
  const config = configFromCommand(command, { heartbeatMs: 300, nodeName: 'from-file' });
  t.is(config.heartbeatMs, 700, 'the flag');
  t.is(config.nodeName, 'from-file', 'the file');
  t.is(config.subnet, defaultConfig().subnet, 'the default');
  t.throws(
    () => configFromCommand(command, { nodeName: 'Not A Label' }),
    { message: /--node-name must be a DNS label/ },
    'file values are validated as flags are',
  );
});

test('the file: an explicit one must exist; the default one may not; others must not be able to write it; size is bounded', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(readConfigFile(join(dir, 'missing.yaml')), { message: /--config .*missing\.yaml: ENOENT/ });
  const file = join(dir, 'tsd.yaml');
  await writeFile(file, 'node-name: n1\n');
  await chmod(file, 0o666);
  await t.throwsAsync(readConfigFile(file), { message: /writable by other users \(mode 666\)/ });
  await chmod(file, 0o644);
  t.deepEqual(await readConfigFile(file), { nodeName: 'n1' });
  await writeFile(file, `# ${'x'.repeat(70 * 1024)}\n`);
  await t.throwsAsync(readConfigFile(file), { message: /bytes; a configuration file is at most/ });
});

test('the example file changes nothing as printed, and parses back to the defaults when uncommented', (t) => {
  const text = configFileText(defaultConfig());
  t.deepEqual(parseConfigFile('example', text), {});
  const uncommented = text.replace(/^#([a-z-]+:)/gm, '$1').replace(/^([a-z-]+):$/gm, '# $1 (unset)');
  const settings = parseConfigFile('example', uncommented);
  const defaults = defaultConfig() as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(settings)) t.deepEqual(value, defaults[key], key);
  t.true(Object.keys(settings).length >= 15, 'every setting with a default is in the example');
});

const link = (address: string, internal = false): NetworkInterfaceInfo => ({
  address,
  family: 'IPv4',
  internal,
  netmask: '255.255.255.0',
  mac: '00:00:00:00:00:00',
  cidr: `${address}/24`,
});

test("the machine's address: the default route's link, else the only non-loopback address, else none", (t) => {
  const table = [
    'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask',
    'eth1\t000A0A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF',
    'eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000',
  ].join('\n');
  t.is(defaultRouteLink(table), 'eth0');
  t.is(defaultRouteLink(table.split('\n').slice(0, 2).join('\n')), undefined);
  const links = { lo: [link('127.0.0.1', true)], eth0: [link('10.0.2.15')], eth1: [link('192.168.56.10')] };
  t.is(chooseMachineAddress(links, 'eth0'), '10.0.2.15');
  t.is(chooseMachineAddress(links, undefined), undefined, 'two candidates and no route: the operator must choose');
  t.is(chooseMachineAddress({ lo: links.lo, eth1: links.eth1 }, undefined), '192.168.56.10');
  t.is(chooseMachineAddress({ lo: links.lo }, undefined), undefined);
});
