// The seeds' own shapes kept in chatstore (examples/seed*.ts), each saved and read
// back without loss, against a real server.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { ChatStoreClient } from "../src/index.js";
import { type ChatMessage, ChatSessionStore } from "../examples/seed000-chat-types.js";
import { KalitoSessions } from "../examples/seed001-kalito.js";
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
