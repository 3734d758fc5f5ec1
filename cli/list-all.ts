// Every object of a kind in every stack (optionally one service's tasks), parsed.
import type { AnyObject } from '../common/resources/types.js';
import type { ApiClient } from './client.js';

export async function listAll<T extends AnyObject>(client: ApiClient, kind: T['kind'], service?: string): Promise<T[]> {
  const res = await client.list({ kind, allStacks: true, ...(service ? { service } : {}) });
  return res.objectsJson.map((j) => JSON.parse(j) as T);
}
