// A small client of a Raft store group from another process (tests, benchmarks, tools): puts and
// linearizable ranges through the members' Raft service. It sticks to one member and moves on to
// the next when that one fails or has no leader; a failed put may or may not have happened.
import type { TransportSecurity } from '../../../common/transport/credentials.js';
import type { RangeResponse } from '../../store/store.js';
import { decodeResult, encodeCommand, resultError } from '../../store/mvcc/commands.js';
import { RaftPeerClient } from './peer-client.js';

export class RaftKvClient {
  private readonly clients: RaftPeerClient[];
  private current = 0;

  constructor(addresses: string[], security: TransportSecurity, first = 0) {
    if (addresses.length === 0) throw new Error('raft kv client: no member addresses');
    this.clients = addresses.map((a) => new RaftPeerClient(a, security));
    this.current = first % addresses.length;
  }

  /** One attempt against the current member; on failure the next call goes to the next member. */
  async put(key: string, value: string, timeoutMs = 5000): Promise<number> {
    const command = encodeCommand({ op: 'txn', txn: { compare: [], success: [{ type: 'put', key, value }] } });
    const client = this.clients[this.current] as RaftPeerClient;
    try {
      const res = await client.propose(command, timeoutMs, true);
      const result = decodeResult(res.resultJson);
      if ('error' in result) throw resultError(result);
      if (result.ok !== 'txn') throw new Error('raft kv client: unexpected result');
      return result.response.revision;
    } catch (err) {
      this.rotate(client);
      throw err;
    }
  }

  async range(prefix: string, timeoutMs = 5000): Promise<RangeResponse> {
    const client = this.clients[this.current] as RaftPeerClient;
    try {
      return JSON.parse((await client.range(prefix, timeoutMs)).resultJson) as RangeResponse;
    } catch (err) {
      this.rotate(client);
      throw err;
    }
  }

  private rotate(failed: RaftPeerClient): void {
    if (this.clients[this.current] === failed) this.current = (this.current + 1) % this.clients.length;
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}
