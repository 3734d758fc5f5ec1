// A min-heap of timed events; ties break by insertion order so runs are deterministic.
export interface Timed<T> {
  time: number;
  seq: number;
  value: T;
}

export class EventQueue<T> {
  private heap: Array<Timed<T>> = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(time: number, value: T): void {
    const item = { time, seq: this.seq++, value };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i] as Timed<T>, h[p] as Timed<T>)) break;
      [h[i], h[p]] = [h[p] as Timed<T>, h[i] as Timed<T>];
      i = p;
    }
  }

  pop(): Timed<T> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0] as Timed<T>;
    const last = h.pop() as Timed<T>;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l] as Timed<T>, h[m] as Timed<T>)) m = l;
        if (r < h.length && less(h[r] as Timed<T>, h[m] as Timed<T>)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as Timed<T>, h[i] as Timed<T>];
        i = m;
      }
    }
    return top;
  }
}

function less<T>(a: Timed<T>, b: Timed<T>): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
