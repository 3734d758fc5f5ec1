// The first check on tsd's TLS port, before any handler or message: a call without a verified
// client certificate of the cluster's CA is ended with UNAUTHENTICATED at its headers, unless its
// method is one a certificate-less caller may use (NodeCA.Join, where the join token is the
// credential). Handlers still authenticate and authorise every call themselves; this only keeps
// anonymous callers from reaching them at all.
import * as grpc from '@grpc/grpc-js';

export const JOIN_METHOD = '/tessera.dispatcher.v1.NodeCA/Join';

/**
 * `onRefused` hears each call ended here (the audit log records attempted changes); the request
 * itself is never read, so only the method and the peer are known.
 */
export function certificateRequiredAtTheDoor(
  onRefused: (path: string, peer: string, reason: string) => void = () => {},
  openMethods: ReadonlySet<string> = new Set([JOIN_METHOD]),
): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, passOn) => {
            if (openMethods.has(method.path) || call.getAuthContext().sslPeerCertificate !== undefined) {
              passOn(metadata);
              return;
            }
            const reason = `${method.path} needs a client certificate from this cluster's CA (none was presented, or it did not verify)`;
            onRefused(method.path, call.getPeer(), reason);
            call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: reason, metadata: new grpc.Metadata() });
          },
        });
      },
    });
}
