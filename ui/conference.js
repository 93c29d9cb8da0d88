// The Between Conference API for page code (see shared/API.md), over the app's IPC
// (src-tauri/IPC.md): methods become invoke() calls on the engine's conference handle, the
// engine's events arrive on one channel and are dispatched here under the API's names, to the
// Conference, to a Peer, to the LocalParticipant or to the DataHandler.
//
// Importable in Node (no DOM access at import time): tests inject a fake IPC with setIpc()
// and a fake video element with setVideoFactory().

import { BAError, channel, invoke, setIpc, toBAError } from "./ipc.js";
import { pulledSource } from "./frames.js";
import { createVideoElement } from "./video.js";

export { BAError, setIpc };

/** Largest `dataHandler.send` payload, as JSON text in UTF-8 (API.md: 64 KiB). */
export const MAX_DATA_BYTES = 64 * 1024;

/** The `peerId` that video_open understands as "this user's camera". */
const LOCAL_VIDEO_ID = "local";

/** video_open's name for a peer's screen share (IPC.md). */
const SCREEN_VIDEO_SUFFIX = ":screen";

// The docs spell the remote share events both ways; the camel-case names are canonical.
const ALIASES = { screenshareCreated: "screenShareCreated", screenshareClosed: "screenShareClosed" };
const canonical = (name) => ALIASES[name] ?? name;

const PEER_EVENTS = new Set([
  "videoCreated", "videoPaused", "videoResumed", "audioPaused", "audioResumed", "audioLevel", "speaking",
  "poorConnection",
]);

const ignore = () => {};

// Module-private hooks: the classes below are exported, their internals are not API.
const EMIT = Symbol("emit");
const CLOSE_VIDEO = Symbol("closeVideo");
const HAS_VIDEO = Symbol("hasVideo");

class Listeners {
  #byName = new Map();

  on(name, fn) {
    if (typeof fn !== "function") throw new BAError("invalid_argument", `The listener for "${name}" must be a function.`);
    const key = canonical(name);
    if (!this.#byName.has(key)) this.#byName.set(key, new Set());
    this.#byName.get(key).add(fn);
  }

  off(name, fn) {
    this.#byName.get(canonical(name))?.delete(fn);
  }

  emit(name, ...args) {
    const set = this.#byName.get(name);
    if (!set) return;
    // A copy: a listener may remove itself (or others) while we iterate.
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // One broken listener must not starve the others, nor the engine's event loop.
        console.error(`Between: a "${name}" listener threw`, err);
      }
    }
  }
}

let videoFactory = null;

/**
 * Replaces how video elements are made: `factory({peerId, kind, source})` returns what
 * `videoCreated` listeners receive, with a `close()` method. null restores the default.
 */
export function setVideoFactory(factory) {
  videoFactory = factory ?? null;
}

function makeVideo(opts) {
  if (videoFactory) return videoFactory(opts);
  if (typeof document !== "undefined" && typeof customElements !== "undefined") {
    return createVideoElement(opts);
  }
  // No DOM (Node, a worker): a handle that can still open the stream by hand.
  return { peerId: opts.peerId, kind: opts.kind, source: opts.source, close: ignore };
}

const asExtraData = (x) => (typeof x === "string" ? x : x === undefined || x === null ? "" : JSON.stringify(x));

function newCallId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const hex = () => Math.floor(Math.random() * 0x10000).toString(16).padStart(4, "0");
  return `${hex()}${hex()}-${hex()}-4${hex().slice(1)}-a${hex().slice(1)}-${hex()}${hex()}${hex()}`;
}

/** A remote participant (or, from `screenShareCreated`, a participant's screen). */
export class Peer {
  #call;
  #listeners = new Listeners();
  #audioMuted = false;
  #videoMuted = false;
  #video = null;

  /** Made by the Conference; `call` is its private bridge to the engine. */
  constructor(call, id, extraData) {
    this.#call = call;
    this.id = id;
    this.extraData = asExtraData(extraData);
  }

