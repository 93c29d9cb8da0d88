// Draws the engine's I420 frames. A frame arrives on an IPC channel as a 16-byte little-endian
// header (u32 width, height, frameNumber, sentAt) followed by the Y, U and V planes; the
// conversion to RGB runs on the GPU (WebGL) where there is one, else in JS on a 2D canvas.
//
// `<between-video>` is the element the API hands to page code: it opens the engine's video
// only while it is in the document and on screen, asks for frames at the size it is drawn
// (device pixels) so the IPC carries no more than the tile shows, and counts what it drew
// (`canvas.dataset.frames`) so tests and metrics can see video flowing.
// Nothing here touches the DOM at import time: the module loads in Node for unit tests.

import { toBytes } from "./ipc.js";

export const HEADER_BYTES = 16;

/** Splits one frame message into header fields and plane views; null if it is malformed. */
export function parseFrame(msg) {
  const bytes = toBytes(msg);
  if (!bytes || bytes.byteLength < HEADER_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const width = view.getUint32(0, true);
  const height = view.getUint32(4, true);
  const frameNumber = view.getUint32(8, true);
  // The app's wall clock in ms (mod 2^32) when it sent the frame.
  const sentAt = view.getUint32(12, true);
  if (!width || !height || width % 2 || height % 2) return null;
  const ySize = width * height;
  const cSize = ySize / 4;
  if (bytes.byteLength < HEADER_BYTES + ySize + 2 * cSize) return null;
  const y = bytes.subarray(HEADER_BYTES, HEADER_BYTES + ySize);
  const u = bytes.subarray(HEADER_BYTES + ySize, HEADER_BYTES + ySize + cSize);
  const v = bytes.subarray(HEADER_BYTES + ySize + cSize, HEADER_BYTES + ySize + 2 * cSize);
  return { width, height, frameNumber, sentAt, y, u, v };
}

/**
 * BT.601 limited-range YUV → RGBA in integer math (the 2D fallback's path, and the reference
 * the WebGL shader matches). `out` is reused when it has the right length.
 */
export function i420ToRgba(frame, out) {
  const { width, height, y, u, v } = frame;
  const rgba = out && out.length === width * height * 4 ? out : new Uint8ClampedArray(width * height * 4);
  const cw = width >> 1;
  for (let row = 0; row < height; row++) {
    const yRow = row * width;
    const cRow = (row >> 1) * cw;
    for (let col = 0; col < width; col++) {
      const c = 298 * (y[yRow + col] - 16) + 128;
      const d = u[cRow + (col >> 1)] - 128;
      const e = v[cRow + (col >> 1)] - 128;
      const o = (yRow + col) * 4;
      // Uint8ClampedArray clamps to 0..255, so no explicit clamping here.
      rgba[o] = (c + 409 * e) >> 8;
      rgba[o + 1] = (c - 100 * d - 208 * e) >> 8;
      rgba[o + 2] = (c + 516 * d) >> 8;
      rgba[o + 3] = 255;
    }
  }
  return rgba;
}

const VERTEX_SHADER = `
attribute vec2 a_pos;
varying vec2 v_uv;
void main() {
  v_uv = vec2(a_pos.x * 0.5 + 0.5, 0.5 - a_pos.y * 0.5);
  gl_Position = vec4(a_pos, 0.0, 1.0);
}`;

// Same coefficients as i420ToRgba (298/256 = 1.164, 409/256 = 1.596, ...).
const FRAGMENT_SHADER = `
precision mediump float;
varying vec2 v_uv;
uniform sampler2D u_y;
uniform sampler2D u_u;
uniform sampler2D u_v;
void main() {
  float y = 1.164383 * (texture2D(u_y, v_uv).r - 0.062745);
  float u = texture2D(u_u, v_uv).r - 0.501961;
  float v = texture2D(u_v, v_uv).r - 0.501961;
  vec3 rgb = vec3(y + 1.596027 * v, y - 0.391762 * u - 0.812968 * v, y + 2.017232 * u);
  gl_FragColor = vec4(clamp(rgb, 0.0, 1.0), 1.0);
}`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    throw new Error(`shader: ${gl.getShaderInfoLog(shader)}`);
  }
  return shader;
}

