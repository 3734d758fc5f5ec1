// Dispatcher metrics: agent sessions, heartbeats, missed heartbeats and nodes marked down,
// assignments sent and status updates received. Increments only: a heartbeat costs one counter add.
import * as client from 'prom-client';

import type { DispatcherObserver } from '../dispatcher/server.js';
import type { NodeHealthObserver } from '../dispatcher/node-health.js';

export class DispatcherMetrics implements DispatcherObserver, NodeHealthObserver {
  private sessions: (() => number) | undefined;
  private readonly heartbeats: client.Counter;
  private readonly missed: client.Counter;
  private readonly down: client.Counter;
  private readonly assignmentMessages: client.Counter;
  private readonly assignmentTasks: client.Counter<'change'>;
  private readonly updates: client.Counter;

  constructor(registry: client.Registry) {
    const registers = [registry];
    const sessions = (): number => this.sessions?.() ?? 0;
    new client.Gauge({
      name: 'tessera_dispatcher_sessions',
      help: 'Nodes with a registered agent session on this manager (the leader holds them all; 0 on other managers).',
      registers,
      collect() {
        this.set(sessions());
      },
    });
    this.heartbeats = new client.Counter({
      name: 'tessera_dispatcher_heartbeats_total',
      help: 'Messages received from registered nodes; each one counts as the node’s heartbeat.',
      registers,
    });
    this.missed = new client.Counter({
      name: 'tessera_dispatcher_heartbeats_missed_total',
      help: 'Node health checks (one per heartbeat period) that found a node not yet down silent for more than two periods.',
      registers,
    });
    this.down = new client.Counter({
      name: 'tessera_dispatcher_node_down_total',
      help: 'Times a node was marked down for missing heartbeats.',
      registers,
    });
    this.assignmentMessages = new client.Counter({
      name: 'tessera_dispatcher_assignment_messages_sent_total',
      help: 'Assignment messages (a full set at session start, then deltas) sent to nodes.',
      registers,
    });
    this.assignmentTasks = new client.Counter({
      name: 'tessera_dispatcher_assigned_tasks_sent_total',
      help: 'Tasks carried by assignment messages, by change (upsert: added or changed; removed).',
      labelNames: ['change'],
      registers,
    });
    this.updates = new client.Counter({
      name: 'tessera_dispatcher_status_updates_total',
      help: 'Task status updates received from nodes.',
      registers,
    });
  }

  watchSessions(count: () => number): void {
    this.sessions = count;
  }

  heartbeat(): void {
    this.heartbeats.inc();
  }

  assignmentsSent(upserts: number, removed: number): void {
    this.assignmentMessages.inc();
    this.assignmentTasks.inc({ change: 'upsert' }, upserts);
    this.assignmentTasks.inc({ change: 'removed' }, removed);
  }

  statusUpdates(count: number): void {
    this.updates.inc(count);
  }

  heartbeatMissed(): void {
    this.missed.inc();
  }

  nodeDown(): void {
    this.down.inc();
  }
}
