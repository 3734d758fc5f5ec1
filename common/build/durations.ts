// Go's time.ParseDuration, which Docker uses for HEALTHCHECK's --interval, --timeout,
// --start-period and --start-interval: "1h30m", "1.5s", "300ms", "0". Nanoseconds, as the image
// config stores them.

const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const PART = /^([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/;

/** Nanoseconds, or undefined when `text` is not a Go duration (or is negative or beyond 2^53 ns). */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  let rest = text.startsWith('+') ? text.slice(1) : text;
  if (rest === '' || rest.length > 100) return undefined;
  let total = 0;
  while (rest !== '') {
    const match = PART.exec(rest);
    const number = match?.[1];
    const unit = match?.[2];
    if (match === null || number === undefined || unit === undefined || number === '' || number === '.') return undefined;
    total += Number(number) * (UNIT_NS[unit] ?? Number.NaN);
    rest = rest.slice(match[0].length);
  }
  const rounded = Math.round(total);
  return Number.isSafeInteger(rounded) ? rounded : undefined;
}
