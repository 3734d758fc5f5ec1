// What to grep for when a secret must not be on disk in any form we can think of: the text itself,
// its hex (both cases), and its base64 and base64url at each of the 3 alignments it can have inside
// a longer encoded run. A byte string that starts at offset k (mod 3) of the encoded data shows in
// base64 as the encoding of (k filler bytes + marker), minus the leading characters that mix in
// filler bits (0, 2 or 3 of them) and the trailing ones that mix in whatever follows (up to 3, and
// padding). What is left is fixed, whatever surrounds the marker. Pure.

/** The characters of base64(k filler bytes + marker) that depend on the marker alone. */
function base64Core(marker: Buffer, alignment: 0 | 1 | 2): string {
  const encoded = Buffer.concat([Buffer.alloc(alignment), marker]).toString('base64');
  const lead = [0, 2, 3][alignment]!;
  // Whole groups of 3 marker bytes end at a character boundary; the partial group after them mixes in the next bytes.
  const wholeBytes = alignment + marker.length - ((alignment + marker.length) % 3);
  return encoded.slice(lead, (wholeBytes / 3) * 4);
}

export function markerNeedles(marker: string): Array<{ encoding: string; needle: string }> {
  return [{ encoding: 'text', needle: marker }, ...encodedNeedles(Buffer.from(marker, 'utf8'))];
}

/** The text forms of `bytes` (hex, base64 and base64url at each alignment); the raw bytes themselves are the caller's to look for. */
export function encodedNeedles(bytes: Buffer): Array<{ encoding: string; needle: string }> {
  const needles = [
    { encoding: 'hex', needle: bytes.toString('hex') },
    { encoding: 'HEX', needle: bytes.toString('hex').toUpperCase() },
  ];
  for (const alignment of [0, 1, 2] as const) {
    const core = base64Core(bytes, alignment);
    needles.push({ encoding: `base64@${alignment}`, needle: core });
    const url = core.replaceAll('+', '-').replaceAll('/', '_');
    if (url !== core) needles.push({ encoding: `base64url@${alignment}`, needle: url });
  }
  return needles;
}
