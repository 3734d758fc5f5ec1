// Client side of the API's ClusterMembers / ClusterMemberChange RPCs (proto/api.proto), for
// `tsd join` of a manager and `tsctl cluster members`.
import type * as grpc from '@grpc/grpc-js';

import { loadApiPackage } from '../../../proto/load.js';
import type { ClusterMember__Output } from '../../../proto/gen/tessera/api/v1/ClusterMember.js';
import type { TesseraClient } from '../../../proto/gen/tessera/api/v1/Tessera.js';
import { channelOptions, clientCredentials, type TransportSecurity } from '../../../common/transport/credentials.js';

export type ClusterMemberRow = ClusterMember__Output;

export class MembersApiClient {
  private readonly raw: TesseraClient;

  constructor(
    address: string,
    security: TransportSecurity,
    private readonly timeoutMs = 15_000,
  ) {
    const pkg = loadApiPackage();
    this.raw = new pkg.tessera.api.v1.Tessera(address, clientCredentials(security), channelOptions(security));
  }

  members(): Promise<ClusterMemberRow[]> {
    return new Promise((resolve, reject) =>
      this.raw.clusterMembers({}, { deadline: Date.now() + this.timeoutMs }, (err, res) =>
        err || !res ? reject(err ?? new Error('no answer')) : resolve(res.members),
      ),
    );
  }

  change(action: 'add' | 'promote' | 'remove', name: string, address = ''): Promise<number> {
    return new Promise((resolve, reject) =>
      this.raw.clusterMemberChange({ action, name, address }, { deadline: Date.now() + this.timeoutMs }, (err, res) =>
        err || !res ? reject(err ?? new Error('no answer')) : resolve(Number(res.index)),
      ),
    );
  }

  close(): void {
    this.raw.close();
  }
}

/** A gRPC error's text without the "14 UNAVAILABLE:" prefix. */
export function grpcMessage(err: unknown): string {
  const e = err as Partial<grpc.ServiceError>;
  return e.details ?? (err instanceof Error ? err.message : String(err));
}
