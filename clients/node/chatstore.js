// A chatstore client for Node.js, built from the protos at run time with
// @grpc/proto-loader: it knows nothing of the Python code, only the contract in
// protos/ (and the google/rpc protos in third_party/ to read error details).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const ROOT = path.resolve(__dirname, "..", "..");
const INCLUDE_DIRS = [path.join(ROOT, "protos"), path.join(ROOT, "third_party", "googleapis")];
const LOADER_OPTIONS = {
  keepCase: true, // field names as in the protos (tenant_id, page_token)
  longs: String, // int64 fields (seq, counts) as strings, never rounded
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: INCLUDE_DIRS,
};

const definition = protoLoader.loadSync(
  ["chatstore/v1/session_service.proto", "google/rpc/status.proto", "google/rpc/error_details.proto"],
  LOADER_OPTIONS,
);
const loaded = grpc.loadPackageDefinition(definition);

// google.rpc.Status and its details, to decode the grpc-status-details-bin trailer.
const rpc = new protobuf.Root();
rpc.resolvePath = (_origin, target) => {
  for (const dir of INCLUDE_DIRS) {
    const candidate = path.join(dir, target);
    if (fs.existsSync(candidate)) return candidate;
  }
  return target; // google/protobuf/*.proto: protobufjs has them built in
};
rpc.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
const Status = rpc.lookupType("google.rpc.Status");
const ErrorInfo = rpc.lookupType("google.rpc.ErrorInfo");
const BadRequest = rpc.lookupType("google.rpc.BadRequest");

/**
 * The connection defaults, from the variables the Python client and the `chatstore`
 * command read too: CHATSTORE_TARGET (default 127.0.0.1:50051), CHATSTORE_TENANT and
 * CHATSTORE_API_KEY (both default "": none).
 */
function defaults(env = process.env) {
  return {
    target: env.CHATSTORE_TARGET || "127.0.0.1:50051",
    tenantId: env.CHATSTORE_TENANT || "",
    apiKey: env.CHATSTORE_API_KEY || "",
  };
}

/**
 * A SessionService client on `target` (host:port; CHATSTORE_TARGET when not given),
 * plaintext unless `credentials`.
 */
function connect(target = defaults().target, credentials = grpc.credentials.createInsecure()) {
  return new loaded.chatstore.v1.SessionService(target, credentials);
}

/** Call metadata carrying `authorization: Bearer <apiKey>` (CHATSTORE_API_KEY when not given; none when empty). */
function authMetadata(apiKey = defaults().apiKey) {
  const metadata = new grpc.Metadata();
  if (apiKey) metadata.set("authorization", `Bearer ${apiKey}`);
  return metadata;
}

/** Call a unary method as a promise (with CHATSTORE_API_KEY's credential unless `metadata`). */
function call(client, method, request, metadata = authMetadata()) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/**
 * The google.rpc.Status details of a failed call: the ErrorInfo reason and domain,
 * and the BadRequest field violations.
 */
function errorDetails(error) {
  const [raw] = error.metadata ? error.metadata.get("grpc-status-details-bin") : [];
  if (!raw) return null;
  const status = Status.decode(raw);
  const result = { code: status.code, message: status.message, reason: "", domain: "", fieldViolations: [] };
  for (const detail of status.details) {
    const name = detail.type_url.split("/").pop();
    if (name === "google.rpc.ErrorInfo") {
      const info = ErrorInfo.decode(detail.value);
      result.reason = info.reason;
      result.domain = info.domain;
    } else if (name === "google.rpc.BadRequest") {
      const bad = BadRequest.decode(detail.value);
      result.fieldViolations = bad.field_violations.map((v) => ({ field: v.field, description: v.description }));
    }
  }
  return result;
}

module.exports = { defaults, connect, authMetadata, call, errorDetails, grpc };
