// One etcd member (Debian's etcd-server) inside a network namespace, serving clients on `clientUrl`
// (an address of that namespace, so nodes in other namespaces on the same underlay reach it). The
// caller stops it by its ChildProcess (never by name) and removes `dataDir`.
import { spawn, type ChildProcess } from 'node:child_process';

import { ETCD_BINARY } from './etcd.js';

export function spawnEtcdInNetns(netns: string, clientUrl: string, dataDir: string): ChildProcess {
  const args = ['--data-dir', dataDir, '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl, '--listen-peer-urls', 'http://127.0.0.1:2380'];
  return spawn('nsenter', [`--net=/run/netns/${netns}`, ETCD_BINARY, ...args], { stdio: 'ignore' });
}
