// A typed client of one member's Raft service (proto/raft.proto), used by peers (messages,
// forwarded writes and membership changes) and by tools (status, benchmarks, tests).
import * as grpc from '@grpc/grpc-js';

import { channelOptions, clientCredentials, type TransportSecurity } from '../../../common/transport/credentials.js';
import { BATCH_METHODS, CHANNEL_OPTIONS, raftService } from './proto.js';
import type { WireBatch } from './wire.js';

export interface WireMemberStatus {
  id: string;
  address: string;
  role: string;
  term: number;
  commit: number;
  applied: number;
  match: number;
}

export interface WireStatus {
  id: string;
  leader: string;
  term: number;
  commit: number;
  applied: number;
  role: string;
  voters: string[];
  learners: string[];
  members: WireMemberStatus[];
}

export interface ChangeMembersRequest {
  type: 'add-learner' | 'add-voter' | 'remove-node';
  id: string;
  address: string;
}

export interface RaftPeerClientOptions {
  /** Called with the serialized size of every batch sent (Send and Stream), for the traffic metrics. */
  onSentBytes?: (bytes: number) => void;
}

/**
 * The Raft service's client constructor, with the batch methods' serializer wrapped to report
 * each batch's size. The size is that of the buffer gRPC sends anyway: no second encoding.
 */
function countingClient(onSentBytes: (bytes: number) => void): grpc.ServiceClientConstructor {
  const { Client } = raftService();
  const methods: grpc.ServiceDefinition = Object.fromEntries(
    Object.entries(Client.service).map(([name, method]) => {
      if (!BATCH_METHODS.has(name)) return [name, method];
      const serialize = method.requestSerialize;
      const counted = (value: unknown): Buffer => {
        const bytes = serialize(value);
        onSentBytes(bytes.length);
        return bytes;
      };
      return [name, { ...method, requestSerialize: counted }];
    }),
  );
  return grpc.makeClientConstructor(methods, Client.serviceName);
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;
type Unary<Req, Res> = (req: Req, options: grpc.CallOptions, cb: Callback<Res>) => grpc.ClientUnaryCall;

export class RaftPeerClient {
  private readonly client: grpc.Client;

  constructor(
    readonly address: string,
    security: TransportSecurity,
    options: RaftPeerClientOptions = {},
  ) {
    const Client = options.onSentBytes ? countingClient(options.onSentBytes) : raftService().Client;
    this.client = new Client(address, clientCredentials(security), { ...CHANNEL_OPTIONS, ...channelOptions(security) });
  }

  private call<Req, Res>(method: string, req: Req, timeoutMs: number): Promise<Res> {
    const fn = (this.client as unknown as Record<string, Unary<Req, Res>>)[method] as Unary<Req, Res>;
    return new Promise<Res>((resolve, reject) => {
      fn.call(this.client, req, { deadline: Date.now() + timeoutMs }, (err, value) => (err ? reject(err) : resolve(value as Res)));
    });
  }

  send(batch: WireBatch, timeoutMs = 5000): Promise<void> {
    return this.call<WireBatch, object>('send', batch, timeoutMs).then(() => undefined);
  }

  /**
   * Opens the long-lived stream of batches to this member. `done` is called once, when the
   * stream ends: with null after end(), or with the error that broke it (peer down, refused batch).
   */
  openStream(done: (err: grpc.ServiceError | null) => void): grpc.ClientWritableStream<WireBatch> {
    type Streaming = (cb: Callback<object>) => grpc.ClientWritableStream<WireBatch>;
    const fn = (this.client as unknown as Record<string, Streaming>)['stream'] as Streaming;
    return fn.call(this.client, (err) => done(err));
  }

  propose(command: Uint8Array, timeoutMs = 15_000, forward = false): Promise<{ resultJson: string; index: number }> {
    return this.call('propose', { command, forward }, timeoutMs);
  }

  range(prefix: string, timeoutMs = 10_000): Promise<{ resultJson: string }> {
    return this.call('range', { prefix }, timeoutMs);
  }

  status(timeoutMs = 3000): Promise<WireStatus> {
    return this.call('status', {}, timeoutMs);
  }

  changeMembers(req: ChangeMembersRequest, timeoutMs = 15_000): Promise<{ index: number }> {
    return this.call('changeMembers', req, timeoutMs);
  }

  /** Whether the channel to the member is connected now (gRPC's READY); it connects on the first call. */
  connected(): boolean {
    return this.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  close(): void {
    this.client.close();
  }
}
