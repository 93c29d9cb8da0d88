// The frame format and the JS colour conversion (the 2D fallback, and the reference the
// WebGL shader's coefficients follow).

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseFrame, i420ToRgba, HEADER_BYTES } from "../video.js";

/** A frame message: header, then Y, U, V filled with one colour. */
function frame(width, height, [y, u, v], frameNumber = 1) {
  const ySize = width * height;
  const cSize = ySize / 4;
  const buf = new ArrayBuffer(HEADER_BYTES + ySize + 2 * cSize);
  const view = new DataView(buf);
  view.setUint32(0, width, true);
  view.setUint32(4, height, true);
  view.setUint32(8, frameNumber, true);
  view.setUint32(12, 0, true);
  const bytes = new Uint8Array(buf);
  bytes.fill(y, HEADER_BYTES, HEADER_BYTES + ySize);
  bytes.fill(u, HEADER_BYTES + ySize, HEADER_BYTES + ySize + cSize);
  bytes.fill(v, HEADER_BYTES + ySize + cSize);
  return buf;
}

test("parseFrame reads the little-endian header and the three planes", () => {
  const f = parseFrame(frame(4, 2, [10, 20, 30], 0x01020304));
  assert.equal(f.width, 4);
  assert.equal(f.height, 2);
  assert.equal(f.frameNumber, 0x01020304);
  assert.equal(f.sentAt, 0);
  assert.equal(f.y.length, 8);
  assert.equal(f.u.length, 2);
  assert.equal(f.v.length, 2);
  assert.deepEqual([f.y[0], f.u[0], f.v[0]], [10, 20, 30]);
});

test("parseFrame accepts an ArrayBuffer, a typed array (at an offset) or a plain array", () => {
  const buf = frame(2, 2, [1, 2, 3]);
  const padded = new Uint8Array(buf.byteLength + 5);
  padded.set(new Uint8Array(buf), 5);
  for (const msg of [buf, new Uint8Array(buf), padded.subarray(5), Array.from(new Uint8Array(buf))]) {
    const f = parseFrame(msg);
    assert.ok(f, "parsed");
    assert.deepEqual([f.width, f.height, f.y[0], f.u[0], f.v[0]], [2, 2, 1, 2, 3]);
  }
});

test("parseFrame rejects short, odd-sized, empty and non-binary messages", () => {
  assert.equal(parseFrame(new ArrayBuffer(8)), null);
  assert.equal(parseFrame(frame(4, 4, [0, 0, 0]).slice(0, 30)), null);
  const odd = new Uint8Array(frame(4, 4, [0, 0, 0]));
  new DataView(odd.buffer).setUint32(0, 3, true);
  assert.equal(parseFrame(odd), null);
  const empty = new Uint8Array(HEADER_BYTES);
  assert.equal(parseFrame(empty), null);
  assert.equal(parseFrame({ event: "x" }), null);
  assert.equal(parseFrame(null), null);
});

test("i420ToRgba follows BT.601 limited range", () => {
  const colour = (yuv) => Array.from(i420ToRgba(parseFrame(frame(2, 2, yuv))).slice(0, 4));
  const near = (got, want) => got.every((c, i) => Math.abs(c - want[i]) <= 2);
  assert.deepEqual(colour([16, 128, 128]), [0, 0, 0, 255]);
  assert.deepEqual(colour([235, 128, 128]), [255, 255, 255, 255]);
  assert.ok(near(colour([81, 90, 240]), [255, 0, 0, 255]), `red: ${colour([81, 90, 240])}`);
  assert.ok(near(colour([145, 54, 34]), [0, 255, 0, 255]), `green: ${colour([145, 54, 34])}`);
  assert.ok(near(colour([41, 240, 110]), [0, 0, 255, 255]), `blue: ${colour([41, 240, 110])}`);
});

test("i420ToRgba shares each chroma sample between a 2×2 block", () => {
  // 4×2 frame: left half of chroma blue-ish, right half red-ish.
  const buf = new Uint8Array(frame(4, 2, [128, 128, 128]));
  const ySize = 8;
  buf[HEADER_BYTES + ySize] = 240; // U of the left block
  buf[HEADER_BYTES + ySize + 3] = 240; // V of the right block
  const rgba = i420ToRgba(parseFrame(buf));
  const px = (x, y) => Array.from(rgba.slice((y * 4 + x) * 4, (y * 4 + x) * 4 + 3));
  assert.deepEqual(px(0, 0), px(1, 1));
  assert.deepEqual(px(2, 0), px(3, 1));
  assert.ok(px(0, 0)[2] > px(0, 0)[0], "left block is blue");
  assert.ok(px(3, 0)[0] > px(3, 0)[2], "right block is red");
});

test("i420ToRgba reuses an output buffer of the right size", () => {
  const f = parseFrame(frame(2, 2, [16, 128, 128]));
  const out = new Uint8ClampedArray(16);
  assert.equal(i420ToRgba(f, out), out);
  assert.notEqual(i420ToRgba(f, new Uint8ClampedArray(4)).length, 4);
});
