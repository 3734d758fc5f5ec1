// Autolock from tsctl (the Autolock service, proto/autolock.proto):
//   tsctl cluster unlock [--key-file F]   unlock this machine's locked manager, over its root socket
//   tsctl cluster unlock-key [--rotate]   show (or replace) the cluster's unlock key; admins only
//   tsctl cluster update --autolock=true|false   (an option of cluster-update.ts, run here)
// The key is read from a 0600 file or from stdin (a prompt without echo on a terminal): never from
// argv (ps shows it) or the environment (children inherit it).
import * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, type Command } from 'commander';
import { open } from 'node:fs/promises';

import { channelOptions, clientCredentials } from '../../common/transport/credentials.js';
import { autolockService, type AutolockClient } from '../../daemon/autolock-proto.js';
import { candidateServers, securityFor } from '../connection.js';
import { readContext } from '../context.js';

/** An unlock key is 59 characters; a file or input much longer than that is not one. */
const MAX_KEY_INPUT_BYTES = 1024;
const CALL_TIMEOUT_MS = 30_000;

export const AUTOLOCK_OPTION_HELP =
  "true: protect every manager's storage keys (Raft keyring, or the etcd store key) with an unlock key (shown once; restarted managers wait for `tsctl cluster unlock`); false: back to a key file on each manager";

export function parseAutolockFlag(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidArgumentError(`expected true or false, got ${JSON.stringify(value.slice(0, 20))}`);
}

/** The server tsctl talks to (first candidate: the flag, $TESSERA_SERVER or the context) and a client for it. */
async function autolockClient(command: Command): Promise<{ client: AutolockClient; address: string }> {
  const context = await readContext();
  const address = candidateServers(command.optsWithGlobals<{ server?: string }>().server, context)[0]!;
  const security = securityFor(address, context?.tls);
  const Client = autolockService();
  const client = new Client(address, clientCredentials(security), channelOptions(security)) as unknown as AutolockClient;
  return { client, address };
}

/** A refusal in words: the server's own, with what to do where the code alone says little. */
function callError(err: grpc.ServiceError, address: string): Error {
  const said = err.details || err.message;
  if (err.code === grpc.status.UNIMPLEMENTED) return new Error(`${address} does not serve autolock (a manager on the raft store does; is it an older tsd?)`);
  if (err.code === grpc.status.UNAVAILABLE) return new Error(`cannot reach the manager at ${address}: ${said}`);
  if (err.code === grpc.status.PERMISSION_DENIED) return new Error(`refused: ${said}`);
  return new Error(said);
}

function call<Req, Res>(address: string, start: (req: Req, options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => void, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    start(req, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, value) => {
      if (err) reject(callError(err, address));
      else if (value === undefined) reject(new Error('empty response from the server'));
      else resolve(value);
    });
  });
}

async function withAutolockClient<T>(command: Command, fn: (client: AutolockClient, address: string) => Promise<T>): Promise<T> {
  const { client, address } = await autolockClient(command);
  try {
    return await fn(client, address);
  } finally {
    client.close();
  }
}

/** Reads the key file, refusing one others may read (the key opens every manager's keyring). */
export async function readKeyFile(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const info = await handle.stat();
    if ((info.mode & 0o077) !== 0)
      throw new Error(`${path} has mode 0${(info.mode & 0o777).toString(8)}: an unlock key file must be its owner's alone (chmod 600)`);
    if (info.size > MAX_KEY_INPUT_BYTES) throw new Error(`${path} is ${info.size} bytes, longer than an unlock key file can be`);
    return (await handle.readFile('utf8')).trim();
  } finally {
    await handle.close();
  }
}

/** Reads one line from a terminal without echoing it. */
function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let text = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(text.trim());
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u007f') text = text.slice(0, -1);
        else text += ch;
        if (text.length > MAX_KEY_INPUT_BYTES) return done(new Error('input longer than an unlock key can be'));
      }
    };
    stdin.on('data', onData);
  });
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > MAX_KEY_INPUT_BYTES) throw new Error('stdin is longer than an unlock key can be');
  }
  return text.trim();
}

function readKey(keyFile: string | undefined): Promise<string> {
  if (keyFile !== undefined) return readKeyFile(keyFile);
  return process.stdin.isTTY ? promptHidden('Unlock key: ') : readStdin();
}

export async function unlockCommand(command: Command, keyFile: string | undefined): Promise<string> {
  return withAutolockClient(command, async (client, address) => {
    if (!address.startsWith('unix:'))
      throw new Error(`a manager is unlocked on its own machine, over its root socket (--server unix:/path/tsd.sock), not at ${address}`);
    const status = await call(address, client.Status.bind(client), {});
    if (!status.locked) return `manager ${status.node} is not locked`;
    const unlockKey = await readKey(keyFile);
    await call(address, client.Unlock.bind(client), { unlockKey });
    return `manager ${status.node} is unlocked; it is starting`;
  });
}

export async function unlockKeyCommand(command: Command, rotate: boolean): Promise<string> {
  return withAutolockClient(command, async (client, address) => {
    const { unlockKey } = await call(address, client.UnlockKey.bind(client), { rotate });
    if (!rotate) return unlockKey;
    return `${unlockKey}\n\nThe unlock key is replaced: keep this one. Each running manager re-wraps its keys under it now; a manager that is down keeps the previous key until it has been unlocked and has started.`;
  });
}

/** `cluster update --autolock=...`: the lines to print. */
export async function updateAutolock(command: Command, enabled: boolean): Promise<string[]> {
  return withAutolockClient(command, async (client, address) => {
    const res = await call(address, client.SetAutolock.bind(client), { enabled });
    if (!res.changed) return [`autolock: already ${enabled ? 'on' : 'off'}`];
    if (!enabled) return ['autolock: off (each manager keeps its storage key-encryption key in a file again)'];
    return [
      'autolock: on. The unlock key, shown this once (tsctl cluster unlock-key shows it again, to admins):',
      '',
      `  ${res.unlockKey}`,
      '',
      'Keep it safe: a restarted manager serves nothing until `tsctl cluster unlock` is given it.',
    ];
  });
}

export function registerClusterAutolockCommands(cluster: Command): void {
  cluster
    .command('unlock')
    .description("unlock this machine's locked manager (autolock): reads the key from --key-file or stdin (a prompt on a terminal)")
    .option('--key-file <path>', 'read the unlock key from this file (mode 0600)')
    .action(async (options: { keyFile?: string }, command: Command) => {
      process.stdout.write(`${await unlockCommand(command, options.keyFile)}\n`);
    });
  cluster
    .command('unlock-key')
    .description("show the cluster's unlock key (admins only; audited)")
    .option('--rotate', 'replace it with a new key; the old one stops working once every manager has re-wrapped its keys')
    .action(async (options: { rotate?: boolean }, command: Command) => {
      process.stdout.write(`${await unlockKeyCommand(command, options.rotate === true)}\n`);
    });
}
