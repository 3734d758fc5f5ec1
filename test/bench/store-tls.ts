// Mutual TLS for bench:store. One test CA, kept in this process's memory only, issues manager
// certificates (ECDSA P-256, serverAuth + clientAuth, IP SAN 127.0.0.1) for the three Tessera
// members, for the etcd members and for the load processes. They are written as 0600 files into a
// 0700 directory of the bench's own; other processes get that directory's path (member-main through
// TESSERA_MEMBER_TLS_DIR, the load processes in their connect command), never material in argv.
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { parseIdentity } from '../../common/identity/certificate.js';
import { MAX_PEM_BYTES, joinPem, splitPemCertificates } from '../../common/identity/x509.js';
import type { TransportSecurity } from '../../common/transport/credentials.js';
import { TlsIdentity, type TlsMaterial } from '../../common/transport/tls-identity.js';
import { issueNodeCertificate } from '../../control-plane/ca/issue.js';
import { createRootCA } from '../../control-plane/ca/root-ca.js';
import type { EtcdTlsFiles } from '../helpers/etcd.js';

/** The variable member-main reads (control-plane/raft/host/member-main.ts; it runs on import, so it is not imported here). */
export const MEMBER_TLS_DIR_ENV = 'TESSERA_MEMBER_TLS_DIR';
/** Certificate names: the harness calls its members m0, m1, …; a member refuses a certificate that does not name it. */
export const memberName = (i: number): string => `m${i}`;
export const ETCD_NAME = 'etcd';
export const CLIENT_NAME = 'bench-client';
/** A worker certificate: the Raft port must refuse it (checked once at start, so the check is known to run). */
export const WORKER_NAME = 'bench-worker';

export interface BenchPki {
  dir: string;
  etcdFiles: EtcdTlsFiles;
  remove(): Promise<void>;
}

async function writePrivate(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** Makes the CA and every certificate the TLS rows need; the CA's key is never written. */
export async function writeBenchPki(members: number): Promise<BenchPki> {
  const clusterId = randomUUID();
  const ca = await createRootCA({ clusterId });
  // mkdtemp makes the directory 0700.
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-tls-'));
  try {
    await writePrivate(join(dir, 'roots.pem'), ca.certPem);
    const names = [...Array.from({ length: members }, (_, i) => memberName(i)), ETCD_NAME, CLIENT_NAME, WORKER_NAME];
    for (const name of names) {
      const keys = await generateKeyPair();
      const role = name === WORKER_NAME ? 'worker' : 'manager';
      const leaf = await issueNodeCertificate(ca, await createCsr(keys, { commonNameHint: name }), { nodeId: name, role, clusterId, ips: ['127.0.0.1'] });
      await writePrivate(join(dir, `${name}.crt`), joinPem([leaf, ca.certPem]));
      await writePrivate(join(dir, `${name}.key`), keys.keyPem);
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    etcdFiles: { caFile: join(dir, 'roots.pem'), certFile: join(dir, `${ETCD_NAME}.crt`), keyFile: join(dir, `${ETCD_NAME}.key`) },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

async function readBounded(path: string): Promise<string> {
  const info = await stat(path);
  if (info.size > 4 * MAX_PEM_BYTES) throw new Error(`${path}: ${info.size} bytes, more than a certificate chain or key may be`);
  if ((info.mode & 0o077) !== 0) throw new Error(`${path}: mode ${(info.mode & 0o777).toString(8)}, expected 0600`);
  return readFile(path, 'utf8');
}

export interface BenchIdentity {
  material: TlsMaterial;
  clusterId: string;
}

/** One name's certificate, key and the roots, read back from the directory. */
export async function readBenchIdentity(dir: string, name: string): Promise<BenchIdentity> {
  const rootsPath = join(dir, 'roots.pem');
  const chainPath = join(dir, `${name}.crt`);
  const [rootsPem, certChainPem, keyPem] = await Promise.all([readBounded(rootsPath), readBounded(chainPath), readBounded(join(dir, `${name}.key`))]);
  const leaf = splitPemCertificates(chainPath, certChainPem)[0];
  if (leaf === undefined) throw new Error(`${chainPath}: no certificate`);
  return { material: { trustedRootPems: splitPemCertificates(rootsPath, rootsPem), certChainPem, keyPem }, clusterId: parseIdentity(leaf).o };
}

/** Tessera's client security for this identity, expecting a manager at the other end (as a node dials the Raft port). */
export function managerSecurity(id: BenchIdentity): TransportSecurity {
  return { mode: 'mtls', identity: new TlsIdentity(id.material), expected: { kind: 'cluster-node', clusterId: id.clusterId, role: 'manager' } };
}

/** The etcd3 client's credentials for this identity. */
export function etcdCredentials(id: BenchIdentity): { rootCertificate: Buffer; privateKey: Buffer; certChain: Buffer } {
  return {
    rootCertificate: Buffer.from(joinPem(id.material.trustedRootPems)),
    privateKey: Buffer.from(id.material.keyPem),
    certChain: Buffer.from(id.material.certChainPem),
  };
}
