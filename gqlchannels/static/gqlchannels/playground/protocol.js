// The client side of both GraphQL-over-WebSocket subprotocols, for one operation per socket.
//
// graphql-transport-ws: connection_init, connection_ack, then subscribe; next* and complete,
// or error; every server ping is answered with a pong (the server closes 3008 otherwise);
// Stop sends complete. Legacy graphql-ws: connection_init, connection_ack, then start;
// data* and complete, or error; ka frames are keep-alives and need no answer; Stop sends
// stop. Once the operation is over the socket is closed with 1000 (legacy first sends
// connection_terminate), so any other close is the server's and is reported as such.

export const TRANSPORT_WS = "graphql-transport-ws";
export const LEGACY_WS = "graphql-ws";

const OPERATION_ID = "1";
const NORMAL_CLOSURE = 1000;

// What each subprotocol calls the frames that differ between them.
const FRAMES = {
  [TRANSPORT_WS]: { start: "subscribe", result: "next", stop: "complete" },
  [LEGACY_WS]: { start: "start", result: "data", stop: "stop" },
};

// Run `request` ({query, variables, operationName}) over a new socket to `url` speaking
// `protocol`, initialised with `connectionParams`. `events` receives every step, each
// optional: open(subprotocol), ack(payload), next(payload), error(payload), complete(),
// connectionError(payload), keepalive(kind), unexpected(text), closed({code, reason,
// expected}). Returns {stop()}; the WebSocket constructor's own errors (a malformed URL)
// are thrown.
export function runOperation(url, protocol, connectionParams, request, events) {
  const frames = FRAMES[protocol];
  if (frames === undefined) {
    throw new Error(`Unknown protocol ${protocol}`);
  }
  const report = (name, ...args) => events[name]?.(...args);
  const socket = new WebSocket(url, protocol);
  let started = false;
  let finished = false;

  const send = (message) => {
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
    }
  };

  // The operation is over (or abandoned): close the socket ourselves.
  const finish = () => {
    if (finished) {
      return;
    }
    finished = true;
    if (protocol === LEGACY_WS) {
      send({ type: "connection_terminate" });
    }
    if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
      socket.close(NORMAL_CLOSURE, "Operation finished");
    }
  };

  const handle = (message) => {
    const { type } = message;
    if (type === "ping" && protocol === TRANSPORT_WS) {
      send({ type: "pong" });
      report("keepalive", "ping");
    } else if (type === "pong" && protocol === TRANSPORT_WS) {
      // an unsolicited pong is a heartbeat: nothing to answer
    } else if (type === "ka" && protocol === LEGACY_WS) {
      report("keepalive", "ka");
    } else if (type === "connection_ack") {
      report("ack", message.payload);
      started = true;
      send({ type: frames.start, id: OPERATION_ID, payload: request });
    } else if (type === "connection_error" && protocol === LEGACY_WS) {
      report("connectionError", message.payload);
    } else if (message.id !== OPERATION_ID) {
      report("unexpected", JSON.stringify(message));
    } else if (type === frames.result) {
      report("next", message.payload);
    } else if (type === "error") {
      report("error", message.payload);
      finish();
    } else if (type === "complete") {
      report("complete");
      finish();
    } else {
      report("unexpected", JSON.stringify(message));
    }
  };

  socket.addEventListener("open", () => {
    report("open", socket.protocol);
    send({ type: "connection_init", payload: connectionParams });
  });
  socket.addEventListener("message", (event) => {
    if (finished) {
      return; // frames racing our close: the operation is already over
    }
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      report("unexpected", String(event.data));
      return;
    }
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      report("unexpected", String(event.data));
      return;
    }
    handle(message);
  });
  socket.addEventListener("close", (event) => {
    const expected = finished;
    finished = true;
    report("closed", { code: event.code, reason: event.reason, expected });
  });

  return {
    // Stop listening: tell the server (complete, or legacy stop) once the operation was
    // sent, and close the socket.
    stop() {
      if (finished) {
        return;
      }
      if (started) {
        send({ type: frames.stop, id: OPERATION_ID });
      }
      finish();
    },
  };
}
