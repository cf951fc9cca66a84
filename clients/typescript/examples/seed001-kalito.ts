// Seed 001 (Kalito's backend): its Session kept in chatstore. `name` is the title,
// `model`, `recap` and `persona_id` are the session's own fields (null is ""), and
// `saved` is the retention: 0 (the app's default) an ephemeral session, 1 a saved one.
import { timestampDate } from "@bufbuild/protobuf/wkt";

import { type ChatStoreClient, Retention, type Session as StoredSession } from "@chatstore/client";

export interface Session {
  id: string;
  name: string;
  model: string | null;
  recap: string | null;
  persona_id: string | null;
  created_at: string;
  updated_at: string;
  saved?: number;
}

export interface CreateSessionRequest {
  name?: string;
  model?: string;
  persona_id?: string;
}

export interface UpdateSessionRequest {
  id: string;
  name?: string;
  model?: string;
  persona_id?: string;
  recap?: string;
  saved?: number;
}

function toSession(stored: StoredSession): Session {
  return {
    id: stored.id,
    name: stored.title,
    model: stored.model || null,
    recap: stored.recap || null,
    persona_id: stored.personaId || null,
    created_at: timestampDate(stored.createTime!).toISOString(),
    updated_at: timestampDate(stored.updateTime!).toISOString(),
    saved: stored.retention === Retention.SAVED ? 1 : 0,
  };
}

/** Kalito's sessions, on chatstore (the client's tenant is the Kalito installation). */
export class KalitoSessions {
  constructor(private readonly store: ChatStoreClient) {}

  /** A new ephemeral session (Kalito saves explicitly), under Kalito's own id when given. */
  async create(request: CreateSessionRequest, id?: string): Promise<Session> {
    const stored = await this.store.rpc.createSession({
      sessionId: id ?? "",
      session: {
        title: request.name ?? "",
        model: request.model ?? "",
        personaId: request.persona_id ?? "",
        retention: Retention.EPHEMERAL,
      },
    });
    return toSession(stored);
  }

  /** Change the fields the request names (an AIP-134 update mask of those alone). */
  async update(request: UpdateSessionRequest): Promise<Session> {
    const fields: [keyof UpdateSessionRequest, string][] = [
      ["name", "title"],
      ["model", "model"],
      ["persona_id", "persona_id"],
      ["recap", "recap"],
      ["saved", "retention"],
    ];
    const paths = fields.filter(([name]) => request[name] !== undefined).map(([, path]) => path);
    const stored = await this.store.rpc.updateSession({
      session: {
        id: request.id,
        title: request.name ?? "",
        model: request.model ?? "",
        personaId: request.persona_id ?? "",
        recap: request.recap ?? "",
        retention: request.saved === 1 ? Retention.SAVED : Retention.EPHEMERAL,
      },
      updateMask: { paths },
    });
    return toSession(stored);
  }

  async get(id: string): Promise<Session> {
    return toSession(await this.store.rpc.getSession({ sessionId: id }));
  }

  /** The saved sessions, most recently updated first (Kalito's listing). */
  async listSaved(): Promise<Session[]> {
    const sessions: Session[] = [];
    for await (const stored of this.store.listSessions({ retention: Retention.SAVED })) sessions.push(toSession(stored));
    return sessions;
  }
}
