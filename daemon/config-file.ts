// /etc/tessera/tsd.yaml: every tsd setting in a file, so a systemd unit can run `tsd run` with
// nothing on its command line. Keys are the long flags without their dashes (`data-root`,
// `advertise-address`, ...), values typed as the flag is: text, integer, a list for repeatable and
// comma-list flags. A flag given on the command line wins over the file. The file holds no secret:
// a join token is named by `token-file`, never written here.
import { readFile, stat } from 'node:fs/promises';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';

import type { DaemonConfig } from './config.js';
import { NODE_FLAGS, NODE_SETTING_KEYS, flagName, type NodeSettingKey } from './node-options.js';

/** Where tsd looks when no --config is given; used only if it exists. */
export const DEFAULT_CONFIG_FILE = '/etc/tessera/tsd.yaml';
/** Every setting fits in a few KiB; a larger file is not a tsd configuration. */
const MAX_CONFIG_FILE_BYTES = 64 * 1024;

export type FileSettings = Partial<Record<NodeSettingKey, unknown>>;

const KEY_OF_NAME = new Map<string, NodeSettingKey>(NODE_SETTING_KEYS.map((key) => [flagName(key).slice(2), key]));

function valueOf(node: Node | null, kind: string): { value: unknown } | { problem: string } {
  if (kind === 'repeated' || kind === 'comma-list') {
    if (!isSeq(node)) return { problem: 'expected a list of strings' };
    const items = node.items.map((item) => (isScalar(item) && typeof item.value === 'string' ? item.value : undefined));
    return items.every((item) => item !== undefined) ? { value: items } : { problem: 'expected a list of strings' };
  }
  const scalar = isScalar(node) ? node.value : undefined;
  if (kind === 'integer') return Number.isInteger(scalar) ? { value: scalar } : { problem: 'expected a whole number' };
  if (kind === 'switch') return typeof scalar === 'boolean' ? { value: scalar } : { problem: 'expected true or false' };
  // A bare number or address like 127.0.0.1 stays text, as on the command line.
  return typeof scalar === 'string' || typeof scalar === 'number' ? { value: String(scalar) } : { problem: 'expected a string' };
}

/** The settings a configuration file's text gives; throws one error naming every bad line. Pure. */
export function parseConfigFile(path: string, text: string): FileSettings {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined) => `${path}:${lines.linePos(offset ?? 0).line}`;
  const problems = doc.errors.map((e) => `${at(e.pos[0])}: ${e.message.split('\n')[0]}`);
  const settings: FileSettings = {};
  if (problems.length === 0 && doc.contents !== null) {
    if (!isMap(doc.contents)) problems.push(`${path}: expected a mapping of settings (data-root: /var/lib/tessera, ...)`);
    else
      for (const pair of doc.contents.items) {
        const name = isScalar(pair.key) ? String(pair.key.value) : '';
        const where = at(isScalar(pair.key) ? pair.key.range[0] : undefined);
        const key = KEY_OF_NAME.get(name);
        if (key === undefined) {
          problems.push(`${where}: unknown setting "${name}" (settings are tsd's long flags without --, e.g. data-root)`);
          continue;
        }
        const parsed = valueOf(pair.value as Node | null, NODE_FLAGS[key].kind);
        if ('problem' in parsed) problems.push(`${where}: ${name}: ${parsed.problem}`);
        else settings[key] = parsed.value;
      }
  }
  if (problems.length > 0) throw new Error(`invalid tsd configuration file:\n  ${problems.join('\n  ')}`);
  return settings;
}

/**
 * Reads the configuration file: `explicit` must exist; the default one is read only if it does.
 * It must be root's to write (not group- or world-writable), since it says where tsd keeps its keys.
 */
export async function readConfigFile(path: string | undefined): Promise<FileSettings> {
  const file = path ?? DEFAULT_CONFIG_FILE;
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' && path === undefined) return undefined;
    throw new Error(`--config ${file}: ${err.message}`);
  });
  if (info === undefined) return {};
  if (!info.isFile()) throw new Error(`--config ${file}: not a regular file`);
  if ((info.mode & 0o022) !== 0) throw new Error(`--config ${file}: writable by other users (mode ${(info.mode & 0o777).toString(8)}); chmod 644 or 600 it`);
  if (info.size > MAX_CONFIG_FILE_BYTES) throw new Error(`--config ${file}: ${info.size} bytes; a configuration file is at most ${MAX_CONFIG_FILE_BYTES}`);
  return parseConfigFile(file, await readFile(file, 'utf8'));
}

/**
 * A configuration file with every setting commented out at its default (what `tsd config-example`
 * prints, and deploy/install.sh installs): it changes nothing until a line is uncommented.
 */
export function configFileText(config: DaemonConfig): string {
  const lines = ['# tsd settings: the long flags of `tsd init --help` without their dashes. A flag given on the command line wins.'];
  for (const key of NODE_SETTING_KEYS) {
    const value: unknown = config[key];
    lines.push('', `# ${NODE_FLAGS[key].description}`, `#${flagName(key).slice(2)}:${value === undefined ? '' : ` ${JSON.stringify(value)}`}`);
  }
  return `${lines.join('\n')}\n`;
}
