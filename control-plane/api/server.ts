// The user API (proto/api.proto) over gRPC. Every request is validated here, whatever the client
// checked before: the server is the last line between user input and the store.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

import type { TesseraHandlers } from '../../proto/gen/tessera/api/v1/Tessera.js';
import type { ObjectRef } from '../../proto/gen/tessera/api/v1/ObjectRef.js';
import type { ImageSummary } from '../../proto/gen/tessera/api/v1/ImageSummary.js';
import type { ImageGcResult } from '../../proto/gen/tessera/api/v1/ImageGcResult.js';
import { loadApiPackage } from '../../proto/load.js';
import type { ArchiveFormat, GcResult, ImageRecord, ImageStore } from '../../common/images/types.js';
import { referenceNamesImage } from '../../common/images/image-usage.js';
import type { TransportSecurity } from '../../common/transport/credentials.js';
import type { AnyObject, Kind, Network, Node, Service, Task } from '../../common/resources/types.js';
import { KINDS, isTerminal } from '../../common/resources/types.js';
import { formatIssuePath, validateObject } from '../../common/resources/schema.js';
import { isNameTooLong, MAX_NAME_BYTES, MAX_REPLICAS, MAX_REQUEST_BYTES, quoteName } from '../../common/resources/limits.js';
import { kindPrefix, objectKey } from '../store/keys.js';
import type { Store, TxnOp, Compare } from '../store/store.js';
import { ConflictError, NotFoundError, ObjectStore, type ObjectOfKind } from '../store/object-store.js';
import { planApply, type ApplyAction } from './apply-plan.js';
import { planPrune, type PrunedObject } from './prune-plan.js';
import { API_SERVER_OPTIONS, bindServer, shutdownServer } from './grpc-server.js';
import { isNetworkManifest, planNetworks, validateNetworkManifest } from './network-objects.js';
import type { StackFileObject } from '../../common/resources/file-references.js';
import { deletionBlocker, isStackFileManifest, planStackFiles, redactJson, redactObject, validateStackFileManifest } from './stack-objects.js';
import { unhonouredFields } from './unhonoured-fields.js';
import { pushImage } from './image-push.js';
import { applyNodeUpdate, validateNodeUpdate } from './node-update.js';
import type { NodeRole, UserRole } from '../../common/identity/certificate.js';
import { isUserRole } from '../../common/identity/certificate.js';
import type { Authenticate } from '../auth/authenticate.js';
import type { Caller } from '../auth/caller.js';
import { authorizeMemberChange, authorizeMethod, isMutating, redactFor, type ApiMethod } from '../auth/authorization.js';
import { declaredStackLevels, type AdmissionRole } from '../../common/resources/admission-levels.js';
import { clusterDefaultOf, describeClusterDefault, planAdmission, updateClusterSettings } from './admission-store.js';
import { validateClusterUpdate } from './cluster-update.js';
import { guardService } from './guard.js';
import { eventsQuery, streamEvents } from './events-stream.js';
import { resumedLogPositions, streamLogs } from './logs-stream.js';
import { logsFromLeader } from './forward-logs.js';
import { gatherTop } from './top.js';
import { topFromLeader } from './forward-top.js';
import type { NodeTop } from '../dispatcher/node-top.js';
import { atTime } from '../../common/timers/at-time.js';
import type { NodeLogs } from '../dispatcher/node-logs.js';
import type { NodeExec } from '../dispatcher/node-exec.js';
import { serveExec } from './exec-stream.js';
import { execOnLeader } from './forward-exec.js';
import type { EventLog } from '../events/event-log.js';
import type { UnauthenticatedCaller } from '../audit/audit-entry.js';
import { peerSubjectText } from '../auth/authenticate.js';
import type { NodeUpdateRequest__Output } from '../../proto/gen/tessera/api/v1/NodeUpdateRequest.js';
import { ApiError, grpcCodeOf, invalidArgument, notFound, toServiceError } from './errors.js';
import type { LogSource } from '../../common/logs/log-source.js';
import { DNS_LABEL } from '../../common/resources/names.js';
import type { DaemonMetrics } from '../metrics/daemon-metrics.js';
import type { HeldImage } from '../dispatcher/image-locations.js';
import { imageListOf } from './image-list.js';
import type { ImageBuilder } from '../../common/build/builder.js';
import { DEFAULT_MAX_CONTEXT_BYTES } from '../../common/build/request-limits.js';
import { BuildSlots, serveBuild } from './build-stream.js';

