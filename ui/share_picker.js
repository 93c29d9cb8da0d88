// Choosing what to share: the whole screen, a monitor or a window (from the app's
// screenshareTargets). One choice needs no question; several open the #share-picker dialog.

import { $, h } from "./dom.js";

/** A person-readable line for a target: "Entire screen", "Monitor: DP-1", "Window: Notes". */
export function targetLabel(target) {
  switch (target.kind) {
    case "screen":
      return target.name || "Entire screen";
    case "monitor":
      return `Monitor: ${target.name}`;
    default:
      return `Window: ${target.name}`;
  }
}

/**
 * Resolves the chosen target's id; `undefined` for the whole screen when there is nothing to
 * choose from; `null` when the person cancelled.
 */
export function pickShareTarget(targets) {
  if (!Array.isArray(targets) || targets.length <= 1) return Promise.resolve(targets?.[0]?.id);
  const dialog = $("#share-picker");
  const list = $("#share-targets");
  list.replaceChildren(
    ...targets.map((t) =>
      h(
        "button",
        { class: "btn", type: "submit", value: t.id, role: "listitem", "data-target-id": t.id },
        h("span", { text: targetLabel(t) }),
        h("span", { class: "size", text: `${t.width}×${t.height}` }),
      ),
    ),
  );
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue || null), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    list.querySelector("button")?.focus();
  });
}
