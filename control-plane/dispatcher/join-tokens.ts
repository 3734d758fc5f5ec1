// Join tokens (Swarm-style): a node may join only with a token the cluster issued. A token names
// the role it grants and carries a random secret; rotating replaces the secret, so old tokens stop
// working for new joins while members already in the cluster are unaffected.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type JoinRole = 'worker' | 'manager';

export interface JoinTokens {
  worker: string;
  manager: string;
}

const TOKEN = /^TSTKN-1-([0-9a-f]{16})-([0-9a-z]{32})-(worker|manager)$/;

/** A token: version, a short digest identifying the cluster, the secret and the role. */
export function makeToken(clusterId: string, role: JoinRole, secret = randomBytes(20)): string {
  const clusterDigest = createHash('sha256').update(clusterId).digest('hex').slice(0, 16);
  const secretText = BigInt(`0x${secret.toString('hex')}`)
    .toString(36)
    .padStart(32, '0')
    .slice(-32);
  return `TSTKN-1-${clusterDigest}-${secretText}-${role}`;
}

export function makeTokens(clusterId: string): JoinTokens {
  return { worker: makeToken(clusterId, 'worker'), manager: makeToken(clusterId, 'manager') };
}

/** The role a presented token grants, or an error saying why it is refused. */
export function checkToken(presented: string, tokens: JoinTokens): { ok: true; role: JoinRole } | { ok: false; reason: string } {
  if (!presented) return { ok: false, reason: 'no join token given' };
  if (!TOKEN.test(presented)) return { ok: false, reason: 'malformed join token (expected TSTKN-1-…-worker|manager)' };
  for (const role of ['worker', 'manager'] as const) {
    const expected = Buffer.from(tokens[role]);
    const given = Buffer.from(presented);
    if (expected.length === given.length && timingSafeEqual(expected, given)) return { ok: true, role };
  }
  return { ok: false, reason: 'invalid join token (wrong cluster, or rotated)' };
}