  /** This peer's playback volume, 0 to 1. */
  setVolume(volume) {
    if (typeof volume !== "number" || !(volume >= 0 && volume <= 1)) {
      return Promise.reject(new BAError("invalid_argument", `The volume must be a number from 0 to 1, not ${String(volume)}.`));
    }
    return this.#call.invoke("peer_set_volume", { peerId: this.id, volume }).then(ignore);
  }

  /**
   * *Ours*: receive this peer's camera as if drawn at `width` x `height` (0, 0: receive no
   * video, to save the link), whatever its tiles say; `setVideoSize(null)` gives it back to
   * the tiles. Without a call to this, each tile's size is sent on its own (adaptive stream).
   */
  setVideoSize(width, height) {
    if (width === null && height === undefined) {
      return this.#call.invoke("peer_set_video_size", { peerId: this.id, width: null, height: null }).then(ignore);
    }
    const valid = (v) => Number.isInteger(v) && v >= 0 && v <= 16384;
    if (!valid(width) || !valid(height)) {
      return Promise.reject(
        new BAError("invalid_argument", `A video size is two whole numbers from 0 to 16384, not ${String(width)} x ${String(height)}.`),
      );
    }
    return this.#call.invoke("peer_set_video_size", { peerId: this.id, width, height }).then(ignore);
  }

  isAudioMuted() {
    return this.#audioMuted;
  }

  isVideoMuted() {
    return this.#videoMuted;
  }

  on(name, fn) {
    this.#listeners.on(name, fn);
  }

  off(name, fn) {
    this.#listeners.off(name, fn);
  }

  [EMIT](name, payload) {
    switch (name) {
      case "audioPaused": this.#audioMuted = true; break;
      case "audioResumed": this.#audioMuted = false; break;
      case "videoPaused": this.#videoMuted = true; break;
      case "videoResumed": this.#videoMuted = false; break;
      case "videoCreated":
        this[CLOSE_VIDEO]();
        this.#video = payload;
        this.#videoMuted = false;
        break;
    }
    if (payload === undefined) this.#listeners.emit(name);
    else this.#listeners.emit(name, payload);
  }

  [CLOSE_VIDEO]() {
    this.#video?.close?.();
    this.#video = null;
  }
}

/** This user's published media. */
export class LocalParticipant {
  #call;
  #listeners = new Listeners();
  #audioMuted;
  #videoMuted;
  #video = null;

  constructor(call, id, { audioMuted = false, videoMuted = false } = {}) {
    this.#call = call;
    this.id = id;
    this.#audioMuted = audioMuted;
    this.#videoMuted = videoMuted;
  }

  muteAudio() {
    return this.#mute("local_mute_audio");
  }

  unmuteAudio() {
    return this.#mute("local_unmute_audio");
  }

  muteVideo() {
    return this.#mute("local_mute_video");
  }

  unmuteVideo() {
    return this.#mute("local_unmute_video");
  }

  isAudioMuted() {
    return this.#audioMuted;
  }

  isVideoMuted() {
    return this.#videoMuted;
  }

  /** Switches the microphone mid-call. */
  setAudioInput(deviceId) {
    return this.#call.invoke("local_set_audio_input", { deviceId }).then(ignore);
  }

  /** Switches the camera mid-call; "" stops it (*ours*, as `videoInput: ""` in startCall). */
  async setVideoInput(deviceId) {
    await this.#call.invoke("local_set_video_input", { deviceId });
    if (deviceId === "") {
      this[CLOSE_VIDEO]();
    } else if (!this.#video) {
      this.#call.localVideoCreated();
    }
  }

  on(name, fn) {
    this.#listeners.on(name, fn);
  }

  off(name, fn) {
    this.#listeners.off(name, fn);
  }

