// The app's screens: join (call ID, name, devices, mic meter, camera preview) and the call
// (tiles, controls, chat, screen share, device menu). All call logic goes through the Between
// API (conference.js); the app_* commands cover what the API does not (devices before a
// call, the server, settings, the join screen's mic test and test sound).
//
// `body[data-state]` is "join" | "joining" | "call" so automation can wait for a screen.

import { Conference } from "./conference.js";
import { invoke } from "./ipc.js";
import { $, copyText, debounce } from "./dom.js";
import { createStatus } from "./status.js";
import { loadSettings, saveSettings, applyTheme, initSettingsDialog, fetchServer, describeServer } from "./settings.js";
import { DeviceMenu, createMicTest, playTestSound, createPreview } from "./devices.js";
import { Grid, nameFromExtraData, initials, hueFor } from "./grid.js";
import { Chat } from "./chat.js";
import { ShareArea } from "./share.js";
import { pickShareTarget } from "./share_picker.js";
import { setWebGL } from "./video.js";
import { SpeakingDetector } from "./speaking.js";

const SETTING_OF = { mic: "audioInput", speaker: "audioOutput", camera: "videoInput" };
const LEAVE_TIMEOUT_MS = 5000;

const status = createStatus($("#status"));

const state = {
  settings: {},
  conf: null, // the Conference while joining or in a call
  me: null, // its LocalParticipant
  localTile: null,
  myName: "",
  names: new Map(), // peerId → display name, kept after they leave for the chat history
  joining: false,
  sharing: false,
  busy: new Set(), // controls with a request in flight
  speaking: new SpeakingDetector(), // our own tile's
};

const grid = new Grid($("#grid"), {
  onCount: (n) => {
    $("#participant-count").textContent = String(n);
    $("#alone-hint").hidden = n !== 1;
  },
});
const share = new ShareArea();
const chat = new Chat({
  send: (message) => (state.conf ? state.conf.dataHandler.send(message) : Promise.reject(new Error("You are not in a call."))),
  nameOf: (peerId) => state.names.get(peerId) ?? "Guest",
  onError: (message) => status.flash(message, "error", 6000),
});
const menu = new DeviceMenu($("#device-menu"), { onChange: onDeviceChange });
const micTest = createMicTest({
  onLevel: (level) => {
    if (!state.conf) menu.setLevel(level);
  },
  onError: (err) => menu.setMicNote(`Microphone unavailable: ${err.message}`),
});
let preview = null;

// ---- Screens -------------------------------------------------------------------------------

function setScreen(name) {
  document.body.dataset.state = name;
  $("#join-screen").hidden = name === "call";
  $("#call-screen").hidden = name !== "call";
}

/** The join screen's live media: mic meter and camera preview (released before joining). */
function startJoinMedia() {
  menu.setMicNote("");
  micTest.start(menu.choice.audioInput);
  openPreview(menu.choice.videoInput);
}

/** Resolves once the engine let go of the microphone and camera, so the call can open them. */
function stopJoinMedia() {
  return Promise.all([micTest.stop(), closePreview()]);
}

function openPreview(deviceId) {
  closePreview();
  const box = $("#preview");
  $("#preview-note").textContent = deviceId ? "Starting camera…" : "Camera is off";
  if (!deviceId) return;
  preview = createPreview(deviceId);
  const update = () => {
    const playing = preview?.dataset.state === "playing";
    box.classList.toggle("has-video", playing);
    if (preview?.dataset.state === "error") {
      $("#preview-note").textContent = `Camera unavailable: ${preview.dataset.error}`;
    }
  };
  preview.addEventListener("statechange", update);
  $("#preview-video").replaceChildren(preview);
}

function closePreview() {
  const released = preview?.close() ?? Promise.resolve();
  preview = null;
  $("#preview-video").replaceChildren();
  $("#preview").classList.remove("has-video");
  return released;
}

function updateAvatar() {
  const name = $("#display-name").value.trim();
  const avatar = $("#preview-avatar");
  avatar.textContent = initials(name || "?");
  avatar.style.setProperty("--hue", hueFor(name || "guest"));
}

