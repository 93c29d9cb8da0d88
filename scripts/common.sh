# Shared by the scripts: where builds go, and how missing tools are installed.
# Sourced, not run.

# Builds live outside the clone so a fresh clone (CI) rebuilds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/between/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { printf '==> %s\n' "$*" >&2; }

# need_apt PACKAGE...: installs the Debian/Ubuntu packages that are missing, as root;
# otherwise prints the exact command and fails.
need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "Missing system packages. Install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
}

need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Rust is not installed. Install it from https://rustup.rs (stable, 1.88 or newer)." >&2
    return 1
  fi
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      say "adding the $component component"
      rustup component add "$component"
    fi
  done
}

# System packages the build needs. Grows with the media, device and app work.
need_build_deps() {
  # nasm: OpenH264's SIMD kernels. Without it openh264-sys2 silently builds plain C, which
  # encodes a 1080p screen several times slower.
  need_apt pkg-config build-essential nasm libopus-dev libasound2-dev \
    libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev \
    libpipewire-0.3-dev libspa-0.2-dev libclang-dev libdbus-1-dev
}

# The desktop app as users get it: run.sh runs this binary and package.sh packs this same
# binary into the .deb and the AppImage (`cargo tauri build` would build it a second time,
# its own way). Production Tauri (`custom-protocol`) is the crate's default feature. The
# first build takes about 18 minutes on 2 cores; later ones reuse $CARGO_TARGET_DIR.
build_app() {
  cargo build --release --locked -p between-app
}

# What the tests use besides the build: a private PulseAudio daemon with virtual devices;
# network namespaces and nftables for the lossy-path test (the loss test needs root); Xvfb
# and a PipeWire desktop stand-in for screen sharing; a user-space V4L2 camera.
need_test_deps() {
  need_apt iproute2 nftables pulseaudio pulseaudio-utils espeak-ng xvfb xauth webkit2gtk-driver
  # Screen sharing the Wayland way: a session bus, PipeWire with WirePlumber, GStreamer to
  # serve a known picture, and Python's D-Bus bindings for the stand-in portal.
  need_apt dbus pipewire pipewire-bin wireplumber gstreamer1.0-pipewire gstreamer1.0-tools \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good python3-dbus python3-gi
  # The user-space camera (crates/cli/tests/fake_v4l2) is compiled against the kernel's
  # V4L2 header; build-essential brings the compiler.
  need_apt linux-libc-dev
  command -v node >/dev/null 2>&1 || need_apt nodejs
  need_tauri_driver
}

# WebDriver for the app's end-to-end test (in front of Debian's WebKitWebDriver).
need_tauri_driver() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver"
  [ -x "$bin" ] && return 0
  say "installing tauri-driver"
  cargo install tauri-driver --version '^2' --locked
}
