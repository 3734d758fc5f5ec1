// The node's own resolvers, where names the overlay does not own are forwarded.

import { isIP } from 'node:net';
import type { DnsUpstream } from './types.js';

/** `nameserver` lines of resolv.conf text, in order; anything else is ignored. */
export function parseResolvConf(text: string): DnsUpstream[] {
  const result: DnsUpstream[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    if (match && isIP(match[1] ?? '') !== 0) result.push({ address: match[1] as string, port: 53 });
  }
  return result;
}
