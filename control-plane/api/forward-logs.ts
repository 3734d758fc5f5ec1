// A follower manager's Logs call, forwarded to the leader: only the leader's dispatcher holds the
// nodes' sessions, so only it can ask other nodes for their lines. The follower calls the leader's
// API with its own manager certificate (authorization.ts lets a manager node call Logs) and passes
// the lines through; the user was authorised by the follower.
import * as grpc from '@grpc/grpc-js';

import { loadApiPackage } from '../../proto/load.js';
import { channelOptions, clientCredentials, type TransportSecurity } from '../../common/transport/credentials.js';
import type { LogLine, LogLine__Output } from '../../proto/gen/tessera/api/v1/LogLine.js';
import type { LogsRequest__Output } from '../../proto/gen/tessera/api/v1/LogsRequest.js';
import { ApiError } from './errors.js';

/** Streams the leader's answer to `request` into `write`; resolves at its end or when the signal aborts. */
export function logsFromLeader(
  leader: string,
  security: TransportSecurity,
  request: LogsRequest__Output,
  write: (line: LogLine) => void,
  signal: AbortSignal,
): Promise<void> {
  const pkg = loadApiPackage();
  const client = new pkg.tessera.api.v1.Tessera(leader, clientCredentials(security), channelOptions(security));
  return new Promise<void>((resolve, reject) => {
    const stream = client.logs(request);
    signal.addEventListener('abort', () => stream.cancel());
    stream.on('data', (line: LogLine__Output) => write(line));
    stream.on('end', () => resolve());
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.CANCELLED && signal.aborted) return resolve();
      const said = `the leader at ${leader}: ${err.details || err.message}`;
      // The leader went away (or stopped leading): UNAVAILABLE, so the client resumes at another manager.
      if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.CANCELLED) reject(new ApiError(grpc.status.UNAVAILABLE, `logs: ${said}`));
      else reject(new Error(said));
    });
  }).finally(() => client.close());
}
