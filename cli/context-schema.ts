// What a tsctl context file may hold, checked field by field. The file is a credential (it can hold
// a private key) and may be handed around like a kubeconfig, so it is read as untrusted input:
// every field's type and size is checked and an error names the file and the field. Pure.
import type { DaemonConfig } from '../daemon/config.js';
import type { NetnsClusterState } from './local-cluster/netns-cluster.js';

/** A PEM field (a certificate chain, a set of roots' members, a key) holds at most this many bytes. */
export const MAX_CONTEXT_PEM_BYTES = 64 * 1024;
/** A context lists at most this many manager addresses. */
export const MAX_CONTEXT_SERVERS = 16;
/** A context trusts at most this many roots (two during a CA rotation; room to spare). */
export const MAX_CONTEXT_ROOTS = 16;
/** An address (unix:/path or host:port) or a name is at most this long. */
const MAX_TEXT_CHARS = 1024;

/** The client certificate of a remote user, as `tsctl cluster user add` writes it. */
export interface ContextTls {
  clusterId: string;
  /** The cluster's root certificates, PEM; during a CA rotation the old and the new. */
  trustedRootPems: string[];
  /** This user's certificate, then any intermediate, PEM. */
  certChainPem: string;
  /** This user's PKCS#8 private key, PEM; made by tsctl and never sent anywhere. */
  keyPem: string;
  /** The user name the certificate was issued to (for humans: the certificate is the identity). */
  user: string;
}

export interface CliContext {
  /** The API address tried first: unix:/path (a manager's root socket) or host:port (mutual TLS). */
  server: string;
  /** Every manager's host:port, tried in order when the first is unavailable. */
  servers?: string[];
  /** The client certificate for host:port addresses. */
  tls?: ContextTls;
  /** Present when this machine's `tsctl cluster up` started the cluster. */
  local?: { pid: number; /** tsd's start time (/proc/PID/stat field 22); absent in older files. */ startTime?: number; config: DaemonConfig };
  /** Present when `tsctl cluster up --nodes N` built a cluster of network namespaces. */
  netns?: NetnsClusterState;
}

type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown, field: string, maxChars = MAX_TEXT_CHARS): string {
  if (typeof value !== 'string' || value === '') throw new Error(`"${field}" must be a non-empty string`);
  if (value.length > maxChars) throw new Error(`"${field}" is ${value.length} characters, at most ${maxChars}`);
  return value;
}

function pem(value: unknown, field: string, marker: string): string {
  const checked = text(value, field, MAX_CONTEXT_PEM_BYTES);
  if (Buffer.byteLength(checked) > MAX_CONTEXT_PEM_BYTES) throw new Error(`"${field}" is more than ${MAX_CONTEXT_PEM_BYTES} bytes`);
  if (!checked.includes(`-----BEGIN ${marker}`)) throw new Error(`"${field}" holds no PEM ${marker}`);
  return checked;
}

function textList(value: unknown, field: string, max: number, check: (item: unknown, itemField: string) => string): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new Error(`"${field}" must be a non-empty list`);
  if (value.length > max) throw new Error(`"${field}" lists ${value.length} entries, at most ${max}`);
  return value.map((item, i) => check(item, `${field}[${i}]`));
}

function tlsOf(value: unknown): ContextTls {
  if (!isFields(value)) throw new Error('"tls" must be an object');
  return {
    clusterId: text(value.clusterId, 'tls.clusterId'),
    trustedRootPems: textList(value.trustedRootPems, 'tls.trustedRootPems', MAX_CONTEXT_ROOTS, (item, f) => pem(item, f, 'CERTIFICATE')),
    certChainPem: pem(value.certChainPem, 'tls.certChainPem', 'CERTIFICATE'),
    // PKCS#8 only ("BEGIN PRIVATE KEY"), as generateKeyPair writes it.
    keyPem: pem(value.keyPem, 'tls.keyPem', 'PRIVATE KEY'),
    user: text(value.user, 'tls.user'),
  };
}

/**
 * The context a parsed file holds, or an error naming the field. `server` may be left out when
 * `servers` is given (the first is then tried first). `local` and `netns` are written by
 * `tsctl cluster up` on this machine and only checked to be objects.
 */
export function validateContext(parsed: unknown): CliContext {
  if (!isFields(parsed)) throw new Error('the file must hold a JSON object');
  const servers = parsed.servers === undefined ? undefined : textList(parsed.servers, 'servers', MAX_CONTEXT_SERVERS, (item, f) => text(item, f));
  const server = parsed.server === undefined && servers ? servers[0]! : text(parsed.server, 'server');
  const context: CliContext = { server };
  if (servers) context.servers = servers;
  if (parsed.tls !== undefined) context.tls = tlsOf(parsed.tls);
  if (parsed.local !== undefined) {
    if (!isFields(parsed.local)) throw new Error('"local" must be an object');
    context.local = parsed.local as unknown as NonNullable<CliContext['local']>;
  }
  if (parsed.netns !== undefined) {
    if (!isFields(parsed.netns)) throw new Error('"netns" must be an object');
    context.netns = parsed.netns as unknown as NetnsClusterState;
  }
  return context;
}
