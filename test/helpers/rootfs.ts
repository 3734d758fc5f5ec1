// Builds a minimal root filesystem from the host's busybox-static for runtime tests.

import fs from 'node:fs/promises';
import path from 'node:path';

const BUSYBOX = '/bin/busybox';

export const BUSYBOX_APPLETS = [
  'sh',
  'echo',
  'cat',
  'hostname',
  'ps',
  'mount',
  'sleep',
  'ls',
  'id',
  'wget',
  'httpd',
  'head',
  'dd',
  'env',
  'pwd',
  'true',
  'false',
  'kill',
  'grep',
  'wc',
  'touch',
  'mkdir',
  'rm',
  'readlink',
  'stat',
  'test',
  'seq',
  'tr',
  'cut',
  'tail',
  'sed',
  'awk',
  'uname',
  'whoami',
  'nproc',
  'yes',
];

/** Populates `dir` with /bin/busybox, applet symlinks, an /etc/passwd and empty mount points. */
export async function makeBusyboxRootfs(dir: string): Promise<string> {
  const bin = path.join(dir, 'bin');
  await fs.mkdir(bin, { recursive: true });
  await fs.copyFile(BUSYBOX, path.join(bin, 'busybox'));
  await fs.chmod(path.join(bin, 'busybox'), 0o755);
  for (const applet of BUSYBOX_APPLETS) await fs.symlink('busybox', path.join(bin, applet));
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc', 'root', 'home/app']) {
    await fs.mkdir(path.join(dir, d), { recursive: true });
  }
  await fs.chmod(path.join(dir, 'tmp'), 0o1777);
  await fs.chown(path.join(dir, 'home/app'), 1000, 1000);
  await fs.writeFile(
    path.join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  await fs.writeFile(path.join(dir, 'etc/group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:\nnogroup:x:65534:\n');
  return dir;
}