  async #mute(cmd) {
    const state = await this.#call.invoke(cmd, {});
    if (state && typeof state === "object") {
      if (typeof state.audioMuted === "boolean") this.#audioMuted = state.audioMuted;
      if (typeof state.videoMuted === "boolean") this.#videoMuted = state.videoMuted;
    }
  }

  [HAS_VIDEO]() {
    return this.#video !== null;
  }

  [EMIT](name, payload) {
    if (name === "videoCreated") {
      this[CLOSE_VIDEO]();
      this.#video = payload;
    }
    this.#listeners.emit(name, payload);
  }

  [CLOSE_VIDEO]() {
    this.#video?.close?.();
    this.#video = null;
  }
}

/** Sends data to the call's participants (reliable, ordered) and receives theirs. */
export class DataHandler {
  #call;
  #listeners = new Listeners();

  constructor(call) {
    this.#call = call;
  }

  /** Sends `data` (anything JSON) to everyone, or to one peer. At most 64 KiB as JSON. */
  async send(data, toPeerId) {
    let text;
    try {
      text = JSON.stringify(data);
    } catch {
      throw new BAError("invalid_argument", "This data cannot be sent: it cannot be written as JSON.");
    }
    if (text === undefined) {
      throw new BAError("invalid_argument", "This data cannot be sent: it has no JSON form (undefined or a function).");
    }
    if (toPeerId !== undefined && toPeerId !== null && typeof toPeerId !== "string") {
      throw new BAError("invalid_argument", "The recipient must be a peer ID (a string).");
    }
    const bytes = new TextEncoder().encode(text).byteLength;
    if (bytes > MAX_DATA_BYTES) {
      throw new BAError("message_too_large", `This message is ${Math.ceil(bytes / 1024)} KiB; a message can be at most 64 KiB. Send it in parts.`);
    }
    await this.#call.invoke("conference_send_data", { data, to: toPeerId ?? null });
  }

  on(name, fn) {
    this.#listeners.on(name, fn);
  }

  off(name, fn) {
    this.#listeners.off(name, fn);
  }

  [EMIT](name, payload) {
    this.#listeners.emit(name, payload);
  }
}

/** One call, for its whole lifetime. */
export class Conference {
  #ready;
  #closed = false;
  #listeners = new Listeners();
  #peers = new Map();
  #shares = new Map();
  #peerId = null;
  #local = null;
  #startOptions = {};
  #call;

