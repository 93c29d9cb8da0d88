// The call's tiles: one per participant, in a grid that reflows with the count
// (columns = ceil(sqrt(n))). A tile shows the video when there is some, else initials; its
// label carries the name and a muted microphone; a ring marks who is speaking.

import { h, icon } from "./dom.js";

/** The name a peer chose: `{"name": ...}` JSON, else the raw string, else "Guest". */
export function nameFromExtraData(extraData) {
  if (typeof extraData !== "string") return "Guest";
  const raw = extraData.trim();
  if (!raw) return "Guest";
  try {
    const parsed = JSON.parse(raw);
    if (parsed && typeof parsed === "object") {
      const name = typeof parsed.name === "string" ? parsed.name.trim() : "";
      return name || "Guest";
    }
    if (typeof parsed === "string") return parsed.trim() || "Guest";
  } catch {
    // Not JSON: a plain name.
  }
  return raw;
}

/** Up to two initials, from the first and last words. */
export function initials(name) {
  const words = String(name ?? "").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  const first = [...words[0]][0];
  const last = words.length > 1 ? [...words[words.length - 1]][0] : "";
  return (first + last).toUpperCase();
}

/** Columns and rows for n tiles. */
export function gridShape(n) {
  const count = Math.max(1, n);
  const cols = Math.ceil(Math.sqrt(count));
  return { cols, rows: Math.ceil(count / cols) };
}

/** A stable hue per peer, so avatars are told apart at a glance. */
export function hueFor(id) {
  // FNV-1a, then a final mix: IDs differing in one character still land far apart.
  let hash = 0x811c9dc5;
  for (const ch of String(id)) hash = Math.imul(hash ^ ch.codePointAt(0), 0x01000193) >>> 0;
  hash = Math.imul(hash ^ (hash >>> 16), 0x45d9f3b) >>> 0;
  hash = (hash ^ (hash >>> 16)) >>> 0;
  return hash % 360;
}

class Tile {
  constructor(grid, { peerId, name, local }) {
    this.grid = grid;
    this.name = name;
    this.video = null;
    this.label = h("span", { class: "tile-name", text: local ? `${name} (you)` : name });
    this.el = h(
      "article",
      {
        class: "tile",
        dataset: { peerId, name, speaking: "false" },
        "aria-label": local ? `${name} (you)` : name,
      },
      h("div", { class: "tile-avatar" }, h("span", { text: initials(name) })),
      h("div", { class: "tile-media" }),
      h(
        "div",
        { class: "tile-label" },
        h("span", { class: "tile-muted", title: "Muted" }, icon("mic-off")),
        this.label,
        h("span", { class: "tile-poor", text: "Poor connection" }),
      ),
    );
    if (local) this.el.dataset.local = "";
    // Through the CSSOM, not a style attribute: a strict CSP allows the former only.
    this.el.style.setProperty("--hue", String(hueFor(peerId)));
    this.el.querySelector(".tile-muted").setAttribute("aria-label", "Microphone muted");
  }

  get peerId() {
    return this.el.dataset.peerId;
  }

  setPeerId(peerId) {
    this.el.dataset.peerId = peerId;
  }

  /** The element from `videoCreated`; the initials stay until it draws its first frame. */
  setVideo(videoEl) {
    if (this.video && this.video !== videoEl) this.video.close?.();
    this.video = videoEl;
    const media = this.el.querySelector(".tile-media");
    if (!videoEl) {
      media.replaceChildren();
      this.el.classList.remove("has-video");
      return;
    }
    const update = () => {
      // A replaced element still reports its closing: only the current one counts.
      if (this.video === videoEl) this.el.classList.toggle("has-video", videoEl.dataset.state === "playing");
    };
    videoEl.addEventListener("statechange", update);
    update();
    media.replaceChildren(videoEl);
  }

  setMuted(muted) {
    this.el.classList.toggle("muted", muted);
  }

  setVideoOff(off) {
    this.el.classList.toggle("video-off", off);
  }

  /** The server stopped sending this video: this link cannot carry it (audio goes on). */
  setPoorConnection(poor) {
    this.el.classList.toggle("poor-connection", poor);
  }

  setSpeaking(speaking) {
    this.el.classList.toggle("speaking", speaking);
    this.el.dataset.speaking = String(speaking);
  }
}

export class Grid {
  #tiles = new Map();

  /** `onCount(n)` hears the number of tiles after each change. */
  constructor(el, { onCount } = {}) {
    this.el = el;
    this.onCount = onCount;
    this.#layout();
  }

  add({ peerId, name, local = false }) {
    this.remove(peerId);
    const tile = new Tile(this, { peerId, name, local });
    this.#tiles.set(peerId, tile);
    if (local) this.el.prepend(tile.el);
    else this.el.append(tile.el);
    this.#layout();
    return tile;
  }

  get(peerId) {
    return this.#tiles.get(peerId);
  }

  /** Re-keys a tile (our own after a reconnect that changed the peer ID). */
  rekey(oldId, newId) {
    const tile = this.#tiles.get(oldId);
    if (!tile || oldId === newId) return;
    this.#tiles.delete(oldId);
    tile.setPeerId(newId);
    this.#tiles.set(newId, tile);
  }

  remove(peerId) {
    const tile = this.#tiles.get(peerId);
    if (!tile) return;
    tile.video?.close?.();
    tile.el.remove();
    this.#tiles.delete(peerId);
    this.#layout();
  }

  clear() {
    for (const id of [...this.#tiles.keys()]) this.remove(id);
  }

  get count() {
    return this.#tiles.size;
  }

  #layout() {
    const n = this.#tiles.size;
    const { cols, rows } = gridShape(n);
    this.el.style.setProperty("--cols", cols);
    this.el.style.setProperty("--rows", rows);
    this.el.dataset.cols = String(cols);
    this.el.dataset.count = String(n);
    // Each tile spans two half-width tracks, so a short last row can start half a tile in
    // and sit centred under the full rows.
    const tiles = [...this.el.children].filter((el) => el.classList.contains("tile"));
    const rest = n % cols;
    tiles.forEach((el, i) => {
      el.style.gridColumnStart = rest && i === n - rest ? String(cols - rest + 1) : "";
    });
    this.onCount?.(n);
  }
}
