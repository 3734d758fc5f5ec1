// Which manager an agent tries next, and after how long, when its session is lost or refused.
// Pure (no timers): the session asks it for the next attempt. Only followers of the Raft leader
// refuse sessions, and right after the leader dies they do so until a new one is elected (a
// second or two); the node is declared down if it stays away longer than the node-down timeout.
// So the agent goes round the managers quickly and backs off only after a whole round failed,
// rather than doubling the delay on every refusal.

export interface ReconnectPolicyOptions {
  minDelayMs: number;
  maxDelayMs: number;
}

/** A cluster has a handful of managers; a list past this is not one, and is not grown further. */
const MAX_MANAGERS = 16;

export interface Attempt {
  address: string;
  delayMs: number;
}

export class ReconnectPolicy {
  private managers: string[];
  private index = 0;
  private failuresThisRound = 0;
  /** Managers that could not be reached since the last session: a follower's hint naming one is stale. */
  private readonly unreachable = new Set<string>();
  private delayMs: number;

  constructor(
    managers: readonly string[],
    private readonly options: ReconnectPolicyOptions,
  ) {
    if (managers.length === 0) throw new Error('agent session: no manager address given');
    this.managers = [...managers];
    this.delayMs = options.minDelayMs;
  }

  /** The manager to connect to now. */
  /** Every manager address known now, the current one first. */
  all(): string[] {
    const current = this.current();
    return [current, ...this.managers.filter((m) => m !== current)];
  }

  current(): string {
    return this.managers[this.index % this.managers.length] as string;
  }

  /** A session was established: the next loss starts again from the shortest delay. */
  connected(managers: readonly string[]): void {
    const address = this.current();
    if (managers.length > 0) {
      this.managers = [...managers];
      // Keep pointing at the manager we are connected to, wherever it is in the new list.
      const at = this.managers.indexOf(address);
      this.index = at >= 0 ? at : 0;
    }
    this.failuresThisRound = 0;
    this.delayMs = this.options.minDelayMs;
    this.unreachable.clear();
  }

  /**
   * The attempt after a failed or lost session. `reason` is the manager's refusal, which may name
   * the leader ("not the leader, leader is NAME at ADDRESS"): that address is tried next, unless
   * it could not be reached since the last session (followers name a dead leader until they elect
   * a new one).
   */
  failed(reason: string): Attempt {
    const failedAddress = this.current();
    const refused = /not the leader|no leader is known/.test(reason);
    if (!refused) this.unreachable.add(failedAddress);
    const hinted = /leader is \S+ at ([A-Za-z0-9.-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5})$/.exec(reason)?.[1];
    const usable = hinted !== undefined && hinted !== failedAddress && !this.unreachable.has(hinted);
    // A manager that joined after this node's session began is not in the list yet: the hint adds it.
    if (usable && !this.managers.includes(hinted) && this.managers.length < MAX_MANAGERS) this.managers.push(hinted);
    const hintedIndex = usable ? this.managers.indexOf(hinted) : -1;
    this.index = hintedIndex >= 0 ? hintedIndex : (this.index + 1) % this.managers.length;
    // A leader named by a follower is fresh news: go there at once.
    const delayMs = hintedIndex >= 0 ? this.options.minDelayMs : this.delayMs;
    this.failuresThisRound++;
    if (this.failuresThisRound >= this.managers.length) {
      this.failuresThisRound = 0;
      this.delayMs = Math.min(this.options.maxDelayMs, this.delayMs * 2);
    }
    return { address: this.current(), delayMs };
  }
}
