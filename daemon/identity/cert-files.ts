// Where a node keeps its identity: <data-root>/certs/, the directory 0700 and every file 0600.
// node.key never leaves the node; node.crt is its chain (leaf, then any intermediate, then the
// root); roots.pem the roots it trusts. A manager also keeps the cluster CA (ca.crt, ca.key) until
// the encryption-at-rest issue moves the key into the store, encrypted.
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
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
  caCert: string;
  caKey: string;
  /** The new root CA while a rotation runs; it replaces ca.crt/ca.key when the rotation completes. */
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

export async function readCaFiles(paths: CertPaths, which: 'current' | 'next' = 'current'): Promise<CaMaterial | undefined> {
  const [certPath, keyPath] = which === 'current' ? [paths.caCert, paths.caKey] : [paths.caNextCert, paths.caNextKey];
  const [certPem, keyPem] = await Promise.all([readOptional(certPath), readOptional(keyPath)]);
  if (certPem === undefined || keyPem === undefined) return undefined;
  return { certPem, keyPem };
}

export async function writeCaFiles(paths: CertPaths, ca: CaMaterial, which: 'current' | 'next' = 'current'): Promise<void> {
  const [certPath, keyPath] = which === 'current' ? [paths.caCert, paths.caKey] : [paths.caNextCert, paths.caNextKey];
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await writePrivate(keyPath, ca.keyPem);
  await writePrivate(certPath, ca.certPem);
}

/** A demoted node keeps no CA: its key files (current and next) go. */
export async function removeCaFiles(paths: CertPaths): Promise<void> {
  await Promise.all([rm(paths.caKey, { force: true }), rm(paths.caCert, { force: true })]);
  await removeNextCaFiles(paths);
}

export async function removeNextCaFiles(paths: CertPaths): Promise<void> {
  await Promise.all([rm(paths.caNextKey, { force: true }), rm(paths.caNextCert, { force: true })]);
}
