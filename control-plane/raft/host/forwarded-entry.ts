// The log entry of a write a follower forwarded to the leader carries the follower's request id,
// so the follower can answer its client when it applies that entry itself (as etcd does), with no
// reply from the leader. Layout: 0x01, the id's length (2 bytes, big-endian), the id (UTF-8), then
// the application's bytes. Application data must not start with 0x01 (the store's commands are
// JSON objects, starting with '{'); entries written before this existed carry no envelope.
const MARK = 0x01;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function isEnveloped(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === MARK;
}

export function wrapForwarded(id: string, payload: Uint8Array): Uint8Array {
  const idBytes = encoder.encode(id);
  if (idBytes.length > 0xffff) throw new Error(`forwarded proposal id is ${idBytes.length} bytes, at most 65535`);
  const out = new Uint8Array(3 + idBytes.length + payload.length);
  out[0] = MARK;
  out[1] = idBytes.length >> 8;
  out[2] = idBytes.length & 0xff;
  out.set(idBytes, 3);
  out.set(payload, 3 + idBytes.length);
  return out;
}

/** The request id (when forwarded) and the application's bytes of an entry. */
export function unwrapEntry(data: Uint8Array): { id: string | undefined; payload: Uint8Array } {
  if (!isEnveloped(data)) return { id: undefined, payload: data };
  if (data.length < 3) return { id: undefined, payload: data };
  const len = ((data[1] as number) << 8) | (data[2] as number);
  if (3 + len > data.length) return { id: undefined, payload: data };
  return { id: decoder.decode(data.subarray(3, 3 + len)), payload: data.subarray(3 + len) };
}
