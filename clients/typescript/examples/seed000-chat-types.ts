// Seed 000 (a Nuxt interview app): its ChatSession and ChatMessage kept in chatstore.
// The organization is the tenant; the session and message ids are the app's own
// (UUIDs); `timestamp` is the message's create_time; `tokensUsed` its token_count.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";

import { type ChatStoreClient, type Message, NotFound, Role } from "@chatstore/client";

export interface ChatMessage {
  id: string;
  role: "user" | "agent";
  content: string;
  timestamp: Date;
  tokensUsed?: number;
}

export interface ChatSession {
  id: string;
  agentId: string;
  organizationId: string;
  messages: ChatMessage[];
  createdAt: Date;
  updatedAt: Date;
}

const ROLES = { user: Role.USER, agent: Role.ASSISTANT } as const;

function toChatMessage(message: Message): ChatMessage {
  const chat: ChatMessage = {
    id: message.id,
    role: message.role === Role.USER ? "user" : "agent",
    content: message.content,
    timestamp: message.createTime ? timestampDate(message.createTime) : new Date(0),
  };
  if (message.tokenCount !== undefined) chat.tokensUsed = message.tokenCount;
  return chat;
}

/** Seed 000's persistence, on chatstore. */
export class ChatSessionStore {
  constructor(private readonly store: ChatStoreClient) {}

  /** A new, empty session with the app's id. */
  async create(organizationId: string, agentId: string, id: string): Promise<ChatSession> {
    const session = await this.store.rpc.createSession({ tenantId: organizationId, sessionId: id, session: { agentId } });
    return { id, agentId, organizationId, messages: [], createdAt: timestampDate(session.createTime!), updatedAt: timestampDate(session.updateTime!) };
  }

  /** Append messages, keeping their ids, times and token counts. */
  async append(session: ChatSession, messages: ChatMessage[]): Promise<void> {
    await this.store.rpc.appendMessages({
      tenantId: session.organizationId,
      sessionId: session.id,
      messages: messages.map((m) => ({
        id: m.id,
        role: ROLES[m.role],
        content: m.content,
        createTime: timestampFromDate(m.timestamp),
        tokenCount: m.tokensUsed,
      })),
    });
  }

  /** The session with every message, or null when there is none. */
  async load(organizationId: string, id: string): Promise<ChatSession | null> {
    try {
      const session = await this.store.rpc.getSession({ tenantId: organizationId, sessionId: id });
      const messages: ChatMessage[] = [];
      for await (const message of this.store.listMessages({ tenantId: organizationId, sessionId: id })) {
        messages.push(toChatMessage(message));
      }
      return {
        id,
        agentId: session.agentId,
        organizationId,
        messages,
        createdAt: timestampDate(session.createTime!),
        updatedAt: timestampDate(session.updateTime!),
      };
    } catch (error) {
      if (error instanceof NotFound) return null;
      throw error;
    }
  }
}
