// Seed 004 (Paperclip): chat conversations and messages kept in chatstore. The company
// is the tenant; pinnedAt, archivedAt and deletedAt are the session's pin, archive and
// soft-delete times; a list item's lastMessagePreview is the session's; hasMore is
// whether a page token came back.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";

import { type ChatStoreClient, Inclusion, type Message, Role, type Session } from "@chatstore/client";

export interface ChatConversation {
  id: string;
  companyId: string;
  title: string | null;
  agentId: string | null;
  pinnedAt: string | null;
  archivedAt: string | null;
  deletedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface ChatConversationListItem {
  id: string;
  companyId: string;
  title: string | null;
  agentId: string | null;
  pinnedAt: string | null;
  archivedAt: string | null;
  updatedAt: string;
  lastMessagePreview: string | null;
}

export interface ChatMessage {
  id: string;
  conversationId: string;
  role: "user" | "assistant" | "system";
  content: string;
  agentId: string | null;
  createdAt: string;
}

export interface ChatConversationListResponse {
  items: ChatConversationListItem[];
  hasMore: boolean;
}

export interface ChatMessageListResponse {
  items: ChatMessage[];
  hasMore: boolean;
}

const iso = (time: Timestamp | undefined): string | null => (time ? timestampDate(time).toISOString() : null);
const ROLES = { user: Role.USER, assistant: Role.ASSISTANT, system: Role.SYSTEM } as const;
const NAMES: Record<number, ChatMessage["role"]> = { [Role.USER]: "user", [Role.ASSISTANT]: "assistant", [Role.SYSTEM]: "system" };

function conversation(session: Session): ChatConversation {
  return {
    id: session.id,
    companyId: session.tenantId,
    title: session.title || null,
    agentId: session.agentId || null,
    pinnedAt: iso(session.pinTime),
    archivedAt: iso(session.archiveTime),
    deletedAt: iso(session.deleteTime),
    createdAt: iso(session.createTime)!,
    updatedAt: iso(session.updateTime)!,
  };
}

function message(stored: Message, conversationId: string): ChatMessage {
  return {
    id: stored.id,
    conversationId,
    role: NAMES[stored.role] ?? "system",
    content: stored.content,
    agentId: stored.agentId || null,
    createdAt: iso(stored.createTime)!,
  };
}

/** Paperclip's chat persistence, on chatstore. */
export class PaperclipChats {
  constructor(private readonly store: ChatStoreClient) {}

  async create(companyId: string, init: { title?: string; agentId?: string }): Promise<ChatConversation> {
    const session = await this.store.rpc.createSession({
      tenantId: companyId,
      session: { title: init.title ?? "", agentId: init.agentId ?? "" },
    });
    return conversation(session);
  }

  async get(companyId: string, id: string): Promise<ChatConversation> {
    return conversation(await this.store.rpc.getSession({ tenantId: companyId, sessionId: id }));
  }

  async setPinned(companyId: string, id: string, pinned: boolean): Promise<ChatConversation> {
    const request = { tenantId: companyId, sessionId: id };
    return conversation(await (pinned ? this.store.rpc.pinSession(request) : this.store.rpc.unpinSession(request)));
  }

  async setArchived(companyId: string, id: string, archived: boolean): Promise<ChatConversation> {
    const request = { tenantId: companyId, sessionId: id };
    return conversation(
      await (archived ? this.store.rpc.archiveSession(request) : this.store.rpc.unarchiveSession(request)),
    );
  }

  /** Soft delete: the conversation keeps its messages and can be restored. */
  async softDelete(companyId: string, id: string): Promise<ChatConversation> {
    return conversation(await this.store.rpc.deleteSession({ tenantId: companyId, sessionId: id }));
  }

  async addMessage(
    companyId: string,
    conversationId: string,
    init: { role: ChatMessage["role"]; content: string; agentId?: string },
  ): Promise<ChatMessage> {
    const appended = await this.store.rpc.appendMessages({
      tenantId: companyId,
      sessionId: conversationId,
      messages: [{ role: ROLES[init.role], content: init.content, agentId: init.agentId ?? "" }],
    });
    return message(appended.messages[0]!, conversationId);
  }

  /** A page of the company's conversations (pinned first, then newest), and whether more follow. */
  async list(
    companyId: string,
    options: { limit: number; cursor?: string; archived?: boolean },
  ): Promise<ChatConversationListResponse & { cursor: string }> {
    const page = await this.store.rpc.listSessions({
      tenantId: companyId,
      pageSize: options.limit,
      pageToken: options.cursor ?? "",
      archived: options.archived ? Inclusion.ONLY : Inclusion.EXCLUDE,
      pinnedFirst: true,
    });
    const items = page.sessions.map((session) => {
      const { deletedAt: _deleted, createdAt: _created, ...item } = conversation(session);
      return { ...item, lastMessagePreview: session.lastMessagePreview || null };
    });
    return { items, hasMore: page.nextPageToken !== "", cursor: page.nextPageToken };
  }

  /** A page of a conversation's messages, oldest first, and whether more follow. */
  async messages(companyId: string, conversationId: string, options: { limit: number; cursor?: string }): Promise<ChatMessageListResponse & { cursor: string }> {
    const page = await this.store.rpc.listMessages({
      tenantId: companyId,
      sessionId: conversationId,
      pageSize: options.limit,
      pageToken: options.cursor ?? "",
    });
    return {
      items: page.messages.map((m) => message(m, conversationId)),
      hasMore: page.nextPageToken !== "",
      cursor: page.nextPageToken,
    };
  }
}
