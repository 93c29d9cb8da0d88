// conference.js against a fake IPC: the exact commands and arguments it sends, and the exact
// event names and payload shapes page code receives.

import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import {
  Conference, Peer, LocalParticipant, DataHandler, BAError, setIpc, setVideoFactory, MAX_DATA_BYTES,
} from "../conference.js";
import { fakeIpc, tick } from "./fake-ipc.mjs";

let fake;
let videos;

function useIpc(handlers) {
  fake = fakeIpc(handlers);
  setIpc(fake.ipc);
  return fake;
}

beforeEach(() => {
  useIpc();
  videos = [];
  setVideoFactory((opts) => {
    const video = { ...opts, closed: false, close() { this.closed = true; } };
    videos.push(video);
    return video;
  });
});

afterEach(() => {
  setIpc(null);
  setVideoFactory(null);
});

async function joined(options) {
  const conf = new Conference("key-1", "team-standup", { name: "Ada" });
  await conf.startCall(options);
  return conf;
}

const push = (msg) => fake.events.push(msg);

test("the constructor registers the conference at once, with an events channel", () => {
  const conf = new Conference("key-1", "team-standup", '{"name":"Ada"}');
  // Synchronously: before anything was awaited.
  assert.equal(fake.calls.length, 1);
  const [{ cmd, args }] = fake.calls;
  assert.equal(cmd, "conference_new");
  assert.equal(args.apiKey, "key-1");
  assert.equal(args.callId, "team-standup");
  assert.equal(args.extraData, '{"name":"Ada"}');
  assert.ok(args.events instanceof fake.ipc.Channel);
  assert.equal(conf.callId, "team-standup");
  assert.equal(conf.peerId, null);
  assert.ok(conf.dataHandler instanceof DataHandler);
  assert.equal(conf.localParticipant, null);
});

test("extraData objects are passed through for the engine to stringify", () => {
  new Conference("k", "c", { name: "Ada" });
  assert.deepEqual(fake.calls[0].args.extraData, { name: "Ada" });
});

