// A stand-in for Tauri's IPC: `invoke` records every call and answers from per-command
// handlers; `Channel` instances are kept so a test can push engine messages into them.

export function fakeIpc(handlers = {}) {
  const calls = [];
  const channels = [];

  class Channel {
    onmessage = null;
    constructor() {
      channels.push(this);
    }
    push(msg) {
      this.onmessage?.(msg);
    }
  }

  const defaults = {
    conference_new: () => ({ id: 7, callId: "team-standup" }),
    conference_start_call: () => ({ peerId: "me" }),
    conference_end_call: () => null,
  };

  async function invoke(cmd, args) {
    calls.push({ cmd, args });
    const handler = handlers[cmd] ?? defaults[cmd];
    return handler ? handler(args, { calls, channels }) : null;
  }

  return {
    ipc: { invoke, Channel },
    calls,
    channels,
    /** The conference's events channel (the first channel made). */
    get events() {
      return channels[0];
    },
    called: (cmd) => calls.filter((c) => c.cmd === cmd),
  };
}

/** Lets pending promise callbacks run. */
export const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
