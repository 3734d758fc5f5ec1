// The root CA a manager signs with, and its files. Normally one CA; during a root rotation also the
// new one, which this manager made (it started the rotation) or fetched over mutual TLS from a
// manager that has it. When the rotation completes the new CA replaces the old in ca.crt/ca.key.
import type { TransportSecurity } from '../common/transport/credentials.js';
import { startRootRotation, loadCa, type CaMaterial, type LoadedCa } from '../control-plane/ca/root-ca.js';
import type { ClusterMeta } from '../control-plane/ca/cluster-meta.js';
import { signingRootPem } from '../control-plane/ca/rotation.js';
import { type CertPaths, readCaFiles, removeNextCaFiles, writeCaFiles } from './identity/cert-files.js';
import { fetchCaMaterial } from './identity/node-ca-client.js';

export interface Signer {
  material: CaMaterial;
  loaded: LoadedCa;
}

async function signerOf(material: CaMaterial): Promise<Signer> {
  return { material, loaded: await loadCa(material) };
}

export class CaKeeper {
  private following: Promise<void> = Promise.resolve();

  private constructor(
    private readonly paths: CertPaths,
    private current: Signer,
    private next: Signer | undefined,
    private readonly log: (message: string) => void,
  ) {}

  static async open(paths: CertPaths, material: CaMaterial, log: (message: string) => void): Promise<CaKeeper> {
    const next = await readCaFiles(paths, 'next');
    return new CaKeeper(paths, await signerOf(material), next ? await signerOf(next) : undefined, log);
  }

  /** What this manager signs with now: the new CA while a rotation runs, if this manager holds it. */
  signer(meta: ClusterMeta): Signer {
    const wanted = signingRootPem(meta);
    if (this.next?.material.certPem === wanted) return this.next;
    return this.current;
  }

  /** Step one of a rotation, on the manager asked to rotate: the new root, and its cross-signed certificate. */
  async startRotation(): Promise<{ newRootPem: string; crossSignedPem: string }> {
    const { newCa, crossSignedPem } = await startRootRotation(this.current.material);
    await writeCaFiles(this.paths, newCa, 'next');
    this.next = await signerOf(newCa);
    return { newRootPem: newCa.certPem, crossSignedPem };
  }

  /**
   * Brings this manager's CA files in line with the cluster's meta: fetches the new CA during a
   * rotation (from any manager that has it), and makes it the only one once the rotation is over.
   * Calls are queued, so two meta changes never interleave their file writes.
   */
  follow(meta: ClusterMeta, managers: () => string[], security: TransportSecurity): Promise<void> {
    this.following = this.following.then(() => this.align(meta, managers, security)).catch((err: unknown) => this.log(`root CA: ${(err as Error).message}`));
    return this.following;
  }

  private async align(meta: ClusterMeta, managers: () => string[], security: TransportSecurity): Promise<void> {
    const wanted = signingRootPem(meta);
    if (this.current.material.certPem === wanted) return;
    if (this.next?.material.certPem !== wanted) this.next = await signerOf(await this.fetch(wanted, managers, security));
    if (meta.rotation) {
      await writeCaFiles(this.paths, this.next.material, 'next');
      return;
    }
    // The rotation is over: the new CA is the only one.
    await writeCaFiles(this.paths, this.next.material, 'current');
    await removeNextCaFiles(this.paths);
    this.current = this.next;
    this.next = undefined;
    this.log('root CA rotation complete on this manager: the new root signs from now on');
  }

  private async fetch(wantedCertPem: string, managers: () => string[], security: TransportSecurity): Promise<CaMaterial> {
    const failures: string[] = [];
    for (let round = 0; round < 20; round++) {
      for (const address of managers()) {
        try {
          const material = await fetchCaMaterial(address, security);
          if (material.certPem === wantedCertPem) return material;
          failures.push(`${address} does not hold the new root yet`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error(`could not fetch the cluster's new root CA from any manager: ${failures.slice(-3).join('; ')}`);
  }
}