export interface ApiServerDeps {
  store: Store;
  images: ImageStore;
  logs: LogSource;
  /** This manager's own node: its tasks' logs are read from `logs`; other nodes' through nodeLogs. */
  selfNode?: string;
  nodeLogs?: NodeLogs;
  /** Execs in tasks' containers through the nodes' sessions (tsctl exec; the leader's dispatcher holds them). */
  nodeExec?: NodeExec;
  /** Whether the nodes' sessions come to this manager (it leads, or there is no Raft): a logs follow waits for a node's return only there. */
  holdsNodeSessions?: () => boolean;
  /** On a follower: the leader's address, which asks the other nodes; undefined where this server asks them itself. */
  logsLeader?: () => { address: string; security: TransportSecurity } | undefined;
  /** Other nodes' task resource use through their sessions (tsctl top); absent: Top answers with a notice per node. */
  nodeTop?: NodeTop;
  metrics?: DaemonMetrics;
  clusterId: string;
  version: string;
  storeBackend: string;
  managers: () => string[];
  /** The cluster events this manager has seen (tsctl events); absent: Events is UNIMPLEMENTED. */
  events?: EventLog;
  /** The replicated store's members (Raft backend only). */
  cluster?: {
    members(): Promise<Array<{ id: string; address: string; role: string; term: number; commit: number; applied: number }>>;
    change(req: { action: string; name: string; address: string }): Promise<{ index: number }>;
  };
  /** Mints a new join token for a role (the previous one stops working). Absent on servers that issue none (tests). */
  joinTokens?: { rotate(role: NodeRole): Promise<string> };
  /** Cluster identity operations (tsd with a CA); absent: those calls are UNIMPLEMENTED. */
  identity?: {
    issueUserCertificate(req: { name: string; role: UserRole; csrPem: string; validityMs: number }): Promise<{
      certChainPem: string;
      trustedRootPems: string[];
      clusterId: string;
    }>;
    removeNode(name: string, force: boolean): Promise<string[]>;
    rotateCa(statusOnly: boolean): Promise<{ state: string; message: string }>;
    /** Checks and prepares a promotion or demotion; throws (with a gRPC code) to refuse it. */
    prepareRoleChange(name: string, role: NodeRole): Promise<void>;
  };
  /** Records one mutating request and its result (the audit log). */
  audit?: (record: AuditRecord) => void;
  /** Reads the audit log of this manager. */
  readAudit?: (options: { limit: number; callerContains?: string }) => Promise<string[]>;
  /** The images every connected node reports holding (ImageList's NODES); undefined where not known (not the leader). */
  imageHolders?: () => HeldImage[] | undefined;
  /** This node's image builder (tsctl build); absent: BuildImage is UNIMPLEMENTED. */
  imageBuilder?: ImageBuilder;
  /** Where build contexts are unpacked; default the system's temporary directory. */
  buildContextDir?: string;
  /** The cap of one build context's tar, in bytes; default DEFAULT_MAX_CONTEXT_BYTES. */
  buildContextMaxBytes?: number;
}

export interface AuditRecord {
  caller: Caller | UnauthenticatedCaller;
  /** The RPC name: an ApiMethod, or a method of another service on the same port (tessera.autolock.v1.Autolock). */
  method: string;
  /** The request as received (a stream's is {}); the audit log keeps only what it names and a digest. */
  request: unknown;
  /** Absent when the request succeeded. */
  error?: unknown;
}

const MAX_AUDIT_READ = 10_000;

const MAX_APPLY_OBJECTS = 1000;
const MAX_IMAGE_BYTES = 4 * 1024 ** 3;

function parseKind(raw: string): Kind {
  const match = KINDS.find((k) => k.toLowerCase() === raw.toLowerCase() || `${k.toLowerCase()}s` === raw.toLowerCase());
  if (!match) throw invalidArgument(`unknown kind ${quoteName(raw)}: expected one of ${KINDS.join(', ')}`);
  return match;
}

/** Refuses a name (of an object, stack or service) longer than any object can have. */
function checkNameSize(value: string, what: string): string {
  if (isNameTooLong(value)) {
    throw invalidArgument(`${what} ${quoteName(value)} is longer than ${MAX_NAME_BYTES} bytes`);
  }
  return value;
}

function requireName(ref: ObjectRef | null | undefined, where: string): { kind: Kind; stack: string; name: string } {
  if (!ref) throw invalidArgument(`${where}: missing object reference`);
  if (!ref.name) throw invalidArgument(`${where}: missing name`);
  const stack = checkNameSize(ref.stack ?? '', `${where}: stack`);
  return { kind: parseKind(ref.kind ?? ''), stack, name: checkNameSize(ref.name, `${where}: name`) };
}

/**
 * Refuses an Apply request over MAX_REQUEST_BYTES. On tsd the API shares its gRPC server with Raft,
 * whose snapshot chunks need a larger receive limit, so this check is what holds requests to 4 MiB there.
 */
function checkRequestSize(objectsJson: readonly string[], pruneStacks: readonly string[]): void {
  let units = 0;
  for (const s of [...objectsJson, ...pruneStacks]) units += s.length;
  // At least one UTF-8 byte per UTF-16 unit: count the bytes only when that bound does not decide.
  let bytes = units;
  if (units <= MAX_REQUEST_BYTES && units * 3 > MAX_REQUEST_BYTES) {
    bytes = 0;
    for (const s of [...objectsJson, ...pruneStacks]) bytes += Buffer.byteLength(s);
  }
  if (bytes > MAX_REQUEST_BYTES) {
    throw invalidArgument(
      `apply: nothing applied; the request is ${units > MAX_REQUEST_BYTES ? 'at least ' : ''}${bytes} bytes, more than the ${MAX_REQUEST_BYTES} (4 MiB) allowed; split it into several applies`,
    );
  }
}

function decode<T extends AnyObject>(value: string, modRevision: number): T {
  const object = JSON.parse(value) as T;
  object.metadata.resourceVersion = String(modRevision);
  return object;
}

function notFoundMessage(kind: Kind, stack: string, name: string): string {
  return `${kind.toLowerCase()} "${name}" not found${stack ? ` in stack "${stack}"` : ''}`;
}

function encode(object: AnyObject): string {
  const copy = structuredClone(object);
  delete copy.metadata.resourceVersion;
  return JSON.stringify(copy);
}

function summary(image: ImageRecord): ImageSummary {
  return { reference: image.reference, digest: image.digest, size: image.size, createdAt: image.createdAt };
}

