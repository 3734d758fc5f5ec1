import test from 'ava';
import { ReconnectPolicy } from '../../agent/session/reconnect-policy.js';

const M: [string, string, string] = ['10.0.0.1:7420', '10.0.0.2:7420', '10.0.0.3:7420'];
const options = { minDelayMs: 200, maxDelayMs: 2000 };

test('goes round the managers at the shortest delay, doubling only after a whole round failed', (t) => {
  const p = new ReconnectPolicy(M, options);
  t.is(p.current(), M[0]);
  const attempts = Array.from({ length: 9 }, () => p.failed('Connection dropped'));
  t.deepEqual(
    attempts.map((a) => a.address),
    [M[1], M[2], M[0], M[1], M[2], M[0], M[1], M[2], M[0]],
  );
  t.deepEqual(
    attempts.map((a) => a.delayMs),
    [200, 200, 200, 400, 400, 400, 800, 800, 800],
  );
});

test('the delay is capped', (t) => {
  const p = new ReconnectPolicy(M, options);
  for (let i = 0; i < 30; i++) p.failed('x');
  t.is(p.failed('x').delayMs, 2000);
});

test('a follower naming the leader sends the next attempt there', (t) => {
  const p = new ReconnectPolicy(M, options);
  t.is(p.failed('not the leader, leader is node-3 at 10.0.0.3:7420').address, M[2]);
  // A hint naming the manager that just failed is ignored.
  t.is(p.failed('not the leader, leader is node-3 at 10.0.0.3:7420').address, M[0]);
  // One not in the list (a manager that joined since) is added and tried: the connection proves it a manager of the cluster or fails.
  t.is(p.failed('not the leader, leader is node-9 at 10.0.0.9:7420').address, '10.0.0.9:7420');
});

test('a hint naming a manager that could not be reached is stale: the others are tried', (t) => {
  const p = new ReconnectPolicy(M, options);
  // M[0] (the leader) died; M[1] still names it until a new leader is elected.
  t.is(p.failed('Connection dropped').address, M[1]);
  t.is(p.failed('not the leader, leader is node-1 at 10.0.0.1:7420').address, M[2]);
  t.is(p.failed('no leader is known yet').address, M[0]);
  // A round later (the delay has grown), a follower names the new leader: it is tried at once.
  p.failed('Connection dropped');
  p.failed('no leader is known yet');
  t.deepEqual(p.failed('not the leader, leader is node-2 at 10.0.0.2:7420'), { address: M[1], delayMs: 200 });
});

test('a session resets the delay and adopts the managers the manager announced', (t) => {
  const p = new ReconnectPolicy([M[0]], options);
  for (let i = 0; i < 5; i++) p.failed('x');
  p.connected([M[2], M[0], M[1]]);
  t.is(p.current(), M[0], 'still the manager it is connected to');
  t.deepEqual(p.failed('Connection dropped'), { address: M[1], delayMs: 200 });
});

test('needs at least one manager', (t) => {
  t.throws(() => new ReconnectPolicy([], options), { message: /no manager address/ });
});

test('a follower naming a leader this node has not heard of (it joined after the session began) adds it and goes there', (t) => {
  const policy = new ReconnectPolicy(['10.0.0.1:7420'], { minDelayMs: 100, maxDelayMs: 2000 });
  t.deepEqual(policy.failed('not the leader, leader is node2 at 10.0.0.2:7420'), { address: '10.0.0.2:7420', delayMs: 100 });
  t.deepEqual(policy.all(), ['10.0.0.2:7420', '10.0.0.1:7420']);
  t.deepEqual(
    policy.failed('not the leader, leader is node2 at not-an-address'),
    { address: '10.0.0.1:7420', delayMs: 100 },
    'a hint that is no address is not followed',
  );
});
