// Revoked certificates by serial: what a manager checks on every authenticated connection. Pure
// data; where the set lives (the store, replicated to every manager) is the wiring's business.
import { normalizeSerial } from '../../common/identity/x509.js';

export interface RevocationEntry {
  serial: string;
  /** Once the certificate has expired it is refused anyway, and the entry can be dropped. */
  notAfter: Date;
  reason: string;
}

export class RevocationSet {
  private readonly entries = new Map<string, RevocationEntry>();

  revoke(serial: string, notAfter: Date, reason: string): void {
    const key = normalizeSerial(serial);
    this.entries.set(key, { serial: key, notAfter, reason });
  }

  /** The entry for a serial in any hex spelling (case, leading zero bytes), or undefined. */
  lookup(serial: string): RevocationEntry | undefined {
    return this.entries.get(normalizeSerial(serial));
  }

  isRevoked(serial: string): boolean {
    return this.lookup(serial) !== undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Drops entries whose certificate has expired; returns how many went. */
  prune(now: Date): number {
    let dropped = 0;
    for (const [serial, entry] of this.entries) {
      if (entry.notAfter.getTime() <= now.getTime()) {
        this.entries.delete(serial);
        dropped++;
      }
    }
    return dropped;
  }

  toJSON(): { serial: string; notAfter: string; reason: string }[] {
    return [...this.entries.values()].map((entry) => ({ serial: entry.serial, notAfter: entry.notAfter.toISOString(), reason: entry.reason }));
  }

  static fromJSON(value: unknown): RevocationSet {
    if (!Array.isArray(value)) throw new Error('revocation set: expected an array of {serial, notAfter, reason}');
    const set = new RevocationSet();
    value.forEach((item: unknown, index) => {
      const entry = item as { serial?: unknown; notAfter?: unknown; reason?: unknown } | null;
      if (typeof entry?.serial !== 'string' || typeof entry.notAfter !== 'string' || typeof entry.reason !== 'string') {
        throw new Error(`revocation set: entry ${index} is not {serial, notAfter, reason} strings`);
      }
      const notAfter = new Date(entry.notAfter);
      if (Number.isNaN(notAfter.getTime())) throw new Error(`revocation set: entry ${index} has notAfter "${entry.notAfter.slice(0, 40)}", not a date`);
      set.revoke(entry.serial, notAfter, entry.reason);
    });
    return set;
  }
}
