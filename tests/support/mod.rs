pub mod bot;
#[path = "../../crates/cli/src/bench/desktop.rs"]
pub mod desktop;
#[path = "../../crates/cli/src/bench/webdriver.rs"]
pub mod webdriver;
#[path = "../../crates/cli/src/bench/xvfb.rs"]
pub mod xvfb;
