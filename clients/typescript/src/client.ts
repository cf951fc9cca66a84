// The typed chatstore client for TypeScript: the generated SessionService client over
// Connect's gRPC transport (HTTP/2), with what every chatstore client does (see
// docs/clients.md): a default tenant and API key, a deadline per call, retries of
// UNAVAILABLE only where the contract allows, errors as classes per status code,
// pagers as AsyncIterables, and a watch that resumes where it left off.
import { randomUUID } from "node:crypto";

import type { MessageInitShape } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { type CallOptions, type Client, Code, ConnectError, type Interceptor, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import type { Checkpoint } from "../gen/chatstore/v1/checkpoint_pb.js";
import type { Event } from "../gen/chatstore/v1/event_pb.js";
import type { Message } from "../gen/chatstore/v1/message_pb.js";
import type { Session } from "../gen/chatstore/v1/session_pb.js";
import {
  type ListCheckpointsRequestSchema,
  type ListEventsRequestSchema,
  type ListMessagesRequestSchema,
  type ListSessionsRequestSchema,
  SessionService,
  type WatchSessionResponse,
} from "../gen/chatstore/v1/session_service_pb.js";
import { type ChatStoreError, ResourceExhausted, Unavailable, toChatStoreError } from "./errors.js";

/** The generated client of every SessionService RPC (request fields in camelCase). */
export type SessionServiceClient = Client<typeof SessionService>;

/** How UNAVAILABLE is retried: exponential backoff with full jitter, within the deadline. */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 6; 1 turns retries off). */
  maxAttempts: number;
  /** The first pause's upper bound, in milliseconds (default 200). */
  initialBackoffMs: number;
  /** No pause's upper bound exceeds this, in milliseconds (default 5,000). */
  maxBackoffMs: number;
  /** Each pause's bound grows by this factor (default 2). */
  multiplier: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = {
  maxAttempts: 6,
  initialBackoffMs: 200,
  maxBackoffMs: 5_000,
  multiplier: 2,
};

/** TLS settings: PEM text or bytes. A `cert` and `key` present a client certificate (mTLS). */
export interface TlsOptions {
  /** The CA bundle to verify the server by; the system's roots when absent. */
  ca?: string | Uint8Array;
  /** The client certificate chain (mTLS), with `key`. */
  cert?: string | Uint8Array;
  /** The private key of `cert`. */
  key?: string | Uint8Array;
}

export interface ChatStoreOptions {
  /** The server's host:port; CHATSTORE_TARGET when absent, else 127.0.0.1:50051. */
  target?: string;
  /** The tenant every call acts for unless its request names one; CHATSTORE_TENANT when absent. */
  tenantId?: string;
  /** Sent as `authorization: Bearer <apiKey>` (an API key or a JWT); CHATSTORE_API_KEY when absent; "" sends none. */
  apiKey?: string;
  /** Connect with TLS: `true` (system roots) or the certificates. Plaintext when absent. */
  tls?: boolean | TlsOptions;
  /** Default deadline of each call, in milliseconds (default 10,000); 0 waits forever. A call's own `timeoutMs` beats it. */
  timeoutMs?: number;
  /** How UNAVAILABLE is retried (default `DEFAULT_RETRY`); `false` turns retries off. */
  retry?: Partial<RetryPolicy> | false;
  /** Connect interceptors to run on every call (after the client's own). */
  interceptors?: Interceptor[];
}

const DEFAULT_TARGET = "127.0.0.1:50051";
const DEFAULT_TIMEOUT_MS = 10_000;
const WATCH_ATTEMPTS = 12;
const SAFE = new Set([
  MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
  MethodOptions_IdempotencyLevel.IDEMPOTENT,
]);

type Method = (typeof SessionService.methods)[number];

/** Whether the contract lets a call of `method` be repeated: marked idempotent, or it carries a request id. */
function retryable(method: Method): boolean {
  return SAFE.has(method.idempotency) || "requestId" in method.input.field;
}

/**
 * `raw` as a ChatStoreError. A CANCELLED the caller did not ask for (its `signal` did
 * not abort) is the connection going away under the call: Node's HTTP/2 reports a cut
 * connection as a stream reset with CANCEL, which Connect maps to CANCELLED; gRPC's
 * own clients say UNAVAILABLE, and so does this one, so it is retried where allowed.
 */