  /**
   * Stores the key, call ID and extra data and registers the conference with the engine at
   * once; a refusal (e.g. a malformed call ID) surfaces from the first method awaited,
   * normally startCall().
   */
  constructor(apiKey, callId, extraData) {
    this.callId = callId === undefined || callId === null || callId === "" ? newCallId() : callId;
    this.#call = {
      invoke: async (cmd, args) => invoke(cmd, { id: await this.#ready, ...args }),
      localVideoCreated: () => this.#localVideoCreated(),
    };
    this.dataHandler = new DataHandler(this.#call);
    try {
      const events = channel((msg) => this.#onEvent(msg));
      this.#ready = invoke("conference_new", { apiKey, callId: this.callId, extraData, events }).then((r) => {
        if (typeof r?.callId === "string" && r.callId) this.callId = r.callId;
        return r?.id;
      });
    } catch (err) {
      this.#ready = Promise.reject(toBAError(err));
    }
    // Nobody may be awaiting yet: the refusal is reported by the next method instead.
    this.#ready.catch(ignore);
  }

  /** This participant's ID: null until joined; may change after a reconnect. */
  get peerId() {
    return this.#peerId;
  }

  /** *Ours*: the LocalParticipant once `localParticipant` fired, else null. */
  get localParticipant() {
    return this.#local;
  }

  on(name, fn) {
    this.#listeners.on(name, fn);
  }

  off(name, fn) {
    this.#listeners.off(name, fn);
  }

  getPermissionState() {
    return this.#call.invoke("conference_get_permission_state", {});
  }

  setOutputDevice(deviceId) {
    return this.#call.invoke("conference_set_output_device", { deviceId }).then(ignore);
  }

  /**
   * Joins the call. *Ours*: `options` picks devices and the initial mute state:
   * `{audioInput, audioOutput, videoInput, audioMuted, videoMuted}` (device IDs from the app's
   * device list; absent = system default; `videoInput: ""` = no camera).
   */
  async startCall(options = {}) {
    const picked = {};
    for (const key of ["audioInput", "audioOutput", "videoInput", "audioMuted", "videoMuted"]) {
      if (options[key] !== undefined) picked[key] = options[key];
    }
    this.#startOptions = picked;
    const answer = await this.#call.invoke("conference_start_call", { options: picked });
    this.#peerId = answer?.peerId ?? this.#peerId;
    if (this.#local) this.#local.id = this.#peerId;
  }

  /** Leaves the call; `sessionTerminated` has fired by the time this resolves. */
  async endCall() {
    try {
      await this.#call.invoke("conference_end_call", {});
    } finally {
      this.#dropMedia();
    }
  }

  /** *Ours*: forgets the engine's handle (ending the call if still in it). Idempotent. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#dropMedia();
    let id;
    try {
      id = await this.#ready;
    } catch {
      return; // never registered: nothing to forget
    }
    await invoke("conference_close", { id });
  }

  /** Shares the whole screen, or `target` (an `id` from `screenshareTargets()`). */
  startScreenshare(target) {
    return this.#call.invoke("conference_start_screenshare", target ? { target } : {});
  }

  /** *Ours*: what can be shared, `[{id, kind, name, width, height}]`, the whole screen first. */
  screenshareTargets() {
    return this.#call.invoke("conference_screenshare_targets", {});
  }

  stopScreenshare() {
    return this.#call.invoke("conference_stop_screenshare", {});
  }

  // BETA onsite features: the engine has no commands for them yet (IPC.md). They check their
  // arguments, then reject with `unsupported` rather than pretend the room's audio changed.

  async setLocationType(location) {
    if (location !== "onsite" && location !== "offsite") {
      throw new BAError("invalid_argument", `The location must be "onsite" or "offsite", not ${JSON.stringify(location)}.`);
    }
    throw unsupported();
  }

  async setOnsiteMic(peerId) {
    if (typeof peerId !== "string" || !peerId) {
      throw new BAError("invalid_argument", "setOnsiteMic needs the peer ID of an onsite participant.");
    }
    throw unsupported();
  }

  async getCurrentOnsiteMic() {
    throw unsupported();
  }

  async getAllOnsiteMics() {
    throw unsupported();
  }

  #onEvent(raw) {
    let msg = raw;
    if (typeof msg === "string") {
      try {
        msg = JSON.parse(msg);
      } catch {
        return;
      }
    }
    if (this.#closed || !msg || typeof msg.event !== "string") return;
    const { event: name, ...rest } = msg;

    if (PEER_EVENTS.has(name)) {
      this.#onPeerEvent(name, rest);
      return;
    }
    switch (name) {
      case "peerJoined": {
        if (this.#peers.has(rest.peerId)) return; // a replayed roster: already known
        const peer = new Peer(this.#call, rest.peerId, rest.extraData);
        this.#peers.set(peer.id, peer);
        this.#listeners.emit("peerJoined", peer);
        return;
      }
      case "peerLeft": {
        // A sharer who leaves stops sharing: say so, so no one keeps a dead share on screen.
        if (this.#shares.has(rest.peerId)) this.#onEvent({ event: "screenShareClosed", peerId: rest.peerId });
        this.#peers.get(rest.peerId)?.[CLOSE_VIDEO]();
        this.#peers.delete(rest.peerId);
        this.#listeners.emit("peerLeft", rest.peerId);
        return;
      }
      case "localParticipant": {
        this.#peerId = rest.peerId ?? this.#peerId;
        // Announced again (a reconnect that lost the identity): the same object, so listeners stay.
        if (this.#local) this.#local.id = this.#peerId;
        else this.#local = new LocalParticipant(this.#call, this.#peerId, this.#startOptions);
        this.#listeners.emit("localParticipant", this.#local);
        // The engine announces no local video; the preview exists whenever a camera was asked for.
        if (this.#startOptions.videoInput !== "" && !this.#local[HAS_VIDEO]()) this.#localVideoCreated();
        return;
      }
      case "localAudioLevel":
        this.#local?.[EMIT]("audioLevel", { level: rest.level });
        return;
      case "data":
        this.dataHandler[EMIT]("data", { from: rest.from, data: rest.data });
        return;
      case "screenShareCreated": {
        this.#shares.get(rest.peerId)?.[CLOSE_VIDEO]();
        const share = new Peer(this.#call, rest.peerId, rest.extraData ?? this.#peers.get(rest.peerId)?.extraData);
        this.#shares.set(share.id, share);
        this.#listeners.emit("screenShareCreated", share);
        // After the dispatch, so listeners attached in the handler receive the share's video.
        share[EMIT]("videoCreated", this.#video(rest.peerId + SCREEN_VIDEO_SUFFIX, "screen"));
        return;
      }
      case "screenShareClosed":
        this.#shares.get(rest.peerId)?.[CLOSE_VIDEO]();
        this.#shares.delete(rest.peerId);
        this.#listeners.emit("screenShareClosed", rest.peerId);
        return;
      case "socketReconnected":
        if (typeof rest.peerId === "string" && rest.peerId) {
          this.#peerId = rest.peerId;
          if (this.#local) this.#local.id = rest.peerId;
        }
        this.#listeners.emit("socketReconnected", { peerId: this.#peerId, resumed: rest.resumed === true });
        return;
      case "devicesUpdated":
        this.#listeners.emit("devicesUpdated", Array.isArray(rest.devices) ? rest.devices : []);
        return;
      case "deviceFallback":
        this.#listeners.emit("deviceFallback", { kind: rest.kind, lostDeviceId: rest.lostDeviceId, deviceId: rest.deviceId });
        return;
      case "error":
        this.#listeners.emit("error", toBAError(rest));
        return;
      case "sessionTerminated":
      case "socketDisconnected":
        this.#dropMedia();
        this.#listeners.emit(name);
        return;
      case "socketFailed":
      case "socketClose":
      case "localShareCreated":
      case "localShareClosed":
        this.#listeners.emit(name);
        return;
      default:
        // An event newer than this file: pass it on as the engine sent it.
        this.#listeners.emit(name, rest);
    }
  }

  #onPeerEvent(name, rest) {
    const isLocal = rest.peerId === LOCAL_VIDEO_ID || (rest.peerId != null && rest.peerId === this.#peerId);
    const target = isLocal ? this.#local : this.#peers.get(rest.peerId);
    if (!target) return;
    switch (name) {
      case "videoCreated":
        if (isLocal) {
          if (!this.#local[HAS_VIDEO]()) this.#localVideoCreated();
        } else {
          target[EMIT](name, this.#video(rest.peerId, "camera"));
        }
        return;
      case "audioLevel":
        target[EMIT](name, { level: rest.level });
        return;
      case "speaking":
        target[EMIT](name, rest.speaking === true);
        return;
      case "poorConnection":
        target[EMIT](name, rest.poor === true);
        return;
      default:
        target[EMIT](name);
    }
  }

  #localVideoCreated() {
    this.#local?.[EMIT]("videoCreated", this.#video(LOCAL_VIDEO_ID, "local"));
  }

  /** A video element for one of the engine's streams (`videoPeerId` as video_open takes it). */
  #video(videoPeerId, kind) {
    const call = this.#call;
    const source = pulledSource("video_open", { peerId: videoPeerId }, (cmd, args) => call.invoke(cmd, args));
    return makeVideo({ peerId: videoPeerId, kind, source });
  }

  /** The call's media is gone: close every video; the peers are forgotten. */
  #dropMedia() {
    for (const peer of this.#peers.values()) peer[CLOSE_VIDEO]();
    for (const share of this.#shares.values()) share[CLOSE_VIDEO]();
    this.#local?.[CLOSE_VIDEO]();
    this.#peers.clear();
    this.#shares.clear();
  }
}

function unsupported() {
  return new BAError("unsupported", "Onsite meeting rooms are not available in this version of Between yet.");
}