async function refreshDevices() {
  try {
    const { audioHost, devices } = await invoke("app_devices");
    menu.update(Array.isArray(devices) ? devices : [], { audioHost, saved: state.settings });
  } catch (err) {
    menu.update([], { audioHost: "", saved: state.settings });
    menu.setMicNote(`Devices unavailable: ${err.message}`);
  }
}

function showServerSummary(server) {
  const el = $("#server-summary");
  const { text, kind } = describeServer(server);
  el.textContent = text;
  el.dataset.kind = kind;
}

function persist(partial) {
  Object.assign(state.settings, partial);
  saveSettings(partial).catch((err) => status.flash(`Settings not saved: ${err.message}`, "error", 6000));
}

// ---- Devices -------------------------------------------------------------------------------

async function onDeviceChange(kind, deviceId) {
  const key = SETTING_OF[kind];
  const conf = state.conf;
  if (!conf) {
    if (kind === "mic") micTest.start(deviceId);
    if (kind === "camera") openPreview(deviceId);
    persist({ [key]: deviceId });
    return;
  }
  try {
    if (kind === "mic") await state.me?.setAudioInput(deviceId);
    if (kind === "speaker") await conf.setOutputDevice(deviceId);
    if (kind === "camera") await setCamera(deviceId);
    persist({ [key]: deviceId });
  } catch (err) {
    status.flash(err.message, "error", 6000);
    // Back to what is really in use.
    const select = { mic: menu.mic, speaker: menu.speaker, camera: menu.camera }[kind];
    select.value = state.settings[key] ?? "";
  }
}

/** Switches the camera in a call; "" turns it off. */
async function setCamera(deviceId) {
  if (!state.me) return;
  await state.me.setVideoInput(deviceId);
  if (!deviceId) state.localTile?.setVideo(null);
  updateCameraButton();
}

function openDevicePopover() {
  const pop = $("#device-popover");
  pop.append(menu.root);
  pop.hidden = false;
  $("#devices").setAttribute("aria-expanded", "true");
  menu.mic.focus();
}

function closeDevicePopover({ focus = false } = {}) {
  const pop = $("#device-popover");
  if (pop.hidden) return;
  pop.hidden = true;
  $("#devices").setAttribute("aria-expanded", "false");
  if (focus) $("#devices").focus();
}

// ---- Joining and leaving --------------------------------------------------------------------

function setJoining(joining) {
  state.joining = joining;
  const button = $("#join");
  button.disabled = joining;
  button.setAttribute("aria-busy", String(joining));
  $(".join-label", button).textContent = joining ? "Joining…" : "Join";
  if (joining) setScreen("joining");
}

async function join() {
  if (state.joining || state.conf) return;
  const callId = $("#call-id").value.trim();
  const name = $("#display-name").value.trim();
  setJoining(true);
  status.set("Connecting…", "info");
  persist({ displayName: name });
  await stopJoinMedia();

  const server = await fetchServer();
  showServerSummary(server);
  if (server.status === "failed") {
    return joinFailed(describeServer(server).text);
  }

  const conf = new Conference(server.apiKey ?? "", callId || undefined, JSON.stringify({ name }));
  state.conf = conf;
  state.myName = name || "Guest";
  listen(conf);
  try {
    await conf.startCall(menu.choice);
  } catch (err) {
    if (state.conf === conf) joinFailed(err.message);
    return;
  }
  if (state.conf !== conf) return; // the call ended while starting
  $("#call-id").value = conf.callId;
  $("#call-id-display").textContent = conf.callId;
  persist({ callId: conf.callId });
  chat.selfId = conf.peerId;
  ensureLocalTile();
  setJoining(false);
  setScreen("call");
  status.set("Connected", "ok");
  $("#mute").focus();
  checkPermissions(conf);
}

function joinFailed(message) {
  teardown();
  setJoining(false);
  setScreen("join");
  startJoinMedia();
  status.set(message, "error");
}

