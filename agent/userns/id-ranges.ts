// Pure decisions about user-namespace id ranges: reading /etc/subuid-style text, choosing the
// node's range when it has none, and handing each service a 65,536-id block of it. No I/O here;
// agent/userns/subordinate-ids.ts and allocator.ts do the reading and writing.

/** Ids per service: a whole 16-bit range, so every uid an image may use (0..65535) maps. */
export const IDS_PER_SERVICE = 65_536;
/** The name of the node's entry in /etc/subuid and /etc/subgid (Docker's is `dockremap`). */
export const SUBORDINATE_NAME = 'tessera';
/**
 * The range the agent records for `tessera` when the node has none: 4,000 blocks from 0x70000000.
 * Above systemd-nspawn's container range (524288..1879048191) and below 2^31 (ids some tools read
 * as negative), ending before systemd's foreign-uid range at 0x7FFE0000.
 */
export const DEFAULT_RANGE: SubordinateRange = { start: 0x7000_0000, count: 4000 * IDS_PER_SERVICE };
/** Largest id a map may reach: (uid_t)-1 is "no id" to the kernel. */
const MAX_ID = 0xffff_fffe;
/** Lines read from a subordinate-id file; a longer file is refused rather than read in full. */
export const MAX_SUBID_LINES = 10_000;

export interface SubordinateRange {
  start: number;
  count: number;
}

export interface SubidEntry extends SubordinateRange {
  /** User name or numeric uid, as written. */
  owner: string;
  /** 1-based line, for messages. */
  line: number;
}

/** Parses /etc/subuid or /etc/subgid ("owner:start:count" per line). Throws naming the file and line. */
export function parseSubidFile(text: string, source: string): SubidEntry[] {
  const lines = text.split('\n');
  if (lines.length > MAX_SUBID_LINES) throw new Error(`${source}: more than ${MAX_SUBID_LINES} lines`);
  const entries: SubidEntry[] = [];
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(':');
    const [owner = '', start = '', count = ''] = fields;
    if (fields.length !== 3 || owner === '' || !/^\d{1,10}$/.test(start) || !/^\d{1,10}$/.test(count)) {
      throw new Error(`${source}:${i + 1}: expected "owner:start:count", got ${JSON.stringify(line.slice(0, 80))}`);
    }
    entries.push({ owner, start: Number(start), count: Number(count), line: i + 1 });
  });
  return entries;
}

function overlaps(a: SubordinateRange, b: SubordinateRange): boolean {
  return a.start < b.start + b.count && b.start < a.start + a.count;
}

/**
 * The node's range from one file's entries: the `tessera` entry when there is one (several are
 * refused: which would be meant is unclear), else DEFAULT_RANGE when it overlaps no other entry
 * ('record': the caller appends it). Throws naming the file when neither works.
 */
export function chooseNodeRange(entries: readonly SubidEntry[], source: string): { range: SubordinateRange; record: boolean } {
  const ours = entries.filter((e) => e.owner === SUBORDINATE_NAME);
  if (ours.length > 1) throw new Error(`${source}: ${ours.length} entries for ${SUBORDINATE_NAME} (lines ${ours.map((e) => e.line).join(', ')}); keep one`);
  const entry = ours[0];
  if (entry !== undefined) {
    if (entry.count < IDS_PER_SERVICE) {
      throw new Error(`${source}:${entry.line}: ${SUBORDINATE_NAME} has ${entry.count} ids; a service needs ${IDS_PER_SERVICE}`);
    }
    if (entry.start === 0 || entry.start + entry.count - 1 > MAX_ID)
      throw new Error(`${source}:${entry.line}: ${SUBORDINATE_NAME}'s range must lie within 1..${MAX_ID}`);
    return { range: { start: entry.start, count: entry.count }, record: false };
  }
  const clash = entries.find((e) => overlaps(e, DEFAULT_RANGE));
  if (clash !== undefined) {
    throw new Error(
      `${source}:${clash.line}: ${clash.owner}'s range overlaps the default ${SUBORDINATE_NAME} range ` +
        `${DEFAULT_RANGE.start}..${DEFAULT_RANGE.start + DEFAULT_RANGE.count - 1}; add a "${SUBORDINATE_NAME}:START:COUNT" line of your own`,
    );
  }
  return { range: DEFAULT_RANGE, record: true };
}

/** Blocks of IDS_PER_SERVICE ids the node's uid and gid ranges both hold. */
export function blockCount(uids: SubordinateRange, gids: SubordinateRange): number {
  return Math.floor(Math.min(uids.count, gids.count) / IDS_PER_SERVICE);
}

/** Service key → block index (0-based) of the node's range. */
export type Allocations = Readonly<Record<string, number>>;

/**
 * The block of `service`: the one it holds, else the lowest free one. Returns the new allocations
 * (unchanged when it held one). Throws when every block is taken.
 */
export function allocateBlock(allocations: Allocations, service: string, blocks: number): { block: number; allocations: Allocations } {
  const held = allocations[service];
  if (held !== undefined) return { block: held, allocations };
  const taken = new Set(Object.values(allocations));
  for (let block = 0; block < blocks; block++) {
    if (!taken.has(block)) return { block, allocations: { ...allocations, [service]: block } };
  }
  throw new Error(`no free user-namespace range on this node: all ${blocks} ranges of ${IDS_PER_SERVICE} ids are held by services with tasks here`);
}

/** The allocations of the services in `keep` only; `freed` lists the blocks that were let go. */
export function retainBlocks(allocations: Allocations, keep: ReadonlySet<string>): { allocations: Allocations; freed: number[] } {
  const kept: Record<string, number> = {};
  const freed: number[] = [];
  for (const [service, block] of Object.entries(allocations)) {
    if (keep.has(service)) kept[service] = block;
    else freed.push(block);
  }
  return { allocations: kept, freed };
}

/** Host ids of a block: where container id 0 lands for uids and for gids. */
export interface ServiceIdRange {
  block: number;
  uidStart: number;
  gidStart: number;
  size: number;
}

export function blockRange(block: number, uids: SubordinateRange, gids: SubordinateRange): ServiceIdRange {
  return { block, uidStart: uids.start + block * IDS_PER_SERVICE, gidStart: gids.start + block * IDS_PER_SERVICE, size: IDS_PER_SERVICE };
}

/** The OCI linux.uidMappings / gidMappings of a range: container 0..65535 onto the block. */
export function idMappingsOf(range: ServiceIdRange) {
  return {
    uidMappings: [{ containerID: 0, hostID: range.uidStart, size: range.size }],
    gidMappings: [{ containerID: 0, hostID: range.gidStart, size: range.size }],
  };
}

/** A container id seen from the host (ids beyond the range cannot occur in a mapped container). */
export function hostIdOf(containerId: number, start: number, size: number = IDS_PER_SERVICE): number {
  if (!Number.isInteger(containerId) || containerId < 0 || containerId >= size) throw new Error(`id ${containerId} is outside the container's 0..${size - 1}`);
  return start + containerId;
}
