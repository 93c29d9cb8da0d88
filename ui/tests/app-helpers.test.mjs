// The app's pure helpers: peer names, initials, grid shape, chat payloads, device choice and
// the server summary. (The DOM parts are exercised in the app itself.)

import { test } from "node:test";
import assert from "node:assert/strict";
import { nameFromExtraData, initials, gridShape, hueFor } from "../grid.js";
import { chatText } from "../chat.js";
import { pickDevice, ofKind } from "../devices.js";
import { describeServer } from "../settings.js";

test("names come from {name} JSON, else the raw string, else Guest", () => {
  assert.equal(nameFromExtraData('{"name":"Ada"}'), "Ada");
  assert.equal(nameFromExtraData('{"name":"  Ada  "}'), "Ada");
  assert.equal(nameFromExtraData('{"name":""}'), "Guest");
  assert.equal(nameFromExtraData('{"id":42}'), "Guest");
  assert.equal(nameFromExtraData('"Bo"'), "Bo");
  assert.equal(nameFromExtraData("user-1234"), "user-1234");
  assert.equal(nameFromExtraData("{not json"), "{not json");
  assert.equal(nameFromExtraData(""), "Guest");
  assert.equal(nameFromExtraData(undefined), "Guest");
  assert.equal(nameFromExtraData("42"), "42");
});

test("initials take the first and last words", () => {
  assert.equal(initials("Ada Lovelace"), "AL");
  assert.equal(initials("grace"), "G");
  assert.equal(initials("Jean Paul Sartre"), "JS");
  assert.equal(initials("  "), "?");
  assert.equal(initials("élodie durand"), "ÉD");
});

test("the grid has ceil(sqrt(n)) columns for 1 to 16 tiles", () => {
  const expected = { 1: [1, 1], 2: [2, 1], 3: [2, 2], 4: [2, 2], 5: [3, 2], 6: [3, 2], 7: [3, 3], 9: [3, 3], 10: [4, 3], 16: [4, 4] };
  for (const [n, [cols, rows]] of Object.entries(expected)) {
    assert.deepEqual(gridShape(Number(n)), { cols, rows }, `n = ${n}`);
  }
  assert.deepEqual(gridShape(0), { cols: 1, rows: 1 });
});

test("hues are stable and spread", () => {
  assert.equal(hueFor("peer-1"), hueFor("peer-1"));
  const hues = new Set(Array.from({ length: 10 }, (_, i) => Math.floor(hueFor(`peer-${i}`) / 36)));
  assert.ok(hues.size >= 5, `10 IDs fall into ${hues.size} of 10 hue bands`);
});

test("chat payloads: {type: chat, text}, a plain string, or {text}", () => {
  assert.equal(chatText({ type: "chat", text: "hi" }), "hi");
  assert.equal(chatText("plain"), "plain");
  assert.equal(chatText({ text: "from the bot" }), "from the bot");
  assert.equal(chatText({ type: "reaction", text: "👍" }), null);
  assert.equal(chatText({ type: "chat", text: 5 }), null);
  assert.equal(chatText(null), null);
  assert.equal(chatText(42), null);
});

test("device choice: saved if present, else the default, else the first", () => {
  const devices = [
    { deviceId: "m1", kind: "audioinput", label: "A" },
    { deviceId: "m2", kind: "audioinput", label: "B", isDefault: true },
    { deviceId: "s1", kind: "audiooutput", label: "S" },
  ];
  const mics = ofKind(devices, "audioinput");
  assert.deepEqual(mics.map((d) => d.deviceId), ["m1", "m2"]);
  assert.equal(pickDevice(mics, "m1"), "m1");
  assert.equal(pickDevice(mics, "gone"), "m2");
  assert.equal(pickDevice(mics, undefined), "m2");
  assert.equal(pickDevice(ofKind(devices, "audiooutput"), null), "s1");
  assert.equal(pickDevice([], "m1"), null);
});

test("the server summary says embedded/remote and shows failures with their error", () => {
  assert.deepEqual(describeServer({ url: "ws://127.0.0.1:7880", embedded: true, status: "running" }), {
    text: "Built-in server running at ws://127.0.0.1:7880",
    kind: "ok",
  });
  assert.deepEqual(describeServer({ url: "wss://between.example", embedded: false, status: "remote" }), {
    text: "Server: wss://between.example",
    kind: "ok",
  });
  const failed = describeServer({ embedded: true, status: "failed", error: "port 7880 is in use" });
  assert.equal(failed.kind, "error");
  assert.match(failed.text, /could not start: port 7880 is in use/);
  assert.equal(describeServer(null).kind, "warn");
});

test("share targets read as a person would say them; one target needs no question", async () => {
  const { targetLabel, pickShareTarget } = await import("../share_picker.js");
  assert.equal(targetLabel({ kind: "screen", name: "Entire screen" }), "Entire screen");
  assert.equal(targetLabel({ kind: "monitor", name: "DP-1" }), "Monitor: DP-1");
  assert.equal(targetLabel({ kind: "window", name: "Notes" }), "Window: Notes");
  assert.equal(await pickShareTarget([{ id: "screen", kind: "screen" }]), "screen");
  assert.equal(await pickShareTarget([]), undefined);
});

test("our own tile speaks from a loud report and stops after six quiet ones, or at once when muted", async () => {
  const { SpeakingDetector } = await import("../speaking.js");
  const d = new SpeakingDetector();
  assert.equal(d.push(0.4, false), false, "not loud enough to start");
  assert.equal(d.push(0.6, false), true);
  assert.equal(d.speaking, true);
  for (let i = 0; i < 5; i++) assert.equal(d.push(0.1, false), false, "still speaking");
  assert.equal(d.push(0.1, false), true, "the sixth quiet report stops it");
  assert.equal(d.speaking, false);
  d.push(0.9, false);
  assert.equal(d.push(0.9, true), true, "muted: not speaking");
  d.reset();
  assert.equal(d.speaking, false);
});
