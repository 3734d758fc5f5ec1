// A follower manager's Top call, forwarded to the leader: only the leader's dispatcher holds the
// nodes' sessions, so only it can ask them. The follower calls the leader's API with its own
// manager certificate (authorization.ts lets a manager node call Top) and returns the answer; the
// user was authorised by the follower.
import type * as grpc from '@grpc/grpc-js';

import { loadApiPackage } from '../../proto/load.js';
import { channelOptions, clientCredentials, type TransportSecurity } from '../../common/transport/credentials.js';
import type { TopRequest__Output } from '../../proto/gen/tessera/api/v1/TopRequest.js';
import type { TopResponse__Output } from '../../proto/gen/tessera/api/v1/TopResponse.js';

/** The leader asks nodes for at most NODE_ANSWER_MS (5 s); more than this is a leader that is not answering. */
const LEADER_ANSWER_MS = 15_000;

export function topFromLeader(leader: string, security: TransportSecurity, request: TopRequest__Output): Promise<TopResponse__Output> {
  const pkg = loadApiPackage();
  const client = new pkg.tessera.api.v1.Tessera(leader, clientCredentials(security), channelOptions(security));
  return new Promise<TopResponse__Output>((resolve, reject) => {
    client.top(request, { deadline: Date.now() + LEADER_ANSWER_MS }, (err: grpc.ServiceError | null, response?: TopResponse__Output) => {
      if (err) reject(new Error(`the leader at ${leader}: ${err.details || err.message}`));
      else if (response === undefined) reject(new Error(`the leader at ${leader} sent an empty answer`));
      else resolve(response);
    });
  }).finally(() => client.close());
}
