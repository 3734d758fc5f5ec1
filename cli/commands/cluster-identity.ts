// `tsctl cluster user add`, `tsctl cluster audit` and `tsctl cluster ca --rotate`: who may use the
// cluster, what they did, and the CA that vouches for them. All three are for admins (or root on a
// manager's socket); the server decides, these only ask.
import { type Command, InvalidArgumentError } from 'commander';

import type { WithClient } from '../with-client.js';
import { escapeControl, formatAuditJson, formatAuditTable } from './audit-table.js';
import { addUser, parseValidityDays, type UserAddOptions } from './user-add.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

/** The most entries one request may ask for (the server's own bound). */
const MAX_AUDIT_LIMIT = 10_000;
/** The server matches callers on at most this many characters. */
const MAX_CALLER_FILTER_CHARS = 256;

function parseLimit(value: string): number {
  const limit = Number(value);
  if (!/^\d+$/.test(value) || limit < 1 || limit > MAX_AUDIT_LIMIT) throw new InvalidArgumentError(`expected 1 to ${MAX_AUDIT_LIMIT}, got "${value}"`);
  return limit;
}

function parseCallerFilter(value: string): string {
  if (value.length > MAX_CALLER_FILTER_CHARS) throw new InvalidArgumentError(`at most ${MAX_CALLER_FILTER_CHARS} characters`);
  return value;
}

function auditFormat(value: string): 'table' | 'json' {
  if (value === 'table' || value === 'json') return value;
  throw new InvalidArgumentError(`expected table or json, got "${value}"`);
}

function validityDays(value: string): number {
  try {
    return parseValidityDays(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function registerClusterIdentityCommands(cluster: Command, withClient: WithClient): void {
  const user = cluster.command('user').description('client certificates for people and tools (tsctl contexts)');
  user
    .command('add')
    .description('issue a certificate to a user and write a context file holding it (the private key is made here and never sent)')
    .argument('<name>', 'user name (a-z, 0-9 and -); the certificate names it, and the audit log shows it')
    .requiredOption('--role <role>', 'admin (everything), operator (deploy, scale, roll back) or viewer (read-only)')
    .option('--output <file>', 'context file to write (default ./NAME.tessera.json)')
    .option('--validity-days <days>', 'how long the certificate is valid (default: one year)', validityDays)
    .option('--force', 'replace the output file if it exists')
    .option('--pem-dir <dir>', 'also write cert.pem, key.pem (0600) and ca.pem there, for tools that take PEM files (Prometheus)')
    .action((name: string, options: UserAddOptions) =>
      withClient(async (client) => {
        for (const line of await addUser(client, name, options)) out(line);
      }),
    );

  cluster
    .command('audit')
    .description('the audit log of the manager answering: who changed what, when, and whether it was allowed (newest last)')
    .option('--limit <n>', 'at most this many entries (default 100)', parseLimit)
    .option('--caller <text>', 'only entries whose caller contains this text, e.g. user:alice', parseCallerFilter)
    .option('-o, --output <format>', 'table, or json (the entries as recorded, one per line)', auditFormat, 'table' as const)
    .action((options: { limit?: number; caller?: string; output: 'table' | 'json' }) =>
      withClient(async (client) => {
        const { entriesJson } = await client.auditLog({ limit: options.limit ?? 0, caller: options.caller ?? '' });
        process.stdout.write(options.output === 'json' ? formatAuditJson(entriesJson) : formatAuditTable(entriesJson));
      }),
    );

  cluster
    .command('ca')
    .description("manage the cluster's root certificate authority")
    .option('--rotate', 'start replacing the root CA without downtime (without it: the state of a rotation)')
    .action((options: { rotate?: boolean }) =>
      withClient(async (client) => {
        const { state, message } = await client.rotateCa(!options.rotate);
        out(escapeControl(`CA rotation ${state}${message ? `: ${message}` : ''}`));
      }),
    );
}
