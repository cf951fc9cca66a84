// The README's quickstart: CHATSTORE_TARGET and CHATSTORE_TENANT say where and for whom.
import { ChatStoreClient, Role } from "@chatstore/client";

const store = new ChatStoreClient();
const session = await store.rpc.createSession({ session: { title: "Trip planning" } });
await store.rpc.appendMessages({
  sessionId: session.id,
  messages: [
    { role: Role.USER, content: "Find me a flight to Lisbon" },
    { role: Role.ASSISTANT, content: "Looking: any dates in mind?" },
  ],
});
for await (const message of store.listMessages({ sessionId: session.id })) {
  console.log(`${message.seq} ${Role[message.role].toLowerCase()}: ${message.content}`);
}
