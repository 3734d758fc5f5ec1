// put and delete of one key, as the one-op transactions every backend reduces them to, so each
// backend implements txn once and gets these the same way.
import type { KeyValue, TxnRequest, TxnResponse } from './store.js';

type Txn = (request: TxnRequest) => Promise<TxnResponse>;

export async function putByTxn(txn: Txn, key: string, value: string): Promise<{ revision: number; prev?: KeyValue }> {
  const res = await txn({ compare: [], success: [{ type: 'put', key, value }] });
  const result = res.results[0];
  const prev = result?.type === 'put' ? result.prev : undefined;
  return prev ? { revision: res.revision, prev } : { revision: res.revision };
}

export async function deleteByTxn(txn: Txn, key: string): Promise<{ revision: number; deleted: number }> {
  const res = await txn({ compare: [], success: [{ type: 'delete', key }] });
  const result = res.results[0];
  return { revision: res.revision, deleted: result?.type === 'delete' ? result.deleted : 0 };
}
