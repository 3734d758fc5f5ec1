// /etc/hosts and /etc/resolv.conf of a container: contents (pure) and the write into a rootfs
// (a temporary directory standing in for one), including an image whose files are symlinks.
import test from 'ava';
import { mkdtemp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { hostsFile, resolvConf, writeNameFiles } from '../../agent/network/container-files.js';
import { validateObject } from '../../common/resources/schema.js';

test('hosts: localhost and the extra hosts in order; nothing without extra hosts', (t) => {
  t.is(hostsFile(undefined), undefined);
  t.is(hostsFile([]), undefined);
  t.is(
    hostsFile([
      { hostname: 'db.internal', address: '10.1.2.3' },
      { hostname: 'v6', address: 'fd00::1' },
    ]),
    '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3\tdb.internal\nfd00::1\tv6\n',
  );
});

test("resolv.conf: the overlay resolver by default, the service's servers replace it", (t) => {
  t.is(resolvConf({}), undefined, "no overlay, no dns: the image's file stays");
  t.is(resolvConf({ resolver: '10.0.1.1' }), 'nameserver 10.0.1.1\noptions ndots:0\n');
  t.is(
    resolvConf({ resolver: '10.0.1.1', dns: { servers: ['192.0.2.53', '192.0.2.54'], search: ['a.example', 'b.example'], options: ['ndots:2', 'rotate'] } }),
    'nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch a.example b.example\noptions ndots:2 rotate\n',
  );
  t.is(
    resolvConf({ resolver: '10.0.1.1', dns: { search: ['corp'] } }),
    'nameserver 10.0.1.1\nsearch corp\noptions ndots:0\n',
    'search only: keeps the resolver',
  );
  t.is(resolvConf({ resolver: '10.0.1.1', dns: { options: ['ndots:3'] } }), 'nameserver 10.0.1.1\noptions ndots:3\n', 'an ndots of its own wins');
  t.is(resolvConf({ dns: { servers: ['192.0.2.53'] } }), 'nameserver 192.0.2.53\n');
});

test('the files are written into the rootfs, replacing symlinks instead of following them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-namefiles-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const rootfs = join(dir, 'rootfs');
  const outside = join(dir, 'outside');
  await writeFile(outside, 'untouched');
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await symlink(outside, join(rootfs, 'etc/hosts'));
  await symlink(outside, join(rootfs, 'etc/resolv.conf'));
  await writeNameFiles(rootfs, { dns: { servers: ['192.0.2.53'] }, extraHosts: [{ hostname: 'db', address: '10.1.2.3' }] });
  t.is(await readFile(outside, 'utf8'), 'untouched');
  t.regex(await readFile(join(rootfs, 'etc/hosts'), 'utf8'), /10\.1\.2\.3\tdb\n/);
  t.is(await readFile(join(rootfs, 'etc/resolv.conf'), 'utf8'), 'nameserver 192.0.2.53\n');

  const linked = join(dir, 'linked');
  await mkdir(linked);
  await symlink(dir, join(linked, 'etc'));
  await t.throwsAsync(writeNameFiles(linked, { dns: { servers: ['192.0.2.53'] } }), { message: /not a directory/ });
  const bare = join(dir, 'bare');
  await mkdir(bare);
  await writeNameFiles(bare, { resolver: '10.0.1.1' });
  t.is(await readFile(join(bare, 'etc/resolv.conf'), 'utf8'), 'nameserver 10.0.1.1\noptions ndots:0\n');
});

test('the schema takes only addresses, host names and option tokens (nothing that could add a line)', (t) => {
  const svc = (spec: Record<string, unknown>) => ({
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name: 'web' },
    spec: { image: 'busybox', ...spec },
  });
  const ok = validateObject(
    svc({ extraHosts: [{ hostname: 'db', address: '10.1.2.3' }], dns: { servers: ['fd00::53'], search: ['corp.example'], options: ['ndots:2'] } }),
  );
  t.true(ok.ok, JSON.stringify(ok));
  for (const bad of [
    { extraHosts: [{ hostname: 'db', address: '10.1.2.3\n6.6.6.6 evil' }] },
    { extraHosts: [{ hostname: 'db', address: 'host-gateway' }] },
    { dns: { servers: ['not an ip'] } },
    { dns: { search: ['a b'] } },
    { dns: { options: ['ndots:2\nnameserver 6.6.6.6'] } },
  ]) {
    const r = validateObject(svc(bad));
    t.false(r.ok, JSON.stringify(bad));
  }
});
