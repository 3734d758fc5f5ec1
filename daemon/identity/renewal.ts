// Renews the node's certificate before it expires: at two thirds of the time it has left, with a
// new key pair (the old key is not reused), through whichever manager answers. The new chain and
// roots replace the old ones in the files and in the live TLS identity, so servers and channels
// use them from their next handshake and nothing restarts. A promotion or demotion is picked up
// here too: the manager issues the role the store holds.
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { parseIdentity } from '../../common/identity/certificate.js';
import type { TransportSecurity } from '../../common/transport/credentials.js';
import type { TlsIdentity, TlsMaterial } from '../../common/transport/tls-identity.js';
import { certPaths, persistIdentity } from './cert-files.js';
import { renewCertificate } from './node-ca-client.js';

const MIN_DELAY_MS = 5_000;
const RETRY_MIN_MS = 2_000;
const RETRY_MAX_MS = 60_000;
/** setTimeout's longest delay (about 24.8 days); a later renewal is reached in several waits. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RenewalOptions {
  dataRoot: string;
  nodeName: string;
  identity: TlsIdentity;
  /** The identity as a client of the managers' NodeCA. */
  security: TransportSecurity;
  managers: () => string[];
  log: (message: string) => void;
  /** Called after each renewal with the new material (the manager half updates what it serves). */
  onRenewed?: (material: TlsMaterial) => void;
}

/** When to renew a certificate that expires at `notAfter`: two thirds of the remaining time from now. */
export function renewalDelayMs(notAfter: Date, now: number = Date.now()): number {
  return Math.max(MIN_DELAY_MS, Math.floor(((notAfter.getTime() - now) * 2) / 3));
}

export class CertificateRenewal {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private retryMs = RETRY_MIN_MS;
  private renewing: Promise<void> | undefined;

  constructor(private readonly options: RenewalOptions) {}

  start(): void {
    this.schedule(renewalDelayMs(this.notAfter()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private notAfter(): Date {
    return parseIdentity(this.options.identity.material.certChainPem).notAfter;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    const dueAt = Date.now() + delayMs;
    const wait = (): void => {
      const left = dueAt - Date.now();
      this.timer = left > MAX_TIMER_MS ? setTimeout(wait, MAX_TIMER_MS) : setTimeout(() => void this.renewSoon(), Math.max(0, left));
      this.timer.unref();
    };
    wait();
  }

  /** Renews now (a root rotation asks for it), unless a renewal is already under way. */
  renewSoon(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.renewing ??= this.renewNow().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /** One renewal; on failure, another try after a back-off (a manager may be restarting). */
  private async renewNow(): Promise<void> {
    if (this.stopped) return;
    const { log } = this.options;
    try {
      const material = await this.renewThroughAnyManager();
      this.options.identity.update(material);
      await persistIdentity(certPaths(this.options.dataRoot), () => this.options.identity.material);
      this.options.onRenewed?.(material);
      this.retryMs = RETRY_MIN_MS;
      const notAfter = this.notAfter();
      log(`node certificate renewed; valid until ${notAfter.toISOString()}`);
      this.schedule(renewalDelayMs(notAfter));
    } catch (err) {
      const left = this.notAfter().getTime() - Date.now();
      log(
        `node certificate renewal failed: ${(err as Error).message}` +
          (left <= 0
            ? '; the certificate has EXPIRED: remove the node (tsctl node rm) and join it again'
            : `; retrying (it expires in ${Math.round(left / 1000)} s)`),
      );
      this.schedule(this.retryMs);
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    }
  }

  private async renewThroughAnyManager(): Promise<TlsMaterial> {
    const keys = await generateKeyPair();
    const csrPem = await createCsr(keys, { commonNameHint: this.options.nodeName });
    const failures: string[] = [];
    for (const address of this.options.managers()) {
      try {
        const issued = await renewCertificate(address, this.options.security, csrPem);
        const subject = parseIdentity(issued.certChainPem);
        if (subject.cn !== this.options.nodeName) throw new Error(`the manager issued a certificate for ${subject.cn}, not for this node`);
        return { trustedRootPems: issued.trustedRootPems, certChainPem: issued.certChainPem, keyPem: keys.keyPem };
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    throw new Error(failures.length > 0 ? failures.join('; ') : 'no manager address is known');
  }
}