/** The microphone may be blocked although the call works: say so, without stopping anyone. */
async function checkPermissions(conf) {
  try {
    const permission = await conf.getPermissionState();
    if (state.conf === conf && permission?.state && permission.state !== "success") {
      status.flash(permission.error?.rawStr || "Between cannot use your microphone or camera.", "error", 8000);
    }
  } catch {
    // Not knowing is no reason to bother anyone.
  }
}

async function leave() {
  const conf = state.conf;
  if (!conf) return;
  $("#leave").disabled = true;
  try {
    // Leaving must always work from the user's side: a stuck or failed endCall still leaves
    // (close() below makes the engine drop the call).
    await Promise.race([conf.endCall(), new Promise((resolve) => setTimeout(resolve, LEAVE_TIMEOUT_MS))]);
  } catch {
    // As above.
  }
  $("#leave").disabled = false;
  if (state.conf === conf) endSession();
  status.clear();
  status.flash("You left the call.", "info", 3000);
}

/** Back to the join screen after a call (left, or lost). */
function endSession() {
  teardown();
  setScreen("join");
  refreshDevices().then(startJoinMedia);
  $("#call-id").focus();
}

function teardown() {
  const conf = state.conf;
  state.conf = null;
  state.me = null;
  state.localTile = null;
  state.speaking.reset();
  conf?.close().catch(() => {});
  grid.clear();
  share.clear();
  chat.reset();
  state.names.clear();
  closeDevicePopover();
  $("#device-home").append(menu.root);
  menu.setLevel(0);
  setSharing(false);
  updateMuteButton();
  updateCameraButton();
}

// ---- The conference's events ----------------------------------------------------------------

function listen(conf) {
  // Events of a conference we already left must not touch the next call's screen.
  const on = (target, name, fn) => target.on(name, (...args) => {
    if (state.conf === conf) fn(...args);
  });

  on(conf, "localParticipant", (me) => {
    state.me = me;
    ensureLocalTile();
    me.on("audioLevel", ({ level }) => {
      if (state.conf !== conf) return;
      menu.setLevel(level);
      updateLocalSpeaking(level);
    });
    me.on("videoCreated", (el) => {
      if (state.conf === conf) state.localTile?.setVideo(el);
    });
    updateMuteButton();
    updateCameraButton();
  });

  on(conf, "peerJoined", (peer) => {
    const name = nameFromExtraData(peer.extraData);
    state.names.set(peer.id, name);
    const tile = grid.add({ peerId: peer.id, name });
    tile.setMuted(peer.isAudioMuted());
    peer.on("videoCreated", (el) => tile.setVideo(el));
    peer.on("videoPaused", () => tile.setVideoOff(true));
    peer.on("videoResumed", () => tile.setVideoOff(false));
    peer.on("audioPaused", () => tile.setMuted(true));
    peer.on("audioResumed", () => tile.setMuted(false));
    peer.on("speaking", (speaking) => tile.setSpeaking(speaking));
    peer.on("poorConnection", (poor) => tile.setPoorConnection(poor));
  });

  on(conf, "peerLeft", (peerId) => grid.remove(peerId));

  on(conf, "screenShareCreated", (peer) => {
    share.show(peer, state.names.get(peer.id) ?? nameFromExtraData(peer.extraData));
  });
  on(conf, "screenShareClosed", (peerId) => share.close(peerId));
  on(conf, "localShareCreated", () => setSharing(true));
  on(conf, "localShareClosed", () => {
    setSharing(false);
    status.flash("You stopped sharing your screen.", "info");
  });

  on(conf, "devicesUpdated", (devices) => menu.update(devices, { saved: state.settings }));
  on(conf, "deviceFallback", ({ kind, deviceId }) => {
    const select = { audioinput: menu.mic, audiooutput: menu.speaker, videoinput: menu.camera }[kind];
    if (select) select.value = deviceId;
    const what = { audiooutput: "speaker", videoinput: "camera" }[kind] ?? "microphone";
    const label = menu.labelOf(deviceId) || "the system default";
    status.flash(`Your ${what} is gone; using ${label} instead.`, "warn", 6000);
  });

  on(conf, "socketFailed", () => status.set("Reconnecting…", "warn"));
  on(conf, "socketReconnected", ({ peerId }) => {
    if (state.localTile && peerId && state.localTile.peerId !== peerId) grid.rekey(state.localTile.peerId, peerId);
    chat.selfId = peerId;
    if (!state.joining) status.set("Connected", "ok");
  });
  on(conf, "socketDisconnected", () => {
    const wasJoining = state.joining;
    endSession();
    setJoining(false);
    status.set(
      wasJoining
        ? "Could not connect to the server. Check the server in Settings, then try again."
        : "Disconnected: the connection to the server was lost. Join again to continue.",
      "error",
    );
  });
  on(conf, "error", (err) => status.flash(err.message, "error", 6000));

  on(conf.dataHandler, "data", ({ from, data }) => chat.receive(from, data));
}

