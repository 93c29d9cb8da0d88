//! The desktop app, end to end: the real app (debug build) under Xvfb, driven through its
//! page by WebDriver (tauri-driver + WebKitWebDriver), with PulseAudio virtual devices, its
//! embedded server, and `between` bots in the same call.
//!
//! One test, in the order a person uses the app: the join screen lists the virtual devices
//! by name; joining works through the embedded server; a bot's tile appears with its name and
//! its test pattern is really drawn (the frame counter is read back from the canvas pixels);
//! chat both ways; another speaker moves the bot's tone to that sink; a 3-person call is
//! screenshotted; mute reaches the bot as `audioPaused`; leaving returns to the join screen
//! and the bot gets `peerLeft`; the settings are still there after restarting the app.
//!
//! Needs xvfb, webkit2gtk-driver, tauri-driver, pulseaudio (scripts/test.sh installs them).
#![allow(clippy::unwrap_used)]

mod support;

use between_testbed::sound::{Monitor, Pulse};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use support::bot::{Bot, between_cli};
use support::desktop::Desktop;
use support::webdriver::Driver;

const DEVICES: &[&str] = &[
    "module-null-sink sink_name=desk sink_properties=device.description=Desk-Speaker",
    "module-null-sink sink_name=headphones sink_properties=device.description=Headphones",
    "module-null-sink sink_name=room",
    "module-remap-source master=room.monitor source_name=desk_mic source_properties=device.description=Desk-Mic",
];

/// The app's server: `{url, apiKey, ...}` from its own command, as the page sees it.
fn app_server(driver: &Driver) -> Value {
    driver
        .exec_async(
            "const done = arguments[arguments.length - 1];
             window.__TAURI__.core.invoke('app_server').then(done, (e) => done({error: e}));",
            json!([]),
        )
        .unwrap()
}

/// Saves a PNG for the README (docs/screenshots/NAME.png).
fn screenshot(driver: &Driver, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.png")),
        driver.screenshot().unwrap(),
    )
    .unwrap();
}

fn bot(pulse: &Pulse, server: &Value, call: &str, name: &str, extra: &[&str]) -> Bot {
    Bot::spawn(
        Command::new(between_cli())
            .args(["join", call])
            .args(["--server", server["url"].as_str().unwrap()])
            .args(["--api-key", server["apiKey"].as_str().unwrap()])
            .args(["--data", &json!({"name": name}).to_string()])
            .args(extra)
            .env("PULSE_SERVER", pulse.server_env())
            .env_remove("PULSE_RUNTIME_PATH"),
    )
}

/// Waits until the peer's tile draws the test pattern: a legible frame counter that moves.
fn wait_for_pattern(driver: &Driver, peer: &str) {
    support::canvas::wait_for_pattern(
        driver,
        &format!("[data-peer-id=\"{peer}\"] canvas"),
        &format!("the test pattern of {peer} drawn and moving"),
    );
}

/// Picks `value` in a device menu as a person would (the option must be listed), firing the
/// `change` the page listens to. (Clicking an <option> opens GTK's native popup, which
/// WebDriver cannot drive.)
fn select_option(driver: &Driver, select: &str, value: &str) {
    driver
        .wait_for(&format!("{select} option[value=\"{value}\"]"), 10)
        .unwrap();
    driver
        .exec(
            "const s = document.querySelector(arguments[0]);
             s.value = arguments[1];
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([select, value]),
        )
        .unwrap();
    driver
        .wait_until(&format!("{select} set to {value}"), 5, |d| {
            d.find(select)
                .and_then(|el| d.property(&el, "value").ok())
                .is_some_and(|v| v == value)
        })
        .unwrap();
}

