// Loads proto/raft.proto at run time (like proto/load.ts does for the API).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function protoFile(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // control-plane/raft/transport -> proto/ (in a checkout, and from dist/ one level further up)
  for (const root of [join(here, '..', '..', '..'), join(here, '..', '..', '..', '..')]) {
    const file = join(root, 'proto', 'raft.proto');
    if (existsSync(file)) return file;
  }
  throw new Error(`cannot find proto/raft.proto near ${here}`);
}

export interface RaftServiceDefinition {
  service: grpc.ServiceDefinition;
  Client: grpc.ServiceClientConstructor;
}

let loaded: RaftServiceDefinition | undefined;

export function raftService(): RaftServiceDefinition {
  if (!loaded) {
    const def = protoLoader.loadSync(protoFile(), { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { tessera: { raft: { v1: { Raft: grpc.ServiceClientConstructor } } } };
    const Client = pkg.tessera.raft.v1.Raft;
    loaded = { service: Client.service, Client };
  }
  return loaded;
}

/** The methods that carry Raft batches between members (the peer traffic the metrics count). */
export const BATCH_METHODS: ReadonlySet<string> = new Set(['Send', 'Stream']);

/**
 * Per-call bookkeeping Raft traffic does not use: channelz statistics, and buffering every request
 * for transparent retries (a Raft message or write is retried by Raft or by its caller). Both
 * cost CPU on every call.
 */
export const LEAN_CALL_OPTIONS: grpc.ChannelOptions = {
  'grpc.enable_channelz': 0,
  'grpc.enable_retries': 0,
};

/** Large enough for a snapshot chunk plus overhead. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Reconnect quickly after a peer restarts: fail-over time depends on it.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  ...LEAN_CALL_OPTIONS,
};
