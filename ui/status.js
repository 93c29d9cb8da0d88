// The status banner (#status): the call's connection state, and messages that pass over it
// for a few seconds (a copied call ID, a refused screen share) before it shows again.
// Text only, so screen readers announce it through the element's aria-live.

export function createStatus(el) {
  let base = { text: "", kind: "info" };
  let timer = 0;

  function render({ text, kind }) {
    el.textContent = text;
    el.dataset.kind = kind;
  }

  return {
    /** The lasting state ("Connected", an error that stays until the next action); "" clears. */
    set(text, kind = "info") {
      base = { text, kind };
      clearTimeout(timer);
      timer = 0;
      render(base);
    },

    /** A passing message; the lasting state comes back after `ms`. */
    flash(text, kind = "info", ms = 4000) {
      clearTimeout(timer);
      render({ text, kind });
      timer = setTimeout(() => {
        timer = 0;
        render(base);
      }, ms);
    },

    clear() {
      this.set("");
    },
  };
}
