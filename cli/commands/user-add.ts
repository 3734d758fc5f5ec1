// `tsctl cluster user add NAME --role ROLE`: a key pair made here, a CSR sent to the cluster CA, and
// a context file holding the certificate, the key and the managers' addresses, ready to hand to the
// user (like a kubeconfig). The private key is never sent: only the CSR, which proves possession.
import { webcrypto } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { NodeKeyPair } from '../../common/identity/csr.js';
import { IDENTITY_NAME, isUserRole, parseIdentity, type UserRole } from '../../common/identity/certificate.js';
import { joinPem, parseCertificate, splitPemCertificates } from '../../common/identity/x509-core.js';
import { isAbsent } from '../../agent/fs-errors.js';
import type { ApiClient } from '../client.js';
import { validateContext, type CliContext } from '../context-schema.js';
import { contextText } from '../context.js';
import type { UserCertificateResponse__Output } from '../../proto/gen/tessera/api/v1/UserCertificateResponse.js';
import { escapeControl } from './audit-table.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Ten years: longer is a certificate nobody will remember to revoke (the CA caps it at its own expiry anyway). */
const MAX_VALIDITY_DAYS = 3650;

export interface UserAddOptions {
  role: string;
  /** The context file to write; default ./NAME.tessera.json. */
  output?: string;
  validityDays?: number;
  /** Replace an existing file. */
  force?: boolean;
  /** Also write the certificate, key and roots as PEM files here (cert.pem, key.pem, ca.pem): Prometheus's tls_config takes files. */
  pemDir?: string;
}

/** The PEM files of --pem-dir: what Prometheus's tls_config names as cert_file, key_file and ca_file. */
export const PEM_FILES = { cert: 'cert.pem', key: 'key.pem', ca: 'ca.pem' } as const;

export function parseValidityDays(value: string): number {
  const days = Number(value);
  if (!/^\d+$/.test(value) || days < 1 || days > MAX_VALIDITY_DAYS) throw new Error(`--validity-days: expected 1 to ${MAX_VALIDITY_DAYS}, got "${value}"`);
  return days;
}

function checkRequest(name: string, options: UserAddOptions): UserRole {
  if (!IDENTITY_NAME.test(name)) throw new Error(`user add: "${escapeControl(name.slice(0, 80))}" is not a user name (a DNS label: a-z, 0-9 and -)`);
  if (!isUserRole(options.role)) throw new Error(`user add: --role must be admin, operator or viewer, got "${escapeControl(options.role.slice(0, 40))}"`);
  return options.role;
}

async function refuseExisting(path: string): Promise<void> {
  try {
    await stat(path);
  } catch (err) {
    if (isAbsent(err)) return;
    throw new Error(`${path}: cannot check it (${(err as Error).message})`);
  }
  throw new Error(`${path} exists; choose another --output, or pass --force to replace it`);
}

/** The issued certificate is for this user, with this role, in the named cluster, and for the key made here. */
async function checkIssued(res: UserCertificateResponse__Output, name: string, role: UserRole, keys: NodeKeyPair): Promise<Date> {
  const [leaf] = splitPemCertificates('issued certificate chain', res.certChainPem);
  if (!leaf) throw new Error('user add: the server answered without a certificate');
  const subject = parseIdentity(leaf);
  if (subject.cn !== name || subject.ou !== role || subject.o !== res.clusterId) {
    throw new Error(
      `user add: the server issued a certificate for ${escapeControl(`${subject.cn} (${subject.ou}) of cluster ${subject.o}`)}, not ${name} (${role})`,
    );
  }
  const issuedKey = Buffer.from(parseCertificate('issued certificate', leaf).publicKey.rawData);
  const ownKey = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  if (!issuedKey.equals(ownKey)) throw new Error('user add: the issued certificate is not for the key made here');
  return subject.notAfter;
}

/** The managers from the answer; a server that names none is reached where this client reached it, unless that is a unix socket. */
function serversOf(res: UserCertificateResponse__Output, address: string): string[] {
  if (res.servers.length > 0) return res.servers;
  if (!address.startsWith('unix:')) return [address];
  throw new Error('user add: the server named no manager address (host:port) for the context file; the certificate was issued but not written');
}

/** Writes a new 0600 file; with `force`, replaces an existing one through a new file, so the mode is 0600 whatever the old one's was. */
async function writePrivateFile(path: string, text: string, force: boolean): Promise<void> {
  if (!force) {
    await writeFile(path, text, { mode: 0o600, flag: 'wx' });
    return;
  }
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o600, flag: 'wx' });
  try {
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/** Issues the certificate and writes the context file; returns what to tell the user. */
export async function addUser(client: ApiClient, name: string, options: UserAddOptions): Promise<string[]> {
  const role = checkRequest(name, options);
  const path = options.output ?? `./${name}.tessera.json`;
  if (!options.force) await refuseExisting(path);
  // Before the CA is asked: a refusal afterwards would leave a certificate issued for nothing.
  if (!options.force && options.pemDir !== undefined) for (const name of Object.values(PEM_FILES)) await refuseExisting(join(options.pemDir, name));
  // Loaded here, not at import: it loads the X.509 library, which every other tsctl command would pay for at start.
  const { createCsr, generateKeyPair } = await import('../../common/identity/csr.js');
  const keys = await generateKeyPair();
  const csrPem = await createCsr(keys, { commonNameHint: name });
  const validityMs = options.validityDays === undefined ? 0 : options.validityDays * DAY_MS;
  const res = await client.issueUserCertificate({ name, role, csrPem, validityMs });
  const notAfter = await checkIssued(res, name, role, keys);
  const servers = serversOf(res, client.address);
  let context: CliContext;
  try {
    context = validateContext({
      server: servers[0],
      servers,
      tls: { clusterId: res.clusterId, trustedRootPems: res.trustedRootPems, certChainPem: res.certChainPem, keyPem: keys.keyPem, user: name },
    });
  } catch (err) {
    throw new Error(`user add: the server's answer does not make a valid context (${(err as Error).message})`);
  }
  await writePrivateFile(path, contextText(context), options.force === true);
  const pemLines = options.pemDir === undefined ? [] : await writePemFiles(options.pemDir, tlsOf(context), options.force === true);
  return [
    ...pemLines,
    `user/${name} (${role}) of cluster ${escapeControl(res.clusterId)}: certificate valid until ${notAfter.toISOString()}`,
    `wrote ${path} (mode 0600; it holds the private key, which never left this machine: hand it over privately)`,
    `use it: TESSERA_CONTEXT=${path} tsctl get services`,
  ];
}

function tlsOf(context: CliContext): NonNullable<CliContext['tls']> {
  if (context.tls === undefined) throw new Error('user add: the context holds no certificate');
  return context.tls;
}

/**
 * The certificate chain, the key and the cluster's roots as PEM files, every one 0600 in a 0700
 * directory (made if absent): the key is private, and the others need not be read by anyone else.
 */
async function writePemFiles(dir: string, tls: NonNullable<CliContext['tls']>, force: boolean): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files: Array<[string, string]> = [
    [PEM_FILES.cert, tls.certChainPem],
    [PEM_FILES.key, tls.keyPem],
    [PEM_FILES.ca, joinPem(tls.trustedRootPems)],
  ];
  for (const [name, text] of files) await writePrivateFile(join(dir, name), text, force);
  return [`wrote ${join(dir, PEM_FILES.cert)}, ${join(dir, PEM_FILES.key)} and ${join(dir, PEM_FILES.ca)} (mode 0600; key.pem is the private key)`];
}
