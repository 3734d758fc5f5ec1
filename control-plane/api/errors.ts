// Maps internal failures to gRPC status codes with messages a user can act on.
import * as grpc from '@grpc/grpc-js';

import { capErrorMessage } from '../../common/resources/limits.js';

/** An error a client is meant to read: its message is at most 4 KiB (limits.ts), cut with a note. */
export class ApiError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(capErrorMessage(message));
    this.name = 'ApiError';
  }
}

export function invalidArgument(message: string): ApiError {
  return new ApiError(grpc.status.INVALID_ARGUMENT, message);
}

export function notFound(message: string): ApiError {
  return new ApiError(grpc.status.NOT_FOUND, message);
}

/** The error's gRPC code: ApiError's own, NOT_FOUND/ALREADY_EXISTS/ABORTED for store errors by name, else INTERNAL. */
export function grpcCodeOf(err: unknown): grpc.status {
  if (err instanceof ApiError) return err.code;
  const name = err instanceof Error ? err.name : '';
  if (name === 'NotFoundError') return grpc.status.NOT_FOUND;
  if (name === 'AlreadyExistsError') return grpc.status.ALREADY_EXISTS;
  if (name === 'ConflictError') return grpc.status.ABORTED;
  if (name === 'CompactedError') return grpc.status.OUT_OF_RANGE;
  return grpc.status.INTERNAL;
}

/** The error as gRPC sends it; whatever threw it, the message is capped like an ApiError's. */
export function toServiceError(err: unknown): grpc.ServiceError {
  const message = capErrorMessage(err instanceof Error ? err.message : String(err));
  const serviceError = Object.assign(new Error(message), {
    code: grpcCodeOf(err),
    details: message,
    metadata: new grpc.Metadata(),
  });
  return serviceError;
}
