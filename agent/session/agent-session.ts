// The agent's side of the dispatcher session: registers this node with a manager, keeps the
// node's assignment set from the full set and deltas it receives, sends batched status updates and
// heartbeats, and when the manager goes away reconnects to another one without touching the
// containers (the worker keeps running what it has).
import * as grpc from '@grpc/grpc-js';

import type { AgentMessage } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import type { ManagerMessage__Output } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import type { NodeDescription } from '../../proto/gen/tessera/dispatcher/v1/NodeDescription.js';
import type { TaskStatusUpdate } from '../../proto/gen/tessera/dispatcher/v1/TaskStatusUpdate.js';
import { loadDispatcherPackage } from '../../proto/load.js';
import { channelOptions, clientCredentials, type TransportSecurity } from '../../common/transport/credentials.js';
import { AssignmentSet } from '../../common/dispatcher/assignments.js';
import { DeliveredFiles, parseStackFile, type DeliveredFile } from '../../common/dispatcher/stack-files.js';
import { parseAssignedTask } from '../../common/dispatcher/peer-validation.js';
import type { Task, TaskState, TaskStatus } from '../../common/resources/types.js';
import { parseNodeNetworkView, type NodeNetworkView } from '../../common/network/node-network-view.js';
import { ReconnectPolicy } from './reconnect-policy.js';
import { ReportLedger } from './report-ledger.js';
import { LogRequestServer } from './log-requests.js';
import type { LogSource } from '../../common/logs/log-source.js';
import type { LogChunk } from '../../proto/gen/tessera/dispatcher/v1/LogChunk.js';
import { parseCertificate } from '../../common/identity/x509.js';
import { TopRequestServer, type UsageSource } from './top-requests.js';
import type { TopAnswer } from '../../proto/gen/tessera/dispatcher/v1/TopAnswer.js';
import type { ImageChannel } from './image-channel.js';
import { ExecRequestServer, type ExecTask } from './exec-requests.js';
import { EXEC_EXIT_FAILED } from '../../common/exec/exec-limits.js';

export interface AgentSessionOptions {
  managers: string[];
  /** Must be the node id of the certificate in `security`: the manager reads the identity from it. */
  nodeName: string;
  description: NodeDescription;
  security: TransportSecurity;
  /**
   * Called with the node's complete assignment set whenever it changes, and the secrets, configs
   * and volume specs its tasks use (kept in memory only, updated before the tasks).
   */
  onAssignments: (tasks: Task[], files: DeliveredFiles) => void;
  /** Called with the node's complete overlay state whenever the manager sends a new one. */
  onNetwork?: (view: NodeNetworkView) => void;
  /** Called with the roots the cluster trusts and the one certificates come from (validated PEM). */
  onTrust?: (update: TrustedRoots) => void;
  log: (message: string) => void;
  /** This node's task logs, for a manager's LogRequests (tsctl logs); absent: such requests are refused. */
  logs?: LogSource;
  /** This node's tasks' resource use, for a manager's TopRequests (tsctl top); absent: such requests are refused. */
  usage?: UsageSource;
  /** Status updates are sent at most this often (they are batched in between). */
  flushEveryMs?: number;
  /** Image inventory, locate requests and revocations over this session (images across nodes). */
  images?: ImageChannel;
  /** Starts a process in one of this node's task containers, for a manager's ExecOpen (tsctl exec); absent: refused. */
  exec?: ExecTask;
}

const MAX_BATCH = 500;
/** Two roots during a rotation; a few more is still plausible, many is not a Tessera cluster. */
const MAX_TRUSTED_ROOTS = 4;

export interface TrustedRoots {
  trustedRootPems: string[];
  signingRootPem: string;
  /** The role the store holds for this node ('' when the manager did not say). */
  role: '' | 'manager' | 'worker';
}

/** A trust update from the manager, each root parsed (size-bounded) before it is believed. */
export function parseTrustUpdate(trustedRootPems: readonly string[], signingRootPem: string, role: string): TrustedRoots {
  if (role !== '' && role !== 'manager' && role !== 'worker') throw new Error(`role "${role.slice(0, 40)}" is not manager or worker`);
  if (trustedRootPems.length === 0 || trustedRootPems.length > MAX_TRUSTED_ROOTS)
    throw new Error(`${trustedRootPems.length} trusted roots; expected 1 to ${MAX_TRUSTED_ROOTS}`);
  trustedRootPems.forEach((pem, i) => parseCertificate(`trusted root #${i}`, pem));
  parseCertificate('signing root', signingRootPem);
  if (!trustedRootPems.includes(signingRootPem)) throw new Error('the signing root is not among the trusted roots');
  return { trustedRootPems: [...trustedRootPems], signingRootPem, role };
}
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 2000;

