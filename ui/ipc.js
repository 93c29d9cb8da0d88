// The one door to the app's engine: Tauri's invoke() and Channel, looked up lazily so this
// module (and everything built on it) imports cleanly in Node, where tests inject a fake.
// Every failure that crosses this door comes out as a BAError, so page code handles one type.

/** The Between API's error: a stable `code` and a `message` a person can act on. */
export class BAError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "BAError";
    this.code = code;
  }

  toJSON() {
    return { code: this.code, message: this.message };
  }
}

const FALLBACK_MESSAGE = "Something went wrong inside Between. Please try again.";

/** Turns whatever an IPC call rejected with into a BAError. */
export function toBAError(err) {
  if (err instanceof BAError) return err;
  if (typeof err === "string") {
    // Tauri's own failures (unknown command, bad arguments) arrive as plain strings; a Rust
    // error that was serialized to text may still be a {code, message} object inside.
    try {
      const parsed = JSON.parse(err);
      if (parsed && typeof parsed.code === "string") return toBAError(parsed);
    } catch {
      // Not JSON: the string is the message.
    }
    return new BAError("internal", err || FALLBACK_MESSAGE);
  }
  if (err && typeof err === "object" && typeof err.code === "string") {
    const message = typeof err.message === "string" && err.message ? err.message : FALLBACK_MESSAGE;
    return new BAError(err.code, message);
  }
  if (err instanceof Error) return new BAError("internal", err.message || FALLBACK_MESSAGE);
  return new BAError("internal", FALLBACK_MESSAGE);
}

let injected = null;

/** Replaces the Tauri IPC (tests, or a page embedding the API elsewhere); null restores it. */
export function setIpc(ipc) {
  injected = ipc ?? null;
}

function core() {
  if (injected) return injected;
  const tauri = globalThis.__TAURI__?.core;
  if (!tauri) {
    throw new BAError("internal", "This page is not running inside the Between app, so it cannot reach the engine.");
  }
  return tauri;
}

/** invoke(cmd, args) that always rejects with a BAError. */
export async function invoke(cmd, args) {
  try {
    return await core().invoke(cmd, args);
  } catch (err) {
    throw toBAError(err);
  }
}

/** A new IPC channel delivering each message to `onmessage`. Throws a BAError without IPC. */
export function channel(onmessage) {
  const Channel = core().Channel;
  const ch = new Channel();
  ch.onmessage = onmessage;
  return ch;
}

/** Bytes of a binary channel message, whichever shape the IPC layer chose; null if none. */
export function toBytes(msg) {
  if (msg instanceof Uint8Array) return msg;
  if (msg instanceof ArrayBuffer) return new Uint8Array(msg);
  if (ArrayBuffer.isView(msg)) return new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
  if (Array.isArray(msg)) return Uint8Array.from(msg);
  return null;
}
