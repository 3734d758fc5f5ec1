// The manager's side of agent sessions (proto/dispatcher.proto): registers the node, streams its
// assignments (full set, then deltas), applies the status updates it reports and records its
// heartbeats. Everything an agent sends is validated before it touches the store.
import * as grpc from '@grpc/grpc-js';

import type { DispatcherHandlers } from '../../proto/gen/tessera/dispatcher/v1/Dispatcher.js';
import type { AgentMessage__Output } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import type { Register__Output } from '../../proto/gen/tessera/dispatcher/v1/Register.js';
import { loadDispatcherPackage } from '../../proto/load.js';
import { parseCidr } from '../../common/network/ipv4.js';
import type { Informer } from '../controllers/informer.js';
import type { Node, Task } from '../../common/resources/types.js';
import type { ObjectStore } from '../store/object-store.js';
import { SentAssignments } from '../../common/dispatcher/assignments.js';
import { SentFiles, toStackFile } from '../../common/dispatcher/stack-files.js';
import { filesNeededBy, resolveNeeded } from './secret-delivery.js';
import { type Authenticate, requireNode } from '../auth/authenticate.js';
import type { NodeHealth } from './node-health.js';
import type { NetworkViews } from './network-views.js';
import { parseReportedStatus } from '../../common/dispatcher/peer-validation.js';
import { reportTaskStatus } from './task-status.js';
import { objectKey } from '../store/keys.js';
import type { NodeLogs } from './node-logs.js';
import type { NodeTop } from './node-top.js';
import { type ImageDispatchDeps, type ImageSession, startImageSession } from './image-session.js';
import type { NodeExec } from './node-exec.js';

const REGISTER_TIMEOUT_MS = 10_000;
const MAX_UPDATES_PER_BATCH = 1000;
/**
 * A node's overlay view is rebuilt and compared at most this often. Every task event changes the
 * views' inputs; rebuilt on every turn for every session it was 64 % of a leader's CPU in
 * bench:scale (60 hollow nodes, 300 tasks: 6 tasks/s end to end).
 */
const NETWORK_VIEW_COALESCE_MS = 250;

export interface DispatcherDeps {
  objects: ObjectStore;
  tasks: Informer<Task>;
  nodes: Informer<Node>;
  health: NodeHealth;
  heartbeatPeriodMs: number;
  /** Who the agent is: the node certificate of its TLS connection (never the request). */
  authenticate: Authenticate;
  managers: () => string[];
  log: (message: string) => void;
  /** Per-node overlay state; absent: no overlay networking (tests of the dispatcher alone). */
  networkViews?: NetworkViews;
  /** The roots nodes must trust and the one they must hold a certificate from; absent: none sent. */
  trust?: {
    current(): { trustedRootPems: string[]; signingRootPem: string };
    subscribe(listener: () => void): () => void;
  };
  /** Where requests for other nodes' task logs go out on their sessions; absent: none are asked. */
  nodeLogs?: NodeLogs;
  /** Where requests for other nodes' task resource use (tsctl top) go out on their sessions; absent: none are asked. */
  nodeTop?: NodeTop;
  /** Where images are (inventories, locate requests, revocations for nodes' blob services); absent: not tracked. */
  images?: ImageDispatchDeps;
  /** Where execs in other nodes' containers go out on their sessions (tsctl exec); absent: none are routed. */
  nodeExec?: NodeExec;
  /** Told about sessions, heartbeats, assignments and status updates (metrics); absent: not told. */
  observer?: DispatcherObserver;
}

/** What the dispatcher reports for metrics (control-plane/metrics/dispatcher-metrics.ts). */
export interface DispatcherObserver {
  /** Where the count of registered sessions is read when scraped. */
  watchSessions(count: () => number): void;
  /** A message from a registered node: every one counts as its heartbeat. */
  heartbeat(): void;
  /** An assignments message went to a node with this many tasks added or changed and this many removed. */
  assignmentsSent(upserts: number, removed: number): void;
  /** Task status updates received in one batch. */
  statusUpdates(count: number): void;
}

type SessionCall = grpc.ServerDuplexStream<AgentMessage__Output, ManagerMessage>;

/** The tasks informer's index of tasks by the node they are assigned to. */
const TASKS_BY_NODE = 'dispatcher:node';

