// Size limits on everything a user can send, in one place so the CLI, the schema, the API server
// and the controllers agree. Each exists because, without it, one request could stall the manager's
// event loop (which also carries Raft heartbeats) or make it build unbounded errors and objects.

/** Desired tasks of one service: Apply and Scale refuse more, and the controller never acts on more. */
export const MAX_REPLICAS = 100_000;

/** Any name a request carries (object, stack, reference): a DNS name's limit, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 253;

/** Whether a name is over MAX_NAME_BYTES of UTF-8 (a long one is refused before its bytes are counted). */
export function isNameTooLong(name: string): boolean {
  // A string of n UTF-16 units has at least n UTF-8 bytes.
  return name.length > MAX_NAME_BYTES || Buffer.byteLength(name) > MAX_NAME_BYTES;
}

/** One API request, in bytes: the API server's gRPC receive limit and Apply's own check. */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/** Decoded data of one Secret or Config (Swarm's limit). */
export const MAX_FILE_OBJECT_BYTES = 500 * 1024;

/** An error message returned to a client, in UTF-8 bytes; longer ones are cut with a note. */
export const MAX_ERROR_MESSAGE_BYTES = 4 * 1024;

/** Keys longer than this get no "did you mean" hint: the edit distance costs length × length. */
export const MAX_SUGGESTION_KEY_LENGTH = 64;

/** How much of a long name or key an error message quotes. */
const QUOTED_NAME_CHARS = 64;

/** The string as an error quotes it: JSON-quoted, and cut in the middle beyond 64 characters. */
export function quoteName(name: string): string {
  if (name.length <= QUOTED_NAME_CHARS) return JSON.stringify(name);
  const keep = QUOTED_NAME_CHARS / 2;
  return `${JSON.stringify(name.slice(0, keep))}…${JSON.stringify(name.slice(-keep))} (${name.length} characters)`;
}

/** Bytes of base64 data once decoded (the caller has checked it is base64). */
export function decodedSize(base64: string): number {
  const padding = base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0;
  return (base64.length / 4) * 3 - padding;
}

/**
 * The message cut to at most MAX_ERROR_MESSAGE_BYTES of UTF-8, ending with a note of how much was
 * cut, so a client always learns that there was more.
 */
export function capErrorMessage(message: string, maxBytes = MAX_ERROR_MESSAGE_BYTES): string {
  // Cheap exit first: a string of n UTF-16 units has at most 3n UTF-8 bytes.
  if (message.length * 3 <= maxBytes || Buffer.byteLength(message) <= maxBytes) return message;
  const total = Buffer.byteLength(message);
  const note = (cut: number) => `… [${cut} more bytes of this message cut]`;
  // Room for the longest note this message can need.
  const room = maxBytes - Buffer.byteLength(note(total));
  // Cut on a character boundary: take code points until the budget is spent.
  let bytes = 0;
  let end = 0;
  for (const char of message) {
    const size = Buffer.byteLength(char);
    if (bytes + size > room) break;
    bytes += size;
    end += char.length;
  }
  return `${message.slice(0, end)}${note(total - bytes)}`;
}
