// How a locked manager slows down wrong unlock keys. The unlock socket is root's alone, so this is
// not the main defence (a 256-bit key cannot be guessed anyway); it keeps a script that loops on a
// wrong key from spinning, and makes every wrong attempt visible in the log. Pure: the clock is given.

/** Wrong keys allowed back to back before each further attempt has to wait. */
export const FREE_ATTEMPTS = 3;
/** The wait after the first slowed attempt; it doubles with each further wrong key. */
export const FIRST_WAIT_MS = 10_000;
/** The longest wait between two attempts. */
export const MAX_WAIT_MS = 60_000;

export class UnlockAttempts {
  private failures = 0;
  private notBefore = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Wrong keys so far. */
  get failed(): number {
    return this.failures;
  }

  /** Milliseconds until the next attempt is taken, or 0 when it may be made now. */
  waitMs(): number {
    return Math.max(0, this.notBefore - this.now());
  }

  /** Records a wrong key; returns how long the next attempt must wait (0 for the first few). */
  recordFailure(): number {
    this.failures++;
    const wait = this.failures < FREE_ATTEMPTS ? 0 : Math.min(MAX_WAIT_MS, FIRST_WAIT_MS * 2 ** (this.failures - FREE_ATTEMPTS));
    this.notBefore = this.now() + wait;
    return wait;
  }
}
