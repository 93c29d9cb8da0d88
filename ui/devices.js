// The device menu (microphone, speaker, camera) and what the join screen does with it: the
// microphone level meter (app_mic_test_*), the speaker's test sound and the camera preview.
// One menu serves both screens: in a call it is moved into the controls' popover, so the
// select ids stay unique.

import { invoke, channel } from "./ipc.js";
import { pulledSource } from "./frames.js";
import { createVideoElement } from "./video.js";
import { h } from "./dom.js";

export const KINDS = { mic: "audioinput", speaker: "audiooutput", camera: "videoinput" };

/** Devices of one kind, in the engine's order. */
export const ofKind = (devices, kind) => devices.filter((d) => d && d.kind === kind);

/**
 * The device to select: the saved one if still present, else the system default, else the
 * first; null if there is none.
 */
export function pickDevice(list, savedId) {
  if (savedId && list.some((d) => d.deviceId === savedId)) return savedId;
  return (list.find((d) => d.isDefault) ?? list[0])?.deviceId ?? null;
}

function fill(select, list, value, { none, empty }) {
  const options = list.map((d, i) => h("option", { value: d.deviceId, text: d.label || `Device ${i + 1}` }));
  if (none) options.unshift(h("option", { value: "", text: none }));
  if (!options.length) options.push(h("option", { value: "", text: empty, disabled: true }));
  select.replaceChildren(...options);
  select.value = value ?? "";
  select.disabled = !list.length && !none;
}

export class DeviceMenu {
  #devices = [];
  #filled = false;

  /** `onChange(kind, deviceId)`: the user picked a device ("mic" | "speaker" | "camera"). */
  constructor(root, { onChange }) {
    this.root = root;
    this.mic = root.querySelector("#mic-select");
    this.speaker = root.querySelector("#speaker-select");
    this.camera = root.querySelector("#camera-select");
    this.meter = root.querySelector("#mic-meter");
    this.meterFill = root.querySelector("#mic-meter .meter-fill");
    this.host = root.querySelector("#audio-host");
    this.testSound = root.querySelector("#test-sound");
    this.micNote = root.querySelector("#mic-note");
    for (const [kind, select] of [["mic", this.mic], ["speaker", this.speaker], ["camera", this.camera]]) {
      select.addEventListener("change", () => onChange(kind, select.value));
    }
  }

  /** Refills the selects, keeping each choice if the device is still there. */
  update(devices, { audioHost, saved = {} } = {}) {
    // Before the first fill the saved choices count; after it, what the selects show.
    const first = !this.#filled;
    this.#filled = true;
    this.#devices = devices;
    const keep = (select, key) => (first || !select.value ? saved[key] : select.value);
    const mics = ofKind(devices, KINDS.mic);
    const speakers = ofKind(devices, KINDS.speaker);
    const cameras = ofKind(devices, KINDS.camera);
    fill(this.mic, mics, pickDevice(mics, keep(this.mic, "audioInput")), { empty: "No microphone found" });
    fill(this.speaker, speakers, pickDevice(speakers, keep(this.speaker, "audioOutput")), { empty: "No speaker found" });
    // The camera's "" means "No camera", a choice in itself: kept even when cameras exist.
    // The first time (nothing saved), a camera if there is one: the preview shows it works.
    const camera = first ? saved.videoInput ?? pickDevice(cameras, null) : this.camera.value;
    fill(this.camera, cameras, cameras.some((d) => d.deviceId === camera) ? camera : "", { none: "No camera" });
    if (audioHost !== undefined) this.host.textContent = audioHost ? `Audio: ${audioHost}` : "";
    this.testSound.disabled = !speakers.length;
  }

  get cameras() {
    return ofKind(this.#devices, KINDS.camera);
  }

  labelOf(deviceId) {
    return this.#devices.find((d) => d.deviceId === deviceId)?.label ?? "";
  }

  /** The chosen devices as startCall options (null = the system default). */
  get choice() {
    return {
      audioInput: this.mic.value || null,
      audioOutput: this.speaker.value || null,
      videoInput: this.camera.value,
    };
  }

  /** The meter, 0..1 (the engine's scale: -60 dBFS reads 0). */
  setLevel(level) {
    const value = Math.max(0, Math.min(1, Number(level) || 0));
    this.meterFill.style.setProperty("--level", value.toFixed(3));
    this.meter.setAttribute("aria-valuenow", String(Math.round(value * 100)));
  }

  setMicNote(text) {
    this.micNote.textContent = text;
  }
}

/**
 * The join screen's microphone test: levels from the engine every 100 ms while it runs.
 * Starts and stops are queued so a quick change of microphone cannot interleave them.
 */
export function createMicTest({ onLevel, onError }) {
  let queue = Promise.resolve();
  let running = false;
  let generation = 0;

  const run = (step) => {
    queue = queue.then(step, step);
    return queue;
  };

  return {
    start(deviceId) {
      const mine = ++generation;
      return run(async () => {
        if (mine !== generation) return; // superseded before it ran
        if (running) await invoke("app_mic_test_stop").catch(() => {});
        running = false;
        try {
          const levels = channel((msg) => {
            if (mine === generation) onLevel(msg?.level ?? 0);
          });
          await invoke("app_mic_test_start", { deviceId: deviceId || null, levels });
          running = true;
        } catch (err) {
          onError(err);
        }
      });
    },
    stop() {
      generation++;
      onLevel(0);
      return run(async () => {
        if (!running) return;
        running = false;
        await invoke("app_mic_test_stop").catch(() => {});
      });
    },
  };
}

export function playTestSound(deviceId) {
  return invoke("app_play_test_sound", { deviceId: deviceId || null });
}

/** A `<between-video>` showing a camera before any call (preview_open). */
export function createPreview(deviceId) {
  return createVideoElement({
    kind: "preview",
    source: pulledSource("preview_open", { deviceId }),
  });
}