test("with no call ID a UUID is generated", () => {
  const conf = new Conference("k", undefined, "x");
  assert.match(conf.callId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(fake.calls[0].args.callId, conf.callId);
});

test("startCall passes the options with the handle and sets peerId", async () => {
  const conf = await joined({ audioInput: "mic-2", audioOutput: "spk-1", videoInput: "", audioMuted: true });
  const [start] = fake.called("conference_start_call");
  assert.deepEqual(start.args, {
    id: 7,
    options: { audioInput: "mic-2", audioOutput: "spk-1", videoInput: "", audioMuted: true },
  });
  assert.equal(conf.peerId, "me");
});

test("startCall leaves absent options out (system defaults)", async () => {
  await joined();
  assert.deepEqual(fake.called("conference_start_call")[0].args, { id: 7, options: {} });
});

test("a refused conference_new surfaces as the BAError of startCall", async () => {
  useIpc({
    conference_new: () => {
      throw { code: "invalid_call_id", message: "A call ID is 1-128 letters, digits, '-', '_', '.' or '~'." };
    },
  });
  const conf = new Conference("k", "bad id!", "x");
  await tick(); // no unhandled rejection in between
  await assert.rejects(conf.startCall(), (err) => {
    assert.ok(err instanceof BAError);
    assert.ok(err instanceof Error);
    assert.equal(err.code, "invalid_call_id");
    assert.equal(err.message, "A call ID is 1-128 letters, digits, '-', '_', '.' or '~'.");
    return true;
  });
  assert.equal(fake.called("conference_start_call").length, 0);
});

test("every IPC rejection becomes a BAError", async () => {
  useIpc({
    conference_start_screenshare: () => {
      throw { code: "screenshare_denied", message: "Allow screen recording in System Settings." };
    },
    conference_stop_screenshare: () => {
      throw "command conference_stop_screenshare not found";
    },
    conference_set_output_device: () => {
      throw new TypeError("boom");
    },
    conference_get_permission_state: () => {
      throw '{"code":"permission_denied","message":"Allow the microphone."}';
    },
  });
  const conf = await joined();
  await assert.rejects(conf.startScreenshare(), { name: "BAError", code: "screenshare_denied", message: "Allow screen recording in System Settings." });
  await assert.rejects(conf.stopScreenshare(), (e) => e instanceof BAError && e.code === "internal" && /not found/.test(e.message));
  await assert.rejects(conf.setOutputDevice("x"), (e) => e instanceof BAError && e.code === "internal" && e.message === "boom");
  await assert.rejects(conf.getPermissionState(), (e) => e instanceof BAError && e.code === "permission_denied");
});

test("without any IPC the constructor does not throw; methods reject with a BAError", async () => {
  setIpc(null);
  const conf = new Conference("k", "c", "x");
  await assert.rejects(conf.startCall(), (e) => e instanceof BAError && e.code === "internal");
});

test("methods send the handle and their arguments", async () => {
  useIpc({
    conference_get_permission_state: () => ({ state: "success", error: { reason: "", rawStr: "" } }),
    conference_start_screenshare: () => true,
    conference_stop_screenshare: () => true,
  });
  const conf = await joined();
  assert.deepEqual(await conf.getPermissionState(), { state: "success", error: { reason: "", rawStr: "" } });
  assert.equal(await conf.setOutputDevice("spk-2"), undefined);
  assert.equal(await conf.startScreenshare(), true);
  assert.equal(await conf.stopScreenshare(), true);
  assert.deepEqual(fake.called("conference_set_output_device")[0].args, { id: 7, deviceId: "spk-2" });
  assert.deepEqual(fake.called("conference_start_screenshare")[0].args, { id: 7 });
  assert.deepEqual(fake.called("conference_stop_screenshare")[0].args, { id: 7 });
});

test("a share target and the target list cross to the app", async () => {
  const targets = [
    { id: "screen", kind: "screen", name: "Entire screen", width: 1280, height: 720 },
    { id: "window:42", kind: "window", name: "Notes", width: 640, height: 360 },
  ];
  useIpc({
    conference_start_screenshare: () => true,
    conference_screenshare_targets: () => targets,
  });
  const conf = await joined();
  assert.deepEqual(await conf.screenshareTargets(), targets);
  assert.equal(await conf.startScreenshare("window:42"), true);
  assert.deepEqual(fake.called("conference_start_screenshare")[0].args, { id: 7, target: "window:42" });
});

test("peerJoined gives a Peer; peerLeft gives the id string and forgets the Peer", async () => {
  const conf = await joined();
  const seen = [];
  conf.on("peerJoined", (p) => seen.push(["joined", p]));
  conf.on("peerLeft", (id) => seen.push(["left", id]));

  push({ event: "peerJoined", peerId: "p1", extraData: '{"name":"Bo"}' });
  assert.equal(seen.length, 1);
  const peer = seen[0][1];
  assert.ok(peer instanceof Peer);
  assert.equal(peer.id, "p1");
  assert.equal(peer.extraData, '{"name":"Bo"}');

  const paused = [];
  peer.on("audioPaused", () => paused.push(true));
  push({ event: "peerLeft", peerId: "p1" });
  assert.deepEqual(seen[1], ["left", "p1"]);
  push({ event: "audioPaused", peerId: "p1" });
  assert.equal(paused.length, 0, "a Peer that left gets no more events");
});

test("a peer announced twice is one Peer", async () => {
  const conf = await joined();
  let count = 0;
  conf.on("peerJoined", () => count++);
  push({ event: "peerJoined", peerId: "p1", extraData: "x" });
  push({ event: "peerJoined", peerId: "p1", extraData: "x" });
  assert.equal(count, 1);
});

test("per-peer events reach that Peer's listeners with the API's payloads", async () => {
  const conf = await joined();
  const peers = {};
  conf.on("peerJoined", (p) => (peers[p.id] = p));
  push({ event: "peerJoined", peerId: "p1", extraData: "one" });
  push({ event: "peerJoined", peerId: "p2", extraData: "two" });

  const got = { p1: [], p2: [] };
  for (const id of ["p1", "p2"]) {
    for (const name of ["videoPaused", "videoResumed", "audioPaused", "audioResumed", "audioLevel", "speaking", "poorConnection", "videoCreated"]) {
      peers[id].on(name, (...args) => got[id].push([name, ...args]));
    }
  }

  push({ event: "audioPaused", peerId: "p1" });
  assert.equal(peers.p1.isAudioMuted(), true);
  push({ event: "videoPaused", peerId: "p1" });
  assert.equal(peers.p1.isVideoMuted(), true);
  push({ event: "audioResumed", peerId: "p1" });
  push({ event: "videoResumed", peerId: "p1" });
  assert.equal(peers.p1.isAudioMuted(), false);
  assert.equal(peers.p1.isVideoMuted(), false);
  push({ event: "audioLevel", peerId: "p1", level: 0.42 });
  push({ event: "speaking", peerId: "p1", speaking: true });
  push({ event: "speaking", peerId: "p1", speaking: false });
  push({ event: "poorConnection", peerId: "p1", poor: true });
  push({ event: "poorConnection", peerId: "p1", poor: false });

  assert.deepEqual(got.p1, [
    ["audioPaused"], ["videoPaused"], ["audioResumed"], ["videoResumed"],
    ["audioLevel", { level: 0.42 }], ["speaking", true], ["speaking", false],
    ["poorConnection", true], ["poorConnection", false],
  ]);
  assert.deepEqual(got.p2, [], "events for p1 do not reach p2");

  push({ event: "videoCreated", peerId: "p2" });
  assert.equal(got.p2.length, 1);
  assert.equal(got.p2[0][0], "videoCreated");
  assert.equal(got.p2[0][1], videos[0]);
  assert.equal(videos[0].peerId, "p2");
  assert.equal(videos[0].kind, "camera");
});

test("a video element opens, resizes and closes the engine's stream", async () => {
  const frames = [];
  let served = 0;
  useIpc({
    video_open: () => ({ video: 31 }),
    // One frame, then "nothing new" (empty) until the stream is closed.
    video_next: () => (served++ === 0 ? new ArrayBuffer(16) : new ArrayBuffer(0)),
  });
  const conf = await joined();
  conf.on("peerJoined", (peer) => peer.on("videoCreated", (el) => frames.push(el)));
  push({ event: "peerJoined", peerId: "p1", extraData: "x" });
  push({ event: "videoCreated", peerId: "p1" });
  const { source } = videos[0];

  const drawn = [];
  const handle = await source.open(640, 360, (msg) => drawn.push(msg));
  assert.equal(handle, 31);
  const [open] = fake.called("video_open");
  assert.equal(open.args.id, 7);
  assert.equal(open.args.peerId, "p1");
  assert.equal(open.args.width, 640);
  assert.equal(open.args.height, 360);
  // Frames are pulled: one video_next at a time, the next only after the last was drawn.
  await tick();
  await tick();
  assert.ok(fake.called("video_next").length >= 1);
  assert.equal(fake.called("video_next")[0].args.video, 31);
  assert.ok(drawn.length >= 1);
  assert.equal(drawn[0].byteLength, 16);

  await source.resize(31, 320, 180);
  await source.close(31);
  assert.deepEqual(fake.called("video_resize")[0].args, { video: 31, width: 320, height: 180 });
  assert.deepEqual(fake.called("video_close")[0].args, { video: 31 });

  // The peer leaving closes its element.
  push({ event: "peerLeft", peerId: "p1" });
  assert.equal(videos[0].closed, true);
});

test("a new videoCreated for the same peer closes the previous element", async () => {
  const conf = await joined();
  conf.on("peerJoined", () => {});
  push({ event: "peerJoined", peerId: "p1", extraData: "x" });
  push({ event: "videoCreated", peerId: "p1" });
  push({ event: "videoCreated", peerId: "p1" });
  assert.equal(videos.length, 2);
  assert.equal(videos[0].closed, true);
  assert.equal(videos[1].closed, false);
});

test("data goes to the dataHandler's listeners as {from, data}", async () => {
  const conf = await joined();
  const got = [];
  const onConf = [];
  conf.dataHandler.on("data", (m) => got.push(m));
  conf.on("data", (m) => onConf.push(m));
  push({ event: "data", from: "p1", data: { type: "chat", text: "hi" } });
  push({ event: "data", from: "p2", data: "plain" });
  assert.deepEqual(got, [
    { from: "p1", data: { type: "chat", text: "hi" } },
    { from: "p2", data: "plain" },
  ]);
  assert.deepEqual(onConf, [], "data is the dataHandler's, not a Conference event");
});

test("dataHandler.send sends JSON to everyone or to one peer", async () => {
  const conf = await joined();
  await conf.dataHandler.send({ type: "chat", text: "hello" });
  await conf.dataHandler.send([1, 2], "p9");
  assert.deepEqual(fake.called("conference_send_data").map((c) => c.args), [
    { id: 7, data: { type: "chat", text: "hello" }, to: null },
    { id: 7, data: [1, 2], to: "p9" },
  ]);
});

test("dataHandler.send refuses more than 64 KiB with message_too_large", async () => {
  const conf = await joined();
  // JSON of a string adds two quotes: this is exactly the limit...
  await conf.dataHandler.send("a".repeat(MAX_DATA_BYTES - 2));
  // ...and one byte more (a multi-byte character counts in UTF-8 bytes) is refused.
  await assert.rejects(conf.dataHandler.send("a".repeat(MAX_DATA_BYTES - 3) + "é"), (e) => {
    assert.ok(e instanceof BAError);
    assert.equal(e.code, "message_too_large");
    assert.match(e.message, /64 KiB/);
    return true;
  });
  await assert.rejects(conf.dataHandler.send(undefined), { code: "invalid_argument" });
  const cyclic = {};
  cyclic.self = cyclic;
  await assert.rejects(conf.dataHandler.send(cyclic), { code: "invalid_argument" });
  assert.equal(fake.called("conference_send_data").length, 1);
});

test("off removes exactly that listener", async () => {
  const conf = await joined();
  const a = [];
  const b = [];
  const fa = (id) => a.push(id);
  const fb = (id) => b.push(id);
  conf.on("peerLeft", fa);
  conf.on("peerLeft", fb);
  push({ event: "peerLeft", peerId: "x" });
  conf.off("peerLeft", fa);
  push({ event: "peerLeft", peerId: "y" });
  assert.deepEqual(a, ["x"]);
  assert.deepEqual(b, ["x", "y"]);

  const data = [];
  const fd = (m) => data.push(m);
  conf.dataHandler.on("data", fd);
  conf.dataHandler.off("data", fd);
  push({ event: "data", from: "p", data: 1 });
  assert.deepEqual(data, []);
});

test("a throwing listener does not stop the others, and is reported", async (t) => {
  const errors = [];
  t.mock.method(console, "error", (...args) => errors.push(args));
  const conf = await joined();
  const got = [];
  conf.on("socketFailed", () => got.push("first"));
  conf.on("socketFailed", () => {
    throw new Error("listener bug");
  });
  conf.on("socketFailed", () => got.push("third"));
  push({ event: "socketFailed" });
  assert.deepEqual(got, ["first", "third"]);
  assert.equal(errors.length, 1);
  assert.ok(errors[0].some((a) => a instanceof Error && a.message === "listener bug"));

  // The channel keeps delivering after the throw.
  push({ event: "socketFailed" });
  assert.deepEqual(got, ["first", "third", "first", "third"]);
});

test("Peer.setVolume takes 0..1 and rejects anything else with invalid_argument", async () => {
  const conf = await joined();
  let peer;
  conf.on("peerJoined", (x) => (peer = x));
  push({ event: "peerJoined", peerId: "p1", extraData: "x" });

  for (const bad of [-0.01, 1.01, Number.NaN, Infinity, "0.5", null, undefined]) {
    const result = peer.setVolume(bad);
    assert.ok(result instanceof Promise, "a rejected promise, not a throw");
    await assert.rejects(result, (e) => e instanceof BAError && e.code === "invalid_argument");
  }
  assert.equal(fake.called("peer_set_volume").length, 0);

  await peer.setVolume(0);
  await peer.setVolume(0.5);
  await peer.setVolume(1);
  assert.deepEqual(fake.called("peer_set_volume").map((c) => c.args), [
    { id: 7, peerId: "p1", volume: 0 },
    { id: 7, peerId: "p1", volume: 0.5 },
    { id: 7, peerId: "p1", volume: 1 },
  ]);
});

test("Peer.setVideoSize takes two sizes or null and rejects anything else with invalid_argument", async () => {
  const conf = await joined();
  let peer;
  conf.on("peerJoined", (x) => (peer = x));
  push({ event: "peerJoined", peerId: "p1", extraData: "x" });

  for (const [w, h] of [[-1, 10], [10, 16385], [1.5, 2], ["640", 360], [640, undefined], [null, 360]]) {
    const result = peer.setVideoSize(w, h);
    assert.ok(result instanceof Promise, "a rejected promise, not a throw");
    await assert.rejects(result, (e) => e instanceof BAError && e.code === "invalid_argument");
  }
  assert.equal(fake.called("peer_set_video_size").length, 0);

  await peer.setVideoSize(0, 0);
  await peer.setVideoSize(640, 360);
  await peer.setVideoSize(null);
  assert.deepEqual(fake.called("peer_set_video_size").map((c) => c.args), [
    { id: 7, peerId: "p1", width: 0, height: 0 },
    { id: 7, peerId: "p1", width: 640, height: 360 },
    { id: 7, peerId: "p1", width: null, height: null },
  ]);
});

test("the remote share events work under both spellings", async () => {
  const conf = await joined();
  const created = [];
  const closed = [];
  const closedCanonical = [];
  conf.on("peerJoined", () => {});
  conf.on("screenshareCreated", (peer) => {
    created.push(peer);
    peer.on("videoCreated", (el) => created.push(el));
  });
  conf.on("screenshareClosed", (id) => closed.push(id));
  conf.on("screenShareClosed", (id) => closedCanonical.push(id));

  push({ event: "peerJoined", peerId: "p1", extraData: '{"name":"Bo"}' });
  push({ event: "screenShareCreated", peerId: "p1", extraData: '{"name":"Bo"}' });
  assert.ok(created[0] instanceof Peer);
  assert.equal(created[0].id, "p1");
  assert.equal(created[0].extraData, '{"name":"Bo"}');
  assert.equal(created[1], videos[0], "the share Peer's videoCreated follows at once");
  assert.equal(videos[0].kind, "screen");
  assert.equal(videos[0].peerId, "p1:screen");

  push({ event: "screenShareClosed", peerId: "p1" });
  assert.deepEqual(closed, ["p1"]);
  assert.deepEqual(closedCanonical, ["p1"]);
  assert.equal(videos[0].closed, true);

  const off = [];
  const fn = (id) => off.push(id);
  conf.on("screenShareClosed", fn);
  conf.off("screenshareClosed", fn);
  push({ event: "screenShareClosed", peerId: "p1" });
  assert.deepEqual(off, []);
});

test("a sharer who leaves gets screenShareClosed before peerLeft", async () => {
  const conf = await joined();
  const order = [];
  conf.on("screenShareClosed", (id) => order.push(["closed", id]));
  conf.on("peerLeft", (id) => order.push(["left", id]));
  push({ event: "peerJoined", peerId: "p1", extraData: "x" });
  push({ event: "screenShareCreated", peerId: "p1", extraData: "x" });
  push({ event: "peerLeft", peerId: "p1" });
  assert.deepEqual(order, [["closed", "p1"], ["left", "p1"]]);
});

test("endCall: sessionTerminated arrives before it resolves, videos close", async () => {
  useIpc({
    conference_end_call: (_args, { channels }) => {
      channels[0].push({ event: "socketClose" });
      channels[0].push({ event: "sessionTerminated" });
      return null;
    },
  });
  const conf = await joined();
  const order = [];
  conf.on("peerJoined", () => {});
  push({ event: "peerJoined", peerId: "p1", extraData: "x" });
  push({ event: "videoCreated", peerId: "p1" });
  conf.on("socketClose", () => order.push("socketClose"));
  conf.on("sessionTerminated", (...args) => order.push(["sessionTerminated", args.length]));
  await conf.endCall();
  order.push("resolved");
  assert.deepEqual(order, ["socketClose", ["sessionTerminated", 0], "resolved"]);
  assert.deepEqual(fake.called("conference_end_call")[0].args, { id: 7 });
  assert.equal(videos[0].closed, true);
});

test("close forgets the handle once", async () => {
  const conf = await joined();
  await conf.close();
  await conf.close();
  assert.deepEqual(fake.called("conference_close").map((c) => c.args), [{ id: 7 }]);
});

test("localParticipant: mute state, devices, level meter and camera preview", async () => {
  useIpc({
    local_mute_audio: () => ({ audioMuted: true, videoMuted: false }),
    local_unmute_audio: () => ({ audioMuted: false, videoMuted: false }),
    local_mute_video: () => ({ audioMuted: false, videoMuted: true }),
    local_unmute_video: () => ({ audioMuted: false, videoMuted: false }),
  });
  const conf = new Conference("k", "c", "x");
  let me;
  const levels = [];
  const previews = [];
  conf.on("localParticipant", (lp) => {
    me = lp;
    lp.on("audioLevel", (l) => levels.push(l));
    lp.on("videoCreated", (el) => previews.push(el));
  });
  // The event may come before startCall resolves.
  const started = conf.startCall({ videoInput: "cam-1" });
  push({ event: "localParticipant", peerId: "me" });
  await started;

  assert.ok(me instanceof LocalParticipant);
  assert.equal(me.id, "me");
  assert.equal(conf.localParticipant, me);
  assert.equal(previews.length, 1);
  assert.equal(previews[0].peerId, "local");
  assert.equal(previews[0].kind, "local");

  push({ event: "localAudioLevel", level: 0.3 });
  assert.deepEqual(levels, [{ level: 0.3 }]);

  assert.equal(me.isAudioMuted(), false);
  await me.muteAudio();
  assert.equal(me.isAudioMuted(), true);
  await me.unmuteAudio();
  assert.equal(me.isAudioMuted(), false);
  await me.muteVideo();
  assert.equal(me.isVideoMuted(), true);
  await me.unmuteVideo();
  assert.equal(me.isVideoMuted(), false);
  for (const cmd of ["local_mute_audio", "local_unmute_audio", "local_mute_video", "local_unmute_video"]) {
    assert.deepEqual(fake.called(cmd)[0].args, { id: 7 });
  }

  await me.setAudioInput("mic-3");
  assert.deepEqual(fake.called("local_set_audio_input")[0].args, { id: 7, deviceId: "mic-3" });
  await me.setVideoInput("");
  assert.equal(previews[0].closed, true, "no camera: the preview closes");
  await me.setVideoInput("cam-2");
  assert.equal(previews.length, 2, "a camera again: a new preview");
  assert.deepEqual(fake.called("local_set_video_input").map((c) => c.args.deviceId), ["", "cam-2"]);
});

test("no local preview when the call starts without a camera; initial mute from options", async () => {
  const conf = new Conference("k", "c", "x");
  let me;
  const previews = [];
  conf.on("localParticipant", (lp) => {
    me = lp;
    lp.on("videoCreated", (el) => previews.push(el));
  });
  await conf.startCall({ videoInput: "", audioMuted: true });
  push({ event: "localParticipant", peerId: "me" });
  assert.equal(previews.length, 0);
  assert.equal(me.isAudioMuted(), true);
});

test("socketReconnected updates peerId; connection events have no payload", async () => {
  const conf = await joined();
  const got = [];
  for (const name of ["socketFailed", "socketDisconnected", "socketClose", "socketReconnected", "localShareCreated", "localShareClosed"]) {
    conf.on(name, (...args) => got.push([name, ...args]));
  }
  push({ event: "socketFailed" });
  push({ event: "socketReconnected", peerId: "me-2", resumed: false });
  assert.equal(conf.peerId, "me-2");
  push({ event: "localShareCreated" });
  push({ event: "localShareClosed" });
  push({ event: "socketDisconnected" });
  assert.deepEqual(got, [
    ["socketFailed"],
    ["socketReconnected", { peerId: "me-2", resumed: false }],
    ["localShareCreated"],
    ["localShareClosed"],
    ["socketDisconnected"],
  ]);
});

test("devicesUpdated, deviceFallback and error events", async () => {
  const conf = await joined();
  const got = [];
  conf.on("devicesUpdated", (d) => got.push(["devices", d]));
  conf.on("deviceFallback", (d) => got.push(["fallback", d]));
  conf.on("error", (e) => got.push(["error", e]));
  const devices = [{ deviceId: "m1", kind: "audioinput", label: "Mic", isDefault: true }];
  push({ event: "devicesUpdated", devices });
  push({ event: "deviceFallback", kind: "audiooutput", lostDeviceId: "s2", deviceId: "s1" });
  push({ event: "error", code: "peer_not_found", message: "That participant has left." });
  assert.deepEqual(got[0], ["devices", devices]);
  assert.deepEqual(got[1], ["fallback", { kind: "audiooutput", lostDeviceId: "s2", deviceId: "s1" }]);
  assert.ok(got[2][1] instanceof BAError);
  assert.equal(got[2][1].code, "peer_not_found");
  assert.equal(got[2][1].message, "That participant has left.");
});

test("unknown event names may be listened to; malformed messages are ignored", async () => {
  const conf = await joined();
  const got = [];
  conf.on("somethingNew", (x) => got.push(x));
  push({ event: "somethingNew", a: 1 });
  push('{"event":"somethingNew","a":2}');
  push(null);
  push({ no: "event" });
  push("not json");
  assert.deepEqual(got, [{ a: 1 }, { a: 2 }]);
  assert.throws(() => conf.on("peerLeft", "not a function"), { code: "invalid_argument" });
});

test("BETA onsite methods check arguments, then reject as unsupported", async () => {
  const conf = await joined();
  await assert.rejects(conf.setLocationType("moon"), { code: "invalid_argument" });
  await assert.rejects(conf.setLocationType("onsite"), { code: "unsupported" });
  await assert.rejects(conf.setOnsiteMic(""), { code: "invalid_argument" });
  await assert.rejects(conf.setOnsiteMic("p1"), { code: "unsupported" });
  await assert.rejects(conf.getCurrentOnsiteMic(), { code: "unsupported" });
  await assert.rejects(conf.getAllOnsiteMics(), { code: "unsupported" });
});

test("BAError is an Error with code and message, serializable", () => {
  const e = new BAError("invalid_api_key", "Check the API key in Settings.");
  assert.ok(e instanceof Error);
  assert.equal(e.name, "BAError");
  assert.deepEqual(JSON.parse(JSON.stringify(e)), { code: "invalid_api_key", message: "Check the API key in Settings." });
});