function ensureLocalTile() {
  const conf = state.conf;
  const peerId = state.me?.id ?? conf?.peerId;
  if (!conf || !peerId || state.localTile) return;
  state.localTile = grid.add({ peerId, name: state.myName, local: true });
  updateMuteButton();
}

function updateLocalSpeaking(level) {
  if (state.speaking.push(level, state.me?.isAudioMuted() ?? false)) {
    state.localTile?.setSpeaking(state.speaking.speaking);
  }
}

// ---- Controls --------------------------------------------------------------------------------

/** Runs one control's request at a time; a failure is shown, never thrown. */
async function once(key, fn) {
  if (state.busy.has(key)) return;
  state.busy.add(key);
  try {
    await fn();
  } catch (err) {
    status.flash(err.message, "error", 6000);
  } finally {
    state.busy.delete(key);
  }
}

function updateMuteButton() {
  const muted = Boolean(state.me?.isAudioMuted());
  const button = $("#mute");
  button.setAttribute("aria-pressed", String(muted));
  button.title = muted ? "Unmute (Ctrl+D)" : "Mute (Ctrl+D)";
  state.localTile?.setMuted(muted);
}

function cameraOff() {
  return !state.me || menu.choice.videoInput === "" || state.me.isVideoMuted();
}

function updateCameraButton() {
  const off = cameraOff();
  const button = $("#camera");
  button.setAttribute("aria-pressed", String(off));
  button.title = off ? "Turn on camera (Ctrl+E)" : "Turn off camera (Ctrl+E)";
  state.localTile?.setVideoOff(off);
}

function toggleMute() {
  const me = state.me;
  if (!me) return;
  once("mute", async () => {
    try {
      if (me.isAudioMuted()) await me.unmuteAudio();
      else await me.muteAudio();
    } finally {
      updateMuteButton();
    }
  });
}

function toggleCamera() {
  const me = state.me;
  if (!me) return;
  once("camera", async () => {
    try {
      if (menu.choice.videoInput === "") {
        // No camera chosen yet: take the remembered one, else the first.
        const cameras = menu.cameras;
        if (!cameras.length) {
          status.flash("No camera found. Plug one in, then pick it under Devices.", "warn", 5000);
          return;
        }
        const id = cameras.some((c) => c.deviceId === state.settings.videoInput) ? state.settings.videoInput : cameras[0].deviceId;
        await me.setVideoInput(id);
        menu.camera.value = id;
        persist({ videoInput: id });
        if (me.isVideoMuted()) await me.unmuteVideo();
      } else if (me.isVideoMuted()) {
        await me.unmuteVideo();
      } else {
        await me.muteVideo();
      }
    } finally {
      updateCameraButton();
    }
  });
}

function setSharing(sharing) {
  state.sharing = sharing;
  const button = $("#share");
  button.setAttribute("aria-pressed", String(sharing));
  button.title = sharing ? "Stop sharing" : "Share screen";
  $("#sharing-pill").hidden = !sharing;
}

