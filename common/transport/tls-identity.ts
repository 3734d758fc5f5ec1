// A node's (or tsctl's) TLS identity as grpc-js certificate providers: the trusted roots and this
// end's certificate chain and key, replaceable while servers and channels are open. A renewal or a
// CA rotation calls update(); new handshakes use the new material, connections already made keep
// theirs, so nothing restarts.
import type * as grpc from '@grpc/grpc-js';
import { joinPem } from '../identity/x509-core.js';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

export interface TlsMaterial {
  /** PEM roots this end trusts; during a CA rotation both the old and the new root. */
  trustedRootPems: readonly string[];
  /** This end's certificate, then any intermediate (the cross-signed root during a rotation). */
  certChainPem: string;
  /** This end's PKCS#8 private key. */
  keyPem: string;
}

export class TlsIdentity implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private current: TlsMaterial;

  constructor(material: TlsMaterial) {
    TlsIdentity.check(material);
    this.current = material;
  }

  get material(): TlsMaterial {
    return this.current;
  }

  /** Replaces the material; every listening server and channel uses it for its next handshake. */
  update(material: TlsMaterial): void {
    TlsIdentity.check(material);
    this.current = material;
    for (const listener of this.caListeners) listener(this.caUpdate());
    for (const listener of this.identityListeners) listener(this.identityUpdate());
  }

  // The first value is delivered on the next tick, not from inside add…Listener: grpc-js's server
  // credentials register with the provider before they register their own watcher, and a value
  // delivered synchronously would reach nobody (the server would then drop every connection).
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => {
      if (this.caListeners.has(listener)) listener(this.caUpdate());
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => {
      if (this.identityListeners.has(listener)) listener(this.identityUpdate());
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  private caUpdate(): grpc.experimental.CaCertificateUpdate {
    return { caCertificate: Buffer.from(joinPem(this.current.trustedRootPems)) };
  }

  private identityUpdate(): grpc.experimental.IdentityCertificateUpdate {
    return { certificate: Buffer.from(this.current.certChainPem), privateKey: Buffer.from(this.current.keyPem) };
  }

  private static check(material: TlsMaterial): void {
    if (material.trustedRootPems.length === 0) throw new Error('TLS identity: at least one trusted root certificate is required');
    if (!material.certChainPem.includes('BEGIN CERTIFICATE')) throw new Error('TLS identity: the certificate chain holds no PEM certificate');
    if (!material.keyPem.includes('PRIVATE KEY')) throw new Error('TLS identity: the key is not a PEM private key');
  }
}
