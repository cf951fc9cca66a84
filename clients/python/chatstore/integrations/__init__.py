"""chatstore as the session store of agent frameworks, each plugged in with one line.

- `chatstore.integrations.openai_agents.ChatStoreSession`: an OpenAI Agents SDK
  session (`Runner.run(agent, input, session=...)`);
  `pip install 'chatstore[openai-agents]'`.
- `chatstore.integrations.adk.ChatStoreSessionService`: a Google ADK session service
  (`Runner(session_service=...)`); `pip install 'chatstore[adk]'`.
- `chatstore.integrations.langgraph.ChatStoreSaver`: a LangGraph checkpointer
  (`graph.compile(checkpointer=...)`); `pip install 'chatstore[langgraph]'`.
- `chatstore.integrations.langchain.ChatStoreChatMessageHistory`: a LangChain chat
  message history; `pip install 'chatstore[langchain]'`.

Each keeps everything in chatstore (no side store in the process), so a second process,
or a client in another language, sees the same session.
"""
