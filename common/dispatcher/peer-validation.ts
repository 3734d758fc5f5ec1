// Validation of what crosses the agent ⇄ manager session. Each side checks what the other sent
// before acting on it: a buggy or hostile peer gets a clear refusal, never a half-applied change.
import { z } from 'zod';

import { TASK_STATES, type Task, type TaskStatus } from '../resources/types.js';

const taskStatusSchema = z
  .object({
    state: z.enum(TASK_STATES),
    message: z.string().max(4096).optional(),
    error: z.string().max(4096).optional(),
    timestamp: z.string().max(64).optional(),
    containerId: z.string().max(256).optional(),
    pid: z.number().int().positive().optional(),
    exitCode: z.number().int().min(-1).max(255).optional(),
    oomKilled: z.boolean().optional(),
    address: z.string().max(64).optional(),
    health: z.enum(['starting', 'healthy', 'unhealthy']).optional(),
    failingStreak: z.number().int().min(0).max(1_000_000).optional(),
    healthLog: z
      .array(z.strictObject({ start: z.string().max(64), end: z.string().max(64), exitCode: z.number().int().min(-1).max(255), output: z.string().max(1024) }))
      .max(5)
      .optional(),
  })
  .strict();

export type ReportedStatus = Partial<TaskStatus> & { state: TaskStatus['state'] };

export function parseReportedStatus(json: string, where: string): ReportedStatus {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`${where}: status is not valid JSON: ${(err as Error).message}`);
  }
  const result = taskStatusSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new Error(`${where}: invalid status field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const status: ReportedStatus = { state: result.data.state };
  // Zod leaves absent optional fields out (JSON has no undefined), so every entry is a sent field.
  for (const [key, value] of Object.entries(result.data)) {
    if (key !== 'timestamp') (status as Record<string, unknown>)[key] = value;
  }
  return status;
}

const taskShape = z
  .object({
    apiVersion: z.literal('tessera/v1'),
    kind: z.literal('Task'),
    metadata: z.object({ name: z.string().min(1).max(253), stack: z.string().max(63).optional() }).passthrough(),
    spec: z
      .object({
        serviceName: z.string().min(1),
        serviceStack: z.string(),
        serviceGeneration: z.number().int(),
        slot: z.number().int().min(0),
        spec: z.object({ image: z.string().min(1) }).passthrough(),
      })
      .passthrough(),
    desiredState: z.enum(['running', 'shutdown']),
    status: z.object({ state: z.enum(TASK_STATES) }).passthrough(),
    nodeName: z.string().optional(),
  })
  .passthrough();

/** Agent side: a task the manager sent must at least have the shape the worker relies on. */
export function parseAssignedTask(json: string): Task {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`assignment is not valid JSON: ${(err as Error).message}`);
  }
  const result = taskShape.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new Error(`assignment is not a task: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return raw as Task;
}
