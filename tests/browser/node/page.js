// The page headless Chromium loads: connect-web calls the greet service (examples/browser_cors.py)
// on another origin, and the page reports what it saw.
//
// esbuild bundles this file with the code protoc-gen-es generated from `connectpy proto`'s output
// (imported as "greet-gen", an alias given at bundle time). The page's query names the services:
// `?rpc=BASE_URL&closed=BASE_URL`, where `closed` allows another origin than the page's.
// When every case has run, `window.connectpyReport` holds one entry per case: what the call
// returned (or how it failed), plus the HTTP methods the page's fetch sent. The Python test
// (tests/browser/test_browser.py) compares the entries with what the service answers.

import { createRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { DurationSchema, StringValueSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { GreetService } from "greet-gen";

const DETAIL_TYPES = createRegistry(StringValueSchema, DurationSchema);
const query = new URLSearchParams(location.search);

// A fetch that notes the method of each request it sends (the page cannot see preflights).
function recordingFetch(methods, init = {}) {
  return (input, options) => {
    methods.push(options?.method ?? "GET");
    return fetch(input, { ...options, ...init });
  };
}

function client(kind, { baseUrl = query.get("rpc"), binary = false, get = false, init } = {}) {
  const methods = [];
  const options = { baseUrl, fetch: recordingFetch(methods, init) };
  const transport =
    kind === "grpcweb"
      ? createGrpcWebTransport({ ...options, useBinaryFormat: binary })
      : createConnectTransport({ ...options, useBinaryFormat: binary, useHttpGet: get });
  return { rpc: createClient(GreetService, transport), methods };
}

function describeError(error) {
  if (!(error instanceof ConnectError)) {
    return { code: null, message: String(error), details: [], metadata: {} };
  }
  const details = error.details.map((detail) => {
    const schema = DETAIL_TYPES.getMessage(detail.type);
    return { type: detail.type, value: schema ? toJson(schema, fromBinary(schema, detail.value)) : null };
  });
  return {
    code: error.code,
    message: error.rawMessage,
    details,
    metadata: { "x-reason": error.metadata.get("x-reason") },
  };
}

async function greet(kind, options) {
  const { rpc, methods } = client(kind, options);
  let greeter = null;
  let greeted = null;
  const reply = await rpc.greet(
    { name: "Ada" },
    {
      onHeader: (headers) => (greeter = headers.get("x-greeter")),
      onTrailer: (trailers) => (greeted = trailers.get("x-greeted")),
    },
  );
  return { greeting: reply.greeting, greeter, greeted, methods };
}

async function countdown(kind) {
  const { rpc, methods } = client(kind, { binary: true });
  const remaining = [];
  for await (const tick of rpc.countdown({ start: 3n })) {
    remaining.push(Number(tick.remaining));
  }
  return { remaining, methods };
}

async function refuse(kind) {
  const { rpc, methods } = client(kind, { binary: true });
  await rpc.refuse({ name: "Mallory" });
  return { methods };
}

// No procedure at that path: gRPC-Web answers "trailers-only", the status in the headers.
async function unimplemented() {
  const { rpc } = client("grpcweb", { baseUrl: `${query.get("rpc")}/nowhere`, binary: true });
  await rpc.greet({ name: "Ada" });
  return {};
}

async function lookupTwice() {
  const { rpc, methods } = client("connect");
  const first = await rpc.lookup({ name: "cached" });
  const second = await rpc.lookup({ name: "cached" });
  return { greetings: [first.greeting, second.greeting], methods };
}

async function lookupByGet() {
  const { rpc, methods } = client("connect", { get: true });
  const reply = await rpc.lookup({ name: "Grace" });
  return { greeting: reply.greeting, methods };
}

const CASES = {
  "connect-json-unary": () => greet("connect"),
  "connect-binary-unary": () => greet("connect", { binary: true }),
  "connect-get": lookupByGet,
  "connect-server-stream": () => countdown("connect"),
  "connect-error": () => refuse("connect"),
  "connect-with-credentials": () => greet("connect", { init: { credentials: "include" } }),
  "grpc-web-unary": () => greet("grpcweb", { binary: true }),
  "grpc-web-server-stream": () => countdown("grpcweb"),
  "grpc-web-error": () => refuse("grpcweb"),
  "grpc-web-trailers-only": unimplemented,
  "preflight-cached": lookupTwice,
  "disallowed-origin": () => greet("connect", { baseUrl: query.get("closed") }),
};

const report = {};
for (const [name, run] of Object.entries(CASES)) {
  try {
    report[name] = { result: await run() };
  } catch (error) {
    report[name] = { error: describeError(error) };
  }
}
window.connectpyReport = report;