function webglRenderer(canvas, gl) {
  const program = gl.createProgram();
  gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
  gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
    throw new Error(`program: ${gl.getProgramInfoLog(program)}`);
  }
  gl.useProgram(program);

  const quad = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, quad);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  const pos = gl.getAttribLocation(program, "a_pos");
  gl.enableVertexAttribArray(pos);
  gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 0, 0);

  const textures = ["u_y", "u_u", "u_v"].map((name, unit) => {
    const tex = gl.createTexture();
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, tex);
    // Planes are rarely powers of two: WebGL 1 then needs clamping and no mipmaps.
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.uniform1i(gl.getUniformLocation(program, name), unit);
    return tex;
  });
  // Plane rows are tightly packed; the default 4-byte alignment would shear odd widths.
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);

  let texW = 0;
  let texH = 0;
  return {
    kind: "webgl",
    /** Gives the context back now rather than at garbage collection (contexts are few). */
    destroy() {
      gl.getExtension("WEBGL_lose_context")?.loseContext();
    },
    draw(frame) {
      const { width, height } = frame;
      const resized = width !== texW || height !== texH;
      if (resized) {
        canvas.width = width;
        canvas.height = height;
        gl.viewport(0, 0, width, height);
      }
      const planes = [
        [frame.y, width, height],
        [frame.u, width >> 1, height >> 1],
        [frame.v, width >> 1, height >> 1],
      ];
      planes.forEach(([data, w, h], unit) => {
        gl.activeTexture(gl.TEXTURE0 + unit);
        gl.bindTexture(gl.TEXTURE_2D, textures[unit]);
        if (resized) {
          gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, w, h, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
        } else {
          gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, w, h, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
        }
      });
      texW = width;
      texH = height;
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    },
  };
}

function canvasRenderer(canvas, ctx) {
  let image = null;
  return {
    kind: "2d",
    destroy() {},
    draw(frame) {
      const { width, height } = frame;
      if (!image || image.width !== width || image.height !== height) {
        canvas.width = width;
        canvas.height = height;
        image = ctx.createImageData(width, height);
      }
      i420ToRgba(frame, image.data);
      ctx.putImageData(image, 0, 0);
    },
  };
}

/**
 * A renderer for `canvas`: WebGL when available (unless `webgl: false`), else 2D. Throws if
 * WebGL was obtained but could not be set up: the canvas is then bound to WebGL and the
 * caller needs a fresh canvas for the 2D path.
 */
