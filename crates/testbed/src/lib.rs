//! What a desktop has, made for tests and benchmarks on a machine without one: a private
//! PulseAudio daemon with virtual devices ([`pulse`], and [`sound`] to play into and record
//! from it), Xvfb ([`xvfb`]), known pictures on an X screen ([`x11_picture`]), a stand-in
//! Wayland portal desktop ([`portal_desktop`]), and the desktop app driven through
//! tauri-driver and WebDriver ([`desktop`], [`webdriver`]). Used by `between bench` and by the
//! CLI's and the app's tests; never by what users run. Depends on `between-media` only (for
//! the pictures' I420 form).

pub mod desktop;
#[cfg(all(unix, not(target_os = "macos")))]
pub mod portal_desktop;
pub mod pulse;
pub mod sound;
pub mod webdriver;
#[cfg(all(unix, not(target_os = "macos")))]
pub mod x11_picture;
pub mod xvfb;
