// The seeds' own shapes kept in chatstore (examples/seed*.ts), each saved and read
// back without loss, against a real server.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { Aborted, ChatStoreClient } from "../src/index.js";
import { type ChatMessage, ChatSessionStore } from "../examples/seed000-chat-types.js";
import { KalitoSessions } from "../examples/seed001-kalito.js";
import { type SessionEvent, SessionLog } from "../examples/seed003-session-server.js";
import { PaperclipChats } from "../examples/seed004-paperclip.js";
import { TestServer } from "./server.js";

let server: TestServer;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.stop();
});

test("seed 000: a ChatSession with Date fields and optional tokensUsed round-trips", async () => {
  const chats = new ChatSessionStore(new ChatStoreClient({ target: server.target }));
  const organizationId = randomUUID();
  const session = await chats.create(organizationId, randomUUID(), randomUUID());
  const messages: ChatMessage[] = [
    { id: randomUUID(), role: "user", content: "Tell me about yourself", timestamp: new Date("2026-01-02T03:04:05.678Z") },
    { id: randomUUID(), role: "agent", content: "I build things.", timestamp: new Date("2026-01-02T03:04:09.001Z"), tokensUsed: 42 },
  ];
  await chats.append(session, messages);

  const loaded = await chats.load(organizationId, session.id);
  assert.ok(loaded);
  assert.deepEqual(loaded.messages, messages);
  assert.deepEqual(
    { ...loaded, messages: [], updatedAt: null },
    { ...session, messages: [], updatedAt: null },
  );
  assert.ok(loaded.updatedAt >= session.createdAt);
  assert.equal(await chats.load(randomUUID(), session.id), null); // another organization
});

test("seed 001: Kalito sessions, nulls, recap and saved vs ephemeral round-trip", async () => {
  const kalito = new KalitoSessions(new ChatStoreClient({ target: server.target, tenantId: `kalito-${randomUUID()}` }));
  const bare = await kalito.create({});
  assert.deepEqual(
    { name: bare.name, model: bare.model, recap: bare.recap, persona_id: bare.persona_id, saved: bare.saved },
    { name: "", model: null, recap: null, persona_id: null, saved: 0 },
  );
  const made = await kalito.create({ name: "Trip", model: "llama3", persona_id: "guide" }, "kalito-session-1");
  assert.equal(made.id, "kalito-session-1");
  const saved = await kalito.update({ id: made.id, recap: "Planned Lisbon", saved: 1 });
  assert.deepEqual(
    { ...saved, updated_at: "" },
    { ...made, recap: "Planned Lisbon", saved: 1, updated_at: "" },
  );
  assert.deepEqual(await kalito.get(made.id), saved);
  assert.deepEqual((await kalito.listSaved()).map((s) => s.id), [made.id]);
  assert.ok(!Number.isNaN(Date.parse(saved.created_at)));
});

test("seed 004: Paperclip conversations, pins, archive, soft delete, previews and hasMore", async () => {
  const chats = new PaperclipChats(new ChatStoreClient({ target: server.target }));
  const companyId = randomUUID();
  const agentId = randomUUID();
  const first = await chats.create(companyId, { title: "Q3 plan", agentId });
  const second = await chats.create(companyId, {});
  assert.deepEqual(
    [second.title, second.agentId, second.pinnedAt, second.archivedAt, second.deletedAt],
    [null, null, null, null, null],
  );
  const said = await chats.addMessage(companyId, first.id, { role: "user", content: "Draft the plan" });
  const answered = await chats.addMessage(companyId, first.id, { role: "assistant", content: "Here it is", agentId });
  assert.deepEqual(
    [said.role, said.conversationId, said.agentId, answered.agentId],
    ["user", first.id, null, agentId],
  );
  const pinned = await chats.setPinned(companyId, second.id, true);
  assert.ok(pinned.pinnedAt);

  const page = await chats.list(companyId, { limit: 1 });
  assert.deepEqual(page.items.map((i) => i.id), [second.id]); // pinned first
  assert.equal(page.hasMore, true);
  const rest = await chats.list(companyId, { limit: 1, cursor: page.cursor });
  assert.deepEqual(rest.items.map((i) => [i.id, i.lastMessagePreview]), [[first.id, "Here it is"]]);
  assert.equal(rest.hasMore, false);

  const messages = await chats.messages(companyId, first.id, { limit: 1 });
  assert.deepEqual(messages.items, [said]);
  assert.equal(messages.hasMore, true);

  const archived = await chats.setArchived(companyId, first.id, true);
  assert.ok(archived.archivedAt);
  assert.deepEqual((await chats.list(companyId, { limit: 10 })).items.map((i) => i.id), [second.id]);
  assert.deepEqual((await chats.list(companyId, { limit: 10, archived: true })).items.map((i) => i.id), [first.id]);
  const deleted = await chats.softDelete(companyId, second.id);
  assert.ok(deleted.deletedAt);
  assert.deepEqual(await chats.get(companyId, second.id), deleted); // kept, marked deleted
  assert.deepEqual((await chats.list(companyId, { limit: 10 })).items, []);
});

test("seed 003: session metadata, the event log and checkpoint annotations round-trip", async () => {
  const sessions = new SessionLog(new ChatStoreClient({ target: server.target, tenantId: `server-${randomUUID()}` }));
  const opened = await sessions.open("repl-1");
  assert.deepEqual([opened.id, opened.name, opened.eventCount, opened.checkpointCount], ["repl-1", "repl-1", 0, 0]);
  const events: Exclude<SessionEvent, { type: "session" }>[] = [
    { type: "input", seq: 1, code: "1 + 1", timestamp: "2026-03-01T10:00:00.000Z" },
    { type: "llm_req", seq: 2, prompt: "explain 1 + 1", receiptKey: "r-1" },
    { type: "llm_resp", seq: 3, response: "two", receiptKey: "r-1" },
    { type: "output", seq: 4, value: "2", timestamp: "2026-03-01T10:00:01.500Z" },
    { type: "checkpoint", seq: 5, reason: "after-eval", stateId: "state-5" },
    { type: "error", seq: 6, message: "boom", timestamp: "2026-03-01T10:00:02.000Z" },
  ];
  await sessions.append("repl-1", events.slice(0, 4), 0);
  await sessions.append("repl-1", events.slice(4), 4);
  await assert.rejects(sessions.append("repl-1", events.slice(0, 1), 4), Aborted); // a stale writer

  const log = await sessions.read("repl-1");
  const [header, ...logged] = log;
  assert.deepEqual(header, { type: "session", version: 1, id: "repl-1", created: opened.created.toISOString() });
  assert.deepEqual(logged, events);
  const note = await sessions.annotate("repl-1", 5, { label: "evaluated", description: "1 + 1 done", tags: ["math", "ok"] });
  assert.deepEqual(await sessions.annotations("repl-1"), [note]);
  assert.deepEqual([note.checkpointSeq, note.tags], [5, ["math", "ok"]]);
  const meta = await sessions.metadata("repl-1");
  assert.deepEqual([meta?.eventCount, meta?.checkpointCount], [6, 1]);
  assert.equal(meta?.size, 0); // chatstore sizes message text; this log has events only
  assert.equal(await sessions.metadata("no-such-session"), null);
});
