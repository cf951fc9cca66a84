// @chatstore/client: the typed TypeScript client of chatstore.
export * from "./client.js";
export * from "./errors.js";
export * from "../gen/chatstore/v1/checkpoint_pb.js";
export * from "../gen/chatstore/v1/event_pb.js";
export * from "../gen/chatstore/v1/message_pb.js";
export * from "../gen/chatstore/v1/session_pb.js";
export * from "../gen/chatstore/v1/session_service_pb.js";
export * from "../gen/chatstore/v1/shared_state_pb.js";
export { create, toJson, fromJson, toBinary, fromBinary } from "@bufbuild/protobuf";
