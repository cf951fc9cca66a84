// The contract from another language: create, append, page, watch, and read an
// error's details, against a real chatstore server at CHATSTORE_TARGET.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { defaults, connect, authMetadata, call, errorDetails, grpc } = require("../chatstore.js");

const target = process.env.CHATSTORE_TARGET;
const tenant = "node-" + process.pid;

test("connection defaults come from the environment", () => {
  assert.deepEqual(defaults({}), { target: "127.0.0.1:50051", tenantId: "", apiKey: "" });
  const env = { CHATSTORE_TARGET: "h:1", CHATSTORE_TENANT: "acme", CHATSTORE_API_KEY: "k" };
  assert.deepEqual(defaults(env), { target: "h:1", tenantId: "acme", apiKey: "k" });
  assert.deepEqual(authMetadata("k").get("authorization"), ["Bearer k"]);
  assert.deepEqual(authMetadata("").get("authorization"), []);
});

test("the Node client speaks the contract", { skip: !target && "set CHATSTORE_TARGET" }, async (t) => {
  const client = connect(); // CHATSTORE_TARGET
  t.after(() => client.close());

  const session = await call(client, "CreateSession", { tenant_id: tenant, session: { title: "from node" } });
  assert.equal(session.title, "from node");
  assert.equal(session.tenant_id, tenant);

  const appended = await call(client, "AppendMessages", {
    tenant_id: tenant,
    session_id: session.id,
    request_id: "node-append-1",
    messages: [1, 2, 3, 4, 5].map((i) => ({ role: "ROLE_USER", content: `m${i}` })),
  });
  assert.deepEqual(appended.messages.map((m) => m.seq), ["1", "2", "3", "4", "5"]); // int64 as strings

  const retried = await call(client, "AppendMessages", {
    tenant_id: tenant,
    session_id: session.id,
    request_id: "node-append-1",
    messages: [1, 2, 3, 4, 5].map((i) => ({ role: "ROLE_USER", content: `m${i}` })),
  });
  assert.deepEqual(retried.messages.map((m) => m.id), appended.messages.map((m) => m.id));

  const seen = [];
  let token = "";
  let pages = 0;
  do {
    const page = await call(client, "ListMessages", {
      tenant_id: tenant,
      session_id: session.id,
      page_size: 2,
      page_token: token,
    });
    seen.push(...page.messages.map((m) => m.content));
    token = page.next_page_token;
    pages += 1;
  } while (token);
  assert.deepEqual(seen, ["m1", "m2", "m3", "m4", "m5"]);
  assert.equal(pages, 3);

  const watched = await new Promise((resolve, reject) => {
    const got = [];
    const stream = client.WatchSession({ tenant_id: tenant, session_id: session.id, from_seq: 3 });
    stream.on("data", (item) => {
      if (item.change === "message") got.push(item.message.seq);
      if (got.length === 3) {
        stream.cancel();
        resolve(got);
      }
    });
    stream.on("error", (error) => {
      if (error.code !== grpc.status.CANCELLED) reject(error);
    });
    // Two replayed (4, 5), then a live one (6) appended while watching.
    setTimeout(() => {
      call(client, "AppendMessages", {
        tenant_id: tenant,
        session_id: session.id,
        messages: [{ role: "ROLE_ASSISTANT", content: "live" }],
      }).catch(reject);
    }, 200);
  });
  assert.deepEqual(watched, ["4", "5", "6"]);

  await assert.rejects(
    call(client, "GetSession", { tenant_id: tenant, session_id: "x".repeat(129) }),
    (error) => {
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
      const details = errorDetails(error);
      assert.equal(details.reason, "INVALID_FIELD");
      assert.equal(details.domain, "chatstore");
      assert.deepEqual(details.fieldViolations.map((v) => v.field), ["session_id"]);
      return true;
    },
  );
  await assert.rejects(
    call(client, "GetSession", { tenant_id: tenant, session_id: "00000000-0000-4000-8000-000000000000" }),
    (error) => {
      assert.equal(error.code, grpc.status.NOT_FOUND);
      assert.equal(errorDetails(error).reason, "SESSION_NOT_FOUND");
      return true;
    },
  );
});
