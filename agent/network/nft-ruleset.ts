// Reads the parts of `nft -j list ruleset` that the bridge network needs to stay idempotent
// across tsd restarts: its own service chains and the rules it tagged in other tables.

export interface NftChainInfo {
  family: string;
  table: string;
  name: string;
  hook?: string;
  policy?: string;
}

export interface NftRuleInfo {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
}

export interface NftRuleset {
  tables: Array<{ family: string; name: string }>;
  chains: NftChainInfo[];
  rules: NftRuleInfo[];
}

export function parseRuleset(json: unknown): NftRuleset {
  const result: NftRuleset = { tables: [], chains: [], rules: [] };
  const entries = isRecord(json) && Array.isArray(json.nftables) ? (json.nftables as unknown[]) : [];
  for (const entry of entries) {
    if (!isRecord(entry)) continue;
    const table = entry.table;
    if (isRecord(table) && typeof table.family === 'string' && typeof table.name === 'string') {
      result.tables.push({ family: table.family, name: table.name });
    }
    const chain = entry.chain;
    if (isRecord(chain) && typeof chain.family === 'string' && typeof chain.table === 'string' && typeof chain.name === 'string') {
      result.chains.push({
        family: chain.family,
        table: chain.table,
        name: chain.name,
        ...(typeof chain.hook === 'string' ? { hook: chain.hook } : {}),
        ...(typeof chain.policy === 'string' ? { policy: chain.policy } : {}),
      });
    }
    const rule = entry.rule;
    if (
      isRecord(rule) &&
      typeof rule.family === 'string' &&
      typeof rule.table === 'string' &&
      typeof rule.chain === 'string' &&
      typeof rule.handle === 'number'
    ) {
      result.rules.push({
        family: rule.family,
        table: rule.table,
        chain: rule.chain,
        handle: rule.handle,
        ...(typeof rule.comment === 'string' ? { comment: rule.comment } : {}),
      });
    }
  }
  return result;
}

export function hasTable(ruleset: NftRuleset, family: string, name: string): boolean {
  return ruleset.tables.some((t) => t.family === family && t.name === name);
}

/**
 * Forward-hook base chains of other tables whose policy drops. nftables evaluates every base
 * chain on a hook and a drop anywhere is final, so an accept in our own table cannot override
 * them: the only way through is an accept rule inside those chains.
 */
export function droppingForwardChains(ruleset: NftRuleset, ownTable: string): NftChainInfo[] {
  return ruleset.chains.filter(
    (c) => c.hook === 'forward' && c.policy === 'drop' && (c.family === 'ip' || c.family === 'inet') && !(c.family === 'ip' && c.table === ownTable),
  );
}

export function rulesTagged(ruleset: NftRuleset, tag: string): NftRuleInfo[] {
  return ruleset.rules.filter((r) => r.comment === tag);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
