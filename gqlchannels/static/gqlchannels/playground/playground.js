// The playground page: reads the form, runs the operation with protocol.js, and appends
// every step to the results list with the time it arrived. Everything shown goes in through
// textContent, never as HTML: results and error messages come from the server and the
// schema, and may contain anything.

const { runOperation, TRANSPORT_WS } = await import(
  new URL("?asset=protocol.js", import.meta.url).href
);

const $ = (id) => document.getElementById(id);
const fields = {
  endpoint: $("endpoint"),
  protocol: $("protocol"),
  query: $("query"),
  operationName: $("operation-name"),
  variables: $("variables"),
  connectionParams: $("connection-params"),
};
const buttons = { run: $("run"), stop: $("stop"), clear: $("clear") };
const statusLine = $("status");
const keepaliveLine = $("keepalive");
const list = $("events");

// What the close codes a GraphQL server sends mean, to show beside them.
const CLOSE_CODES = {
  1000: "normal closure",
  1001: "going away",
  1006: "closed without a close frame: the handshake was refused (origin, host, route) or the server is unreachable",
  1011: "server error",
  1012: "the server is restarting",
  3008: "no pong in time",
  4000: "disconnected by an operator",
  4400: "the server found a frame invalid",
  4401: "operation before connection_ack",
  4403: "forbidden: connection_init was rejected",
  4406: "subprotocol not acceptable",
  4408: "no connection_init in time",
  4409: "an operation with this id is running",
  4413: "the client read too slowly",
  4429: "too many connection_init",
  4500: "internal server error",
};

// The operation in progress ({operation, protocol}), or null.
let running = null;

// Longest JSON shown on one line.
const COMPACT_JSON_LENGTH = 100;

function defaultEndpoint() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${window.location.pathname}`;
}

function timestamp() {
  const now = new Date();
  const pad = (value, width = 2) => String(value).padStart(width, "0");
  return (
    `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}` +
    `.${pad(now.getMilliseconds(), 3)}`
  );
}

// Append one step: its kind (a CSS class and a label), and a body shown as text. `failed`
// marks it as an error, whatever its kind.
function append(kind, label, body, failed = false) {
  const item = document.createElement("li");
  item.className = `event event-${kind}${failed ? " failed" : ""}`;
  const time = document.createElement("time");
  time.textContent = timestamp();
  const name = document.createElement("span");
  name.className = "kind";
  name.textContent = label;
  item.append(time, name);
  if (body !== undefined) {
    const text = document.createElement("pre");
    text.textContent = typeof body === "string" ? body : asJson(body);
    item.append(text);
  }
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

// `value` as JSON: on one line when that is short, so a stream of small events reads as one.
function asJson(value) {
  const line = JSON.stringify(value);
  return line.length <= COMPACT_JSON_LENGTH ? line : JSON.stringify(value, null, 2);
}

// The JSON object in `field`, null when it is blank; throws a message naming `what`.
function jsonObject(field, what) {
  const text = field.value.trim();
  field.removeAttribute("aria-invalid");
  if (text === "") {
    return null;
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    field.setAttribute("aria-invalid", "true");
    throw new Error(`${what} are not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    field.setAttribute("aria-invalid", "true");
    throw new Error(`${what} must be a JSON object, like {"name": "value"}.`);
  }
  return value;
}

function setRunning(current) {
  running = current;
  buttons.run.disabled = current !== null;
  buttons.stop.disabled = current === null;
}

function describeClose({ code, reason }) {
  const meaning = CLOSE_CODES[code];
  return [`code ${code}`, reason && `reason: ${reason}`, meaning && `(${meaning})`]
    .filter(Boolean)
    .join(" ");
}

function run() {
  if (running !== null) {
    return;
  }
  let variables;
  let connectionParams;
  try {
    variables = jsonObject(fields.variables, "Variables");
    connectionParams = jsonObject(fields.connectionParams, "Connection params") ?? {};
  } catch (error) {
    append("invalid", "invalid input", error.message, true);
    statusLine.textContent = "Not sent: fix the input.";
    return;
  }
  const request = { query: fields.query.value };
  if (variables !== null) {
    request.variables = variables;
  }
  if (fields.operationName.value.trim() !== "") {
    request.operationName = fields.operationName.value.trim();
  }
  const protocol = fields.protocol.value;
  let keepalives = 0;
  keepaliveLine.textContent = "";
  const events = {
    open(subprotocol) {
      statusLine.textContent = `Connected (${subprotocol || "no subprotocol"}), initialising…`;
    },
    ack() {
      statusLine.textContent = "Running…";
    },
    next(payload) {
      const failed = Array.isArray(payload?.errors) && payload.errors.length > 0;
      append("next", failed ? "next, with errors" : "next", payload, failed);
    },
    error(payload) {
      append("error", "error", payload, true);
    },
    complete() {
      append("complete", "complete");
    },
    connectionError(payload) {
      append("connection-error", "connection_error", payload, true);
    },
    keepalive(kind) {
      keepalives += 1;
      keepaliveLine.textContent =
        kind === "ping" ? `Pings answered: ${keepalives}` : `Keep-alives (ka): ${keepalives}`;
    },
    unexpected(text) {
      append("unexpected", "unexpected frame", text, true);
    },
    closed(close) {
      setRunning(null);
      if (close.expected) {
        append("closed", "closed", describeClose(close));
        statusLine.textContent = "Done.";
      } else {
        append("closed", "socket closed by the server", describeClose(close), true);
        statusLine.textContent = "The server closed the socket.";
      }
    },
  };
  list.replaceChildren();
  append("sent", `sent over ${protocol}`, request);
  statusLine.textContent = "Connecting…";
  try {
    const operation = runOperation(
      fields.endpoint.value,
      protocol,
      connectionParams,
      request,
      events,
    );
    setRunning({ operation, protocol });
  } catch (error) {
    append("invalid", "cannot connect", error.message, true);
    statusLine.textContent = "Not sent.";
  }
}

function stop() {
  if (running !== null) {
    const sent = running.protocol === TRANSPORT_WS ? "complete" : "stop";
    append("stopped", `stopped (sent ${sent})`);
    running.operation.stop();
  }
}

fields.endpoint.value = defaultEndpoint();
buttons.run.addEventListener("click", run);
buttons.stop.addEventListener("click", stop);
buttons.clear.addEventListener("click", () => list.replaceChildren());
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    run();
  }
});
document.body.dataset.ready = "true";
