//! Shared by the app's end-to-end tests; each test binary uses a part of it.
#![allow(dead_code)]

pub mod bot;
pub mod canvas;
#[path = "../../crates/cli/src/bench/desktop.rs"]
pub mod desktop;
#[path = "../../crates/cli/src/bench/webdriver.rs"]
pub mod webdriver;
#[path = "../../crates/cli/src/bench/xvfb.rs"]
pub mod xvfb;