function gcSummary(gc: GcResult): ImageGcResult {
  return { blobsRemoved: gc.blobsRemoved, layersRemoved: gc.layersRemoved, bytesFreed: gc.bytesFreed };
}

/** The image store's own errors as API errors: a missing image is NOT_FOUND, one in use FAILED_PRECONDITION. */
function imageError(err: unknown): unknown {
  if (err instanceof Error && err.name === 'ImageNotFoundError') return notFound(err.message);
  if (err instanceof Error && err.name === 'ImageInUseError') return new ApiError(grpc.status.FAILED_PRECONDITION, err.message);
  if (err instanceof Error && err.name === 'InvalidReferenceError') return invalidArgument(err.message);
  return err;
}

/**
 * The role an Apply is admitted for (common/resources/admission-levels.ts): admins and local root
 * from privileged, everyone else from baseline (only operators get as far as Apply; the rest fail closed).
 */
function admissionRoleOf(caller: Caller): AdmissionRole {
  return caller.kind === 'local-root' || (caller.kind === 'user' && caller.role === 'admin') ? 'admin' : 'operator';
}

export class ApiServer {
  private server: grpc.Server | undefined;
  /** The caller of each call in flight, as the guard authenticated it. */
  private readonly callers = new WeakMap<object, Caller>();

  private readonly objects: ObjectStore;
  /** Builds running on this server (BuildImage), against their limit. */
  private readonly buildSlots = new BuildSlots();

  constructor(private readonly deps: ApiServerDeps) {
    this.objects = new ObjectStore(deps.store);
  }

  /**
   * Registers the API on a server (shared with other services on tsd's TLS port). Every call is
   * authenticated by `authenticate` and authorised for its method before a handler runs.
   */
  addTo(server: grpc.Server, authenticate: Authenticate): void {
    const pkg = loadApiPackage();
    const guarded = guardService(this.handlers(), (name, call) => {
      const method = name as ApiMethod;
      // A client stream (ImageLoad) has no request object to describe before it is read.
      const request = method === 'ImageLoad' ? {} : (call as { request?: unknown }).request;
      let caller: Caller;
      try {
        caller = authenticate(call);
      } catch (err) {
        // A change tried with a revoked or foreign certificate is audited too, as unauthenticated.
        this.audited({ kind: 'unauthenticated', ...peerSubjectText(call) }, method, request, err);
        throw err;
      }
      const decision = authorizeMethod(caller, method);
      if (!decision.allowed) {
        const refusal = new ApiError(grpc.status.PERMISSION_DENIED, decision.reason);
        // A refused change is audited too: who tried what matters most when it was not allowed.
        this.audited(caller, method, request, refusal);
        throw refusal;
      }
      this.callers.set(call, caller);
    });
    server.addService(pkg.tessera.api.v1.Tessera.service, guarded);
  }

  /** Serves the API alone on its own server (tests): every caller is treated as `authenticate` says. */
  async listen(address: string, security: TransportSecurity, authenticate: Authenticate): Promise<number> {
    const server = new grpc.Server(API_SERVER_OPTIONS);
    this.addTo(server, authenticate);
    this.server = server;
    return bindServer(server, address, security);
  }

  private identity(): NonNullable<ApiServerDeps['identity']> {
    if (!this.deps.identity) throw new ApiError(grpc.status.UNIMPLEMENTED, 'this server has no cluster CA');
    return this.deps.identity;
  }

  async close(): Promise<void> {
    if (this.server) await shutdownServer(this.server);
  }

  // --- operations, independent of gRPC so they can be tested and reused -------------------------

