// Service VIPs and routing-mesh ports on one node with nftables DNAT. converge() takes the whole
// desired state and replaces the table atomically; VIP addresses are added to their bridges before
// the rules that use them and removed after.

import { NamespaceCommands } from '../exec.js';
import { NetworkInputError, validateNftName } from '../../../common/network/ipv4.js';
import { BatchSession, type BatchLine } from '../overlay/batch-session.js';
import { OVERLAY_BRIDGE_PREFIX } from '../overlay/names.js';
import { balancerTableScript, validateBalancerState, vipAddresses } from './balancer-rules.js';
import type { BalancerState, VipBalancerConfig } from './types.js';

const DEFAULT_TABLE = 'tessera_lb';
const MISSING = /Cannot assign|Cannot find device|does not exist/i;

export class VipBalancer {
  private readonly commands: NamespaceCommands;
  private readonly ip: BatchSession;
  private readonly table: string;
  /** VIP /32 → bridge, as programmed; undefined until read from the kernel once. */
  private addresses: Map<string, string> | undefined;
  private lastScript: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(config: VipBalancerConfig = {}) {
    if (config.netns !== undefined && !/^[A-Za-z0-9_.-]{1,200}$/.test(config.netns)) {
      throw new NetworkInputError(`netns "${config.netns}" is not a valid namespace name`);
    }
    this.table = config.nftTable ?? DEFAULT_TABLE;
    validateNftName(this.table, 'nftables table');
    this.commands = new NamespaceCommands(config.netns);
    this.ip = new BatchSession('ip', config.netns);
  }

  /** Makes the node balance exactly these VIPs and published ports. Idempotent. */
  converge(state: BalancerState): Promise<void> {
    return this.exclusive(async () => {
      const valid = validateBalancerState(state);
      const wanted = vipAddresses(valid);
      const current = this.addresses ?? (await this.readVipAddresses());
      const add: BatchLine[] = [];
      const remove: BatchLine[] = [];
      for (const [address, bridge] of wanted) {
        if (current.get(address) !== bridge) add.push({ command: `addr replace ${address} dev ${bridge}` });
      }
      for (const [address, bridge] of current) {
        if (wanted.get(address) !== bridge) remove.push({ command: `addr del ${address} dev ${bridge}`, tolerate: MISSING });
      }
      const script = balancerTableScript(this.table, valid);
      try {
        await this.ip.run(add);
        if (script !== this.lastScript) await this.commands.nftApply(script);
        this.lastScript = script;
        await this.ip.run(remove);
      } catch (error) {
        this.addresses = undefined;
        this.lastScript = undefined;
        throw error;
      }
      this.addresses = wanted;
    });
  }

  /** Removes the table and every VIP address. */
  teardown(): Promise<void> {
    return this.exclusive(async () => {
      const current = this.addresses ?? (await this.readVipAddresses());
      await this.commands.nftApply(`add table ip ${this.table}\ndelete table ip ${this.table}\n`);
      await this.ip.run([...current].map(([address, bridge]) => ({ command: `addr del ${address} dev ${bridge}`, tolerate: MISSING })));
      this.addresses = new Map();
      this.lastScript = undefined;
      this.ip.close();
    });
  }

  close(): void {
    this.ip.close();
  }

  /**
   * Overlay bridges were (re-)created: addresses on the old ones are gone with them, and the batch
   * process may still hold their old ifindexes. The next converge reads the kernel again.
   */
  forgetKernelState(): Promise<void> {
    return this.exclusive(async () => {
      this.addresses = undefined;
      this.ip.close();
    });
  }

  /** /32 addresses on overlay bridges are VIPs: gateway and node addresses carry the subnet prefix. */
  private async readVipAddresses(): Promise<Map<string, string>> {
    const { stdout } = await this.commands.ip(['-j', '-4', 'addr', 'show']);
    const links = JSON.parse(stdout || '[]') as Array<{ ifname?: string; addr_info?: Array<{ local?: string; prefixlen?: number }> }>;
    const result = new Map<string, string>();
    for (const link of links) {
      if (!link.ifname?.startsWith(OVERLAY_BRIDGE_PREFIX)) continue;
      for (const a of link.addr_info ?? []) if (a.prefixlen === 32 && a.local) result.set(`${a.local}/32`, link.ifname);
    }
    return result;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    // The caller gets the error through `result`; the queue only orders the next work after it.
    this.queue = result.catch(() => undefined);
    return result;
  }
}