function classify(raw: unknown, signal: AbortSignal | undefined): ChatStoreError {
  const error = toChatStoreError(raw);
  if (error.code === Code.Canceled && !signal?.aborted) {
    return new Unavailable(new ConnectError(error.message, Code.Unavailable, undefined, undefined, error));
  }
  return error;
}

function pem(value: string | Uint8Array | undefined): string | Buffer | undefined {
  return value === undefined || typeof value === "string" ? value : Buffer.from(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A chatstore client.
 *
 * `rpc` has every SessionService RPC, typed from the protos (int64 fields are
 * `bigint`). On every call the client fills `tenantId` when the request leaves it
 * empty, and `requestId` of appends and other calls that take one (a UUID), so a
 * retry is recognized; sends the API key; applies the default deadline; retries
 * UNAVAILABLE for the calls the contract marks safe to repeat; and throws a
 * `ChatStoreError` subclass (`NotFound`, `InvalidArgument`, ...) on failure.
 */
export class ChatStoreClient {
  /** Every RPC of SessionService. */
  readonly rpc: SessionServiceClient;
  /** The default tenant ("" when none: then every request must name its tenant). */
  readonly tenantId: string;
  private readonly retry: RetryPolicy;
  private readonly timeoutMs: number;

  constructor(options: ChatStoreOptions = {}) {
    const env = process.env;
    const target = options.target || env.CHATSTORE_TARGET || DEFAULT_TARGET;
    this.tenantId = options.tenantId ?? env.CHATSTORE_TENANT ?? "";
    const apiKey = options.apiKey ?? env.CHATSTORE_API_KEY ?? "";
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retry =
      options.retry === false ? { ...DEFAULT_RETRY, maxAttempts: 1 } : { ...DEFAULT_RETRY, ...options.retry };
    const tls = options.tls === true ? {} : options.tls || undefined;
    const authorize: Interceptor = (next) => (request) => {
      if (apiKey) request.header.set("authorization", `Bearer ${apiKey}`);
      return next(request);
    };
    const transport = createGrpcTransport({
      baseUrl: `${tls ? "https" : "http"}://${target}`,
      nodeOptions: tls ? { ca: pem(tls.ca), cert: pem(tls.cert), key: pem(tls.key) } : {},
      interceptors: [authorize, ...(options.interceptors ?? [])],
    });
    const generated = createClient(SessionService, transport);
    const wrapped: Record<string, unknown> = {};
    for (const method of SessionService.methods) {
      const call = (generated as Record<string, unknown>)[method.localName] as (
        request: Record<string, unknown>,
        options?: CallOptions,
      ) => unknown;
      wrapped[method.localName] =
        method.methodKind === "unary"
          ? (request: Record<string, unknown>, callOptions?: CallOptions) =>
              this.unary(method, call, request, callOptions)
          : (request: Record<string, unknown>, callOptions?: CallOptions) =>
              this.stream(method, call, request, callOptions);
    }
    this.rpc = wrapped as SessionServiceClient;
  }

  /** A pause (ms) after `attempt` failures in a row: full jitter under an exponential bound. */
  private backoff(attempt: number): number {
    const bound = Math.min(this.retry.maxBackoffMs, this.retry.initialBackoffMs * this.retry.multiplier ** attempt);
    return Math.random() * bound;
  }

  private prepare(method: Method, request: Record<string, unknown>): Record<string, unknown> {
    const filled = { ...request };
    if (!filled.tenantId && this.tenantId && "tenantId" in method.input.field) filled.tenantId = this.tenantId;
    if (!filled.requestId && "requestId" in method.input.field) filled.requestId = randomUUID();
    return filled;
  }

  private withDeadline(callOptions: CallOptions | undefined): CallOptions {
    const timeoutMs = callOptions?.timeoutMs ?? (this.timeoutMs || undefined);
    return { ...callOptions, timeoutMs };
  }

  private async unary(
    method: Method,
    call: (request: Record<string, unknown>, options?: CallOptions) => unknown,
    request: Record<string, unknown>,
    callOptions: CallOptions | undefined,
  ): Promise<unknown> {
    const filled = this.prepare(method, request);
    const options = this.withDeadline(callOptions);
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    const attempts = retryable(method) ? this.retry.maxAttempts : 1;
    for (let attempt = 0; ; attempt++) {
      try {
        const left = deadline === Infinity ? undefined : Math.max(deadline - Date.now(), 1);
        return await call(filled, { ...options, timeoutMs: left });
      } catch (raw) {
        const error = classify(raw, options.signal);
        if (!(error instanceof Unavailable) || attempt + 1 >= attempts) throw error;
        const pause = this.backoff(attempt);
        if (Date.now() + pause >= deadline) throw error;
        await sleep(pause);
      }
    }
  }

  private async *stream(
    method: Method,
    call: (request: Record<string, unknown>, options?: CallOptions) => unknown,
    request: Record<string, unknown>,
    callOptions: CallOptions | undefined,
  ): AsyncIterable<unknown> {
    try {
      // Streams have no default deadline: a watch lasts as long as its caller wants.
      yield* call(this.prepare(method, request), callOptions) as AsyncIterable<unknown>;
    } catch (raw) {
      throw classify(raw, callOptions?.signal);
    }
  }

  /** Every session of a tenant that `request` selects, newest first, page after page. */
  listSessions(request: MessageInitShape<typeof ListSessionsRequestSchema> = {}): AsyncIterable<Session> {
    return pages(request, (page) => this.rpc.listSessions(page), (r) => r.sessions);
  }

  /** A session's messages that `request` selects, page after page. */
  listMessages(request: MessageInitShape<typeof ListMessagesRequestSchema>): AsyncIterable<Message> {
    return pages(request, (page) => this.rpc.listMessages(page), (r) => r.messages);
  }

  /** A session's events that `request` selects, page after page. */
  listEvents(request: MessageInitShape<typeof ListEventsRequestSchema>): AsyncIterable<Event> {
    return pages(request, (page) => this.rpc.listEvents(page), (r) => r.events);
  }

  /** A session's checkpoints that `request` selects, page after page. */
  listCheckpoints(request: MessageInitShape<typeof ListCheckpointsRequestSchema>): AsyncIterable<Checkpoint> {
    return pages(request, (page) => this.rpc.listCheckpoints(page), (r) => r.checkpoints);
  }

  /**
   * Follow a session: the messages after `fromSeq` (0: from the start), then every
   * change as it happens. When the stream ends with UNAVAILABLE (a server shut down
   * or restarted) or RESOURCE_EXHAUSTED (the watcher fell behind), it is opened again
   * from the last message seq received, with the retry policy's backoff, so no
   * message is missed or repeated. Ends when `signal` aborts (or the server ends it).
   * `maxAttempts` (default 12) bounds the openings in a row that fail: with the retry
   * policy's backoff (at most 5 s each), a server may be away for about half a minute.
   */
  async *watch(
    sessionId: string,
    options: { fromSeq?: bigint; tenantId?: string; signal?: AbortSignal; maxAttempts?: number } = {},
  ): AsyncIterable<WatchSessionResponse> {
    let fromSeq = options.fromSeq ?? 0n;
    let failures = 0;
    const attempts = options.maxAttempts ?? WATCH_ATTEMPTS;
    for (;;) {
      try {
        const changes = this.rpc.watchSession(
          { sessionId, fromSeq, tenantId: options.tenantId ?? "" },
          { signal: options.signal },
        );
        for await (const change of changes) {
          failures = 0;
          if (change.change.case === "message") fromSeq = change.change.value.seq;
          yield change;
        }
        return;
      } catch (error) {
        if (options.signal?.aborted) return;
        const resumable = error instanceof Unavailable || error instanceof ResourceExhausted;
        if (!resumable || failures + 1 >= attempts) throw error;
        await sleep(this.backoff(failures));
        failures += 1;
      }
    }
  }
}

async function* pages<Request extends { pageToken?: string }, Response extends { nextPageToken: string }, Item>(
  request: Request,
  fetch: (request: Request) => Promise<Response>,
  items: (response: Response) => Item[],
): AsyncIterable<Item> {
  let pageToken = request.pageToken ?? "";
  do {
    const response = await fetch({ ...request, pageToken });
    yield* items(response);
    pageToken = response.nextPageToken;
  } while (pageToken);
}