  async apply(
    objectsJson: string[],
    dryRun: boolean,
    pruneStacks: readonly string[] = [],
    caller: Caller = { kind: 'local-root' },
  ): Promise<Array<{ ref: ObjectRef; action: ApplyAction; object: Service | Network | StackFileObject } | PrunedObject>> {
    if (objectsJson.length === 0) throw invalidArgument('apply: no objects given');
    if (objectsJson.length > MAX_APPLY_OBJECTS) throw invalidArgument(`apply: at most ${MAX_APPLY_OBJECTS} objects per request`);
    checkRequestSize(objectsJson, pruneStacks);
    pruneStacks.forEach((stack, i) => checkNameSize(stack, `apply: prune stack ${i + 1}`));
    const incoming: Service[] = [];
    const networks: Network[] = [];
    const stackFiles: StackFileObject[] = [];
    const problems: string[] = [];
    const seen = new Set<string>();
    objectsJson.forEach((json, index) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(json);
      } catch (err) {
        problems.push(`object ${index + 1}: not valid JSON: ${(err as Error).message}`);
        return;
      }
      if (isNetworkManifest(parsed)) {
        const network = validateNetworkManifest(parsed, index);
        if (!network.ok) problems.push(...network.problems);
        else if (networks.some((n) => (n.metadata.stack ?? '') === (network.object.metadata.stack ?? '') && n.metadata.name === network.object.metadata.name))
          problems.push(`object ${index + 1}: Network ${network.object.metadata.name} appears twice`);
        else networks.push(network.object);
        return;
      }
      if (isStackFileManifest(parsed)) {
        const file = validateStackFileManifest(parsed, index);
        if (!file.ok) problems.push(...file.problems);
        else {
          const key = objectKey(file.object.kind, file.object.metadata.stack, file.object.metadata.name);
          if (seen.has(key)) problems.push(`object ${index + 1}: ${file.object.kind} ${file.object.metadata.name} appears twice`);
          seen.add(key);
          stackFiles.push(file.object);
        }
        return;
      }
      const result = validateObject(parsed);
      if (!result.ok) {
        for (const issue of result.issues) problems.push(`object ${index + 1}: ${formatIssuePath(issue.path)}: ${issue.message}`);
        return;
      }
      for (const problem of unhonouredFields(result.object)) problems.push(`object ${index + 1} (${result.object.metadata.name}): ${problem}`);
      const key = objectKey(result.object.kind, result.object.metadata.stack, result.object.metadata.name);
      if (seen.has(key)) problems.push(`object ${index + 1}: ${result.object.kind} ${result.object.metadata.name} appears twice`);
      seen.add(key);
      incoming.push(result.object);
    });
    const admitted = [...incoming, ...networks, ...stackFiles];
    const declared = declaredStackLevels(admitted);
    problems.push(...declared.problems);
    if (problems.length > 0) throw invalidArgument(`nothing applied; ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);

    // All objects are written in one transaction guarded by each key's revision: either all of
    // them are applied as planned, or none is and we plan again on fresh data. (Not
    // ObjectStore.updateWithRetry: that changes one existing object; this creates, changes and
    // prunes many at once.)
    for (let attempt = 0; attempt < 10; attempt++) {
      const compare: Compare[] = [];
      const success: TxnOp[] = [];
      const planned: Array<{ ref: ObjectRef; action: ApplyAction; object: Service | Network | StackFileObject } | PrunedObject> = [];
      // Valid objects the admission level refuses: not permitted (a looser level would take them).
      // Dry runs refuse the same; the stack levels declared are written with the objects.
      const refusals = await planAdmission(this.deps.store, { role: admissionRoleOf(caller), objects: admitted, declared: declared.levels }, compare, success);
      if (refusals.length > 0)
        throw new ApiError(grpc.status.PERMISSION_DENIED, `nothing applied; ${refusals.length} field(s) not permitted:\n  ${refusals.join('\n  ')}`);
      for (const object of incoming) {
        const key = objectKey('Service', object.metadata.stack, object.metadata.name);
        const kv = await this.deps.store.get(key);
        const existing = kv ? decode<Service>(kv.value, kv.modRevision) : undefined;
        const plan = planApply(existing, object, new Date(), randomUUID);
        compare.push({ key, target: 'modRevision', op: '=', value: kv?.modRevision ?? 0 });
        if (plan.action !== 'unchanged') success.push({ type: 'put', key, value: encode(plan.object) });
        planned.push({ ref: { kind: 'Service', stack: object.metadata.stack ?? '', name: object.metadata.name }, action: plan.action, object: plan.object });
      }
      planned.push(...(await planNetworks(this.deps.store, networks, compare, success)));
      const files = await planStackFiles(this.deps.store, stackFiles, incoming, compare, success);
      if (files.problems.length > 0) throw invalidArgument(`nothing applied; ${files.problems.length} problem(s):\n  ${files.problems.join('\n  ')}`);
      planned.push(...files.planned);
      const pruned = await planPrune(
        this.deps.store,
        pruneStacks,
        planned.map((p) => p.ref),
        incoming,
        compare,
        success,
      );
      if (pruned.problems.length > 0) throw invalidArgument(`nothing applied; ${pruned.problems.length} problem(s):\n  ${pruned.problems.join('\n  ')}`);
      planned.push(...pruned.planned);
      if (dryRun || success.length === 0) return planned;
      const response = await this.deps.store.txn({ compare, success });
      if (response.succeeded) {
        for (const p of planned) if (p.action !== 'unchanged' && p.action !== 'pruned') p.object.metadata.resourceVersion = String(response.revision);
        return planned;
      }
    }
    throw new ApiError(grpc.status.ABORTED, 'apply: the objects kept changing underneath; try again');
  }

  async list(kind: Kind, stack: string | undefined, service?: string): Promise<{ objects: AnyObject[]; revision: number }> {
    const { kvs, revision } = await this.deps.store.range(kindPrefix(kind, stack));
    let objects = kvs.map((kv) => decode<AnyObject>(kv.value, kv.modRevision));
    if (service) objects = objects.filter((o) => o.kind === 'Task' && o.spec.serviceName === service);
    return { objects, revision };
  }

  async get(kind: Kind, stack: string, name: string): Promise<AnyObject> {
    const kv = await this.deps.store.get(objectKey(kind, stack, name));
    if (!kv) throw notFound(notFoundMessage(kind, stack, name));
    return decode<AnyObject>(kv.value, kv.modRevision);
  }

  /**
   * ObjectStore.updateWithRetry, answered as the API answers: the object as it is when no write
   * was needed, NOT_FOUND for a missing one, ABORTED saying `busy` when it kept changing.
   */
  private async updateObject<K extends 'Service' | 'Node'>(
    kind: K,
    stack: string,
    name: string,
    busy: string,
    mutate: (current: ObjectOfKind<K>) => ObjectOfKind<K> | undefined,
  ): Promise<ObjectOfKind<K>> {
    const seen: { current?: ObjectOfKind<K> } = {};
    try {
      const written = await this.objects.updateWithRetry(kind, stack, name, (current) => {
        seen.current = current;
        return mutate(current);
      });
      return written ?? (seen.current as ObjectOfKind<K>);
    } catch (err) {
      if (err instanceof NotFoundError) throw notFound(notFoundMessage(kind, stack, name));
      if (err instanceof ConflictError) throw new ApiError(grpc.status.ABORTED, busy);
      throw err;
    }
  }

  /** Tasks that are not finished and name `image`: while there are any, the image may not be removed. */
  async tasksUsingImage(image: ImageRecord): Promise<string[]> {
    const { objects } = await this.list('Task', undefined);
    return (objects as Task[])
      .filter((task) => !isTerminal(task.status.state) && referenceNamesImage(task.spec.spec.image, image))
      .map((task) => (task.metadata.stack ? `${task.metadata.stack}/${task.metadata.name}` : task.metadata.name));
  }

  async scale(stack: string, name: string, replicas: number): Promise<Service> {
    if (!Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS)
      throw invalidArgument(`scale: replicas must be an integer from 0 to ${MAX_REPLICAS}, got ${replicas}`);
    return this.updateObject('Service', stack, name, 'scale: the service kept changing underneath; try again', (service) =>
      (service.spec.replicas ?? 1) === replicas ? undefined : { ...service, spec: { ...service.spec, replicas } },
    );
  }

  async updateNode(req: NodeUpdateRequest__Output): Promise<Node> {
    const change = validateNodeUpdate(req);
    if (change.role) {
      const current = await this.get('Node', '', req.name);
      // The store's side of a promotion or demotion (e.g. leaving the Raft group) before the role changes.
      if (current.kind === 'Node' && current.spec.role !== change.role) await this.identity().prepareRoleChange(req.name, change.role);
    }
    return this.updateObject('Node', '', req.name, 'node update: the node kept changing underneath; try again', (node) => applyNodeUpdate(node, change));
  }

  // --- gRPC glue ----------------------------------------------------------------------------------

  /** The task an exec names: by stack and name, or by name alone when no stack is given (and only one stack has it). */
  private async taskNamed(stack: string, name: string): Promise<Task> {
    checkNameSize(stack, 'exec: stack');
    checkNameSize(name, 'exec: task');
    if (stack !== '') return (await this.get('Task', stack, name)) as Task;
    const found = ((await this.list('Task', undefined)).objects as Task[]).filter((t) => t.metadata.name === name);
    if (found.length === 0) throw notFound(`exec: no task ${quoteName(name)}`);
    if (found.length > 1) throw invalidArgument(`exec: ${found.length} stacks have a task ${quoteName(name)}; name the stack`);
    return found[0]!;
  }

  private callerOf(call: object): Caller {
    const caller = this.callers.get(call);
    // The guard sets it before any handler runs; a handler reached without it is a wiring bug.
    if (!caller) throw new ApiError(grpc.status.UNAUTHENTICATED, 'the call reached the API without an authenticated caller');
    return caller;
  }

  private unary<Req, Res>(method: ApiMethod, fn: (req: Req, caller: Caller) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    // The callback is called after the await, not from a promise handler: a throw inside it must
    // not turn into a second, error answer.
    return (call, callback) => {
      void (async () => {
        const stopTimer = this.deps.metrics?.apiRequestSeconds.startTimer({ method });
        let res: Res;
        const caller = this.callers.get(call);
        try {
          res = await fn(call.request, this.callerOf(call));
        } catch (err) {
          this.deps.metrics?.apiRequests.inc({ method, code: grpc.status[grpcCodeOf(err)] });
          stopTimer?.();
          if (caller) this.audited(caller, method, call.request, err);
          callback(toServiceError(err));
          return;
        }
        this.deps.metrics?.apiRequests.inc({ method, code: grpc.status[grpc.status.OK] });
        stopTimer?.();
        if (caller) this.audited(caller, method, call.request, undefined);
        callback(null, res);
      })();
    };
  }

  /** Counts a streaming call's end and audits it when it changes something. */
  private streamEnded(call: object, method: ApiMethod, err: unknown, request: unknown): void {
    this.deps.metrics?.apiRequests.inc({ method, code: grpc.status[err === undefined ? grpc.status.OK : grpcCodeOf(err)] });
    const caller = this.callers.get(call);
    if (caller) this.audited(caller, method, request, err);
  }

  private audited(caller: Caller | UnauthenticatedCaller, method: ApiMethod, request: unknown, error: unknown): void {
    if (!isMutating(method)) return;
    this.deps.audit?.({ caller, method, request, ...(error === undefined ? {} : { error }) });
  }

  private handlers(): TesseraHandlers {
    return {
      Apply: this.unary('Apply', async (req, caller) => {
        const results = await this.apply(req.objectsJson, req.dryRun, req.pruneStacks, caller);
        return { results: results.map((r) => ({ ref: r.ref, action: r.action, objectJson: JSON.stringify(redactObject(r.object)) })) };
      }),
      Get: this.unary('Get', async (req, caller) => {
        const ref = requireName(req.ref, 'get');
        return { objectJson: redactFor(caller, ref.kind, JSON.stringify(redactObject(await this.get(ref.kind, ref.stack, ref.name)))) };
      }),
      List: this.unary('List', async (req, caller) => {
        const kind = parseKind(req.kind);
        checkNameSize(req.stack, 'list: stack');
        checkNameSize(req.service, 'list: service');
        const { objects, revision } = await this.list(kind, req.allStacks ? undefined : req.stack, req.service || undefined);
        return { objectsJson: objects.map((o) => redactFor(caller, kind, JSON.stringify(redactObject(o)))), revision };
      }),
      Delete: this.unary('Delete', async (req) => {
        const deleted: ObjectRef[] = [];
        const missing: ObjectRef[] = [];
        const refs = req.refs.map((r, i) => requireName(r, `delete: reference ${i + 1}`));
        for (const ref of refs) {
          if (ref.kind === 'Task' || ref.kind === 'Node')
            throw invalidArgument(`delete: ${ref.kind} objects are managed by the system; delete their service instead`);
        }
        const deletedServices = new Set(refs.filter((r) => r.kind === 'Service').map((r) => `${r.stack}/${r.name}`));
        for (const ref of refs) {
          const blocker = await deletionBlocker(this.deps.store, ref.kind, ref.stack, ref.name, deletedServices);
          if (blocker) throw new ApiError(grpc.status.FAILED_PRECONDITION, `delete: nothing deleted: ${blocker}`);
        }
        for (const ref of refs) {
          const result = await this.deps.store.delete(objectKey(ref.kind, ref.stack, ref.name));
          (result.deleted > 0 ? deleted : missing).push({ kind: ref.kind, stack: ref.stack, name: ref.name });
        }
        return { deleted, notFound: missing };
      }),
      Scale: this.unary('Scale', async (req) => {
        const ref = requireName(req.ref, 'scale');
        if (ref.kind !== 'Service') throw invalidArgument('scale: only services can be scaled');
        return { objectJson: JSON.stringify(await this.scale(ref.stack, ref.name, req.replicas)) };
      }),
      Watch: (call) => {
        let kind: Kind;
        try {
          kind = parseKind(call.request.kind);
          checkNameSize(call.request.stack, 'watch: stack');
        } catch (err) {
          this.streamEnded(call, 'Watch', err, call.request);
          call.emit('error', toServiceError(err));
          return;
        }
        const prefix = kindPrefix(kind, call.request.allStacks ? undefined : call.request.stack);
        const caller = this.callerOf(call);
        this.deps.store
          .watch(
            prefix,
            call.request.fromRevision,
            (events, revision) => {
              for (const event of events) {
                const objectJson = redactFor(
                  caller,
                  kind,
                  redactJson(event.type === 'put' ? event.kv.value : (event.prev?.value ?? JSON.stringify({ kind, key: event.kv.key }))),
                );
                const type = event.type === 'delete' ? 'deleted' : event.kv.version === 1 ? 'added' : 'modified';
                call.write({ type, objectJson, revision });
              }
            },
            (err) => call.emit('error', toServiceError(err)),
          )
          .then((watch) => call.on('cancelled', () => watch.cancel()))
          .catch((err: unknown) => {
            this.streamEnded(call, 'Watch', err, call.request);
            call.emit('error', toServiceError(err));
          });
      },
      Logs: (call) => {
        const abort = new AbortController();
        call.on('cancelled', () => abort.abort());
        const run = async () => {
          const { stack, service, follow, tail, sinceMs, untilMs, task, reportCaughtUp } = call.request;
          if (!service) throw invalidArgument('logs: missing service name');
          checkNameSize(stack, 'logs: stack');
          checkNameSize(service, 'logs: service');
          checkNameSize(task, 'logs: task');
          if (sinceMs < 0 || untilMs < 0 || (untilMs > 0 && untilMs < sinceMs)) throw invalidArgument('logs: since and until must be times, since first');
          const afterSequence = resumedLogPositions(call.request.afterSequence);
          await this.get('Service', stack, service);
          const leader = this.deps.logsLeader?.();
          if (leader !== undefined) return logsFromLeader(leader.address, leader.security, call.request, (line) => call.write(line), abort.signal);
          const tasks = ((await this.list('Task', stack, service)).objects as Task[]).filter((t) => !task || t.metadata.name === task);
          if (task && tasks.length === 0) throw notFound(`logs: service ${quoteName(service)} has no task ${quoteName(task)}`);
          // A follow with an end stops there.
          const cancelEnd = follow && untilMs > 0 ? atTime(untilMs, () => abort.abort()) : undefined;
          const deps = {
            local: this.deps.logs,
            ...(this.deps.selfNode !== undefined ? { selfNode: this.deps.selfNode } : {}),
            ...(this.deps.nodeLogs ? { nodeLogs: this.deps.nodeLogs } : {}),
            ...(this.deps.holdsNodeSessions ? { holdsNodeSessions: this.deps.holdsNodeSessions } : {}),
          };
          const query = { follow, tail, sinceMs, untilMs, afterSequence, reportCaughtUp };
          await streamLogs(deps, tasks, query, (line) => call.write(line), abort.signal).finally(() => cancelEnd?.());
        };
        run()
          .then(() => {
            this.streamEnded(call, 'Logs', undefined, call.request);
            call.end();
          })
          .catch((err: unknown) => {
            this.streamEnded(call, 'Logs', err, call.request);
            call.emit('error', toServiceError(err));
          });
      },
      ImageLoad: (call, callback) => {
        const run = async () => {
          const dir = await mkdtemp(join(tmpdir(), 'tessera-image-load-'));
          try {
            const file = join(dir, 'image.tar');
            let total = 0;
            await pipeline(
              call,
              async function* (chunks: AsyncIterable<{ data: Buffer }>) {
                for await (const chunk of chunks) {
                  total += chunk.data.length;
                  if (total > MAX_IMAGE_BYTES) throw invalidArgument(`image load: the tarball is larger than ${MAX_IMAGE_BYTES} bytes`);
                  yield chunk.data;
                }
              },
              createWriteStream(file),
            );
            const images = await this.deps.images.load(file);
            return { images: images.map(summary) };
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        };
        void (async () => {
          let res: Awaited<ReturnType<typeof run>>;
          try {
            res = await run();
          } catch (err) {
            this.streamEnded(call, 'ImageLoad', err, {});
            callback(toServiceError(err));
            return;
          }
          this.streamEnded(call, 'ImageLoad', undefined, {});
          callback(null, res);
        })();
      },
      ImagePull: this.unary('ImagePull', async (req) => {
        if (!req.reference) throw invalidArgument('image pull: missing image reference');
        return summary(await this.deps.images.pull(req.reference));
      }),
      ImageList: this.unary('ImageList', async () => ({ images: imageListOf(await this.deps.images.list(), this.deps.imageHolders?.(), this.deps.selfNode) })),
      Exec: (call) => {
        const caller = this.callerOf(call);
        const deps = {
          ...(this.deps.nodeExec ? { nodeExec: this.deps.nodeExec } : {}),
          findTask: (stack: string, name: string) => this.taskNamed(stack, name),
          // Only the leader's dispatcher holds the nodes' sessions.
          forward: (relayed: typeof call, start: Parameters<typeof execOnLeader>[3]) => {
            const leader = this.deps.logsLeader?.();
            return leader === undefined ? undefined : execOnLeader(leader.address, leader.security, relayed, start);
          },
          // The start message names the task; the digest covers the command. Stdin is never recorded.
          recordStart: (start: unknown, error?: unknown) => this.streamEnded(call, 'Exec', error, start ?? {}),
        };
        serveExec(deps, call, caller).catch((err: unknown) => call.emit('error', toServiceError(err)));
      },
      BuildImage: (call) => {
        const deps = {
          ...(this.deps.imageBuilder ? { builder: this.deps.imageBuilder } : {}),
          contextRoot: this.deps.buildContextDir ?? join(tmpdir(), 'tessera-build-contexts'),
          maxContextBytes: this.deps.buildContextMaxBytes ?? DEFAULT_MAX_CONTEXT_BYTES,
          node: this.deps.selfNode === undefined ? "this manager's node" : `node ${this.deps.selfNode}`,
          // The header names the tags; build args only in the digest (they may carry a secret); the context never.
          record: (header: unknown, error?: unknown) => this.streamEnded(call, 'BuildImage', error, header ?? {}),
        };
        serveBuild(deps, this.buildSlots, call).catch((err: unknown) => call.emit('error', toServiceError(err)));
      },
      Events: (call) => {
        const run = async () => {
          if (!this.deps.events) throw new ApiError(grpc.status.UNIMPLEMENTED, 'events: this server keeps no cluster events');
          await streamEvents(this.deps.events, eventsQuery(call.request, Date.now()), call);
        };
        run()
          .then(() => {
            this.streamEnded(call, 'Events', undefined, call.request);
            call.end();
          })
          .catch((err: unknown) => {
            this.streamEnded(call, 'Events', err, call.request);
            call.emit('error', toServiceError(err));
          });
      },
      ImagePullProgress: (call) => {
        const run = async () => {
          if (!call.request.reference) throw invalidArgument('image pull: missing image reference');
          const image = await this.deps.images
            .pull(call.request.reference, {
              onProgress: (e) => call.write({ status: e.status, digest: e.digest, kind: e.kind, current: e.current, total: e.total }),
            })
            .catch((err: unknown) => {
              throw imageError(err);
            });
          call.write({ image: summary(image) });
        };
        run()
          .then(() => {
            this.streamEnded(call, 'ImagePullProgress', undefined, call.request);
            call.end();
          })
          .catch((err: unknown) => {
            this.streamEnded(call, 'ImagePullProgress', err, call.request);
            // emit, not destroy: grpc-js sends the status from 'error'; a destroyed call never reports one.
            call.emit('error', toServiceError(err));
          });
      },
      ImagePush: (call) => {
        const node = this.deps.selfNode === undefined ? "this manager's node" : `node ${this.deps.selfNode}`;
        // A client that goes away (tsctl interrupted) calls the push off before its manifest is put.
        const cancelled = new AbortController();
        call.on('cancelled', () => cancelled.abort());
        pushImage(this.deps.images, node, call.request, (event) => call.write(event), cancelled.signal)
          .then(() => {
            this.streamEnded(call, 'ImagePush', undefined, call.request);
            call.end();
          })
          .catch((err: unknown) => {
            this.streamEnded(call, 'ImagePush', err, call.request);
            // emit, not destroy: grpc-js sends the status from 'error'; a destroyed call never reports one.
            call.emit('error', toServiceError(err));
          });
      },
      ImageRemove: this.unary('ImageRemove', async (req) => {
        if (!req.reference) throw invalidArgument('image rm: missing image reference');
        const result = await this.deps.images.remove(req.reference, { inUse: (image) => this.tasksUsingImage(image) }).catch((err: unknown) => {
          throw imageError(err);
        });
        return { removed: result.removed, gc: gcSummary(result.gc) };
      }),
      ImagePrune: this.unary('ImagePrune', async () => gcSummary(await this.deps.images.prune())),
      ImageSave: (call) => {
        const abort = new AbortController();
        call.on('cancelled', () => abort.abort());
        const run = async () => {
          const { references, format } = call.request;
          if (references.length === 0) throw invalidArgument('image save: no image named');
          const chosen = format || 'oci';
          if (chosen !== 'oci' && chosen !== 'docker') throw invalidArgument(`image save: format must be oci or docker, got ${JSON.stringify(format)}`);
          const chunks = await this.deps.images.save(references, chosen as ArchiveFormat).catch((err: unknown) => {
            throw imageError(err);
          });
          for await (const data of chunks) {
            if (abort.signal.aborted) break;
            if (!call.write({ data })) {
              await new Promise((resolve) => {
                call.once('drain', resolve);
                abort.signal.addEventListener('abort', resolve, { once: true });
              });
            }
          }
        };
        run()
          .then(() => {
            this.streamEnded(call, 'ImageSave', undefined, call.request);
            call.end();
          })
          .catch((err: unknown) => {
            this.streamEnded(call, 'ImageSave', err, call.request);
            // emit, not destroy: grpc-js sends the status from 'error'; a destroyed call never reports one.
            call.emit('error', toServiceError(err));
          });
      },
      JoinToken: this.unary('JoinToken', async (req) => {
        if (req.role !== 'worker' && req.role !== 'manager') throw invalidArgument(`join-token: role must be "worker" or "manager", got "${req.role}"`);
        const tokens = this.deps.joinTokens;
        if (!tokens) throw new ApiError(grpc.status.UNIMPLEMENTED, 'this server issues no join tokens');
        // Tokens are stored hashed, so one cannot be shown twice: every request mints a new one.
        return { token: await tokens.rotate(req.role) };
      }),
      UpdateNode: this.unary('UpdateNode', async (req) => ({ objectJson: JSON.stringify(await this.updateNode(req)) })),
      ClusterMembers: this.unary('ClusterMembers', async () => {
        if (!this.deps.cluster)
          throw new ApiError(grpc.status.UNIMPLEMENTED, `cluster members: the ${this.deps.storeBackend} store backend has no members to show`);
        return { members: await this.deps.cluster.members() };
      }),
      ClusterMemberChange: this.unary('ClusterMemberChange', async (req, caller) => {
        if (!this.deps.cluster)
          throw new ApiError(grpc.status.UNIMPLEMENTED, `cluster members: the ${this.deps.storeBackend} store backend cannot change members`);
        if (!['add', 'promote', 'remove'].includes(req.action))
          throw invalidArgument(`cluster members: action must be add, promote or remove, got "${req.action}"`);
        if (!DNS_LABEL.test(req.name)) throw invalidArgument(`cluster members: "${req.name}" is not a member name`);
        const allowed = authorizeMemberChange(caller, req.action, req.name);
        if (!allowed.allowed) throw new ApiError(grpc.status.PERMISSION_DENIED, allowed.reason);
        return this.deps.cluster.change(req);
      }),
      RemoveNode: this.unary('RemoveNode', async (req) => {
        if (!DNS_LABEL.test(req.name)) throw invalidArgument(`node rm: "${req.name.slice(0, 80)}" is not a node name`);
        return { revokedSerials: await this.identity().removeNode(req.name, req.force) };
      }),
      IssueUserCertificate: this.unary('IssueUserCertificate', async (req) => {
        if (!DNS_LABEL.test(req.name)) throw invalidArgument(`user add: "${req.name.slice(0, 80)}" is not a user name (a DNS label: a-z, 0-9, -)`);
        if (!isUserRole(req.role)) throw invalidArgument(`user add: role must be admin, operator or viewer, got "${req.role.slice(0, 40)}"`);
        const issued = await this.identity().issueUserCertificate({ name: req.name, role: req.role, csrPem: req.csrPem, validityMs: Number(req.validityMs) });
        return { ...issued, servers: this.deps.managers() };
      }),
      AuditLog: this.unary('AuditLog', async (req) => {
        if (!this.deps.readAudit) throw new ApiError(grpc.status.UNIMPLEMENTED, 'this server keeps no audit log');
        const limit = req.limit === 0 ? 100 : req.limit;
        if (!(limit > 0 && limit <= MAX_AUDIT_READ)) throw invalidArgument(`audit: limit must be from 1 to ${MAX_AUDIT_READ}, got ${req.limit}`);
        return { entriesJson: await this.deps.readAudit({ limit, ...(req.caller ? { callerContains: req.caller.slice(0, 256) } : {}) }) };
      }),
      RotateCa: this.unary('RotateCa', async (req) => this.identity().rotateCa(req.statusOnly)),
      UpdateCluster: this.unary('UpdateCluster', async (req) => {
        const settings = await updateClusterSettings(this.deps.store, validateClusterUpdate(req));
        return { defaultAdmission: clusterDefaultOf(settings) };
      }),
      Top: this.unary('Top', async (req) => {
        checkNameSize(req.stack, 'top: stack');
        checkNameSize(req.service, 'top: service');
        if (req.node !== '' && !DNS_LABEL.test(req.node)) throw invalidArgument(`top: "${req.node.slice(0, 80)}" is not a node name`);
        if (req.stack !== '' && req.service === '') throw invalidArgument('top: a stack needs a service name');
        if (req.service !== '') await this.get('Service', req.stack, req.service);
        if (req.node !== '') await this.get('Node', '', req.node);
        // Only the leader's dispatcher holds the nodes' sessions: a follower asks it.
        const leader = this.deps.logsLeader?.();
        if (leader !== undefined) return topFromLeader(leader.address, leader.security, req);
        const tasks = (await this.list('Task', req.service === '' ? undefined : req.stack, req.service || undefined)).objects as Task[];
        const nodes = (await this.list('Node', undefined)).objects as Node[];
        return gatherTop(this.deps.nodeTop, tasks, nodes, { byNode: req.byNode, node: req.node });
      }),
      ClusterInfo: this.unary('ClusterInfo', async () => ({
        defaultAdmission: await describeClusterDefault(this.deps.store),
        clusterId: this.deps.clusterId,
        version: this.deps.version,
        storeBackend: this.deps.storeBackend,
        revision: await this.deps.store.currentRevision(),
        managers: this.deps.managers(),
      })),
    };
  }
}