export function createRenderer(canvas, { webgl = true } = {}) {
  if (webgl) {
    const attrs = { preserveDrawingBuffer: true, alpha: false, antialias: false, depth: false };
    const gl = canvas.getContext("webgl", attrs) || canvas.getContext("experimental-webgl", attrs);
    if (gl) return webglRenderer(canvas, gl);
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("no 2D context");
  return canvasRenderer(canvas, ctx);
}

// ---- <between-video> ----------------------------------------------------------------------

export const VIDEO_TAG = "between-video";
const RESIZE_DELAY_MS = 150;
// WebKit and Chromium keep about 16 live WebGL contexts per page and silently kill the oldest
// beyond that; a 16-tile call with a share and a preview would thrash. Past this many, new
// elements draw in 2D.
const MAX_WEBGL_CONTEXTS = 12;
let webglContexts = 0;
let webglWanted = true;

/**
 * Whether new video elements draw with WebGL (the default) or 2D. The app says which
 * (`app_graphics`): under a software rasteriser, WebGL costs more CPU and memory than 2D.
 */
export function setWebGL(wanted) {
  webglWanted = Boolean(wanted);
}

const even = (x) => Math.max(2, Math.round(x / 2) * 2);
const ignore = () => {};

// Defaults the page's own CSS overrides (`:where` has no specificity).
const BASE_CSS = `
:where(${VIDEO_TAG}) { display: block; position: relative; width: 100%; height: 100%; overflow: hidden; }
:where(${VIDEO_TAG} > canvas) { display: block; width: 100%; height: 100%; object-fit: contain; }`;

function defineVideoElement() {
  if (customElements.get(VIDEO_TAG)) return;
  // A constructed sheet is not an inline <style>, so a strict Content-Security-Policy allows it.
  if (typeof CSSStyleSheet === "function" && "adoptedStyleSheets" in document) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(BASE_CSS);
    document.adoptedStyleSheets = [sheet, ...document.adoptedStyleSheets];
  } else {
    const style = document.createElement("style");
    style.textContent = BASE_CSS;
    document.head.prepend(style);
  }

  class BetweenVideo extends HTMLElement {
    #source = null;
    #canvas = null;
    #renderer = null;
    #useWebGL = true;
    #video = null;
    #opening = false;
    #generation = 0;
    #visible = false;
    #width = 0;
    #height = 0;
    #sentWidth = 0;
    #sentHeight = 0;
    #failed = false;
    #disposed = false;
    #frames = 0;
    #observers = [];
    #resizeTimer = 0;
    #pending = Promise.resolve();

    /** Called once by createVideoElement. */
    init(source, kind) {
      this.#source = source;
      this.dataset.kind = kind;
      this.dataset.state = "idle";
      this.#canvas = document.createElement("canvas");
      this.#canvas.dataset.frames = "0";
      this.append(this.#canvas);
    }

    get canvas() {
      return this.#canvas;
    }

    /** Frames drawn since creation. */
    get frames() {
      return this.#frames;
    }

    connectedCallback() {
      if (this.#disposed || this.#observers.length) return;
      this.#observe();
    }

    disconnectedCallback() {
      // A tile being moved is removed and re-inserted in the same task: only a removal that
      // lasts past it closes the engine's video.
      queueMicrotask(() => {
        if (this.isConnected) return;
        this.#unobserve();
        this.#stop("closed");
      });
    }

    /**
     * Closes the engine's video for good (the peer left, the call ended). Resolves once the
     * engine has released it, so a camera can be reopened elsewhere right after.
     */
    close() {
      if (this.#disposed) return Promise.resolve();
      this.#disposed = true;
      this.#unobserve();
      const released = this.#stop("closed");
      this.#dropRenderer();
      return released;
    }

    #observe() {
      if (typeof IntersectionObserver === "function") {
        const io = new IntersectionObserver((entries) => {
          const visible = entries[entries.length - 1].isIntersecting;
          if (visible && !this.#visible) this.#failed = false; // shown again: worth a retry
          this.#visible = visible;
          this.#reconcile();
        });
        io.observe(this);
        this.#observers.push(io);
      } else {
        this.#visible = true;
      }
      if (typeof ResizeObserver === "function") {
        const ro = new ResizeObserver((entries) => {
          const entry = entries[entries.length - 1];
          const box = entry.devicePixelContentBoxSize?.[0];
          if (box) {
            this.#setSize(box.inlineSize, box.blockSize);
          } else {
            const dpr = globalThis.devicePixelRatio || 1;
            this.#setSize(entry.contentRect.width * dpr, entry.contentRect.height * dpr);
          }
        });
        ro.observe(this);
        this.#observers.push(ro);
      } else {
        const rect = this.getBoundingClientRect();
        const dpr = globalThis.devicePixelRatio || 1;
        this.#setSize(rect.width * dpr || 640, rect.height * dpr || 360);
      }
    }

    #unobserve() {
      for (const o of this.#observers) o.disconnect();
      this.#observers = [];
      this.#visible = false;
      clearTimeout(this.#resizeTimer);
    }

    #setSize(w, h) {
      this.#width = w >= 1 ? even(w) : 0;
      this.#height = h >= 1 ? even(h) : 0;
      this.#reconcile();
    }

    #reconcile() {
      const wanted =
        !this.#disposed && this.isConnected && this.#visible && this.#width > 0 && this.#height > 0;
      if (!wanted) {
        if (this.#video !== null || this.#opening) this.#stop("closed");
        return;
      }
      if (this.#video === null && !this.#opening && !this.#failed) {
        this.#open();
      } else if (this.#video !== null && (this.#width !== this.#sentWidth || this.#height !== this.#sentHeight)) {
        clearTimeout(this.#resizeTimer);
        this.#resizeTimer = setTimeout(() => this.#resize(), RESIZE_DELAY_MS);
      }
    }

    #open() {
      const generation = ++this.#generation;
      const width = this.#width;
      const height = this.#height;
      this.#opening = true;
      this.#setState("opening");
      const onFrame = (msg) => {
        if (generation === this.#generation) this.#draw(msg);
      };
      this.#pending = Promise.resolve()
        .then(() => this.#source.open(width, height, onFrame))
        .then(
          (video) => {
            if (generation !== this.#generation) {
              // Hidden or removed while opening: give it straight back.
              return Promise.resolve(this.#source.close(video)).catch(ignore);
            }
            this.#opening = false;
            this.#video = video;
            this.#sentWidth = width;
            this.#sentHeight = height;
            this.#setState("open");
            this.#reconcile();
          },
          (err) => {
            if (generation !== this.#generation) return;
            this.#opening = false;
            this.#failed = true;
            this.dataset.error = err?.message ?? String(err);
            this.#setState("error");
          },
        );
    }

    #resize() {
      const video = this.#video;
      if (video === null) return;
      const width = this.#width;
      const height = this.#height;
      if (width === this.#sentWidth && height === this.#sentHeight) return;
      this.#sentWidth = width;
      this.#sentHeight = height;
      Promise.resolve(this.#source.resize(video, width, height)).catch(ignore);
    }

    /** Resolves once the engine has let go of the video (or never had it). */
    #stop(state) {
      this.#generation++;
      clearTimeout(this.#resizeTimer);
      const video = this.#video;
      const wasOpening = this.#opening;
      this.#video = null;
      this.#opening = false;
      let released = Promise.resolve();
      if (video !== null) released = Promise.resolve(this.#source.close(video)).catch(ignore);
      else if (wasOpening) released = this.#pending; // its handler closes what it opened
      if (this.dataset.state !== "error" || this.#disposed) this.#setState(state);
      return released;
    }

    #draw(msg) {
      if (!this.isConnected) return; // the disconnect microtask closes it
      const frame = parseFrame(msg);
      if (!frame) return;
      try {
        this.#renderer ??= this.#makeRenderer();
        this.#renderer.draw(frame);
      } catch {
        // A broken GL context: draw on a fresh canvas in 2D from now on.
        this.#dropRenderer();
        this.#useWebGL = false;
        this.#replaceCanvas();
        return;
      }
      this.#frames++;
      this.#recordLatency(frame.sentAt);
      this.#canvas.dataset.frames = String(this.#frames);
      this.#canvas.dataset.frameNumber = String(frame.frameNumber);
      if (this.dataset.state !== "playing") this.#setState("playing");
    }

    /**
     * What the IPC and drawing added to this frame (ms), kept for the last 300 frames on the
     * canvas (`canvas.betweenLatencies`) for `between bench app`. Same machine, same clock.
     */
    #recordLatency(sentAt) {
      const added = ((Date.now() % 4294967296) - sentAt + 4294967296) % 4294967296;
      if (added > 60000) return; // the clock stepped
      const list = (this.#canvas.betweenLatencies ??= []);
      list.push(added);
      if (list.length > 300) list.shift();
    }

    #makeRenderer() {
      const webgl = webglWanted && this.#useWebGL && webglContexts < MAX_WEBGL_CONTEXTS;
      try {
        const renderer = createRenderer(this.#canvas, { webgl });
        this.#canvas.dataset.renderer = renderer.kind;
        if (renderer.kind === "webgl") {
          webglContexts++;
          this.#canvas.addEventListener("webglcontextlost", (e) => {
            // Lost (GPU reset, too many contexts): 2D from now on rather than fight for one.
            e.preventDefault();
            if (this.#renderer === renderer) webglContexts--;
            this.#renderer = null;
            this.#useWebGL = false;
            this.#replaceCanvas();
          }, { once: true });
        }
        return renderer;
      } catch (err) {
        if (!webgl) throw err;
        this.#useWebGL = false;
        this.#replaceCanvas();
        return this.#makeRenderer();
      }
    }

    #dropRenderer() {
      const renderer = this.#renderer;
      this.#renderer = null;
      if (renderer?.kind === "webgl") {
        webglContexts--;
        renderer.destroy();
      }
    }

    #replaceCanvas() {
      const fresh = document.createElement("canvas");
      fresh.dataset.frames = String(this.#frames);
      this.#canvas.replaceWith(fresh);
      this.#canvas = fresh;
    }

    #setState(state) {
      if (this.dataset.state === state) return;
      this.dataset.state = state;
      if (state !== "error") delete this.dataset.error;
      this.dispatchEvent(new Event("statechange"));
    }
  }

  customElements.define(VIDEO_TAG, BetweenVideo);
}

/**
 * A `<between-video>` element drawing the frames of `source`:
 * `{open(width, height, onFrame) → Promise<handle>, resize(handle, w, h), close(handle)}`.
 * `data-state` tells idle/opening/open/playing/closed/error (a `statechange` event fires on
 * each change); `data-kind` is `kind`. Browser only.
 */
export function createVideoElement({ source, kind = "camera" }) {
  defineVideoElement();
  const el = document.createElement(VIDEO_TAG);
  el.init(source, kind);
  return el;
}