function toggleShare() {
  const conf = state.conf;
  if (!conf) return;
  once("share", async () => {
    if (state.sharing) {
      await conf.stopScreenshare();
      setSharing(false);
    } else {
      // Without a list (a platform that cannot enumerate) the whole screen is asked for, and
      // the app answers with its reason if that cannot be shared either.
      const targets = await conf.screenshareTargets().catch(() => []);
      const target = await pickShareTarget(targets);
      if (target === null) return; // cancelled
      await conf.startScreenshare(target);
      setSharing(true);
    }
  });
}

async function copyCallId() {
  const text = state.conf?.callId ?? $("#call-id-display").textContent;
  if (!(await copyText(text))) {
    status.flash("Could not copy. Select the call ID and copy it by hand.", "error");
    return;
  }
  const button = $("#copy-call-id");
  button.classList.add("copied");
  setTimeout(() => button.classList.remove("copied"), 1600);
  status.flash("Call ID copied", "ok", 2000);
}

// ---- Wiring ----------------------------------------------------------------------------------

function wire() {
  $("#join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    join();
  });
  $("#display-name").addEventListener("input", updateAvatar);
  // A join error is about what was typed: typing again dismisses it.
  for (const input of [$("#call-id"), $("#display-name")]) {
    input.addEventListener("input", () => {
      if ($("#status").dataset.kind === "error") status.clear();
    });
  }
  $("#display-name").addEventListener("input", debounce(() => persist({ displayName: $("#display-name").value.trim() }), 600));

  $("#test-sound").addEventListener("click", async (e) => {
    const button = e.currentTarget;
    const label = $("span", button);
    button.disabled = true;
    label.textContent = "Playing…";
    try {
      await playTestSound(menu.speaker.value);
    } catch (err) {
      status.flash(err.message, "error", 6000);
    } finally {
      button.disabled = false;
      label.textContent = "Play test sound";
    }
  });

  $("#mute").addEventListener("click", toggleMute);
  $("#camera").addEventListener("click", toggleCamera);
  $("#share").addEventListener("click", toggleShare);
  $("#stop-share").addEventListener("click", toggleShare);
  $("#leave").addEventListener("click", leave);
  $("#copy-call-id").addEventListener("click", copyCallId);
  $("#devices").addEventListener("click", () => {
    if ($("#device-popover").hidden) openDevicePopover();
    else closeDevicePopover();
  });

  // A click outside the device popover closes it.
  document.addEventListener("pointerdown", (e) => {
    const pop = $("#device-popover");
    if (!pop.hidden && !pop.contains(e.target) && !$("#devices").contains(e.target)) closeDevicePopover();
  });

  document.addEventListener("keydown", (e) => {
    if (document.body.dataset.state !== "call") return;
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (mod && !e.altKey && !e.shiftKey && key === "d") {
      e.preventDefault();
      toggleMute();
    } else if (mod && !e.altKey && !e.shiftKey && key === "e") {
      e.preventDefault();
      toggleCamera();
    } else if (e.key === "Escape") {
      if (!$("#device-popover").hidden) closeDevicePopover({ focus: true });
      else if (chat.isOpen && $("#chat-panel").contains(document.activeElement)) chat.close();
    }
  });

  // Devices may have changed while the app was in the background.
  window.addEventListener("focus", () => {
    if (!state.conf) refreshDevices();
  });
  window.addEventListener("pagehide", () => {
    state.conf?.close().catch(() => {});
  });
}

async function main() {
  wire();
  const settings = await loadSettings();
  state.settings = settings;
  applyTheme(settings.theme);
  $("#call-id").value = settings.callId ?? "";
  $("#display-name").value = settings.displayName ?? "";
  updateAvatar();
  initSettingsDialog({
    settings,
    onServerChange: showServerSummary,
    onError: (message) => status.flash(`Settings not saved: ${message}`, "error", 6000),
  });
  fetchServer().then(showServerSummary);
  // Before any video element draws: WebGL only where a GPU does the work.
  await invoke("app_graphics").then((g) => setWebGL(g.webgl), () => {});
  await refreshDevices();
  setScreen("join");
  startJoinMedia();
  $("#call-id").focus();
}

main();
