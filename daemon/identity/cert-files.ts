// Where a node keeps its identity: <data-root>/certs/, the directory 0700 and every file 0600.
// node.key never leaves the node; node.crt is its chain (leaf, then any intermediate, then the
// root); roots.pem the roots it trusts. The cluster CA's key is in the replicated store (daemon/ca-keeper.ts);
// an older version kept it here as ca.crt/ca.key (and ca-next.* during a rotation), which are only
// read once more, to move them into the store, and then destroyed.
import { chmod, mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { isAbsent } from '../../agent/fs-errors.js';
import { parseIdentity, type CertificateSubject } from '../../common/identity/certificate.js';
import { splitPemCertificates } from '../../common/identity/x509.js';
import type { TlsMaterial } from '../../common/transport/tls-identity.js';
import type { CaMaterial } from '../../control-plane/ca/root-ca.js';

export interface CertPaths {
  dir: string;
  nodeKey: string;
  nodeChain: string;
  roots: string;
  /** Where an older version kept the cluster CA (now in the store). */
  caCert: string;
  caKey: string;
  /** An older version's new root CA while a rotation ran. */
  caNextCert: string;
  caNextKey: string;
}

export function certPaths(dataRoot: string): CertPaths {
  const dir = join(dataRoot, 'certs');
  return {
    dir,
    nodeKey: join(dir, 'node.key'),
    nodeChain: join(dir, 'node.crt'),
    roots: join(dir, 'roots.pem'),
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    caNextCert: join(dir, 'ca-next.crt'),
    caNextKey: join(dir, 'ca-next.key'),
  };
}

/** Writes a file readable by root only, whole or not at all (write a temporary file, then rename). */
async function writePrivate(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  // writeFile's mode applies only when it creates the file; a leftover temporary keeps its own.
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw new Error(`${path}: cannot read (${(err as Error).message})`);
  }
}

export interface NodeCertificates {
  material: TlsMaterial;
  subject: CertificateSubject;
}

/** The node's certificate, key and roots, or undefined when the node has none yet (it has not joined). */
export async function readNodeCertificates(paths: CertPaths): Promise<NodeCertificates | undefined> {
  const [keyPem, certChainPem, rootsPem] = await Promise.all([readOptional(paths.nodeKey), readOptional(paths.nodeChain), readOptional(paths.roots)]);
  if (keyPem === undefined && certChainPem === undefined) return undefined;
  if (keyPem === undefined || certChainPem === undefined || rootsPem === undefined) {
    throw new Error(`${paths.dir} holds only part of a node identity (node.key, node.crt and roots.pem belong together); remove the directory and join again`);
  }
  const trustedRootPems = splitPemCertificates(paths.roots, rootsPem);
  const leaf = splitPemCertificates(paths.nodeChain, certChainPem)[0];
  if (leaf === undefined || trustedRootPems.length === 0) throw new Error(`${paths.dir}: node.crt or roots.pem holds no certificate`);
  return { material: { trustedRootPems, certChainPem, keyPem }, subject: parseIdentity(leaf) };
}

export async function writeNodeCertificates(paths: CertPaths, material: TlsMaterial): Promise<void> {
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await chmod(paths.dir, 0o700);
  // The key first: a chain without its key would be refused at the next start, a key alone is redone.
  await writePrivate(paths.nodeKey, material.keyPem);
  await writePrivate(paths.roots, material.trustedRootPems.join(''));
  await writePrivate(paths.nodeChain, material.certChainPem);
}

const pendingWrites = new Map<string, Promise<void>>();

/**
 * Writes the identity's material as it is when the write runs, after any earlier write to the
 * same directory: a renewal and a trust update may overlap, and the files must end as the last
 * state, never an older key beside a newer chain.
 */
export function persistIdentity(paths: CertPaths, current: () => TlsMaterial): Promise<void> {
  const previous = pendingWrites.get(paths.dir) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(() => writeNodeCertificates(paths, current()));
  pendingWrites.set(paths.dir, next);
  return next;
}

/** The CA files an older version wrote, or undefined when they are not there. */
export async function readCaFiles(paths: CertPaths, which: 'current' | 'next' = 'current'): Promise<CaMaterial | undefined> {
  const [certPath, keyPath] = which === 'current' ? [paths.caCert, paths.caKey] : [paths.caNextCert, paths.caNextKey];
  const [certPem, keyPem] = await Promise.all([readOptional(certPath), readOptional(keyPath)]);
  if (certPem === undefined || keyPem === undefined) return undefined;
  return { certPem, keyPem };
}

/**
 * Overwrites a file with zeros (synced), then unlinks it: the key's bytes are not left in the file's
 * blocks for whoever reads the disk next. (A copy-on-write or journalled-data filesystem, or an SSD's
 * remapping, may still keep old blocks: the store's sealing is the protection, this is hygiene.)
 */
async function shred(path: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r+');
  } catch (err) {
    if (isAbsent(err)) return;
    throw new Error(`${path}: cannot open to overwrite (${(err as Error).message})`);
  }
  try {
    const { size } = await handle.stat();
    await handle.write(Buffer.alloc(size), 0, size, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rm(path, { force: true });
}

/** Destroys the CA files an older version wrote (current and next), and any temporary file of theirs. */
export async function shredCaFiles(paths: CertPaths): Promise<void> {
  const files = [paths.caKey, paths.caCert, paths.caNextKey, paths.caNextCert];
  await Promise.all(files.flatMap((file) => [shred(file), shred(`${file}.tmp`)]));
}
