//! Shared by the app's end-to-end tests; each test binary uses a part of it.
#![allow(dead_code)]

pub mod bot;
pub mod canvas;
pub use between_testbed::{desktop, webdriver};
