// A follower manager's Exec call, forwarded to the leader, which holds the nodes' sessions (as
// forward-logs.ts does for Logs): the follower has authorised the user and found the task; it
// calls the leader's API with its own manager certificate (authorization.ts lets a manager node
// call Exec) and relays messages both ways. Backpressure holds across the hop: each side's stream
// is paused while more than RELAY_WINDOW messages wait to be written to the other.
import * as grpc from '@grpc/grpc-js';

import { loadApiPackage } from '../../proto/load.js';
import { channelOptions, clientCredentials, type TransportSecurity } from '../../common/transport/credentials.js';
import type { ExecInput, ExecInput__Output } from '../../proto/gen/tessera/api/v1/ExecInput.js';
import type { ExecOutput, ExecOutput__Output } from '../../proto/gen/tessera/api/v1/ExecOutput.js';
import type { ExecStart__Output } from '../../proto/gen/tessera/api/v1/ExecStart.js';
import { ApiError } from './errors.js';

/** Messages in flight to one side before the other is paused (each at most MAX_EXEC_CHUNK_BYTES). */
const RELAY_WINDOW = 8;

type ClientCall = grpc.ServerDuplexStream<ExecInput__Output, ExecOutput>;
type LeaderStream = grpc.ClientDuplexStream<ExecInput, ExecOutput__Output>;

/** Pauses `source` while more than RELAY_WINDOW messages written to the other side are not yet taken. */
function pacedWriter<T>(write: (message: T, done: () => void) => void, source: { pause(): void; resume(): void }): (message: T) => void {
  let waiting = 0;
  return (message) => {
    waiting++;
    if (waiting > RELAY_WINDOW) source.pause();
    write(message, () => {
      waiting--;
      if (waiting === RELAY_WINDOW) source.resume();
    });
  };
}

/** Relays `call` (whose start message was read) to the leader; resolves when either side has ended. */
export function execOnLeader(leader: string, security: TransportSecurity, call: ClientCall, start: ExecStart__Output): Promise<void> {
  const pkg = loadApiPackage();
  const client = new pkg.tessera.api.v1.Tessera(leader, clientCredentials(security), channelOptions(security));
  const stream = client.exec() as LeaderStream;
  return new Promise<void>((resolve, reject) => {
    let over = false;
    const finish = (err?: Error) => {
      if (over) return;
      over = true;
      if (err) reject(err);
      else resolve();
    };
    const toClient = pacedWriter<ExecOutput__Output>((message, done) => call.write(message, () => done()), stream);
    const toLeader = pacedWriter<ExecInput__Output>((message, done) => stream.write(message, () => done()), call);
    stream.write({ start });
    stream.on('data', toClient);
    stream.on('end', () => {
      call.end();
      finish();
    });
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.CANCELLED && over) return;
      finish(
        new ApiError(err.code === grpc.status.CANCELLED ? grpc.status.UNAVAILABLE : err.code, `exec on the leader at ${leader}: ${err.details || err.message}`),
      );
    });
    call.on('data', toLeader);
    call.on('end', () => stream.end());
    const clientGone = () => {
      finish();
      stream.cancel();
    };
    call.on('cancelled', clientGone);
    call.on('error', clientGone);
    call.resume();
  }).finally(() => client.close());
}
