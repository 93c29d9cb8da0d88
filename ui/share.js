// The screen-share area: while someone shares, their screen takes the large part of the stage
// and the tiles become a strip beside it. Several shares at once: the latest is shown, and
// the one before comes back when it ends.

import { $, h } from "./dom.js";

export class ShareArea {
  #shares = new Map();

  constructor() {
    this.stage = $("#stage");
    this.area = $("#share-area");
    this.video = $("#share-video");
    this.label = $("#share-label");
  }

  /** A `screenShareCreated` Peer; call from the event's listener so its video is not missed. */
  show(peer, name) {
    this.#shares.delete(peer.id); // re-inserted last: the newest share is shown
    const entry = { name, el: null };
    this.#shares.set(peer.id, entry);
    peer.on("videoCreated", (el) => {
      entry.el = el;
      this.#render();
    });
    this.#render();
  }

  close(peerId) {
    if (this.#shares.delete(peerId)) this.#render();
  }

  clear() {
    this.#shares.clear();
    this.#render();
  }

  #render() {
    const entries = [...this.#shares.entries()];
    const shown = entries[entries.length - 1];
    this.stage.classList.toggle("has-share", Boolean(shown));
    this.area.hidden = !shown;
    if (!shown) {
      this.video.replaceChildren();
      this.area.removeAttribute("data-peer-id");
      return;
    }
    const [peerId, { name, el }] = shown;
    this.area.dataset.peerId = peerId;
    this.label.textContent = `${name} is presenting`;
    const content = el ?? h("p", { class: "share-wait", text: "Waiting for the shared screen…" });
    if (this.video.firstChild !== content) this.video.replaceChildren(content);
  }
}
