// Seed 003 (a session server): its session metadata, event log and checkpoint
// annotations kept in chatstore. A session's name is its id (the server's sessions are
// named by the caller); its events are chatstore events of the same kinds, numbered
// by chatstore's gap-free event seq; an annotation is a checkpoint at an event seq.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";

import {
  type Checkpoint,
  type ChatStoreClient,
  type Event,
  type EventSchema,
  NotFound,
  type Session,
} from "@chatstore/client";
import type { MessageInitShape } from "@bufbuild/protobuf";

export interface SessionMetadata {
  id: string;
  name: string;
  created: Date;
  lastAccessed: Date;
  eventCount: number;
  checkpointCount: number;
  size: number;
}

export type SessionEvent =
  | { type: "session"; version: number; id: string; created: string }
  | { type: "input"; seq: number; code: string; timestamp: string }
  | { type: "output"; seq: number; value: string; timestamp: string }
  | { type: "checkpoint"; seq: number; reason: string; stateId: string }
  | { type: "llm_req"; seq: number; prompt: string; receiptKey: string }
  | { type: "llm_resp"; seq: number; response: string; receiptKey: string }
  | { type: "error"; seq: number; message: string; timestamp: string };

export interface CheckpointAnnotation {
  checkpointSeq: number;
  label: string;
  description: string;
  tags: string[];
  created: Date;
}

/** The log's version in its `session` header. */
export const LOG_VERSION = 1;

const date = (time: Timestamp | undefined): Date => (time ? timestampDate(time) : new Date(0));

function metadata(session: Session): SessionMetadata {
  return {
    id: session.id,
    name: session.title,
    created: date(session.createTime),
    // chatstore records writes, not reads: the last write stands for the last access.
    lastAccessed: date(session.updateTime),
    eventCount: Number(session.eventCount),
    checkpointCount: Number(session.checkpointCount),
    // chatstore counts the UTF-8 bytes of message text (size_bytes); events are not counted.
    size: Number(session.sizeBytes),
  };
}

type EventInit = MessageInitShape<typeof EventSchema>;

/** A logged event (not the `session` header) as chatstore's event. */
function toEvent(event: Exclude<SessionEvent, { type: "session" }>): EventInit {
  const at = (iso: string) => timestampFromDate(new Date(iso));
  switch (event.type) {
    case "input":
      return { createTime: at(event.timestamp), payload: { case: "input", value: { content: event.code } } };
    case "output":
      return { createTime: at(event.timestamp), payload: { case: "output", value: { content: event.value } } };
    case "error":
      return { createTime: at(event.timestamp), payload: { case: "error", value: { message: event.message } } };
    case "checkpoint":
      return { payload: { case: "checkpoint", value: { reason: event.reason, stateId: event.stateId } } };
    case "llm_req":
      return { payload: { case: "llmRequest", value: { prompt: event.prompt, receiptKey: event.receiptKey } } };
    case "llm_resp":
      return { payload: { case: "llmResponse", value: { response: event.response, receiptKey: event.receiptKey } } };
  }
}

function fromEvent(event: Event): SessionEvent {
  const seq = Number(event.seq);
  const timestamp = date(event.createTime).toISOString();
  const payload = event.payload;
  switch (payload.case) {
    case "input":
      return { type: "input", seq, code: payload.value.content, timestamp };
    case "output":
      return { type: "output", seq, value: payload.value.content, timestamp };
    case "error":
      return { type: "error", seq, message: payload.value.message, timestamp };
    case "checkpoint":
      return { type: "checkpoint", seq, reason: payload.value.reason, stateId: payload.value.stateId };
    case "llmRequest":
      return { type: "llm_req", seq, prompt: payload.value.prompt, receiptKey: payload.value.receiptKey };
    case "llmResponse":
      return { type: "llm_resp", seq, response: payload.value.response, receiptKey: payload.value.receiptKey };
    default:
      throw new Error(`event ${seq} has no seed 003 kind (${String(payload.case)})`);
  }
}

function annotation(checkpoint: Checkpoint): CheckpointAnnotation {
  return {
    checkpointSeq: Number(checkpoint.eventSeq),
    label: checkpoint.label,
    description: checkpoint.description,
    tags: [...checkpoint.tags],
    created: date(checkpoint.createTime),
  };
}

/** Seed 003's persistence, on chatstore (the client's tenant is the session server). */
export class SessionLog {
  constructor(private readonly store: ChatStoreClient) {}

  /** Open a named session, creating it if new. */
  async open(name: string): Promise<SessionMetadata> {
    try {
      return metadata(await this.store.rpc.getSession({ sessionId: name }));
    } catch (error) {
      if (!(error instanceof NotFound)) throw error;
      return metadata(await this.store.rpc.createSession({ sessionId: name, session: { title: name } }));
    }
  }

  async metadata(name: string): Promise<SessionMetadata | null> {
    try {
      return metadata(await this.store.rpc.getSession({ sessionId: name }));
    } catch (error) {
      if (error instanceof NotFound) return null;
      throw error;
    }
  }

  /**
   * Append events. `expectedSeq` (the seq of the last event the writer saw) makes a
   * second writer's append fail with ABORTED (read again, then retry) instead of interleaving.
   */
  async append(name: string, events: Exclude<SessionEvent, { type: "session" }>[], expectedSeq?: number): Promise<void> {
    await this.store.rpc.appendEvents({
      sessionId: name,
      events: events.map(toEvent),
      expectedLastEventSeq: expectedSeq === undefined ? undefined : BigInt(expectedSeq),
    });
  }

  /** The whole log: the `session` header, then every event in seq order. */
  async read(name: string): Promise<SessionEvent[]> {
    const session = await this.store.rpc.getSession({ sessionId: name });
    const log: SessionEvent[] = [
      { type: "session", version: LOG_VERSION, id: session.id, created: date(session.createTime).toISOString() },
    ];
    for await (const event of this.store.listEvents({ sessionId: name })) log.push(fromEvent(event));
    return log;
  }

  /** Annotate the log at `checkpointSeq` (0: its newest event). */
  async annotate(name: string, checkpointSeq: number, note: Omit<CheckpointAnnotation, "checkpointSeq" | "created">): Promise<CheckpointAnnotation> {
    const checkpoint = await this.store.rpc.createCheckpoint({
      sessionId: name,
      checkpoint: { eventSeq: BigInt(checkpointSeq), label: note.label, description: note.description, tags: note.tags },
    });
    return annotation(checkpoint);
  }

  async annotations(name: string): Promise<CheckpointAnnotation[]> {
    const found: CheckpointAnnotation[] = [];
    for await (const checkpoint of this.store.listCheckpoints({ sessionId: name })) found.push(annotation(checkpoint));
    return found;
  }
}