/// The labels a device menu offers, one per line.
fn options(driver: &Driver, select: &str) -> String {
    driver
        .exec(
            "return [...document.querySelectorAll(arguments[0] + ' option')]
               .map((o) => o.textContent).join('\\n')",
            json!([select]),
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn state(driver: &Driver) -> String {
    driver
        .exec("return document.body.dataset.state || ''", json!([]))
        .unwrap_or_default()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_person_joins_sees_and_chats_with_bots_and_the_app_remembers_their_settings() {
    let pulse = Pulse::start(DEVICES);
    let server_env = pulse.server_env();
    let app = Path::new(env!("CARGO_BIN_EXE_between-app"));
    let desktop = Desktop::start(app, &[("PULSE_SERVER", &server_env)]).unwrap();
    let driver = desktop.open_app().unwrap();

    // The join screen, with the virtual devices by name.
    driver
        .wait_until("the join screen", 30, |d| state(d) == "join")
        .unwrap();
    driver
        .wait_until("the speakers listed by name", 10, |d| {
            let text = options(d, "#speaker-select");
            text.contains("Desk-Speaker") && text.contains("Headphones")
        })
        .unwrap();
    let mics = options(&driver, "#mic-select");
    assert!(mics.contains("Desk-Mic"), "{mics}");
    select_option(&driver, "#camera-select", "between:test-pattern");
    select_option(&driver, "#speaker-select", "pulseaudio:desk");
    let call_id = driver.find("#call-id").unwrap();
    driver.clear(&call_id).unwrap();
    driver.type_text(&call_id, "e2e-standup").unwrap();
    let name = driver.find("#display-name").unwrap();
    driver.clear(&name).unwrap();
    driver.type_text(&name, "Ada").unwrap();
    screenshot(&driver, "join");

    driver.click(&driver.find("#join").unwrap()).unwrap();
    driver
        .wait_until("the call screen", 30, |d| state(d) == "call")
        .unwrap();
    driver.wait_for("[data-local][data-peer-id]", 10).unwrap();

    // A bot joins through the app's embedded server.
    let server = app_server(&driver);
    assert!(server["embedded"] == true, "{server}");
    let bob = bot(
        &pulse,
        &server,
        "e2e-standup",
        "Bob",
        &["--pattern", "--tone", "440", "--say", "hello from Bob"],
    );
    let joined = bob.expect("joined", 15, |_| true);
    let bob_id = joined["peerId"].as_str().unwrap().to_string();
    let ada = bob.expect("peerJoined", 15, |e| {
        e["extraData"].as_str().unwrap_or_default().contains("Ada")
    });
    let ada_id = ada["peerId"].as_str().unwrap().to_string();
    driver
        .wait_for(
            &format!("[data-peer-id=\"{bob_id}\"][data-name=\"Bob\"]"),
            15,
        )
        .unwrap();
    wait_for_pattern(&driver, &bob_id);
    // Under software GL (Xvfb, LIBGL_ALWAYS_SOFTWARE) the app has the page draw in 2D, which
    // is cheaper there than WebGL (tests/appimage.rs covers the WebGL path).
    let renderer = driver
        .exec(
            "return document.querySelector(`[data-peer-id=\"${arguments[0]}\"] canvas`).dataset.renderer",
            json!([bob_id]),
        )
        .unwrap();
    assert_eq!(renderer, json!("2d"));

    // Chat, both ways: Bob's message waits behind an unread count until the panel opens.
    driver
        .wait_until("an unread count for Bob's message", 15, |d| {
            d.exec(
                "const b = document.querySelector('#chat-badge');
                 return !b.hidden && Number(b.textContent) >= 1;",
                json!([]),
            )
            .unwrap_or_default()
                == true
        })
        .unwrap();
    driver.click(&driver.find("#chat-toggle").unwrap()).unwrap();
    let log = driver.wait_for("#chat-log", 5).unwrap();
    driver
        .wait_until("Bob's message in the chat", 10, |d| {
            d.text(&log).unwrap_or_default().contains("hello from Bob")
        })
        .unwrap();
    let input = driver.find("#chat-input").unwrap();
    driver.type_text(&input, "hi Bob").unwrap();
    driver.click(&driver.find("#chat-send").unwrap()).unwrap();
    bob.expect("data", 10, |e| {
        e["from"] == ada_id.as_str() && e["data"]["text"] == "hi Bob"
    });

    // Bob's tone plays on the chosen speaker; another speaker takes it over.
    let desk = Monitor::start(&pulse, "desk.monitor");
    let headphones = Monitor::start(&pulse, "headphones.monitor");
    desk.wait_for_tone("the desk speaker");
    driver.click(&driver.find("#devices").unwrap()).unwrap();
    select_option(&driver, "#speaker-select", "pulseaudio:headphones");
    headphones.wait_for_tone("the headphones");
    desk.wait_for_silence("the desk speaker after switching");

    // A third person, for the screenshot of a real call.
    let cleo = bot(&pulse, &server, "e2e-standup", "Cleo", &["--pattern"]);
    let cleo_id = cleo.expect("joined", 15, |_| true)["peerId"]
        .as_str()
        .unwrap()
        .to_string();
    driver
        .wait_for(
            &format!("[data-peer-id=\"{cleo_id}\"][data-name=\"Cleo\"]"),
            15,
        )
        .unwrap();
    wait_for_pattern(&driver, &cleo_id);
    wait_for_pattern(&driver, &bob_id);
    // Close the device menu if it is open, so the call is what the screenshot shows.
    let _ = driver.exec(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))",
        json!([]),
    );
    screenshot(&driver, "call");

    // A hidden tile receives no frames (its feed is closed), and draws again when shown.
    let frames_of = |d: &Driver, peer: &str| -> u64 {
        d.exec(
            "const c = document.querySelector(`[data-peer-id=\"${arguments[0]}\"] canvas`);
             return c ? Number(c.dataset.frames || 0) : 0;",
            json!([peer]),
        )
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
    };
    let set_hidden = |hidden: bool| {
        driver
            .exec(
                "document.querySelector(`[data-peer-id=\"${arguments[0]}\"]`).style.display =
                   arguments[1] ? 'none' : '';",
                json!([cleo_id, hidden]),
            )
            .unwrap();
    };
    set_hidden(true);
    driver
        .wait_until("Cleo's hidden tile closes its video", 5, |d| {
            d.exec(
                "const v = document.querySelector(`[data-peer-id=\"${arguments[0]}\"] between-video`);
                 return v ? v.dataset.state : '';",
                json!([cleo_id]),
            )
            .unwrap_or_default()
                == "closed"
        })
        .unwrap();
    let hidden_at = frames_of(&driver, &cleo_id);
    // Meanwhile Bob's tile draws a second's worth of frames...
    let bob_at = frames_of(&driver, &bob_id);
    driver
        .wait_until("Bob's tile drawing on", 10, |d| {
            frames_of(d, &bob_id) >= bob_at + 10
        })
        .unwrap();
    // ...and Cleo's drew none.
    assert_eq!(
        frames_of(&driver, &cleo_id),
        hidden_at,
        "a hidden tile drew frames"
    );
    set_hidden(false);
    driver
        .wait_until("Cleo's tile drawing again once shown", 10, |d| {
            frames_of(d, &cleo_id) > hidden_at
        })
        .unwrap();

    // Someone shares their screen (the display the app is on, through the X11 capture): it
    // takes the large area and is really drawn.
    let dee = Bot::spawn(
        Command::new(between_cli())
            .args(["join", "e2e-standup", "--share"])
            .args(["--server", server["url"].as_str().unwrap()])
            .args(["--api-key", server["apiKey"].as_str().unwrap()])
            .args(["--data", &json!({"name": "Dee"}).to_string()])
            .env("DISPLAY", &desktop.display),
    );
    let dee_id = dee.expect("joined", 15, |_| true)["peerId"]
        .as_str()
        .unwrap()
        .to_string();
    dee.expect("localShareCreated", 15, |_| true);
    let share_frames = |d: &Driver| -> u64 {
        d.exec(
            "const a = document.querySelector('#share-area');
             const c = a && !a.hidden ? a.querySelector('canvas') : null;
             return c && a.dataset.peerId === arguments[0] ? Number(c.dataset.frames || 0) : 0;",
            json!([dee_id]),
        )
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
    };
    driver
        .wait_until("Dee's shared screen drawn in the share area", 20, |d| {
            share_frames(d) >= 3
        })
        .unwrap();
    screenshot(&driver, "share");
    // The sharer leaves: the share area goes with them.
    drop(dee);
    driver
        .wait_until("the share area closed after Dee left", 15, |d| {
            d.exec(
                "return document.querySelector('#share-area').hidden",
                json!([]),
            )
            .unwrap_or_default()
                == true
        })
        .unwrap();

    // Ada shares: the picker lists what can be shared (the whole screen first); the others
    // get her share, and it stops from the same button.
    driver.click(&driver.find("#share").unwrap()).unwrap();
    driver
        .wait_until("the share picker, or sharing at once", 15, |d| {
            d.exec(
                "const p = document.querySelector('#share-picker');
                 const b = p.querySelector('[data-target-id=\"screen\"]');
                 if (p.open && b) { b.click(); return true; }
                 return document.querySelector('#share').getAttribute('aria-pressed') === 'true';",
                json!([]),
            )
            .unwrap_or_default()
                == true
        })
        .unwrap();
    bob.expect("screenShareCreated", 15, |e| e["peerId"] == ada_id.as_str());
    driver
        .wait_until("the share button pressed", 10, |d| {
            d.exec(
                "return document.querySelector('#share').getAttribute('aria-pressed')",
                json!([]),
            )
            .unwrap_or_default()
                == "true"
        })
        .unwrap();
    driver.click(&driver.find("#share").unwrap()).unwrap();
    bob.expect("screenShareClosed", 15, |e| e["peerId"] == ada_id.as_str());

    // Mute: the icon shows it and the others are told.
    driver.click(&driver.find("#mute").unwrap()).unwrap();
    bob.expect("audioPaused", 10, |e| e["peerId"] == ada_id.as_str());
    driver
        .wait_until("the mute button and the local tile show it", 5, |d| {
            d.exec(
                "const t = document.querySelector('[data-local]');
                 const b = document.querySelector('#mute');
                 return b.getAttribute('aria-pressed') === 'true' && t.classList.contains('muted');",
                json!([]),
            )
            .unwrap_or_default()
                == true
        })
        .unwrap();

    // Leave: back to the join screen; the others see it.
    driver.click(&driver.find("#leave").unwrap()).unwrap();
    driver
        .wait_until("the join screen after leaving", 15, |d| state(d) == "join")
        .unwrap();
    bob.expect("peerLeft", 15, |e| e["peerId"] == ada_id.as_str());
    drop(cleo);
    drop(bob);
    driver.quit();

    // The app restarts with what the person chose.
    let driver = desktop.open_app().unwrap();
    driver
        .wait_until("the join screen after a restart", 30, |d| {
            state(d) == "join"
        })
        .unwrap();
    // The settings load asynchronously after the screen appears.
    driver
        .wait_until("the call ID and name restored", 10, |d| {
            let value = |css: &str| {
                d.find(css)
                    .and_then(|el| d.property(&el, "value").ok())
                    .unwrap_or_default()
            };
            value("#call-id") == "e2e-standup" && value("#display-name") == "Ada"
        })
        .unwrap();
    driver
        .wait_until("the chosen devices restored", 10, |d| {
            let camera = d.find("#camera-select").unwrap();
            let speaker = d.find("#speaker-select").unwrap();
            d.property(&camera, "value").unwrap_or_default() == "between:test-pattern"
                && d.property(&speaker, "value").unwrap_or_default() == "pulseaudio:headphones"
        })
        .unwrap();
    driver.quit();
}
