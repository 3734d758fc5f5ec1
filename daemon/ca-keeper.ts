// The root CA a manager signs with. Its key is in the replicated store (control-plane/ca/
// ca-record.ts), sealed at rest with the rest of it, so a manager signs as soon as its store holds
// the record: the one that ran `tsd init` wrote it with the cluster's meta, and one that joined
// reads it once it is a Raft member. During a root rotation the record holds the new CA too, and
// the new root signs. An older version kept the key in <data-root>/certs/ca.key: adoptFiles()
// moves it into the store and destroys the files.
import { startRootRotation, loadCa, type CaMaterial, type LoadedCa } from '../control-plane/ca/root-ca.js';
import { materialFor } from '../control-plane/ca/ca-record.js';
import type { ClusterSecurity } from '../control-plane/ca/cluster-security.js';
import { signingRootPem } from '../control-plane/ca/rotation.js';
import { type CertPaths, readCaFiles, shredCaFiles } from './identity/cert-files.js';

export interface Signer {
  material: CaMaterial;
  loaded: LoadedCa;
}

/** The current and the next CA are all a keeper ever loads; older ones are dropped from the cache. */
const MAX_LOADED = 4;

export class CaKeeper {
  /** Parsed and checked CAs by certificate: loading imports the key and makes a trial signature. */
  private readonly loaded = new Map<string, Promise<LoadedCa>>();

  constructor(private readonly security: ClusterSecurity) {}

  /** What this manager signs with now: the new CA while a rotation runs. */
  async signer(): Promise<Signer> {
    const record = this.security.ca;
    if (!record) throw new Error("this manager's store holds no cluster CA key yet (it is still catching up with the Raft group)");
    const wanted = signingRootPem(this.security.meta);
    const material = materialFor(record, wanted);
    if (!material) throw new Error('the store holds no key for the root the cluster signs with');
    return { material, loaded: await this.load(material) };
  }

  /** Step one of a rotation: a new root, cross-signed by the current key, stored with the meta that starts the rotation. */
  async startRotation(): Promise<{ newRootPem: string; crossSignedPem: string }> {
    const record = this.security.ca;
    if (!record) throw new Error("this manager's store holds no cluster CA key");
    const { newCa, crossSignedPem } = await startRootRotation(record.current);
    await this.security.startRotation(newCa, crossSignedPem, new Date());
    return { newRootPem: newCa.certPem, crossSignedPem };
  }

  /**
   * Moves the CA files an older version wrote (ca.crt/ca.key, ca-next.*) into the store, unless the
   * store has its CA already, then overwrites and removes them. Returns what it did, for the log.
   */
  async adoptFiles(paths: CertPaths): Promise<string | undefined> {
    const [current, next] = await Promise.all([readCaFiles(paths, 'current'), readCaFiles(paths, 'next')]);
    if (!current && !next) return undefined;
    let what: string;
    if (current) {
      await loadCa(current);
      if (next) await loadCa(next);
      const held = await this.security.adoptCa(next ? { current, next } : { current });
      what =
        held.current.certPem === current.certPem
          ? `moved the cluster CA key from ${paths.caKey} into the store`
          : `the store already holds the cluster CA; the one in ${paths.caKey} was dropped`;
    } else {
      what = `dropped ${paths.caNextKey} without ${paths.caKey}`;
    }
    await shredCaFiles(paths);
    return `${what}; the files were overwritten and removed`;
  }

  private load(material: CaMaterial): Promise<LoadedCa> {
    let loading = this.loaded.get(material.certPem);
    if (!loading) {
      if (this.loaded.size >= MAX_LOADED) this.loaded.clear();
      loading = loadCa(material);
      // A CA that fails to load is tried again next time rather than cached as failed.
      loading.catch(() => this.loaded.delete(material.certPem));
      this.loaded.set(material.certPem, loading);
    }
    return loading;
  }
}