export class DispatcherServer {
  private readonly sessions = new Set<SessionCall>();
  /** The node each registered session belongs to, so that a removed node's session can be cut. */
  private readonly sessionNodes = new Map<SessionCall, string>();
  /**
   * Per node, what its sessions do when one of its tasks changes. One informer subscription routes
   * each task event to its node: with a subscription per session, every event called every session.
   */
  private readonly taskListeners = new Map<string, Set<() => void>>();

  constructor(private readonly deps: DispatcherDeps) {
    deps.observer?.watchSessions(() => this.sessionNodes.size);
    // A node's assignments are read from this index, not by walking every task.
    deps.tasks.addIndex(TASKS_BY_NODE, (task) => task.nodeName);
    deps.tasks.subscribe((event) => {
      const node = event.object.nodeName;
      const before = event.type === 'modified' ? event.previous?.nodeName : undefined;
      if (node !== undefined) this.tasksChanged(node);
      if (before !== undefined && before !== node) this.tasksChanged(before);
    });
  }

  private tasksChanged(nodeName: string): void {
    const listeners = this.taskListeners.get(nodeName);
    if (listeners) for (const listener of listeners) listener();
  }

  /** Calls `listener` whenever a task assigned to `nodeName` (now or before the change) changes; returns the unsubscribe. */
  private onTasksOf(nodeName: string, listener: () => void): () => void {
    let listeners = this.taskListeners.get(nodeName);
    if (!listeners) this.taskListeners.set(nodeName, (listeners = new Set()));
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.taskListeners.get(nodeName) === listeners) this.taskListeners.delete(nodeName);
    };
  }

  addTo(server: grpc.Server): void {
    const pkg = loadDispatcherPackage();
    const handlers: DispatcherHandlers = { Session: (call) => this.session(call) };
    server.addService(pkg.tessera.dispatcher.v1.Dispatcher.service, handlers);
  }

  /** Ends every session, e.g. at shutdown, so agents fail over. */
  closeAll(): void {
    for (const call of this.sessions) call.end();
    this.sessions.clear();
    this.sessionNodes.clear();
    this.deps.images?.locations.clear();
  }

  /** Ends the sessions of one node (it was removed and its certificates revoked). */
  closeNode(nodeName: string): void {
    for (const [call, name] of this.sessionNodes) {
      if (name !== nodeName) continue;
      call.emit(
        'error',
        Object.assign(new Error(`node ${nodeName} was removed from the cluster`), { code: grpc.status.PERMISSION_DENIED, metadata: new grpc.Metadata() }),
      );
      this.sessions.delete(call);
      this.sessionNodes.delete(call);
    }
  }

  private session(call: SessionCall): void {
    const { deps } = this;
    let nodeName: string | undefined;
    let certifiedNode: string;
    try {
      certifiedNode = requireNode(deps.authenticate(call)).nodeId;
    } catch (err) {
      const e = err as Error & { code?: grpc.status };
      deps.log(`dispatcher: session refused: ${e.message}`);
      call.emit(
        'error',
        Object.assign(new Error(e.message), { code: e.code ?? grpc.status.UNAUTHENTICATED, details: e.message, metadata: new grpc.Metadata() }),
      );
      return;
    }
    let unsubscribe: (() => void) | undefined;
    let pending: NodeJS.Immediate | undefined;
    let unsubscribeNetwork: (() => void) | undefined;
    let unsubscribeTrust: (() => void) | undefined;
    let networkPending: NodeJS.Timeout | undefined;
    let imageSession: ImageSession | undefined;
    let lastNetworkJson = '';
    const sent = new SentAssignments();
    const sentFiles = new SentFiles();
    // Deltas go out one at a time: each reads the secrets/configs its tasks need from the store first.
    let deltaChain: Promise<void> = Promise.resolve();
    let ended = false;
    this.sessions.add(call);
    const registerTimer = setTimeout(() => fail(grpc.status.DEADLINE_EXCEEDED, 'no register message within 10 s'), REGISTER_TIMEOUT_MS);

    const fail = (code: grpc.status, message: string) => {
      clearTimeout(registerTimer);
      deps.log(`dispatcher: session${nodeName ? ` of ${nodeName}` : ''} refused: ${message}`);
      // Emitting 'error' on a server stream is how grpc-js ends it with that status (destroy would not send it).
      call.emit('error', Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() }));
    };

    const assignedTasks = () => (nodeName === undefined ? [] : deps.tasks.listBy(TASKS_BY_NODE, nodeName));
    const sendDelta = (full: boolean) => {
      deltaChain = deltaChain
        .then(async () => {
          const tasks = assignedTasks();
          const needed = await resolveNeeded(
            filesNeededBy(tasks),
            async (kind, stack, name) => sentFiles.held(kind, stack, name) ?? deps.objects.get(kind, stack, name),
          );
          if (ended) return;
          const files = sentFiles.next(needed);
          const { upserts, removed } = sent.next(tasks);
          if (!full && upserts.length === 0 && removed.length === 0 && files.send.length === 0 && files.withdraw.length === 0) return;
          call.write({
            assignments: {
              full,
              tasksJson: upserts.map((t) => JSON.stringify(t)),
              removed,
              files: files.send.map(toStackFile),
              removedFiles: files.withdraw,
            },
          });
          deps.observer?.assignmentsSent(upserts.length, removed.length);
        })
        .catch((err: Error) => deps.log(`dispatcher: assignments for ${nodeName ?? '?'}: ${err.message}`));
    };

    const sendToNode = (message: ManagerMessage) => {
      if (!ended) call.write(message);
    };

    // Messages are handled one at a time, in order: a status batch must never overtake the register.
    let chain: Promise<void> = Promise.resolve();
    call.on('data', (message: AgentMessage__Output) => {
      // A message is proof of life when it arrives: handling may queue behind a slow store (a new
      // leader catching up), and a node must not be declared down for the managers' own backlog.
      if (nodeName !== undefined) deps.health.heartbeat(nodeName);
      chain = chain
        .then(() => this.onMessage(message, nodeName, certifiedNode))
        .then((registered) => {
          if (registered && !nodeName) {
            clearTimeout(registerTimer);
            nodeName = registered;
            this.sessionNodes.set(call, registered);
            call.write({ session: { nodeName, heartbeatPeriodMs: deps.heartbeatPeriodMs, managers: deps.managers() } });
            deps.nodeLogs?.attach(registered, sendToNode);
            deps.nodeTop?.attach(registered, sendToNode);
            if (deps.images) {
              imageSession = startImageSession(deps.images, registered, message.register?.description?.imagePeerAddress ?? '', call, sendToNode);
            }
            deps.nodeExec?.attach(registered, sendToNode);
            sendDelta(true);
            const trust = deps.trust;
            if (trust) {
              // A root rotation, a promotion or a demotion reaches the node this way: it trusts the
              // new root and renews, or renews for its new role.
              const sendTrust = () => {
                const role = deps.nodes.get(objectKey('Node', '', registered))?.spec.role ?? '';
                if (!ended) call.write({ trust: { ...trust.current(), role } });
              };
              sendTrust();
              const stopRoots = trust.subscribe(sendTrust);
              const stopRole = deps.nodes.subscribe((event) => {
                if (event.type === 'modified' && event.object.metadata.name === registered && event.previous?.spec.role !== event.object.spec.role) sendTrust();
              });
              unsubscribeTrust = () => {
                stopRoots();
                stopRole();
              };
            }
            const views = deps.networkViews;
            if (views) {
              // The whole view, only when it changed; a burst of store events sends one message.
              const sendNetwork = () => {
                const viewJson = JSON.stringify(views.viewFor(nodeName!));
                if (viewJson === lastNetworkJson) return;
                lastNetworkJson = viewJson;
                call.write({ network: { viewJson } });
              };
              sendNetwork();
              unsubscribeNetwork = views.subscribe(() => {
                networkPending ??= setTimeout(() => {
                  networkPending = undefined;
                  sendNetwork();
                }, NETWORK_VIEW_COALESCE_MS);
              });
            }
            unsubscribe = this.onTasksOf(registered, () => {
              pending ??= setImmediate(() => {
                pending = undefined;
                sendDelta(false);
              });
            });
          }
          if (nodeName) imageSession?.onMessage(message);
        })
        .catch((err: Error & { code?: grpc.status }) => fail(err.code ?? grpc.status.INVALID_ARGUMENT, err.message));
    });
    const end = () => {
      if (nodeName !== undefined) deps.nodeLogs?.detach(nodeName, 'its session with this manager ended', sendToNode);
      if (nodeName !== undefined) deps.nodeTop?.detach(nodeName, 'its session with this manager ended', sendToNode);
      if (nodeName !== undefined) deps.nodeExec?.detach(nodeName, 'its session with this manager ended (the node or its tsd went down)', sendToNode);
      ended = true;
      clearTimeout(registerTimer);
      unsubscribe?.();
      unsubscribeNetwork?.();
      unsubscribeTrust?.();
      imageSession?.end();
      if (pending) clearImmediate(pending);
      if (networkPending) clearTimeout(networkPending);
      this.sessions.delete(call);
      this.sessionNodes.delete(call);
    };
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('error', end);
    call.on('cancelled', end);
  }

  /** Handles one agent message; resolves with the node name when it registered the node. */
  private async onMessage(message: AgentMessage__Output, nodeName: string | undefined, certifiedNode: string): Promise<string | undefined> {
    const { deps } = this;
    if (message.kind === 'register' && message.register) {
      if (nodeName) throw Object.assign(new Error('register sent twice in one session'), { code: grpc.status.FAILED_PRECONDITION });
      return this.register(message.register, certifiedNode);
    }
    if (!nodeName) throw Object.assign(new Error('the first message of a session must be register'), { code: grpc.status.FAILED_PRECONDITION });
    deps.health.heartbeat(nodeName);
    deps.observer?.heartbeat();
    if (message.kind === 'logChunk' && message.logChunk) deps.nodeLogs?.onChunk(nodeName, message.logChunk);
    if (message.kind === 'topAnswer' && message.topAnswer) deps.nodeTop?.onAnswer(nodeName, message.topAnswer);
    deps.nodeExec?.onMessage(nodeName, message);
    if (message.kind === 'statuses' && message.statuses) {
      const updates = message.statuses.updates;
      if (updates.length > MAX_UPDATES_PER_BATCH) throw new Error(`status batch of ${updates.length} updates exceeds ${MAX_UPDATES_PER_BATCH}`);
      deps.observer?.statusUpdates(updates.length);
      for (const update of updates) {
        const where = `status of task ${update.taskStack}/${update.taskName}`;
        const status = parseReportedStatus(update.statusJson, where);
        const found = deps.tasks.get(objectKey('Task', update.taskStack, update.taskName));
        // The names are the agent's: the key is only a lookup, the task must carry exactly these names.
        const task = found && found.metadata.name === update.taskName && (found.metadata.stack ?? '') === update.taskStack ? found : undefined;
        if (!task) continue; // deleted meanwhile: nothing to record
        if (task.nodeName !== nodeName) {
          deps.log(`dispatcher: ${nodeName} reported on task ${update.taskName} assigned to ${task.nodeName ?? 'no node'}; ignored`);
          continue;
        }
        await reportTaskStatus(deps.objects, nodeName, task, status);
      }
    }
    return undefined;
  }

  /** Registers the node the certificate names; the request can only confirm that name, never choose another. */
  private async register(register: Register__Output, certifiedNode: string): Promise<string> {
    const { deps } = this;
    const name = certifiedNode;
    if (register.nodeName !== name) {
      throw Object.assign(new Error(`register as node "${register.nodeName.slice(0, 80)}" refused: the session's certificate is node ${name}'s`), {
        code: grpc.status.PERMISSION_DENIED,
      });
    }
    const description = register.description;
    if (!description) throw new Error('register: missing node description');
    if (description.localSubnet) {
      try {
        parseCidr(description.localSubnet);
      } catch (err) {
        throw new Error(`register: local subnet: ${(err as Error).message}`);
      }
    }
    // The Node object is made when the node joins (NodeCA.Join) and deleted when it is removed.
    const existing = await deps.objects.get('Node', '', name);
    if (!existing) {
      throw Object.assign(new Error(`node ${name} is not a member of this cluster (it was removed); join it again with a new token`), {
        code: grpc.status.PERMISSION_DENIED,
      });
    }
    const role = existing.spec.role;
    const status: Node['status'] = {
      state: 'ready',
      hostname: description.hostname || name,
      address: description.address,
      resources: { memoryBytes: Number(description.memoryBytes), nanoCpus: Number(description.nanoCpus) },
      message: 'session established',
      ...(description.localSubnet ? { localSubnet: description.localSubnet } : {}),
    };
    const engineLabels = description.engineLabels;
    // Seen before it is written ready: a health check in between would otherwise mark it down again.
    deps.health.heartbeat(name);
    await deps.objects.updateWithRetry('Node', '', name, (n) => ({
      ...n,
      // Engine labels are the node's own description, taken at its first session (as the join did not carry them).
      spec: n.status.state === 'unknown' && Object.keys(engineLabels).length > 0 ? { ...n.spec, labels: { ...engineLabels, ...n.spec.labels } } : n.spec,
      status: { ...n.status, ...status },
    }));
    deps.health.heartbeat(name);
    deps.log(`dispatcher: node ${name} (${role}) connected from ${description.address || 'unknown address'}`);
    return name;
  }
}
