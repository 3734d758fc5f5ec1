// The bookkeeping every manager request to a node shares (control-plane/dispatcher/node-requests.ts):
// requests go to the node's current session, only that node may answer one, a replaced or ended
// session fails its node's requests (and only those) naming the node and why, and the end of an
// older, already replaced session changes nothing. The sessions are recorded send functions
// (what the dispatcher hands it); the requests are a minimal subclass that records its failures.
import test from 'ava';

import { NodeRequests, NodeUnavailableError } from '../../control-plane/dispatcher/node-requests.js';
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';

interface Asked {
  node: string;
  what: string;
}

class Recorded extends NodeRequests<Asked> {
  readonly failures: Array<{ what: string; error: NodeUnavailableError; id: number }> = [];

  ask(node: string, what: string): number {
    const send = this.sessionOf(node);
    const id = this.track({ node, what });
    send({ logCancel: { requestId: id } });
    return id;
  }

  answer(node: string, id: number): string | undefined {
    const request = this.answerable(id, node);
    if (request !== undefined) this.settle(id);
    return request?.what;
  }

  get count(): number {
    return this.inFlightCount;
  }

  protected failed(request: Asked, error: NodeUnavailableError, id: number): void {
    this.failures.push({ what: request.what, error, id });
  }
}

function recorder() {
  const sent: ManagerMessage[] = [];
  return { sent, send: (m: ManagerMessage) => void sent.push(m) };
}

test('a request goes to its node’s session and is answered only by that node, once', (t) => {
  const requests = new Recorded();
  const n2 = recorder();
  const n3 = recorder();
  requests.attach('node-2', n2.send);
  requests.attach('node-3', n3.send);
  const id = requests.ask('node-3', 'a');
  t.is(n2.sent.length, 0);
  t.is(n3.sent.length, 1);
  t.is(requests.answer('node-2', id), undefined, 'another node cannot answer it');
  t.is(requests.count, 1);
  t.is(requests.answer('node-3', id), 'a');
  t.is(requests.answer('node-3', id), undefined, 'an answered request is over');
  t.is(requests.count, 0);
  t.not(requests.ask('node-3', 'b'), id, 'ids are not reused');
});

test('without a session the request is refused naming the node', (t) => {
  const requests = new Recorded();
  t.throws(() => requests.ask('node-9', 'a'), {
    instanceOf: NodeUnavailableError,
    message: 'node node-9: no session with this manager (the node is down, or connected to another manager)',
  });
  t.is(requests.count, 0);
});

test('an ended or replaced session fails its node’s requests only; an older session ending changes nothing', (t) => {
  const requests = new Recorded();
  const old2 = recorder();
  const n3 = recorder();
  requests.attach('node-2', old2.send);
  requests.attach('node-3', n3.send);
  const first = requests.ask('node-2', 'a');
  requests.ask('node-3', 'b');
  const new2 = recorder();
  requests.attach('node-2', new2.send);
  t.deepEqual(
    requests.failures.map((f) => [f.what, f.id, f.error.node, f.error.message]),
    [['a', first, 'node-2', 'node node-2: its session was replaced']],
  );
  const second = requests.ask('node-2', 'c');
  t.is(new2.sent.length, 1);
  requests.detach('node-2', 'its session with this manager ended', old2.send);
  t.is(requests.failures.length, 1, 'the replaced session’s end fails nothing of the new one');
  t.is(requests.count, 2);
  requests.detach('node-2', 'its session with this manager ended', new2.send);
  t.deepEqual(
    requests.failures.slice(1).map((f) => [f.what, f.id, f.error.message]),
    [['c', second, 'node node-2: its session with this manager ended']],
  );
  t.is(requests.count, 1, 'node-3’s request is still in flight');
  t.throws(() => requests.ask('node-2', 'd'), { instanceOf: NodeUnavailableError });
});
