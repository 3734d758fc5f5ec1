// The cluster's identity state in the replicated store, as one manager sees it: meta (cluster id,
// trusted roots, hashed join tokens, certificate lifetime), the revocation list, the serials
// issued per node and the root CA's key (ca-record.ts). Every manager watches the keys, so a token
// rotation, a revocation or a root rotation made through any manager holds on all of them at once.
import type { NodeRole } from '../../common/identity/certificate.js';
import { hashJoinSecret, joinSecretMatches, newJoinToken } from '../../common/identity/join-token.js';
import type { Store, Watch } from '../store/store.js';
import { CLUSTER_META_KEY, type ClusterMeta, type IssuedRecord, ISSUED_PREFIX, parseClusterMeta, parseIssued, REVOCATIONS_KEY } from './cluster-meta.js';
import { RevocationSet } from './revocation.js';
import { CA_KEY, type CaRecord, formatCaRecord, parseCaRecord } from './ca-record.js';
import type { CaMaterial } from './root-ca.js';
import { completedRotation, startedRotation } from './rotation.js';

const CLUSTER_PREFIX = '/tessera/cluster/';
const MAX_CAS_ATTEMPTS = 20;

export class ClusterSecurity {
  private watch: Watch | undefined;
  /** The store revision of each key's state held here: an event older than a write this manager already applied is stale. */
  private readonly appliedRevision = new Map<string, number>();
  private readonly listeners = new Set<() => void>();
  /** The root CA's material as the store holds it; undefined until some manager stored it. */
  private currentCa: CaRecord | undefined;

  private constructor(
    private readonly store: Store,
    private currentMeta: ClusterMeta,
    private currentRevocations: RevocationSet,
    private readonly log: (message: string) => void,
  ) {}

  /**
   * Reads the cluster's meta, writing `fresh` first when the store has none (the first manager of a
   * new cluster), and follows changes from then on. `freshCa`, the root CA `tsd init` made, is
   * written in the same transaction as the meta: a store that holds the meta holds the CA's key.
   */
  static async open(store: Store, fresh: () => ClusterMeta, log: (message: string) => void, freshCa?: CaMaterial): Promise<ClusterSecurity> {
    // Read first, write only for a new cluster: a restarted or joining manager proposes nothing
    // here, and its (linearizable) read waits until it has caught up with the leader, so a snapshot
    // the leader sends it meanwhile cannot swallow a write of its own whose outcome it then never learns.
    if (!(await store.get(CLUSTER_META_KEY))) await ClusterSecurity.createMeta(store, fresh(), freshCa);
    return ClusterSecurity.follow(store, log);
  }

  /** The first manager's write: the meta and the root CA in one transaction, unless some manager wrote them first. */
  private static async createMeta(store: Store, meta: ClusterMeta, freshCa: CaMaterial | undefined): Promise<void> {
    await store.txn({
      compare: [{ key: CLUSTER_META_KEY, target: 'createRevision', op: '=', value: 0 }],
      success: [
        { type: 'put', key: CLUSTER_META_KEY, value: JSON.stringify(meta) },
        ...(freshCa ? [{ type: 'put' as const, key: CA_KEY, value: formatCaRecord({ current: freshCa }) }] : []),
      ],
      failure: [],
    });
  }

  private static async follow(store: Store, log: (message: string) => void): Promise<ClusterSecurity> {
    const read = await store.range(CLUSTER_PREFIX);
    const metaKv = read.kvs.find((kv) => kv.key === CLUSTER_META_KEY);
    if (!metaKv) throw new Error(`${CLUSTER_META_KEY} vanished right after it was written`);
    const revokedKv = read.kvs.find((kv) => kv.key === REVOCATIONS_KEY);
    const security = new ClusterSecurity(
      store,
      parseClusterMeta(metaKv.value),
      revokedKv ? RevocationSet.fromJSON(JSON.parse(revokedKv.value)) : new RevocationSet(),
      log,
    );
    security.appliedRevision.set(CLUSTER_META_KEY, metaKv.modRevision);
    if (revokedKv) security.appliedRevision.set(REVOCATIONS_KEY, revokedKv.modRevision);
    const caKv = read.kvs.find((kv) => kv.key === CA_KEY);
    if (caKv) security.apply(CA_KEY, caKv.value, caKv.modRevision);
    security.watch = await store.watch(
      CLUSTER_PREFIX,
      read.revision + 1,
      (events) => {
        let changed = false;
        for (const event of events) {
          if (event.type !== 'put') continue;
          changed = security.apply(event.kv.key, event.kv.value, event.kv.modRevision) || changed;
        }
        if (changed) security.notify();
      },
      (err) => log(`cluster security watch failed: ${err.message}`),
    );
    return security;
  }

  get meta(): ClusterMeta {
    return this.currentMeta;
  }

  get clusterId(): string {
    return this.currentMeta.clusterId;
  }

  /** The root CA's key (and the next one's during a rotation), or undefined while the store has none yet. */
  get ca(): CaRecord | undefined {
    return this.currentCa;
  }

