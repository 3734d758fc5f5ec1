// Builds the busybox image the example stack runs (busybox:latest, from the host's busybox-static)
// and writes it as an OCI-layout tarball for `tsctl image load`. No registry or Docker needed.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { buildBusyboxImage } from './busybox-image.js';

const target = process.argv[2];
if (!target) {
  process.stderr.write('usage: node dist/deploy/build-example-image.js OUTPUT.tar\n');
  process.exit(2);
}
const work = await mkdtemp(join(tmpdir(), 'tessera-example-image-'));
try {
  const image = await buildBusyboxImage(work);
  await copyFile(image.tarballPath, resolve(target));
  process.stdout.write(`wrote ${resolve(target)}\n`);
} finally {
  await rm(work, { recursive: true, force: true });
}
