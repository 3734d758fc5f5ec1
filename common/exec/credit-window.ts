// The sending side of an exec's flow control (see exec-limits.ts EXEC_WINDOW_BYTES): bytes sent
// and not yet credited back. The sender stops reading its source when the window is full and goes
// on when credit returns; a receiver that credits more than was sent is not following the protocol.
// Pure.

export class CreditWindow {
  private inFlight = 0;

  constructor(readonly size: number) {}

  /** Whether more may be sent now. */
  get open(): boolean {
    return this.inFlight < this.size;
  }

  get outstanding(): number {
    return this.inFlight;
  }

  /** Counts `bytes` as sent. A sender sends only while open, so one chunk may overshoot by less than its own size. */
  sent(bytes: number): void {
    this.inFlight += bytes;
  }

  /** Bytes credited back; throws when more than outstanding (a peer that does not follow the protocol). */
  credit(bytes: number): void {
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > this.inFlight) {
      throw new Error(`credit of ${bytes} bytes with ${this.inFlight} outstanding`);
    }
    this.inFlight -= bytes;
  }
}

/**
 * The receiving side: bytes taken and not yet credited. A sender that has more than the window in
 * flight (plus one chunk) is refused: the receiver's memory for this exec stays bounded.
 */
export class ReceiveWindow {
  private held = 0;

  constructor(
    readonly size: number,
    readonly maxChunk: number,
  ) {}

  get outstanding(): number {
    return this.held;
  }

  /** Takes `bytes`; returns why they overflow the window, or undefined. */
  take(bytes: number): string | undefined {
    if (bytes > this.maxChunk) return `a chunk of ${bytes} bytes; at most ${this.maxChunk}`;
    if (this.held >= this.size) return `${this.held + bytes} bytes sent without credit; the window is ${this.size}`;
    this.held += bytes;
    return undefined;
  }

  /** The bytes passed on: returns them, for the credit message. */
  release(bytes: number): number {
    const n = Math.min(bytes, this.held);
    this.held -= n;
    return n;
  }
}
