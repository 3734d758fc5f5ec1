// Human renderings of elapsed time. Both take `now` so output is deterministic in tests.

/** Milliseconds from an ISO timestamp to now; undefined when the timestamp is missing or invalid. */
export function elapsedMs(since: string | undefined, now: Date): number | undefined {
  if (since === undefined) return undefined;
  const at = Date.parse(since);
  return Number.isNaN(at) ? undefined : now.getTime() - at;
}

/** kubectl's compact AGE column: "45s", "3m20s", "45m", "3h20m", "30h", "4d5h", "120d", "3y45d". */
export function formatAge(since: string | undefined, now: Date): string {
  const ms = elapsedMs(since, now);
  if (ms === undefined) return '<unknown>';
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  const days = Math.floor(hours / 24);
  const years = Math.floor(days / 365);
  const withRest = (big: string, rest: number, unit: string) => (rest === 0 ? big : `${big}${rest}${unit}`);
  if (seconds < 120) return `${seconds}s`;
  if (minutes < 10) return withRest(`${minutes}m`, seconds % 60, 's');
  if (minutes < 180) return `${minutes}m`;
  if (hours < 8) return withRest(`${hours}h`, minutes % 60, 'm');
  if (hours < 48) return `${hours}h`;
  if (days < 8) return withRest(`${days}d`, hours % 24, 'h');
  if (years < 2) return `${days}d`;
  if (years < 8) return withRest(`${years}y`, days % 365, 'd');
  return `${years}y`;
}

/** Docker's wording for state changes: "5 seconds ago", "about a minute ago", "3 hours ago". */
export function formatAgo(since: string | undefined, now: Date): string {
  const ms = elapsedMs(since, now);
  if (ms === undefined) return '';
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'} ago`;
  if (seconds < 1) return 'less than a second ago';
  if (seconds < 60) return plural(seconds, 'second');
  if (minutes === 1) return 'about a minute ago';
  if (minutes < 60) return plural(minutes, 'minute');
  if (hours === 1) return 'about an hour ago';
  if (hours < 48) return plural(hours, 'hour');
  if (hours < 24 * 14) return plural(Math.floor(hours / 24), 'day');
  if (hours < 24 * 60) return plural(Math.floor(hours / 24 / 7), 'week');
  if (hours < 24 * 365 * 2) return plural(Math.floor(hours / 24 / 30), 'month');
  return plural(Math.floor(hours / 24 / 365), 'year');
}