  /**
   * Stores the CA an older version kept in files (ca.key, ca-next.key), unless the store holds one
   * already. Returns the record the store holds afterwards.
   */
  async adoptCa(record: CaRecord): Promise<CaRecord> {
    const written = await this.store.txn({
      compare: [{ key: CA_KEY, target: 'createRevision', op: '=', value: 0 }],
      success: [{ type: 'put', key: CA_KEY, value: formatCaRecord(record) }],
      failure: [{ type: 'get', key: CA_KEY }],
    });
    const held = written.succeeded
      ? { value: formatCaRecord(record), modRevision: written.revision }
      : (written.results[0] as { kv?: { value: string; modRevision: number } }).kv;
    if (!held) throw new Error(`${CA_KEY}: neither written nor found`);
    if (this.apply(CA_KEY, held.value, held.modRevision)) this.notify();
    return parseCaRecord(held.value);
  }

  /** Step one of a root rotation, in one transaction: the new CA's key is stored and the meta says a rotation runs. */
  async startRotation(newCa: CaMaterial, crossSignedPem: string, now: Date): Promise<void> {
    await this.updateMetaAndCa((meta, ca) => {
      if (!ca) throw new Error(`${CA_KEY} is missing from the store: no CA to rotate from`);
      return { meta: startedRotation(meta, newCa.certPem, crossSignedPem, now), ca: { current: ca.current, next: newCa } };
    });
  }

  /** The end of a root rotation, in one transaction: only the new root is trusted and only its key is kept. */
  async completeRotation(freshTokenHashes: ClusterMeta['tokenHashes']): Promise<boolean> {
    let completed = false;
    await this.updateMetaAndCa((meta, ca) => {
      if (!meta.rotation) return { meta, ca };
      if (ca?.next?.certPem !== meta.rotation.newRootPem) throw new Error(`${CA_KEY} does not hold the new root's key; the rotation cannot complete`);
      completed = true;
      return { meta: completedRotation(meta, freshTokenHashes), ca: { current: ca.next } };
    });
    return completed;
  }

  isRevoked(serial: string): boolean {
    return this.currentRevocations.isRevoked(serial);
  }

  /** Every revoked serial not yet expired (normalised hex), for nodes that check certificates without the store. */
  revokedSerials(): string[] {
    return this.currentRevocations.toJSON().map((entry) => entry.serial);
  }

  /** Called after the meta or the revocation list changed (on any manager). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The role a presented join secret grants, or undefined; constant time per comparison. */
  roleForSecret(secret: string): NodeRole | undefined {
    if (joinSecretMatches(secret, this.currentMeta.tokenHashes.manager)) return 'manager';
    if (joinSecretMatches(secret, this.currentMeta.tokenHashes.worker)) return 'worker';
    return undefined;
  }

  /**
   * A new join token for `role`; the previous one stops working on every manager. The token is
   * returned once and stored only as a hash, so it cannot be shown again: asking again mints another.
   */
  async rotateToken(role: NodeRole): Promise<string> {
    const { token, parsed } = newJoinToken(this.pinnedRootPem());
    await this.updateMeta((meta) => ({ ...meta, tokenHashes: { ...meta.tokenHashes, [role]: hashJoinSecret(parsed.secret) } }));
    return token;
  }

  /** The root the join token pins: the one managers present at the end of their chains. */
  pinnedRootPem(): string {
    const root = this.currentMeta.trustedRootPems[0];
    if (root === undefined) throw new Error('the cluster trusts no root certificate');
    return root;
  }

  async updateMeta(change: (meta: ClusterMeta) => ClusterMeta): Promise<ClusterMeta> {
    const next = await this.casUpdate(CLUSTER_META_KEY, (text) => {
      if (text === undefined) throw new Error(`${CLUSTER_META_KEY} is missing from the store`);
      return JSON.stringify(change(parseClusterMeta(text)));
    });
    // Applied here at once (its watch event, when it comes, is then not newer): listeners hear it now.
    if (this.apply(CLUSTER_META_KEY, next.value, next.revision)) this.notify();
    return this.currentMeta;
  }

  /** Remembers a certificate issued to a node, so that removing the node revokes it; expired ones are dropped. */
  async recordIssued(nodeId: string, serial: string, notAfter: Date, rootDigest: string): Promise<void> {
    const now = Date.now();
    await this.casUpdate(`${ISSUED_PREFIX}${nodeId}`, (text) => {
      const kept = (text === undefined ? [] : parseIssued(text, nodeId)).filter((r) => new Date(r.notAfter).getTime() > now);
      return JSON.stringify([...kept, { serial, notAfter: notAfter.toISOString(), rootDigest }]);
    });
  }

  /** The certificates issued to a node that have not expired, oldest first. */
  async issuedTo(nodeId: string): Promise<IssuedRecord[]> {
    const kv = await this.store.get(`${ISSUED_PREFIX}${nodeId}`);
    return kv ? parseIssued(kv.value, nodeId) : [];
  }

