// The chat panel: messages travel as dataHandler data `{type: "chat", text}`; a plain string
// (or `{text}` as the `between` bot's --say sends) is shown as text too. Unread messages are
// counted on the toggle's badge while the panel is closed.

import { $, h } from "./dom.js";

export const MAX_CHAT_CHARS = 4000;

/** The text of a received data message if it is chat, else null. */
export function chatText(data) {
  if (typeof data === "string") return data;
  if (data && typeof data === "object" && typeof data.text === "string") {
    if (data.type === "chat" || data.type === undefined) return data.text;
  }
  return null;
}

const timeOf = (date) => date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

export class Chat {
  #unread = 0;
  #lastFrom = null;

  /**
   * `send(text)` sends a message (rejects with a BAError); `nameOf(peerId)` names a sender;
   * `onError(message)` shows a failure.
   */
  constructor({ send, nameOf, onError }) {
    this.sendFn = send;
    this.nameOf = nameOf;
    this.onError = onError;
    this.panel = $("#chat-panel");
    this.log = $("#chat-log");
    this.input = $("#chat-input");
    this.toggleBtn = $("#chat-toggle");
    this.badge = $("#chat-badge");
    this.selfId = null;

    $("#chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#submit();
    });
    this.toggleBtn.addEventListener("click", () => this.toggle());
    $("#chat-close").addEventListener("click", () => this.close());
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  open() {
    this.panel.hidden = false;
    this.toggleBtn.setAttribute("aria-expanded", "true");
    this.#setUnread(0);
    this.log.scrollTop = this.log.scrollHeight;
    this.input.focus();
  }

  close() {
    const hadFocus = this.panel.contains(document.activeElement);
    this.panel.hidden = true;
    this.toggleBtn.setAttribute("aria-expanded", "false");
    if (hadFocus) this.toggleBtn.focus();
  }

  toggle() {
    if (this.isOpen) this.close();
    else this.open();
  }

  /** A data message from a peer; ignored unless it is chat. */
  receive(from, data) {
    const text = chatText(data);
    if (text === null || !text.trim()) return;
    this.#append({ from, name: this.nameOf(from), text, self: false });
    if (!this.isOpen) this.#setUnread(this.#unread + 1);
  }

  /** Empties the log for the next call. */
  reset() {
    this.close();
    this.log.replaceChildren(h("p", { class: "chat-empty", text: "Messages here are seen by everyone in the call." }));
    this.input.value = "";
    this.#lastFrom = null;
    this.#setUnread(0);
  }

  async #submit() {
    const text = this.input.value.trim().slice(0, MAX_CHAT_CHARS);
    if (!text) return;
    this.input.value = "";
    const item = this.#append({ from: this.selfId ?? "", name: "You", text, self: true });
    try {
      await this.sendFn({ type: "chat", text });
    } catch (err) {
      item.classList.add("failed");
      item.append(h("span", { class: "msg-error", text: "Not sent" }));
      this.onError(err.message);
    }
  }

  #append({ from, name, text, self }) {
    this.log.querySelector(".chat-empty")?.remove();
    // Consecutive messages from one sender read as one group under one name.
    const continued = this.#lastFrom === from;
    this.#lastFrom = from;
    const item = h(
      "div",
      { class: `msg${self ? " self" : ""}${continued ? " continued" : ""}`, dataset: { from } },
      h("div", { class: "msg-meta" }, h("span", { class: "msg-name", text: name }), h("time", { text: timeOf(new Date()) })),
      h("div", { class: "msg-text", text }),
    );
    if (self) item.dataset.self = "";
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    this.log.append(item);
    if (atBottom || self) this.log.scrollTop = this.log.scrollHeight;
    return item;
  }

  #setUnread(n) {
    this.#unread = n;
    this.badge.textContent = n > 99 ? "99+" : String(n);
    this.badge.hidden = n === 0;
    this.toggleBtn.setAttribute("aria-label", n ? `Chat, ${n} unread` : "Chat");
  }
}
