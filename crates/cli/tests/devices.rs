//! Real audio devices, made virtual: a private PulseAudio daemon holds named null sinks (the
//! speakers) and a source remapped from a sink's monitor (the microphone), since this machine
//! has no sound card.
//! - `between devices`: the PulseAudio host is chosen and lists them by their descriptions,
//!   the default marked, sink monitors left out of the microphones; without a sound server it
//!   falls back to ALSA.
//! - A tone played into one bot's microphone comes out of the other bot's speaker (read back
//!   from the sink's monitor), and `setOutputDevice` moves it to another sink mid-call. The
//!   microphone goes raw (`--raw-mic`): noise suppression rightly takes a steady tone for
//!   noise; audio processing has its own test on speech (crates/media/tests/echo.rs).
//!
//! Needs the `pulseaudio` and `pulseaudio-utils` packages (scripts/test.sh installs them).
#![allow(clippy::unwrap_used)]

mod common;

use between_testbed::sound::{Monitor, Pulse, pactl, play_frequency, play_tone};
use common::{BIN, Bot, Server, join_args};
use serde_json::Value;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

/// `between ARGS` as a one-shot command against this daemon (or no sound server at all),
/// its stdout parsed as JSON.
fn between_json(pulse: Option<&Pulse>, args: &[&str]) -> Value {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("PULSE_RUNTIME_PATH");
    match pulse {
        Some(p) => cmd.env("PULSE_SERVER", p.server_env()),
        None => cmd
            .env_remove("PULSE_SERVER")
            .env("XDG_RUNTIME_DIR", "/nonexistent"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn devices(pulse: Option<&Pulse>) -> Value {
    between_json(pulse, &["devices"])
}

#[test]
fn pulseaudio_devices_are_listed_by_their_names() {
    let pulse = Pulse::start(&[
        "module-null-sink sink_name=meeting_speaker sink_properties=device.description=Meeting-Speaker",
        "module-null-sink sink_name=headset sink_properties=device.description=Headset",
        "module-null-sink sink_name=mic_feed sink_properties=device.description=Mic-Feed",
        "module-remap-source master=mic_feed.monitor source_name=virtual_mic source_properties=device.description=Virtual-Mic",
    ]);
    let list = devices(Some(&pulse));
    assert_eq!(list["audioHost"], "PulseAudio", "{list:#}");
    let devices = list["devices"].as_array().unwrap();
    let find = |kind: &str, label: &str| {
        devices
            .iter()
            .find(|d| d["kind"] == kind && d["label"] == label)
            .unwrap_or_else(|| panic!("no {kind} {label:?} in {list:#}"))
    };
    let speaker = find("audiooutput", "Meeting-Speaker");
    assert_eq!(speaker["deviceId"], "pulseaudio:meeting_speaker");
    find("audiooutput", "Headset");
    let mic = find("audioinput", "Virtual-Mic");
    assert_eq!(mic["deviceId"], "pulseaudio:virtual_mic");
    // Monitors are not microphones.
    assert!(
        !devices
            .iter()
            .any(|d| d["deviceId"].as_str().unwrap().ends_with(".monitor")),
        "{list:#}"
    );
    // The first sink loaded is PulseAudio's default output.
    let defaults: Vec<&Value> = devices
        .iter()
        .filter(|d| d["kind"] == "audiooutput" && d["isDefault"] == true)
        .collect();
    assert_eq!(defaults.len(), 1, "{list:#}");
}

#[test]
fn without_a_sound_server_alsa_is_used() {
    let list = devices(None);
    assert_eq!(list["audioHost"], "ALSA", "{list:#}");
}

const SPEAKERS_AND_MIC: &[&str] = &[
    "module-null-sink sink_name=meeting_speaker sink_properties=device.description=Meeting-Speaker",
    "module-null-sink sink_name=other_speaker sink_properties=device.description=Other-Speaker",
    "module-null-sink sink_name=mic_feed sink_properties=device.description=Mic-Feed",
    "module-remap-source master=mic_feed.monitor source_name=virtual_mic source_properties=device.description=Virtual-Mic",
    "module-null-sink sink_name=headset_feed",
    "module-remap-source master=headset_feed.monitor source_name=headset_mic source_properties=device.description=Headset-Mic",
];

/// The real-time audio tests share 2 cores: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A bot on this daemon's devices.
fn bot(pulse: &Pulse, server: &Server, args: &[&str]) -> Bot {
    Bot::spawn_with(
        Command::new(BIN)
            .args(join_args(&server.url, "devices"))
            .args(args)
            .env("PULSE_SERVER", pulse.server_env())
            .env_remove("PULSE_RUNTIME_PATH"),
    )
}

fn has_device(event: &Value, id: &str) -> bool {
    event["devices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["deviceId"] == id)
}

#[test]
fn hot_plug_updates_the_list_and_losing_the_speaker_falls_back_to_the_default() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let pulse = Pulse::start(SPEAKERS_AND_MIC);
    let server = Server::start();
    let mut feeder = play_tone(&pulse, "mic_feed");
    let default_speaker = Monitor::start(&pulse, "meeting_speaker.monitor");
    let mut talker = bot(
        &pulse,
        &server,
        &["--mic", "pulseaudio:virtual_mic", "--raw-mic"],
    );
    talker.expect("localParticipant");
    let mut listener = bot(&pulse, &server, &["--speaker", "default", "--commands"]);
    let first = listener.expect("devicesUpdated");
    assert!(has_device(&first, "pulseaudio:meeting_speaker"), "{first}");

    // Plugged in: the list has it within a second.
    let module = pactl(
        &pulse,
        &[
            "load-module",
            "module-null-sink",
            "sink_name=usb_headset",
            "sink_properties=device.description=USB-Headset",
        ],
    );
    let plugged = Instant::now();
    let event = listener.expect_where("devicesUpdated", |e| {
        has_device(e, "pulseaudio:usb_headset")
    });
    let took = plugged.elapsed();
    eprintln!("devicesUpdated {} ms after the plug", took.as_millis());
    assert!(
        took <= Duration::from_secs(1),
        "devicesUpdated after {took:?}"
    );
    assert!(
        event["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["label"] == "USB-Headset")
    );

    // Use it; the tone comes out there.
    let headset = Monitor::start(&pulse, "usb_headset.monitor");
    listener.command(r#"{"cmd":"setOutputDevice","deviceId":"pulseaudio:usb_headset"}"#);
    listener.expect("commandDone");
    headset.wait_for_tone("USB-Headset");

    // Unplugged while in use: the list drops it, the call falls back to the default speaker
    // and the tone keeps coming, now out of the default.
    pactl(&pulse, &["unload-module", &module]);
    let unplugged = Instant::now();
    listener.expect_where("devicesUpdated", |e| {
        !has_device(e, "pulseaudio:usb_headset")
    });
    let fallback = listener.expect("deviceFallback");
    assert_eq!(
        fallback["lostDeviceId"], "pulseaudio:usb_headset",
        "{fallback}"
    );
    assert_eq!(
        fallback["deviceId"], "pulseaudio:meeting_speaker",
        "{fallback}"
    );
    eprintln!(
        "fallback {} ms after the unplug",
        unplugged.elapsed().as_millis()
    );
    default_speaker.wait_for_tone("the default speaker after the fallback");

    let _ = listener.terminate();
    let _ = talker.terminate();
    let _ = feeder.kill();
    let _ = feeder.wait();
}

/// The bot's sound server connections, as the server counts them, and its threads.
fn connections_and_threads(pulse: &Pulse, bot: &Bot) -> (usize, usize) {
    let pid = bot.child.id().to_string();
    let clients = pactl(pulse, &["list", "clients"]);
    let connections = clients
        .split("Client #")
        .filter(|c| c.contains(&format!("application.process.id = \"{pid}\"")))
        .count();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    (connections, threads)
}

/// At most one connection and three threads more than `base` (the first listing's host and
/// pool threads coming and going).
fn assert_flat(pulse: &Pulse, bot: &Bot, base: (usize, usize), what: &str) {
    let (connections, threads) = base;
    let (c, t) = connections_and_threads(pulse, bot);
    assert!(
        c <= connections + 1 && t <= threads + 3,
        "{what}: connections {connections} → {c}, threads {threads} → {t}"
    );
}

#[test]
fn watching_the_devices_through_a_call_keeps_one_connection_to_the_sound_server() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let pulse = Pulse::start(SPEAKERS_AND_MIC);
    let server = Server::start();
    let mut talker = bot(
        &pulse,
        &server,
        &[
            "--mic",
            "pulseaudio:virtual_mic",
            "--speaker",
            "default",
            "--commands",
        ],
    );
    talker.expect("localParticipant");
    let (connections, threads) = connections_and_threads(&pulse, &talker);
    assert!(
        connections >= 1,
        "the bot is not a client of the sound server"
    );
    // The watcher lists the devices twice a second. A connection per listing (cpal's
    // PulseAudio host never closes one it drops) added a connection and a thread each time:
    // eight of each in these 4 s.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_flat(&pulse, &talker, (connections, threads), "watching");
        std::thread::sleep(Duration::from_millis(250));
    }
    // A speaker's stream has a connection of its own, which ends with it: switching back and
    // forth leaves none behind.
    for sink in ["other_speaker", "meeting_speaker", "other_speaker"] {
        talker.command(&format!(
            r#"{{"cmd":"setOutputDevice","deviceId":"pulseaudio:{sink}"}}"#
        ));
        talker.expect("commandDone");
    }
    // Refused switches (a speaker that is not there) make no connection at all.
    for _ in 0..3 {
        talker.command(r#"{"cmd":"setOutputDevice","deviceId":"pulseaudio:no_such_sink"}"#);
        talker.expect("commandFailed");
    }
    // Closed connections and finished threads go within a moment.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let (c, t) = connections_and_threads(&pulse, &talker);
        if c <= connections + 1 && t <= threads + 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_flat(
        &pulse,
        &talker,
        (connections, threads),
        "after three speaker switches and three refused ones",
    );
}

#[test]
fn a_tone_crosses_the_call_between_virtual_devices_and_follows_the_speaker() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let pulse = Pulse::start(SPEAKERS_AND_MIC);
    let server = Server::start();
    // The "person" at the microphone: a 440 Hz tone played into the sink the microphone hears.
    let mut feeder = play_tone(&pulse, "mic_feed");
    // And 660 Hz into the second microphone's sink, for the microphone switch below (started
    // now: a sink that just got its first stream delivers in large bursts for a while).
    let mut other_person = play_frequency(&pulse, "headset_feed", 660.0);
    let heard_here = Monitor::start(&pulse, "meeting_speaker.monitor");
    let heard_there = Monitor::start(&pulse, "other_speaker.monitor");

    let mut talker = bot(
        &pulse,
        &server,
        &["--mic", "pulseaudio:virtual_mic", "--raw-mic", "--commands"],
    );
    talker.expect("localParticipant");
    let mut listener = bot(
        &pulse,
        &server,
        &["--speaker", "pulseaudio:meeting_speaker", "--commands"],
    );
    listener.expect("joined");
    let db = heard_here.wait_for_tone("Meeting-Speaker");
    eprintln!("tone at Meeting-Speaker: {db:.1} dB");

    // An unknown speaker is refused and changes nothing.
    listener.command(r#"{"cmd":"setOutputDevice","deviceId":"pulseaudio:no_such_sink"}"#);
    let refused = listener.expect("commandFailed");
    assert_eq!(refused["code"], "device_not_found", "{refused}");
    heard_here.wait_for_tone("Meeting-Speaker, after a refused switch");

    // Switch mid-call: the other sink gets the tone, the first goes silent.
    let switch = Instant::now();
    listener.command(r#"{"cmd":"setOutputDevice","deviceId":"pulseaudio:other_speaker"}"#);
    listener.expect("commandDone");
    let db = heard_there.wait_for_tone("Other-Speaker");
    eprintln!("tone at Other-Speaker after the switch: {db:.1} dB");
    heard_here.wait_for_silence("Meeting-Speaker");
    let last_here = heard_here.tone_edge(switch, true).unwrap_or(switch);
    let first_there = heard_there.tone_edge(switch, false).unwrap();
    let gap_ms = first_there
        .saturating_duration_since(last_here)
        .as_secs_f64()
        * 1000.0;
    eprintln!("switch gap: {gap_ms:.0} ms");
    assert!(
        gap_ms <= 100.0,
        "{gap_ms:.0} ms without sound at the switch"
    );

    // The talker switches microphones mid-call: an unknown one is refused, a real one opens
    // (it delivered its first sound) and takes over the track, and its 660 Hz comes out of the
    // listener's speaker clean. (It used to arrive choppy in full-suite runs: the PulseAudio
    // client spun over a core per stream in debug builds; see the dev profile in Cargo.toml.)
    talker.command(r#"{"cmd":"setAudioInput","deviceId":"pulseaudio:nope"}"#);
    let refused = talker.expect("commandFailed");
    assert_eq!(refused["code"], "device_not_found", "{refused}");
    talker.command(r#"{"cmd":"setAudioInput","deviceId":"pulseaudio:headset_mic"}"#);
    // Opening waits for the microphone's first sound (a remapped source takes a moment).
    let done = talker.expect_within("commandDone", Duration::from_secs(10), |_| true);
    assert_eq!(done["cmd"], "setAudioInput", "{done}");
    let db = heard_there.wait_for_frequency("Other-Speaker, from the second microphone", 660.0);
    eprintln!("660 Hz from the second microphone: {db:.1} dB");
    let _ = other_person.kill();
    let _ = other_person.wait();

    let _ = listener.terminate();
    let _ = talker.terminate();
    let _ = feeder.kill();
    let _ = feeder.wait();
}

fn permissions(pulse: Option<&Pulse>, mic: Option<&str>) -> Value {
    match mic {
        Some(mic) => between_json(pulse, &["permissions", "--mic", mic]),
        None => between_json(pulse, &["permissions"]),
    }
}

#[test]
fn permission_state_comes_from_trying_the_microphone() {
    let pulse = Pulse::start(&[
        "module-null-sink sink_name=mic_feed",
        "module-remap-source master=mic_feed.monitor source_name=virtual_mic",
    ]);
    // A working microphone.
    let ok = permissions(Some(&pulse), Some("pulseaudio:virtual_mic"));
    assert_eq!(ok["state"], "success", "{ok}");

    // No sound hardware at all (no sound server, no ALSA card).
    let none = permissions(None, None);
    assert_eq!(none["state"], "failed", "{none}");
    assert_eq!(none["error"]["reason"], "device_not_found", "{none}");
    assert_eq!(
        none["error"]["rawStr"],
        "No microphone was found. Plug one in or pick another in the device menu."
    );

    // A microphone that is there but never delivers sound (a pipe nobody writes to).
    let fifo = pulse.socket().with_file_name("dead.fifo");
    pactl(
        &pulse,
        &[
            "load-module",
            "module-pipe-source",
            "source_name=dead_mic",
            &format!("file={}", fifo.display()),
        ],
    );
    let dead = permissions(Some(&pulse), Some("pulseaudio:dead_mic"));
    assert_eq!(dead["state"], "failed", "{dead}");
    assert_eq!(dead["error"]["reason"], "device_unavailable", "{dead}");
    let raw = dead["error"]["rawStr"].as_str().unwrap();
    assert!(
        raw.contains("did not start") && raw.contains("device menu"),
        "{raw}"
    );

    // One that does not exist.
    let missing = permissions(Some(&pulse), Some("pulseaudio:gone"));
    assert_eq!(missing["error"]["reason"], "device_not_found", "{missing}");
}

/// This machine has no camera (no /dev/video*): everything camera-shaped must say so in
/// words and leave the rest of the call working. Capture itself is tested with a user-space
/// camera in `camera.rs`.
#[test]
fn without_a_camera_everything_says_so_and_audio_still_works() {
    let pulse = Pulse::start(&[
        "module-null-sink sink_name=mic_feed",
        "module-remap-source master=mic_feed.monitor source_name=virtual_mic",
    ]);
    let listed = devices(Some(&pulse));
    let cameras: Vec<&Value> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "videoinput")
        .collect();
    let on_this_machine = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("video"));
    if !on_this_machine {
        assert!(cameras.is_empty(), "{listed}");
    }

    // No camera is no failure: calls work without video.
    let mic_only = between_json(
        Some(&pulse),
        &["permissions", "--mic", "pulseaudio:virtual_mic"],
    );
    assert_eq!(mic_only["state"], "success", "{mic_only}");

    // A chosen camera that is not there is.
    let missing = between_json(
        Some(&pulse),
        &[
            "permissions",
            "--mic",
            "pulseaudio:virtual_mic",
            "--camera",
            "v4l2:/dev/video-unplugged",
        ],
    );
    assert_eq!(missing["state"], "failed", "{missing}");
    assert_eq!(missing["error"]["reason"], "device_not_found", "{missing}");
    assert_eq!(
        missing["error"]["rawStr"],
        "That camera was not found. Plug it in or pick another in the device menu."
    );

    // Joining with a camera that is not there stops before joining, with the sentence.
    let server = Server::start();
    for (camera, sentence) in [
        ("v4l2:/dev/video-unplugged", "That camera was not found"),
        ("not-a-camera", "That camera was not found"),
        ("default", "No camera was found"),
    ] {
        if camera == "default" && on_this_machine {
            continue;
        }
        let out = Command::new(BIN)
            .args(join_args(&server.url, "no-camera"))
            .args(["--camera", camera, "--duration", "5s"])
            .env("PULSE_SERVER", pulse.server_env())
            .env_remove("PULSE_RUNTIME_PATH")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "joined with camera {camera}");
        assert!(stderr.contains(sentence), "{camera}: {stderr}");
    }
}