  /**
   * Revokes every unexpired certificate issued to the node; returns their serials. The revocation
   * and the removal of the node's record are one transaction, guarded by both keys' revisions, so
   * a certificate issued meanwhile (a renewal through another manager) is either revoked with the
   * rest or, when it lands after, retried into the revocation list.
   */
  async revokeNode(nodeId: string, reason: string): Promise<string[]> {
    const issuedKey = `${ISSUED_PREFIX}${nodeId}`;
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const [issued, revoked] = await Promise.all([this.store.get(issuedKey), this.store.get(REVOCATIONS_KEY)]);
      const records = issued ? parseIssued(issued.value, nodeId) : [];
      const set = revoked === undefined ? new RevocationSet() : RevocationSet.fromJSON(JSON.parse(revoked.value));
      set.prune(new Date());
      for (const record of records) set.revoke(record.serial, new Date(record.notAfter), reason);
      const value = JSON.stringify(set.toJSON());
      const written = await this.store.txn({
        compare: [
          { key: issuedKey, target: 'modRevision', op: '=', value: issued?.modRevision ?? 0 },
          { key: REVOCATIONS_KEY, target: 'modRevision', op: '=', value: revoked?.modRevision ?? 0 },
        ],
        success: [{ type: 'put', key: REVOCATIONS_KEY, value }, ...(issued ? [{ type: 'delete' as const, key: issuedKey }] : [])],
        failure: [],
      });
      if (written.succeeded) {
        if (this.apply(REVOCATIONS_KEY, value, written.revision)) this.notify();
        return records.map((r) => r.serial);
      }
    }
    throw new Error(`revoking node ${nodeId}: gave up after ${MAX_CAS_ATTEMPTS} conflicting writes`);
  }

  async close(): Promise<void> {
    this.watch?.cancel();
    this.watch = undefined;
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** Takes a changed key's value at a store revision; says whether it changed the state held here. */
  private apply(key: string, value: string, revision: number): boolean {
    if (revision <= (this.appliedRevision.get(key) ?? 0)) return false;
    try {
      if (key === CLUSTER_META_KEY) this.currentMeta = parseClusterMeta(value);
      else if (key === REVOCATIONS_KEY) this.currentRevocations = RevocationSet.fromJSON(JSON.parse(value));
      else if (key === CA_KEY) this.currentCa = parseCaRecord(value);
      else return false;
      this.appliedRevision.set(key, revision);
      return true;
    } catch (err) {
      // The last good state stays in force: a bad write must not open the cluster or lock it out.
      this.log(`ignoring a malformed ${key}: ${(err as Error).message}`);
      return false;
    }
  }

  /** The meta and the CA record changed together, compare-and-swap on both keys' revisions; retried on a conflict. */
  private async updateMetaAndCa(change: (meta: ClusterMeta, ca: CaRecord | undefined) => { meta: ClusterMeta; ca: CaRecord | undefined }): Promise<void> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const [metaKv, caKv] = await Promise.all([this.store.get(CLUSTER_META_KEY), this.store.get(CA_KEY)]);
      if (!metaKv) throw new Error(`${CLUSTER_META_KEY} is missing from the store`);
      const next = change(parseClusterMeta(metaKv.value), caKv ? parseCaRecord(caKv.value) : undefined);
      const metaText = JSON.stringify(next.meta);
      const caText = next.ca ? formatCaRecord(next.ca) : undefined;
      const written = await this.store.txn({
        compare: [
          { key: CLUSTER_META_KEY, target: 'modRevision', op: '=', value: metaKv.modRevision },
          { key: CA_KEY, target: 'modRevision', op: '=', value: caKv?.modRevision ?? 0 },
        ],
        success: [{ type: 'put', key: CLUSTER_META_KEY, value: metaText }, ...(caText ? [{ type: 'put' as const, key: CA_KEY, value: caText }] : [])],
        failure: [],
      });
      if (written.succeeded) {
        const changed = [this.apply(CLUSTER_META_KEY, metaText, written.revision), caText !== undefined && this.apply(CA_KEY, caText, written.revision)];
        if (changed.some(Boolean)) this.notify();
        return;
      }
    }
    throw new Error(`${CLUSTER_META_KEY} and ${CA_KEY}: gave up after ${MAX_CAS_ATTEMPTS} conflicting writes`);
  }

  /** Read, change, compare-and-swap on the key's mod revision; retried when another manager wrote first. */
  private async casUpdate(key: string, change: (text: string | undefined) => string): Promise<{ value: string; revision: number }> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const kv = await this.store.get(key);
      const value = change(kv?.value);
      const written = await this.store.txn({
        compare: [{ key, target: 'modRevision', op: '=', value: kv?.modRevision ?? 0 }],
        success: [{ type: 'put', key, value }],
        failure: [],
      });
      if (written.succeeded) return { value, revision: written.revision };
    }
    throw new Error(`${key}: gave up after ${MAX_CAS_ATTEMPTS} conflicting writes`);
  }
}
