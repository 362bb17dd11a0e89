// A connect-es client of the every-type service (tests/foreign/every_type.py).
//
// Usage: node client.js PLAN.json
//
// The plan names the generated module (protoc-gen-es output for the `connectpy proto` file),
// the server, one protocol and transport, and the cases as proto3 JSON. The client makes every
// call of the service with them and prints one JSON report on stdout: each response in
// proto3 JSON (every field written) and each error as code, message, details and metadata.
// tests/foreign/test_foreign_clients.py compares the report with the cases.

import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";

import { createRegistry, fromBinary, fromJson, toJson } from "@bufbuild/protobuf";
import {
  DurationSchema,
  Int64ValueSchema,
  StringValueSchema,
  TimestampSchema,
} from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

const DETAIL_TYPES = createRegistry(
  StringValueSchema,
  Int64ValueSchema,
  DurationSchema,
  TimestampSchema,
);

const TRANSPORTS = {
  connect: createConnectTransport,
  grpc: createGrpcTransport,
  grpcweb: createGrpcWebTransport,
};

const plan = JSON.parse(await readFile(process.argv[2], "utf8"));
const gen = await import(pathToFileURL(plan.module).href);
const transport = TRANSPORTS[plan.protocol]({
  baseUrl: plan.baseUrl,
  httpVersion: plan.httpVersion,
  useBinaryFormat: plan.binary,
});
const client = createClient(gen.EveryTypeService, transport);
const options = { headers: { [plan.runHeader]: plan.run }, timeoutMs: plan.timeoutMs };

const everything = (json) => fromJson(gen.EverythingSchema, json);
const printed = (schema, message) => toJson(schema, message, { alwaysEmitImplicit: true });

function describeError(error) {
  if (!(error instanceof ConnectError)) {
    return { code: null, message: String(error?.stack ?? error), details: [], metadata: {} };
  }
  const details = error.details.map((detail) => {
    const schema = DETAIL_TYPES.getMessage(detail.type);
    const value = schema ? toJson(schema, fromBinary(schema, detail.value)) : null;
    return { type: detail.type, value };
  });
  const metadata = {};
  for (const name of plan.metadataNames) {
    metadata[name] = error.metadata.get(name);
  }
  return { code: error.code, message: error.rawMessage, details, metadata };
}

// Each call's outcome: what it returned, or the error it ended with.
async function unary(call, schema) {
  try {
    return { message: printed(schema, await call()) };
  } catch (error) {
    return { error: describeError(error) };
  }
}

async function stream(responses, schema) {
  const messages = [];
  try {
    for await (const response of responses) {
      messages.push(printed(schema, response));
    }
    return { messages, error: null };
  } catch (error) {
    return { messages, error: describeError(error) };
  }
}

async function* requestsOf(cases) {
  for (const json of cases) {
    yield everything(json);
  }
}

function withResolvers() {
  let resolve;
  const promise = new Promise((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

// Full duplex: each request waits for the reply to the previous one.
function chat(cases) {
  const replied = cases.map(withResolvers);
  async function* requests() {
    for (const [i, json] of cases.entries()) {
      yield everything(json);
      await replied[i].promise;
    }
  }
  async function* replies() {
    let i = 0;
    for await (const reply of client.chat(requests(), options)) {
      replied[i++]?.resolve();
      yield reply;
    }
  }
  return stream(replies(), gen.EverythingSchema);
}

const report = { echo: [] };
for (const json of plan.cases) {
  report.echo.push(await unary(() => client.echo(everything(json), options), gen.EverythingSchema));
}
const count = plan.cases.length;
report.listCases = await stream(
  client.listCases({ count: BigInt(count), fail: false }, options),
  gen.EverythingSchema,
);
report.listCasesFail = await stream(
  client.listCases({ count: 1n, fail: true }, options),
  gen.EverythingSchema,
);
report.fail = await unary(
  () => client.fail({ message: plan.errorMessage }, options),
  gen.EmptySchema,
);
report.collect = await unary(
  () => client.collect(requestsOf(plan.cases), options),
  gen.BundleSchema,
);
report.chat = await chat(plan.cases);
process.stdout.write(JSON.stringify(report) + "\n");
