// Progress of a blob transfer (download or upload) as a few events, not one per chunk.

/** Reports transfer progress at most every 5% (and at least every 256 KiB apart), so a pull or push gives tens of events per layer, not thousands. */
export function meteredChunks(source: AsyncIterable<Uint8Array>, total: number, report: (current: number) => void): AsyncIterable<Uint8Array> {
  const step = Math.max(256 * 1024, Math.ceil(total / 20));
  return (async function* () {
    let current = 0;
    let reported = 0;
    report(0);
    for await (const chunk of source) {
      current += chunk.byteLength;
      if (current - reported >= step || current === total) {
        reported = current;
        report(current);
      }
      yield chunk;
    }
  })();
}
