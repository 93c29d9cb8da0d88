// The engine's speaking detector (crates/media level.rs), mirrored for our own tile: the
// engine reports `speaking` for remote peers only. Pure: levels in, a state out.

const SPEAKING_START = 0.5;
const SPEAKING_STOP = 0.35;
const QUIET_REPORTS = 6;

export class SpeakingDetector {
  #quiet = 0;
  speaking = false;

  /** One level report (0..1, every 100 ms); `muted`: the microphone is off. True when the
   * speaking state changed. */
  push(level, muted) {
    if (muted) {
      this.#quiet = QUIET_REPORTS;
    } else if (level >= SPEAKING_START) {
      this.#quiet = 0;
    } else if (level < SPEAKING_STOP) {
      this.#quiet++;
    }
    const speaking = this.#quiet < QUIET_REPORTS && (this.speaking || level >= SPEAKING_START);
    const changed = speaking !== this.speaking;
    this.speaking = speaking;
    return changed;
  }

  reset() {
    this.#quiet = 0;
    this.speaking = false;
  }
}
