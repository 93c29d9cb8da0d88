// Settings: loaded from and saved to the app (app_settings_get/set, merged and persisted by
// the Rust side), the theme, and the Settings dialog with the server's status.

import { invoke } from "./ipc.js";
import { $ } from "./dom.js";

export const THEMES = ["system", "light", "dark"];

/** Every saved setting; missing keys are absent (IPC.md). Never rejects: defaults instead. */
export async function loadSettings() {
  try {
    const settings = await invoke("app_settings_get");
    return settings && typeof settings === "object" ? settings : {};
  } catch {
    return {};
  }
}

/** Merges `partial` into the saved settings; resolves with the whole object. */
export function saveSettings(partial) {
  return invoke("app_settings_set", { settings: partial });
}

/** `data-theme` on <html>: "light" or "dark" force one; "system" follows the OS (CSS media query). */
export function applyTheme(theme) {
  document.documentElement.dataset.theme = THEMES.includes(theme) ? theme : "system";
}

/** The server in a few words, and a kind for colouring: ok | warn | error. */
export function describeServer(server) {
  if (!server) return { text: "Server status unknown", kind: "warn" };
  if (server.status === "failed" || server.status === "unreachable") {
    const what = server.embedded ? "The built-in server could not start" : "The server is unreachable";
    return { text: server.error ? `${what}: ${server.error}` : `${what}.`, kind: "error" };
  }
  if (server.embedded) {
    return { text: server.url ? `Built-in server running at ${server.url}` : "Built-in server running", kind: "ok" };
  }
  return { text: `Server: ${server.url}`, kind: "ok" };
}

export async function fetchServer() {
  try {
    return await invoke("app_server");
  } catch (err) {
    return { status: "failed", embedded: false, error: err.message };
  }
}

/**
 * Wires the Settings dialog. `settings` is the live settings object (updated in place);
 * `onServerChange(server)` hears the server's state after each change; `onError(message)`
 * hears a failed save.
 */
export function initSettingsDialog({ settings, onServerChange, onError }) {
  const dialog = $("#settings-dialog");
  const url = $("#server-url");
  const key = $("#api-key");
  const statusEl = $("#server-status");
  const statusText = $("#server-status-text");
  const opener = $("#settings-open");

  function showServer(server) {
    const { text, kind } = describeServer(server);
    statusText.textContent = text;
    statusEl.dataset.kind = kind;
    onServerChange?.(server);
  }

  async function refreshServer() {
    showServer(await fetchServer());
  }

  async function save(partial) {
    Object.assign(settings, partial);
    try {
      await saveSettings(partial);
    } catch (err) {
      onError?.(err.message);
    }
  }

  async function saveServer() {
    const serverUrl = url.value.trim();
    const apiKey = key.value.trim();
    if (serverUrl === (settings.serverUrl ?? "") && apiKey === (settings.apiKey ?? "")) return;
    statusText.textContent = "Applying…";
    statusEl.dataset.kind = "warn";
    await save({ serverUrl, apiKey });
    await refreshServer();
  }

  opener.addEventListener("click", () => {
    url.value = settings.serverUrl ?? "";
    key.value = settings.apiKey ?? "";
    for (const radio of dialog.querySelectorAll('input[name="theme"]')) {
      radio.checked = radio.value === (settings.theme ?? "system");
    }
    refreshServer();
    dialog.showModal();
  });

  url.addEventListener("change", saveServer);
  key.addEventListener("change", saveServer);
  // Enter or Done closes the dialog, possibly before a change event: save on close too.
  dialog.addEventListener("close", () => {
    saveServer();
    opener.focus();
  });
  $("#api-key-show").addEventListener("click", (e) => {
    const show = key.type === "password";
    key.type = show ? "text" : "password";
    e.currentTarget.setAttribute("aria-pressed", String(show));
  });

  for (const radio of dialog.querySelectorAll('input[name="theme"]')) {
    radio.addEventListener("change", () => {
      applyTheme(radio.value);
      save({ theme: radio.value });
    });
  }

  return { refreshServer };
}
