// The TypeScript client against a real chatstore server: every RPC, errors, paging,
// retries with the same request id, and watch resuming across a server restart.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import {
  AlreadyExists,
  ChatStoreClient,
  ChatStoreError,
  InvalidArgument,
  NotFound,
  PeerKind,
  Role,
  SessionView,
  Unavailable,
} from "../src/index.js";
import { AnswerLosingProxy } from "./flaky.js";
import { TestServer } from "./server.js";

let server: TestServer;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.stop();
});

function client(tenantId = `ts-${process.pid}-${Math.random().toString(36).slice(2, 8)}`): ChatStoreClient {
  return new ChatStoreClient({ target: server.target, tenantId });
}

const user = (content: string) => ({ role: Role.USER, content });
const run = promisify(execFile);

test("every RPC, once, through the typed client", async () => {
  const { rpc } = client();
  const session = await rpc.createSession({ session: { title: "tour", agentId: "bot" } });
  assert.equal((await rpc.getSession({ sessionId: session.id })).title, "tour");
  const keyed = await rpc.getOrCreateSession({
    agentId: "bot",
    key: { channel: "web", accountId: "bot", peerKind: PeerKind.DM, peerId: "ann" },
  });
  assert.equal(keyed.created, true);
  assert.equal((await rpc.listSessions({ pageSize: 10 })).sessions.length, 2);
  const renamed = await rpc.updateSession({ session: { id: session.id, title: "toured" }, updateMask: { paths: ["title"] } });
  assert.equal(renamed.title, "toured");
  const appended = await rpc.appendMessages({ sessionId: session.id, messages: [user("a"), user("b"), user("c")] });
  assert.deepEqual(appended.messages.map((m) => m.seq), [1n, 2n, 3n]); // int64 as bigint
  assert.equal((await rpc.listMessages({ sessionId: session.id })).messages.length, 3);
  assert.equal((await rpc.getMessage({ sessionId: session.id, selector: { case: "seq", value: 2n } })).content, "b");
  assert.equal((await rpc.getContextWindow({ sessionId: session.id, maxMessages: 2 })).messages.length, 2);
  assert.equal((await rpc.compactSession({ sessionId: session.id, throughSeq: 1n, recap: "a" })).recap, "a");
  const events = await rpc.appendEvents({
    sessionId: session.id,
    events: [{ payload: { case: "input", value: { content: "x" } } }],
  });
  assert.equal(events.events[0]?.seq, 1n);
  assert.equal((await rpc.listEvents({ sessionId: session.id })).events.length, 1);
  const checkpoint = await rpc.createCheckpoint({ sessionId: session.id, checkpoint: { label: "here" } });
  assert.deepEqual((await rpc.listCheckpoints({ sessionId: session.id })).checkpoints.map((c) => c.id), [checkpoint.id]);
  assert.equal((await rpc.getCheckpoint({ sessionId: session.id, checkpointId: checkpoint.id })).label, "here");
  const fork = await rpc.forkSession({ sessionId: session.id, point: { case: "checkpointId", value: checkpoint.id } });
  assert.equal(fork.lastSeq, 3n);
  const writes = await rpc.putCheckpointWrites({
    sessionId: session.id,
    checkpointId: checkpoint.id,
    writes: [{ taskId: "t", index: 0, channel: "c", payload: new TextEncoder().encode("v") }],
  });
  assert.equal(writes.storedCount, 1);
  const second = await rpc.createCheckpoint({ sessionId: session.id, checkpoint: { label: "later" } });
  assert.equal((await rpc.pruneCheckpoints({ sessionId: session.id, keepLatest: true })).deletedCount, 1n);
  await rpc.deleteCheckpoint({ sessionId: session.id, checkpointId: second.id });
  const state = await rpc.updateSharedState({ patch: { name: "apps/tour/state", patchJson: '{"n": 1}' } });
  const read = await rpc.getSharedState({ name: "apps/tour/state" });
  assert.equal(read.etag, state.etag);
  assert.equal(read.dataJson, '{"n":1}');
  const rewound = await rpc.rewindSession({ sessionId: fork.id, point: { case: "removeCount", value: 1 } });
  assert.deepEqual(rewound.removedMessages.map((m) => m.seq), [3n]);
  for await (const change of rpc.watchSession({ sessionId: session.id, fromSeq: 2n })) {
    assert.equal(change.change.case === "message" && change.change.value.seq, 3n);
    break;
  }
  assert.ok((await rpc.pinSession({ sessionId: session.id })).pinTime);
  assert.equal((await rpc.unpinSession({ sessionId: session.id })).pinTime, undefined);
  assert.ok((await rpc.archiveSession({ sessionId: session.id })).archiveTime);
  assert.equal((await rpc.unarchiveSession({ sessionId: session.id })).archiveTime, undefined);
  assert.ok((await rpc.deleteSession({ sessionId: session.id })).deleteTime);
  assert.equal((await rpc.undeleteSession({ sessionId: session.id })).deleteTime, undefined);
  const full = await rpc.getSession({ sessionId: session.id, view: SessionView.FULL });
  assert.equal(full.recentMessages.length, 3);
  await rpc.deleteSession({ sessionId: fork.id, purge: true });
  await assert.rejects(rpc.getSession({ sessionId: fork.id }), NotFound);
});

