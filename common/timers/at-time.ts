// Calls `fn` once at a wall-clock time, however far ahead: setTimeout holds at most 2^31-1 ms
// (about 24 days), so a later time is waited for in such steps. Returns the cancel.
const MAX_TIMER_MS = 2 ** 31 - 1;

export function atTime(timeMs: number, fn: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const step = () => {
    const left = timeMs - Date.now();
    if (left <= 0) fn();
    else timer = setTimeout(step, Math.min(left, MAX_TIMER_MS));
  };
  step();
  return () => clearTimeout(timer);
}