type Stream = grpc.ClientDuplexStream<AgentMessage, ManagerMessage__Output>;

export class AgentSession {
  private readonly assignments = new AssignmentSet();
  private readonly files = new DeliveredFiles();
  private readonly reported = new ReportLedger();
  private readonly reconnect: ReconnectPolicy;
  private stream: Stream | undefined;
  private client: grpc.Client | undefined;
  private queue: TaskStatusUpdate[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private connectedResolvers: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private everConnected = false;
  connected = false;

  /** The managers this session knows of (the one it talks to first), e.g. for certificate renewal. */
  managers(): string[] {
    return this.reconnect.all();
  }

  private readonly logRequests: LogRequestServer | undefined;
  private readonly topRequests: TopRequestServer | undefined;
  private readonly execRequests: ExecRequestServer | undefined;

  constructor(private readonly options: AgentSessionOptions) {
    this.reconnect = new ReconnectPolicy(options.managers, { minDelayMs: RETRY_MIN_MS, maxDelayMs: RETRY_MAX_MS });
    this.logRequests = options.logs ? new LogRequestServer(options.logs, options.log) : undefined;
    this.topRequests = options.usage ? new TopRequestServer(options.usage, options.log) : undefined;
    this.execRequests = options.exec ? new ExecRequestServer(options.exec, options.log) : undefined;
  }

  start(): void {
    this.connect();
  }

  /**
   * Resolves once a session is established (the manager sent its session info); rejects if the
   * manager refuses this node before it ever joined (a wrong token is not worth retrying).
   */
  whenConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => this.connectedResolvers.push({ resolve, reject }));
  }

  report(task: Task, status: Partial<TaskStatus> & { state: TaskState }): Promise<void> {
    const update: TaskStatusUpdate = { taskStack: task.metadata.stack ?? '', taskName: task.metadata.name, statusJson: JSON.stringify(status) };
    this.reported.noted(task, status.state, update);
    this.queue.push(update);
    if (this.queue.length >= MAX_BATCH) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), this.options.flushEveryMs ?? 20);
    return Promise.resolve();
  }

  stop(): void {
    this.stopped = true;
    this.flush();
    for (const timer of [this.flushTimer, this.heartbeatTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    this.logRequests?.cancelAll();
    this.options.images?.detach('the agent stopped');
    this.execRequests?.cancelAll();
    this.stream?.end();
    this.client?.close();
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.stream || !this.connected || this.queue.length === 0) return;
    const updates = this.queue.splice(0, MAX_BATCH);
    this.stream.write({ statuses: { updates } });
    if (this.queue.length > 0) this.flushTimer = setTimeout(() => this.flush(), 0);
  }

  private connect(): void {
    if (this.stopped) return;
    const address = this.reconnect.current();
    const pkg = loadDispatcherPackage();
    const client = new pkg.tessera.dispatcher.v1.Dispatcher(address, clientCredentials(this.options.security), channelOptions(this.options.security));
    this.client = client;
    const stream = client.session() as Stream;
    this.stream = stream;
    stream.write({
      register: { nodeName: this.options.nodeName, description: this.options.description },
    });
    stream.on('data', (message: ManagerMessage__Output) => this.onMessage(message));
    let ended = false;
    const lost = (why: string) => {
      if (ended) return;
      ended = true;
      this.connected = false;
      this.logRequests?.cancelAll();
      this.options.images?.detach(why);
      this.execRequests?.cancelAll();
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      client.close();
      if (this.stopped) return;
      const next = this.reconnect.failed(why);
      this.options.log(`session with manager ${address} lost (${why}); trying ${next.address} in ${next.delayMs} ms`);
      this.retryTimer = setTimeout(() => this.connect(), next.delayMs);
    };
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.PERMISSION_DENIED || err.code === grpc.status.INVALID_ARGUMENT || err.code === grpc.status.UNAUTHENTICATED) {
        this.options.log(`manager ${address} refused this node: ${err.details}`);
        if (!this.everConnected) {
          ended = true;
          client.close();
          this.stopped = true;
          for (const waiter of this.connectedResolvers.splice(0)) waiter.reject(new Error(err.details || err.message));
          return;
        }
      }
      lost(err.details || err.message);
    });
    stream.on('end', () => lost('stream ended'));
  }

  /** tsctl exec: answers go back on the session the exec was opened on. */
  private onExecMessage(message: ManagerMessage__Output): void {
    if (message.kind === 'execOpen' && message.execOpen) {
      const stream = this.stream;
      const send = (answer: AgentMessage) => (this.stream === stream ? stream?.write(answer) : undefined);
      if (this.execRequests) this.execRequests.open(message.execOpen, send);
      else send({ execExited: { execId: message.execOpen.execId, code: EXEC_EXIT_FAILED, error: 'this node serves no exec' } });
    }
    if (message.kind === 'execStdin' && message.execStdin) this.execRequests?.stdin(message.execStdin);
    if (message.kind === 'execResize' && message.execResize) this.execRequests?.resize(message.execResize);
    if (message.kind === 'execOutputCredit' && message.execOutputCredit) this.execRequests?.credit(message.execOutputCredit);
    if (message.kind === 'execCancel' && message.execCancel) this.execRequests?.cancel(Number(message.execCancel.execId));
  }

  private onMessage(message: ManagerMessage__Output): void {
    if (message.kind === 'session' && message.session) {
      this.connected = true;
      this.reconnect.connected(message.session.managers);
      const period = Math.max(50, message.session.heartbeatPeriodMs || 1000);
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = setInterval(() => this.stream?.write({ heartbeat: {} }), period);
      this.heartbeatTimer.unref();
      this.everConnected = true;
      for (const waiter of this.connectedResolvers.splice(0)) waiter.resolve();
      this.flush();
      const stream = this.stream;
      // Image messages go on the session they belong to; a newer session is attached anew.
      this.options.images?.attach((m) => (this.stream === stream ? stream?.write(m) : undefined));
      return;
    }
    if (message.kind === 'assignments' && message.assignments) {
      const { full, tasksJson, removed } = message.assignments;
      const tasks: Task[] = [];
      for (const json of tasksJson) {
        try {
          tasks.push(parseAssignedTask(json));
        } catch (err) {
          this.options.log(`ignoring an assignment from the manager: ${(err as Error).message}`);
        }
      }
      const files: DeliveredFile[] = [];
      for (const file of message.assignments.files) {
        try {
          files.push(parseStackFile(file));
        } catch (err) {
          this.options.log(`ignoring a file from the manager: ${(err as Error).message}`);
        }
      }
      this.files.apply(full, files, message.assignments.removedFiles);
      const assigned = this.assignments.apply(full, tasks, removed);
      if (full) {
        // A new session: reports the last one took down with it go again.
        const again = this.reported.behind(assigned);
        if (again.length > 0) {
          this.options.log(`sending ${again.length} task status reports again: the managers' view is behind them`);
          this.queue.push(...again);
          this.flush();
        }
      } else {
        this.reported.forget(removed);
      }
      this.options.onAssignments(assigned, this.files);
    }
    if (message.kind === 'trust' && message.trust) {
      try {
        this.options.onTrust?.(parseTrustUpdate(message.trust.trustedRootPems, message.trust.signingRootPem, message.trust.role));
      } catch (err) {
        this.options.log(`ignoring a trust update from the manager: ${(err as Error).message}`);
      }
    }
    if (message.kind === 'logRequest' && message.logRequest) {
      const stream = this.stream;
      // Answers go back on the session the request came on; a new session has other requests.
      const send = (chunk: LogChunk) => (this.stream === stream ? stream?.write({ logChunk: chunk }) : undefined);
      if (this.logRequests) this.logRequests.start(message.logRequest, send);
      else send({ requestId: message.logRequest.requestId, done: true, error: 'this node serves no logs' });
    }
    this.options.images?.onMessage(message);
    if (message.kind === 'logCancel' && message.logCancel) this.logRequests?.cancel(Number(message.logCancel.requestId));
    if (message.kind === 'topRequest' && message.topRequest) {
      const stream = this.stream;
      // As for logs: the answer goes back on the session the request came on, or nowhere.
      const send = (answer: TopAnswer) => (this.stream === stream ? stream?.write({ topAnswer: answer }) : undefined);
      if (this.topRequests) this.topRequests.start(message.topRequest, send);
      else send({ requestId: message.topRequest.requestId, error: 'this node reports no resource use' });
    }
    this.onExecMessage(message);
    if (message.kind === 'network' && message.network) {
      try {
        this.options.onNetwork?.(parseNodeNetworkView(message.network.viewJson));
      } catch (err) {
        this.options.log(`ignoring network state from the manager: ${(err as Error).message}`);
      }
    }
  }
}
