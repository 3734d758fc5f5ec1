// Parsing and formatting of the quantities users write in manifests: memory sizes, CPU amounts and
// durations. Every parser is exact (decimal arithmetic on BigInt, no float rounding surprises) and
// returns a result instead of throwing, so the schema can turn failures into field-level issues.
//
// Memory grammar (one grammar for native manifests, Compose files and translated Kubernetes objects):
//   - binary suffixes Ki Mi Gi Ti Pi           (Kubernetes)           64Mi = 64 * 2^20
//   - decimal suffixes K M G T P                (Kubernetes, plus K)   1G   = 10^9
//   - lowercase b k m g t and kb mb gb tb (any case) (Docker/Compose)  64m  = 64 * 2^20
//   - plain numbers, decimal exponents          (Kubernetes)           1e3  = 1000
// Lowercase `m` is Docker's mebibyte, not Kubernetes' "milli": a milli-byte limit is never what
// anyone meant, whereas `mem_limit: 64m` is everywhere in Compose files.

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

const MEMORY_UNITS: ReadonlyMap<string, bigint> = new Map<string, bigint>([
  ['', 1n],
  ['Ki', 1n << 10n],
  ['Mi', 1n << 20n],
  ['Gi', 1n << 30n],
  ['Ti', 1n << 40n],
  ['Pi', 1n << 50n],
  ['K', 10n ** 3n],
  ['M', 10n ** 6n],
  ['G', 10n ** 9n],
  ['T', 10n ** 12n],
  ['P', 10n ** 15n],
  ['b', 1n],
  ['B', 1n],
  ['k', 1n << 10n],
  ['m', 1n << 20n],
  ['g', 1n << 30n],
  ['t', 1n << 40n],
  ['kb', 1n << 10n],
  ['mb', 1n << 20n],
  ['gb', 1n << 30n],
  ['tb', 1n << 40n],
]);

const MEMORY_UNIT_HINT = 'expected a number with an optional unit Ki, Mi, Gi, Ti, K, M, G, T (or Docker-style b, k, m, g)';

// A non-negative decimal with optional fraction and exponent, then a unit made of letters.
const QUANTITY_PATTERN = /^(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?([A-Za-z]*)$/;

/** An exact non-negative decimal: value = mantissa * 10^exponent. */
interface Decimal {
  mantissa: bigint;
  exponent: number;
}

function toDecimal(numberPart: string, exponentPart: string | undefined): Decimal {
  const [whole = '', fraction = ''] = numberPart.split('.');
  const digits = `${whole}${fraction}` || '0';
  return { mantissa: BigInt(digits), exponent: Number(exponentPart ?? '0') - fraction.length };
}

/** mantissa * 10^exponent * multiplier, rounded up to an integer (like Kubernetes' Value()). */
function scaleUp(d: Decimal, multiplier: bigint): bigint {
  const scaled = d.mantissa * multiplier;
  if (d.exponent >= 0) return scaled * 10n ** BigInt(d.exponent);
  const divisor = 10n ** BigInt(-d.exponent);
  return (scaled + divisor - 1n) / divisor;
}

function isExact(d: Decimal, multiplier: bigint): boolean {
  if (d.exponent >= 0) return true;
  return (d.mantissa * multiplier) % 10n ** BigInt(-d.exponent) === 0n;
}

function describeInput(input: unknown): string {
  return typeof input === 'string' ? JSON.stringify(input) : String(input);
}

// Exponents beyond this are typos, and would make BigInt arithmetic explode.
const MAX_EXPONENT = 30;

function fromSafeBigInt(value: bigint, what: string, input: unknown): ParseResult<number> {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    return { ok: false, message: `${what} ${describeInput(input)} is too large` };
  }
  return { ok: true, value: Number(value) };
}

/** Memory quantity (string with unit, or a number of bytes) → bytes, rounded up to a whole byte. */
export function parseMemoryBytes(input: string | number): ParseResult<number> {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) {
      return { ok: false, message: `invalid memory quantity ${input}: a plain number is a count of bytes and must be a whole number >= 0` };
    }
    return { ok: true, value: input };
  }
  if (input.trim().startsWith('-')) {
    return { ok: false, message: `invalid memory quantity ${describeInput(input)}: must not be negative` };
  }
  const match = QUANTITY_PATTERN.exec(input.trim());
  const unit = match?.[3] ?? '';
  // Only Docker's two-letter forms are case-insensitive ("64MB"); `1KI` or `1mI` stay errors.
  const multiplier = MEMORY_UNITS.get(unit) ?? (/^[kmgt]b$/i.test(unit) ? MEMORY_UNITS.get(unit.toLowerCase()) : undefined);
  if (!match || multiplier === undefined) {
    return { ok: false, message: `invalid memory quantity ${describeInput(input)}: ${MEMORY_UNIT_HINT}` };
  }
  const decimal = toDecimal(match[1] ?? '0', match[2]);
  if (Math.abs(decimal.exponent) > MAX_EXPONENT) {
    return { ok: false, message: `invalid memory quantity ${describeInput(input)}: exponent out of range` };
  }
  return fromSafeBigInt(scaleUp(decimal, multiplier), 'memory quantity', input);
}

