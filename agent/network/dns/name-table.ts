// The names one network's resolver owns, and how a question about them is answered. Pure:
// shuffling takes an injected random source so answers are deterministic under test.

import { NetworkInputError, isIpv4 } from '../../../common/network/ipv4.js';
import { fieldsOf, itemsOf } from '../input.js';

export type LookupResult =
  /** A name we own, with A records (possibly none: NODATA). */
  | { kind: 'answer'; addresses: string[] }
  /** Not ours: ask the node's resolvers. */
  | { kind: 'forward' };

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
const TASKS_PREFIX = 'tasks.';

export function normaliseName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function validateName(name: unknown, where: string): string {
  if (typeof name !== 'string') throw new NetworkInputError(`${where}: name must be a string`);
  const normal = normaliseName(name);
  if (normal.length === 0 || normal.length > 253 || !normal.split('.').every((label) => LABEL.test(label))) {
    throw new NetworkInputError(`${where}: "${name}" is not a valid DNS name`);
  }
  if (normal.startsWith(TASKS_PREFIX)) throw new NetworkInputError(`${where}: "${name}" may not start with "tasks." (reserved)`);
  return normal;
}

function validateAddresses(addresses: unknown, where: string): string[] {
  if (!Array.isArray(addresses)) throw new NetworkInputError(`${where} must be an array`);
  for (const [i, a] of addresses.entries()) {
    if (typeof a !== 'string' || !isIpv4(a)) throw new NetworkInputError(`${where}[${i}] "${String(a)}" is not an IPv4 address`);
  }
  return [...new Set(addresses as string[])];
}

interface Entry {
  /** Fixed answer (a VIP) or a set to shuffle per answer (tasks, dnsrr, aliases). */
  addresses: string[];
  shuffle: boolean;
}

export class NameTable {
  private readonly entries = new Map<string, Entry>();

  /** `records` (DnsRecords) come from the managers' view: checked here, field by field. */
  constructor(records: unknown) {
    const fields = fieldsOf(records);
    const services = itemsOf(fields?.services);
    const aliases = itemsOf(fields?.aliases);
    if (services === undefined || aliases === undefined) {
      throw new NetworkInputError('DNS records must be { services: [...], aliases: [...] }');
    }
    for (const [i, item] of services.entries()) {
      const where = `services[${i}]`;
      const service = fieldsOf(item);
      const mode = service?.endpointMode;
      if (service === undefined || (mode !== 'vip' && mode !== 'dnsrr')) {
        throw new NetworkInputError(`${where}.endpointMode must be "vip" or "dnsrr", got ${JSON.stringify(mode)}`);
      }
      const tasks = validateAddresses(service.tasks, `${where}.tasks`);
      const vip = service.vip;
      let main: Entry;
      if (mode === 'vip') {
        if (typeof vip !== 'string' || !isIpv4(vip)) {
          throw new NetworkInputError(`${where}.vip "${String(vip)}" is not an IPv4 address (endpointMode vip needs one)`);
        }
        main = { addresses: [vip], shuffle: false };
      } else {
        main = { addresses: tasks, shuffle: true };
      }
      const names = itemsOf(service.names);
      if (names === undefined || names.length === 0) throw new NetworkInputError(`${where}.names must list at least one name`);
      for (const [j, raw] of names.entries()) {
        const name = validateName(raw, `${where}.names[${j}]`);
        this.add(name, main, `${where}.names[${j}]`);
        this.add(TASKS_PREFIX + name, { addresses: tasks, shuffle: true }, `${where}.names[${j}]`);
      }
    }
    for (const [i, item] of aliases.entries()) {
      const where = `aliases[${i}]`;
      const alias = fieldsOf(item);
      const name = validateName(alias?.name, `${where}.name`);
      const addresses = validateAddresses(alias?.addresses, `${where}.addresses`);
      // A container alias shared by several containers answers with all of them, like Docker.
      const existing = this.entries.get(name);
      if (existing && !existing.shuffle) throw new NetworkInputError(`${where}: "${name}" is already a service name`);
      this.entries.set(name, { addresses: [...new Set([...(existing?.addresses ?? []), ...addresses])], shuffle: true });
    }
  }

  lookup(name: string, random: () => number): LookupResult {
    const entry = this.entries.get(normaliseName(name));
    if (!entry) return { kind: 'forward' };
    return { kind: 'answer', addresses: entry.shuffle ? shuffled(entry.addresses, random) : [...entry.addresses] };
  }

  private add(name: string, entry: Entry, where: string): void {
    if (this.entries.has(name)) throw new NetworkInputError(`${where}: name "${name}" is used by two services`);
    this.entries.set(name, entry);
  }
}

/** Fisher-Yates with the injected source. */
export function shuffled<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
