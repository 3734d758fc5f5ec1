// Reading the replies Tessera asks for: the RTM_NEWLINK that answers a RTM_GETLINK.

import * as K from './constants.js';
import { parseAttributes } from './wire.js';

export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  mtu: number | undefined;
}

/** Parses an RTM_NEWLINK message; throws when the bytes are not one. */
export function parseLink(reply: Buffer): LinkInfo {
  const minimum = K.NLMSG_HDRLEN + K.IFINFOMSG_LEN;
  if (reply.length < minimum || reply.readUInt16LE(4) !== K.RTM_NEWLINK) {
    throw new Error(`netlink reply is not an RTM_NEWLINK message (${reply.length} bytes, type ${reply.length >= 6 ? reply.readUInt16LE(4) : -1})`);
  }
  const attributes = parseAttributes(reply.subarray(0, Math.min(reply.length, reply.readUInt32LE(0))), minimum);
  const name = attributes.get(K.IFLA_IFNAME);
  const mtu = attributes.get(K.IFLA_MTU);
  return {
    index: reply.readInt32LE(K.NLMSG_HDRLEN + 4),
    name: name === undefined ? '' : name.toString('utf8').replace(/\0.*$/s, ''),
    flags: reply.readUInt32LE(K.NLMSG_HDRLEN + 8),
    mtu: mtu !== undefined && mtu.length >= 4 ? mtu.readUInt32LE(0) : undefined,
  };
}
