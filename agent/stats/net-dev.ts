// A container's network counters from /proc/<pid>/net/dev, which shows the interfaces of the
// network namespace that process is in: the container's eth0 (node bridge) and eth1.. (overlay
// networks) as the container sees them, so received is what reached the container. Pure parser.

export interface InterfaceCounters {
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDropped: number;
}

/** At most this many interfaces are read from one file: a container has a few. */
const MAX_INTERFACES = 256;

/**
 * /proc/net/dev: two header lines, then "  eth0: rxbytes rxpackets rxerrs rxdrop fifo frame
 * compressed multicast txbytes txpackets txerrs txdrop fifo colls carrier compressed". Lines that
 * do not have that shape are skipped (the headers among them).
 */
export function parseNetDev(text: string): Map<string, InterfaceCounters> {
  const out = new Map<string, InterfaceCounters>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    if (name === '' || fields.length < 16 || !fields.every((f) => /^\d+$/.test(f))) continue;
    const n = fields.map(Number);
    out.set(name, {
      rxBytes: n[0]!,
      rxPackets: n[1]!,
      rxErrors: n[2]!,
      rxDropped: n[3]!,
      txBytes: n[8]!,
      txPackets: n[9]!,
      txErrors: n[10]!,
      txDropped: n[11]!,
    });
    if (out.size >= MAX_INTERFACES) break;
  }
  return out;
}

/** The container's traffic: every interface but loopback, summed (docker stats does the same). */
export function networkTotals(interfaces: ReadonlyMap<string, InterfaceCounters>): InterfaceCounters {
  const total: InterfaceCounters = { rxBytes: 0, rxPackets: 0, rxErrors: 0, rxDropped: 0, txBytes: 0, txPackets: 0, txErrors: 0, txDropped: 0 };
  for (const [name, counters] of interfaces) {
    if (name === 'lo') continue;
    for (const key of Object.keys(total) as Array<keyof InterfaceCounters>) total[key] += counters[key];
  }
  return total;
}
