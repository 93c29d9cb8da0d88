// Video frames are pulled, not pushed: the page asks for the next frame (`video_next`) only
// after it has drawn the last one, so a page that draws slower than the video arrives gets
// the newest frame each time and nothing queues up. (Pushing every frame down a Tauri Channel
// had no back-pressure: a slow page built up seconds of frames and a gigabyte of memory.)

import { invoke, toBytes } from "./ipc.js";

const pulling = new Map();

/** Waits for the page to paint what was just drawn (in a browser), so pulls follow paints. */
function nextPaint() {
  return new Promise((resolve) => {
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(() => resolve());
    else setTimeout(resolve, 0);
  });
}

/** Pulls frames of `video` into `onFrame` until `stopPulling(video)` or an error. */
export function startPulling(video, onFrame) {
  const state = { open: true };
  pulling.set(video, state);
  (async () => {
    while (state.open) {
      let msg;
      try {
        msg = await invoke("video_next", { video });
      } catch {
        break; // closed, or the stream ended
      }
      if (!state.open) break;
      const bytes = toBytes(msg);
      // Empty: no new frame within the app's wait; ask again (after a paint either way, so
      // this loop never starves the page).
      if (bytes && bytes.byteLength > 0) onFrame(bytes);
      await nextPaint();
    }
    if (pulling.get(video) === state) pulling.delete(video);
  })();
}

export function stopPulling(video) {
  const state = pulling.get(video);
  if (state) state.open = false;
  pulling.delete(video);
}

/**
 * A `<between-video>` source for a feed opened by `openCommand` (`video_open`, `preview_open`)
 * with `args` plus the drawn size; frames are pulled as above.
 */
export function pulledSource(openCommand, args, invokeOpen = invoke) {
  return {
    async open(width, height, onFrame) {
      const answer = await invokeOpen(openCommand, { ...args, width, height });
      if (answer?.video != null) startPulling(answer.video, onFrame);
      return answer?.video;
    },
    resize: (video, width, height) => invoke("video_resize", { video, width, height }),
    close: (video) => {
      stopPulling(video);
      return invoke("video_close", { video });
    },
  };
}
