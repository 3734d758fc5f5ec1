// How the translation of a Compose model collects what is wrong (issues: nothing is deployed) and
// what is worth saying (warnings), and the value readers they share. Shared by translate.ts and
// build-plan.ts, so both report in the same shape and read booleans the same way.

import { describeValue, type IssuePath } from '../../common/resources/schema.js';
import type { ParseResult } from '../../common/resources/quantity.js';
import { scalarText } from './normalize.js';

export interface TranslateIssue {
  path: IssuePath;
  message: string;
  /** The normalised list item the problem is in, when there is one (for its source position). */
  item?: object;
}

export class Reporter {
  readonly warnings: TranslateIssue[] = [];
  constructor(readonly issues: TranslateIssue[]) {}
  warn(path: IssuePath, message: string): void {
    this.warnings.push({ path, message });
  }
  add(path: IssuePath, message: string, item?: object): undefined {
    this.issues.push({ path, message, ...(item ? { item } : {}) });
    return undefined;
  }
  parsed<T>(result: ParseResult<T>, path: IssuePath, item?: object): T | undefined {
    return result.ok ? result.value : this.add(path, result.message, item);
  }
}

const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True', 'y', 'Y', 'yes', 'YES', 'Yes', 'on', 'ON', 'On']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False', 'n', 'N', 'no', 'NO', 'No', 'off', 'OFF', 'Off']);

/** Compose allows "true"/"false" strings wherever a boolean goes (for interpolated values). */
export function toBool(value: unknown, path: IssuePath, r: Reporter, item?: object): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  const text = scalarText(value);
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  return r.add(path, `expected true or false, got ${describeValue(value)}`, item);
}