const NANOS_PER_CPU = 1_000_000_000n;

/** CPU amount (`0.5`, `500m`, `2`, or a number) → nanoCPUs. Finer than one nanoCPU is an error. */
export function parseCpuNanos(input: string | number): ParseResult<number> {
  const text = typeof input === 'number' ? String(input) : input.trim();
  const match = QUANTITY_PATTERN.exec(text);
  const unit = match?.[3] ?? '';
  if (!match || (unit !== '' && unit !== 'm')) {
    return { ok: false, message: `invalid CPU quantity ${describeInput(input)}: expected a number of CPUs like 0.5 or 2, or millicores like 500m` };
  }
  const decimal = toDecimal(match[1] ?? '0', match[2]);
  if (Math.abs(decimal.exponent) > MAX_EXPONENT) {
    return { ok: false, message: `invalid CPU quantity ${describeInput(input)}: exponent out of range` };
  }
  const multiplier = unit === 'm' ? NANOS_PER_CPU / 1000n : NANOS_PER_CPU;
  if (!isExact(decimal, multiplier)) {
    return { ok: false, message: `invalid CPU quantity ${describeInput(input)}: finer than one nanoCPU (0.000000001)` };
  }
  return fromSafeBigInt(scaleUp(decimal, multiplier), 'CPU quantity', input);
}

const DURATION_UNITS_MS: ReadonlyMap<string, number> = new Map([
  ['ns', 1e-6],
  ['us', 1e-3],
  ['µs', 1e-3],
  ['ms', 1],
  ['s', 1000],
  ['m', 60_000],
  ['h', 3_600_000],
]);
const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;

/**
 * Go/Compose duration (`5s`, `500ms`, `1m30s`, `1.5h`) → milliseconds, rounded up.
 * A bare number is rejected: "5" could be seconds (Compose) or milliseconds, and guessing is worse.
 */
export function parseDurationMs(input: string | number): ParseResult<number> {
  const fail = (why: string): ParseResult<number> => ({ ok: false, message: `invalid duration ${describeInput(input)}: ${why}` });
  if (typeof input === 'number') return fail('a duration needs a unit, e.g. "5s", "500ms", "1m30s"');
  const text = input.trim();
  if (text === '0') return { ok: true, value: 0 };
  if (/^\d+(\.\d*)?$/.test(text)) return fail('a duration needs a unit, e.g. "5s", "500ms", "1m30s"');
  if (text === '') return fail('expected a number with a unit ms, s, m or h, e.g. "5s"');
  let total = 0;
  DURATION_PART.lastIndex = 0;
  let consumed = 0;
  for (let m = DURATION_PART.exec(text); m; m = DURATION_PART.exec(text)) {
    total += Number(m[1]) * (DURATION_UNITS_MS.get(m[2] ?? '') ?? Number.NaN);
    consumed = DURATION_PART.lastIndex;
  }
  if (consumed !== text.length) {
    return fail('expected a number with a unit ns, us, ms, s, m or h, e.g. "5s", "500ms", "1m30s"');
  }
  const ms = Math.ceil(total - 1e-9);
  if (!Number.isSafeInteger(ms)) return fail('too large');
  return { ok: true, value: Math.max(ms, 0) };
}

/** Throwing wrappers for callers outside schema validation. */
export class QuantityError extends Error {
  override name = 'QuantityError';
}
function orThrow<T>(result: ParseResult<T>): T {
  if (!result.ok) throw new QuantityError(result.message);
  return result.value;
}
export const memoryBytes = (input: string | number): number => orThrow(parseMemoryBytes(input));
export const cpuNanos = (input: string | number): number => orThrow(parseCpuNanos(input));
export const durationMs = (input: string | number): number => orThrow(parseDurationMs(input));

// ---- formatting, for tables and describe output ----

const BINARY_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi'];

/** Bytes → the largest binary unit that keeps the number >= 1, at most one decimal ("1.5Gi", "64Mi"). */
export function formatMemory(bytes: number): string {
  let value = bytes;
  let index = 0;
  while (value >= 1024 && index < BINARY_SUFFIXES.length - 1) {
    value /= 1024;
    index += 1;
  }
  const rounded = Math.round(value * 10) / 10;
  return `${rounded}${BINARY_SUFFIXES[index]}`;
}

/** CPUs as a number (0.5) → "0.5"; trailing float noise removed. */
export function formatCpus(cpus: number): string {
  return String(Number(cpus.toFixed(9)));
}

export function formatNanoCpus(nanoCpus: number): string {
  return formatCpus(nanoCpus / 1e9);
}

/** Milliseconds → Go-style duration ("1m30s", "500ms", "0s"), the inverse of parseDurationMs. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = ms;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  if (hours) parts.push(`${hours}h`);
  if (minutes) parts.push(`${minutes}m`);
  if (rest) parts.push(`${rest / 1000}s`);
  return parts.join('');
}
