// livenessProbe / readinessProbe (exec only) → the service's health check. Kubernetes' defaults
// (every 10 s, 1 s timeout, 3 failures) are written out, because Docker's differ.
import type { IssuePath } from '../../common/resources/schema.js';
import type { HealthcheckSpec } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { readInt, readMap, readStringList } from './read.js';

const NOT_EXEC = 'only exec probes exist: Tessera health checks run a command in the container';

export function translateProbe(ctx: DocContext, value: unknown, path: IssuePath): HealthcheckSpec | undefined {
  const probe = readMap(ctx, value, path);
  if (!probe) return undefined;
  checkFields(ctx, probe, path, {
    exec: true,
    initialDelaySeconds: true,
    periodSeconds: true,
    timeoutSeconds: true,
    failureThreshold: true,
    successThreshold: true,
    httpGet: NOT_EXEC,
    tcpSocket: NOT_EXEC,
    grpc: NOT_EXEC,
    terminationGracePeriodSeconds: "a probe cannot set its own grace period; use the pod's terminationGracePeriodSeconds",
  });
  const exec = readMap(ctx, probe['exec'], [...path, 'exec']);
  const command = exec ? readStringList(ctx, exec['command'], [...path, 'exec', 'command']) : undefined;
  if (exec) checkFields(ctx, exec, [...path, 'exec'], { command: true });
  if (!command || command.length === 0) {
    if (!probe['httpGet'] && !probe['tcpSocket'] && !probe['grpc']) ctx.invalid([...path, 'exec', 'command'], 'required: the command the probe runs');
    return undefined;
  }
  const successThreshold = readInt(ctx, probe['successThreshold'], [...path, 'successThreshold'], 1);
  if (successThreshold !== undefined && successThreshold !== 1) {
    ctx.refuse([...path, 'successThreshold'], 'a Tessera health check is healthy after one success');
  }
  const seconds = (key: string, fallback: number, minimum: number) => (readInt(ctx, probe[key], [...path, key], minimum) ?? fallback) * 1000;
  return {
    test: ['CMD', ...command],
    intervalMs: seconds('periodSeconds', 10, 1),
    timeoutMs: seconds('timeoutSeconds', 1, 1),
    retries: readInt(ctx, probe['failureThreshold'], [...path, 'failureThreshold'], 1) ?? 3,
    startPeriodMs: seconds('initialDelaySeconds', 0, 0),
  };
}

/**
 * A container has one health check. Liveness and readiness probes that are the same become it;
 * different ones cannot both be honoured. A readiness probe alone also replaces unhealthy tasks.
 */
export function containerHealthcheck(ctx: DocContext, container: Readonly<Record<string, unknown>>, path: IssuePath): HealthcheckSpec | undefined {
  const liveness = translateProbe(ctx, container['livenessProbe'], [...path, 'livenessProbe']);
  const readiness = translateProbe(ctx, container['readinessProbe'], [...path, 'readinessProbe']);
  if (liveness && readiness && JSON.stringify(liveness) !== JSON.stringify(readiness)) {
    ctx.refuse(
      [...path, 'readinessProbe'],
      'a container has one health check in Tessera; a readiness probe different from the liveness probe cannot be honoured',
    );
  }
  return liveness ?? readiness;
}
