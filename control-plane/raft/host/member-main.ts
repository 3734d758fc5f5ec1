// A Raft store member as its own process: for the real-process tests and the benchmark (tsd runs
// the same store inside the manager). Prints "ready <address>" on stdout once serving.
//   member-main --id m0 --data-dir DIR --listen 10.0.0.1:7430 [--client-socket unix:/path]
//               (--bootstrap m0=10.0.0.1:7430,m1=...  |  --join)  [--snapshot-every N] [--tick-ms MS]
// Plaintext by default. With TESSERA_MEMBER_TLS_DIR set, every link is mutual TLS as in tsd: the
// directory holds roots.pem, <id>.crt (chain) and <id>.key, each 0600; the certificate must be a
// manager certificate naming this member, and the Raft service admits manager certificates only.
// An environment variable naming a directory, so that no key material ever appears in argv.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { parseIdentity } from '../../../common/identity/certificate.js';
import { MAX_PEM_BYTES, splitPemCertificates } from '../../../common/identity/x509.js';
import { LOCAL_INSECURE, type TransportSecurity } from '../../../common/transport/credentials.js';
import { TlsIdentity } from '../../../common/transport/tls-identity.js';
import { certificateAuthenticator, requireNode } from '../../auth/authenticate.js';
import { RaftStore } from '../../store/raft-store.js';
import { addRaftService, type AuthorizePeer } from '../transport/raft-service.js';
import { bind, lateHandlers, newRaftServer, shutdown } from './serve-member.js';

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

const MEMBER_TLS_DIR_ENV = 'TESSERA_MEMBER_TLS_DIR';

/** A PEM file of the TLS directory: a regular file, no larger than a chain, readable by its owner only. */
async function readPrivatePem(path: string): Promise<string> {
  const info = await stat(path).catch((err: Error) => {
    throw new Error(`${MEMBER_TLS_DIR_ENV}: cannot read ${path} (${err.message})`);
  });
  if (!info.isFile()) throw new Error(`${MEMBER_TLS_DIR_ENV}: ${path} is not a regular file`);
  if (info.size > 4 * MAX_PEM_BYTES) throw new Error(`${MEMBER_TLS_DIR_ENV}: ${path} is ${info.size} bytes, more than ${4 * MAX_PEM_BYTES} allowed`);
  if ((info.mode & 0o077) !== 0) throw new Error(`${MEMBER_TLS_DIR_ENV}: ${path} has mode ${(info.mode & 0o777).toString(8)}; it must be 0600`);
  return readFile(path, 'utf8');
}

/**
 * The member's transport security and, with TLS, the check tsd makes on its Raft service: the
 * caller holds a manager certificate of this cluster. (No revocation list: a group run alone has
 * no cluster security state to hold one.)
 */
async function memberSecurity(id: string): Promise<{ security: TransportSecurity; authorize?: AuthorizePeer }> {
  const dir = process.env[MEMBER_TLS_DIR_ENV];
  if (dir === undefined || dir === '') return { security: LOCAL_INSECURE };
  const paths = { roots: join(dir, 'roots.pem'), chain: join(dir, `${id}.crt`), key: join(dir, `${id}.key`) };
  const [rootsPem, certChainPem, keyPem] = await Promise.all([readPrivatePem(paths.roots), readPrivatePem(paths.chain), readPrivatePem(paths.key)]);
  const trustedRootPems = splitPemCertificates(paths.roots, rootsPem);
  const leaf = splitPemCertificates(paths.chain, certChainPem)[0];
  if (leaf === undefined) throw new Error(`${MEMBER_TLS_DIR_ENV}: ${paths.chain} holds no certificate`);
  const subject = parseIdentity(leaf);
  // Peers accept a batch only from the member its sender's certificate names (raft-service.ts).
  if (subject.cn !== id || subject.ou !== 'manager')
    throw new Error(
      `${MEMBER_TLS_DIR_ENV}: ${paths.chain} is a ${subject.ou} certificate for ${subject.cn}; member ${id} needs a manager certificate for ${id}`,
    );
  const clusterId = subject.o;
  const authenticate = certificateAuthenticator({ clusterId: () => clusterId, isRevoked: () => false });
  return {
    security: {
      mode: 'mtls',
      identity: new TlsIdentity({ trustedRootPems, certChainPem, keyPem }),
      expected: { kind: 'cluster-node', clusterId, role: 'manager' },
    },
    authorize: (call) => requireNode(authenticate(call), 'manager').nodeId,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      id: { type: 'string' },
      group: { type: 'string', default: 'bench' },
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      'client-socket': { type: 'string' },
      bootstrap: { type: 'string' },
      join: { type: 'boolean', default: false },
      'snapshot-every': { type: 'string' },
      'tick-ms': { type: 'string' },
      'election-tick': { type: 'string' },
    },
  });
  const id = values.id;
  const dataDir = values['data-dir'];
  const listen = values.listen;
  if (!id || !dataDir || !listen) throw new Error('member-main: --id, --data-dir and --listen are required');
  if (!values.join && !values.bootstrap) throw new Error('member-main: give --bootstrap id=host:port,... or --join');
  const bootstrap = values.bootstrap?.split(',').map((pair) => {
    const [mid, address] = pair.split('=');
    if (!mid || !address || !/^[A-Za-z0-9.-]+:\d+$/.test(address)) throw new Error(`member-main: --bootstrap entry "${pair}" is not id=host:port`);
    return { id: mid, address };
  });
  const { security, authorize } = await memberSecurity(id);
  const server = newRaftServer();
  let store: RaftStore | undefined;
  addRaftService(
    server,
    lateHandlers(() => store),
    authorize,
  );
  await bind(server, listen, security);
  // With TLS the client socket takes TLS too: the manager-only check needs a client certificate.
  if (values['client-socket']) await bind(server, values['client-socket'], security);
  store = await RaftStore.open({
    id,
    group: values.group,
    address: listen,
    dataDir,
    ...(values.join ? {} : { bootstrap: bootstrap ?? [] }),
    security,
    tickMs: positive('tick-ms', values['tick-ms'], 100),
    electionTick: positive('election-tick', values['election-tick'], 10),
    snapshotEvery: positive('snapshot-every', values['snapshot-every'], 10_000),
    log,
  });
  const opened = store;
  opened.host.onLeaderChange((leader, isLeader) => log(`leader is now ${leader || '(none)'}${isLeader ? ' (this member)' : ''}`));
  process.stdout.write(`ready ${listen}\n`);
  const stop = (): void => {
    void opened
      .close()
      .then(() => shutdown(server))
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: Error) => {
  log(`member-main: ${err.message}`);
  process.exit(1);
});
