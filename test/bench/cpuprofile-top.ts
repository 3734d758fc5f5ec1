// The top entries of a V8 CPU profile (node --cpu-prof): self time and inclusive time per function
// (name, file and line), as fractions of the profile's sampled time. `bench:scale --profile DIR`
// prints them for the leader; run alone: `node --import=tsx test/bench/cpuprofile-top.ts FILE [N]`.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  fn: string;
  selfMs: number;
  totalMs: number;
}

function keyOf(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? `${basename(url)}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
}

/** Self and inclusive time per function, largest self time first. */
export function summarize(profile: CpuProfile): { entries: ProfileEntry[]; sampledMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let sampledMs = 0;
  profile.samples.forEach((id, i) => {
    // A sample's time is the gap to the next one (V8 records the gap before each sample).
    const ms = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    sampledMs += ms;
    const leaf = byId.get(id);
    if (!leaf) return;
    const leafKey = keyOf(leaf);
    self.set(leafKey, (self.get(leafKey) ?? 0) + ms);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const key = keyOf(byId.get(at)!);
      if (seen.has(key)) continue;
      seen.add(key);
      total.set(key, (total.get(key) ?? 0) + ms);
    }
  });
  const entries = [...total].map(([fn, totalMs]) => ({ fn, selfMs: self.get(fn) ?? 0, totalMs })).sort((a, b) => b.selfMs - a.selfMs);
  return { entries, sampledMs };
}

/** Lines for a report: the top `n` by self time, and the top `n` by inclusive time (roots and the idle loop left out). */
export async function profileReport(file: string, n = 15): Promise<string[]> {
  const { entries, sampledMs } = summarize(JSON.parse(await readFile(file, 'utf8')) as CpuProfile);
  const pct = (ms: number) => `${((100 * ms) / sampledMs).toFixed(1).padStart(5)} %`;
  const lines = [`${basename(file)}: ${(sampledMs / 1000).toFixed(1)} s sampled`, 'self time:'];
  for (const e of entries.slice(0, n)) lines.push(`  ${pct(e.selfMs)}  ${e.fn}`);
  lines.push('inclusive time:');
  const skip = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);
  const inclusive = [...entries].filter((e) => !skip.has(e.fn)).sort((a, b) => b.totalMs - a.totalMs);
  for (const e of inclusive.slice(0, n)) lines.push(`  ${pct(e.totalMs)}  ${e.fn}`);
  return lines;
}

if (process.argv[1]?.endsWith('cpuprofile-top.ts')) {
  const [file, count] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: cpuprofile-top.ts FILE [N]\n');
    process.exit(2);
  }
  for (const line of await profileReport(file, count ? Number(count) : 15)) console.log(line);
}
