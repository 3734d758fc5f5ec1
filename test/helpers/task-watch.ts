// Follows one service's tasks event by event through the API's Watch (not by polling), so a test
// can check a property at every revision — e.g. "never fewer than N running" during a rollout.
import * as grpc from '@grpc/grpc-js';

import type { ApiClient } from '../../cli/client.js';
import { clientCredentials, LOCAL_INSECURE } from '../../common/transport/credentials.js';
import type { Task } from '../../common/resources/types.js';
import { loadApiPackage } from '../../proto/load.js';
import type { WatchEvent__Output } from '../../proto/gen/tessera/api/v1/WatchEvent.js';

export interface TaskWatch {
  /** True once the watch ended for any reason but our own stop: a test must then fail, not pass. */
  broken(): boolean;
  stop(): void;
}

/** Calls `onView` with the service's tasks now, then after every change to them. */
export async function watchServiceTasks(
  server: string,
  client: ApiClient,
  where: { stack: string; service: string },
  onView: (tasks: Task[]) => void,
): Promise<TaskWatch> {
  const first = await client.list({ kind: 'Task', stack: where.stack, service: where.service });
  const view = new Map<string, Task>();
  for (const j of first.objectsJson) {
    const t = JSON.parse(j) as Task;
    view.set(t.metadata.name, t);
  }
  const emit = () => onView([...view.values()].filter((t) => t.spec.serviceName === where.service));
  emit();
  let broken = false;
  const pkg = loadApiPackage();
  const raw = new pkg.tessera.api.v1.Tessera(server, clientCredentials(LOCAL_INSECURE));
  const stream = raw.watch({ kind: 'Task', stack: where.stack, fromRevision: Number(first.revision) + 1 });
  stream.on('data', (e: WatchEvent__Output) => {
    const t = JSON.parse(e.objectJson) as Task;
    if (e.type === 'deleted') view.delete(t.metadata.name);
    else view.set(t.metadata.name, t);
    emit();
  });
  stream.on('error', (err: grpc.ServiceError) => {
    if (err.code !== grpc.status.CANCELLED) broken = true;
  });
  return {
    broken: () => broken,
    stop: () => {
      stream.cancel();
      raw.close();
    },
  };
}
