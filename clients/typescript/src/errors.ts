// Errors as classes per gRPC status code, carrying the google.rpc details chatstore
// sends: the ErrorInfo reason (a stable, machine-readable cause such as
// SESSION_NOT_FOUND), its metadata, and the BadRequest field violations.
import { Code, ConnectError } from "@connectrpc/connect";

import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

/** One wrong field of a request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  /** The field's path, e.g. `messages[0].role`. */
  field: string;
  /** What is wrong with it. */
  description: string;
}

/** A failed chatstore call. `instanceof` the subclass of its status code. */
export class ChatStoreError extends Error {
  /** The gRPC status code (Connect's `Code`, numbered as gRPC numbers them). */
  readonly code: Code;
  /** ErrorInfo.reason, e.g. "SESSION_NOT_FOUND"; "" when the server sent none. */
  readonly reason: string;
  /** ErrorInfo.domain: "chatstore" for the server's own errors. */
  readonly domain: string;
  /** ErrorInfo.metadata, e.g. { session_id: "..." }. */
  readonly metadata: Readonly<Record<string, string>>;
  /** BadRequest.field_violations, for INVALID_ARGUMENT. */
  readonly fieldViolations: readonly FieldViolation[];
  /** The server's request id (the `x-request-id` trailer), to find the call in its logs. */
  readonly requestId: string;

  constructor(error: ConnectError) {
    super(error.rawMessage, { cause: error });
    this.name = new.target.name;
    this.code = error.code;
    const [info] = error.findDetails(ErrorInfoSchema);
    this.reason = info?.reason ?? "";
    this.domain = info?.domain ?? "";
    this.metadata = { ...(info?.metadata ?? {}) };
    this.fieldViolations = error
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
    this.requestId = error.metadata.get("x-request-id") ?? "";
  }
}

export class Cancelled extends ChatStoreError {}
export class Unknown extends ChatStoreError {}
export class InvalidArgument extends ChatStoreError {}
export class DeadlineExceeded extends ChatStoreError {}
export class NotFound extends ChatStoreError {}
export class AlreadyExists extends ChatStoreError {}
export class PermissionDenied extends ChatStoreError {}
export class ResourceExhausted extends ChatStoreError {}
export class FailedPrecondition extends ChatStoreError {}
export class Aborted extends ChatStoreError {}
export class OutOfRange extends ChatStoreError {}
export class Unimplemented extends ChatStoreError {}
export class Internal extends ChatStoreError {}
export class Unavailable extends ChatStoreError {}
export class DataLoss extends ChatStoreError {}
export class Unauthenticated extends ChatStoreError {}

const CLASSES: Record<Code, new (error: ConnectError) => ChatStoreError> = {
  [Code.Canceled]: Cancelled,
  [Code.Unknown]: Unknown,
  [Code.InvalidArgument]: InvalidArgument,
  [Code.DeadlineExceeded]: DeadlineExceeded,
  [Code.NotFound]: NotFound,
  [Code.AlreadyExists]: AlreadyExists,
  [Code.PermissionDenied]: PermissionDenied,
  [Code.ResourceExhausted]: ResourceExhausted,
  [Code.FailedPrecondition]: FailedPrecondition,
  [Code.Aborted]: Aborted,
  [Code.OutOfRange]: OutOfRange,
  [Code.Unimplemented]: Unimplemented,
  [Code.Internal]: Internal,
  [Code.Unavailable]: Unavailable,
  [Code.DataLoss]: DataLoss,
  [Code.Unauthenticated]: Unauthenticated,
};

/** `error` as the ChatStoreError subclass of its code (anything else as Unknown). */
export function toChatStoreError(error: unknown): ChatStoreError {
  if (error instanceof ChatStoreError) return error;
  const connect = ConnectError.from(error);
  return new CLASSES[connect.code](connect);
}