test("errors are classes per code, with the reason and the wrong fields", async () => {
  const { rpc } = client();
  const missing = await rpc.getSession({ sessionId: "no-such-session" }).catch((e: unknown) => e);
  assert.ok(missing instanceof NotFound);
  assert.ok(missing instanceof ChatStoreError);
  assert.equal(missing.reason, "SESSION_NOT_FOUND");
  assert.equal(missing.domain, "chatstore");
  const session = await rpc.createSession({});
  const bad = await rpc.appendMessages({ sessionId: session.id, messages: [{ content: "no role" }] }).catch((e: unknown) => e);
  assert.ok(bad instanceof InvalidArgument);
  assert.deepEqual(bad.fieldViolations.map((v) => v.field), ["messages[0].role"]);
  await assert.rejects(rpc.createSession({ sessionId: session.id }), AlreadyExists);
  // Nothing was stored by the refused append.
  assert.equal((await rpc.getSession({ sessionId: session.id })).messageCount, 0n);
});

test("pagers iterate every page; the default tenant can be overridden per call", async () => {
  const store = client();
  const session = await store.rpc.createSession({});
  await store.rpc.appendMessages({
    sessionId: session.id,
    messages: Array.from({ length: 25 }, (_, i) => user(`m${i + 1}`)),
  });
  const seqs: bigint[] = [];
  for await (const message of store.listMessages({ sessionId: session.id, pageSize: 10 })) seqs.push(message.seq);
  assert.deepEqual(seqs, Array.from({ length: 25 }, (_, i) => BigInt(i + 1)));
  const sessions = [];
  for await (const s of store.listSessions({ pageSize: 1 })) sessions.push(s.id);
  assert.deepEqual(sessions, [session.id]);
  const other = client();
  await assert.rejects(other.rpc.getSession({ sessionId: session.id }), NotFound);
  const named = await other.rpc.getSession({ sessionId: session.id, tenantId: store.tenantId });
  assert.equal(named.id, session.id);
});

test("an append retried with its request id is stored once", async () => {
  const { rpc } = client();
  const session = await rpc.createSession({});
  const first = await rpc.appendMessages({ sessionId: session.id, requestId: "r-1", messages: [user("once")] });
  const again = await rpc.appendMessages({ sessionId: session.id, requestId: "r-1", messages: [user("once")] });
  assert.deepEqual(again.messages.map((m) => m.id), first.messages.map((m) => m.id));
  assert.equal((await rpc.getSession({ sessionId: session.id })).messageCount, 1n);
});

test("an append whose answer is lost is retried with the same request id and stored once", async () => {
  const tenantId = `flaky-${process.pid}`;
  const direct = new ChatStoreClient({ target: server.target, tenantId });
  const session = await direct.rpc.createSession({});
  const proxy = await AnswerLosingProxy.start(server.port, "lost-answer-marker");
  try {
    const flaky = new ChatStoreClient({ target: proxy.target, tenantId, retry: { initialBackoffMs: 10 } });
    const appended = await flaky.rpc.appendMessages({ sessionId: session.id, messages: [user("lost-answer-marker")] });
    assert.equal(proxy.lost, 1); // the first answer never arrived: the call was retried
    assert.deepEqual(appended.messages.map((m) => m.seq), [1n]);
    const stored = await direct.rpc.listMessages({ sessionId: session.id });
    assert.deepEqual(stored.messages.map((m) => [m.id, m.content]), [[appended.messages[0]?.id, "lost-answer-marker"]]);
    // A call the contract does not let the client repeat is not retried: its error shows.
    const cut = await AnswerLosingProxy.start(server.port, "not-retried-marker");
    try {
      const once = new ChatStoreClient({ target: cut.target, tenantId, retry: { initialBackoffMs: 10 } });
      await assert.rejects(once.rpc.createSession({ session: { title: "not-retried-marker" } }), Unavailable);
      assert.equal(cut.lost, 1);
    } finally {
      await cut.stop();
    }
  } finally {
    await proxy.stop();
  }
});

test("UNAVAILABLE is retried within the deadline, then thrown", async () => {
  const dead = new ChatStoreClient({
    target: "127.0.0.1:1",
    tenantId: "t",
    timeoutMs: 2_000,
    retry: { initialBackoffMs: 20, maxBackoffMs: 50 },
  });
  const started = Date.now();
  await assert.rejects(dead.rpc.getSession({ sessionId: "x" }), Unavailable);
  assert.ok(Date.now() - started >= 20, "it waited before giving up");
});

test("watch resumes from the last seq across a server restart", async () => {
  const store = client();
  const session = await store.rpc.createSession({});
  await store.rpc.appendMessages({ sessionId: session.id, messages: [user("1"), user("2")] });
  const seen: bigint[] = [];
  const done = new AbortController();
  const watching = (async () => {
    for await (const change of store.watch(session.id, { signal: done.signal })) {
      if (change.change.case !== "message") continue;
      seen.push(change.change.value.seq);
      if (seen.length === 4) done.abort();
    }
  })();
  while (seen.length < 2) await new Promise((r) => setTimeout(r, 20));
  await server.restart();
  await store.rpc.appendMessages({ sessionId: session.id, messages: [user("3"), user("4")] });
  await watching;
  assert.deepEqual(seen, [1n, 2n, 3n, 4n]);
});

test("the README quickstart runs as written", async () => {
  const example = fileURLToPath(new URL("../examples/quickstart.js", import.meta.url));
  const env = { ...process.env, CHATSTORE_TARGET: server.target, CHATSTORE_TENANT: `quickstart-${process.pid}` };
  const { stdout } = await run(process.execPath, [example], { env });
  assert.equal(stdout, "1 user: Find me a flight to Lisbon\n2 assistant: Looking: any dates in mind?\n");
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const source = readFileSync(new URL("../../examples/quickstart.ts", import.meta.url), "utf8");
  assert.ok(readme.includes(source.split("\n").slice(1).join("\n").trim()), "README shows examples/quickstart.ts");
});
