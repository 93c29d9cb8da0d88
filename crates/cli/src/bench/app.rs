//! `between bench app`: the desktop app's figures, measured on the real app under Xvfb and
//! driven through WebDriver (tauri-driver): start-up to an interactive join screen, memory
//! idle and in a call with bots sending 720p30 test patterns (a loop each encoded once, so
//! they do not take the cores the app is measured on), the frames each tile really
//! draws per second, what the IPC and drawing add per frame, the app's CPU, and the installed
//! size of a `.deb`. Needs Xvfb, webkit2gtk-driver and tauri-driver (scripts/test.sh installs
//! them).

use anyhow::{Context, anyhow, bail};
use between_testbed::desktop::{Desktop, memory_of};
use between_testbed::pulse::PulseDaemon;
use between_testbed::webdriver::Driver;
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct AppBench {
    /// The app (default: between-app next to this executable).
    #[arg(long)]
    app: Option<PathBuf>,
    /// App starts to time.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Other participants in the call, each sending a 1280x720 test pattern at 30 fps.
    #[arg(long, default_value_t = 3)]
    bots: usize,
    /// Seconds of the call to measure.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Run the bots at this niceness (they stand in for the other participants' machines;
    /// 19 lets them use only what the app leaves of this machine's cores).
    #[arg(long, default_value_t = 0)]
    bot_nice: i32,
    /// The bots encode their first FRAMES pictures once and send them in a loop, so they cost
    /// this machine almost nothing, as participants on other machines do (0: every bot
    /// encodes 720p30 live, competing with the app for this machine's cores).
    #[arg(long, default_value_t = 60, value_name = "FRAMES")]
    bot_loop: usize,
    /// The bots send simulcast (720p, 360p, 180p), so the app's tiles receive the layer that
    /// fits them instead of 720p.
    #[arg(long)]
    bot_simulcast: bool,
    /// Extra environment for the app, KEY=VALUE, repeatable (e.g. BETWEEN_VIDEO_RENDERER=webgl,
    /// WEBKIT_DISABLE_COMPOSITING_MODE=0).
    #[arg(long = "app-env", value_name = "KEY=VALUE")]
    app_env: Vec<String>,
    /// A .deb whose installed size to report.
    #[arg(long)]
    deb: Option<PathBuf>,
    /// Measure an app that is not a production build (a Tauri dev build, without the
    /// `custom-protocol` feature); its figures describe an app nobody installs.
    #[arg(long)]
    allow_dev_build: bool,
    /// An AppImage (scripts/package.sh) to time: its first start (it unpacks itself) and the
    /// later ones, and its size.
    #[arg(long)]
    appimage: Option<PathBuf>,
    /// A Tauri window with a blank page (`cargo build --release --example blank_window
    /// --features baseline`) whose memory to report as the floor under the app's.
    #[arg(long)]
    baseline: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// How long a screen is left alone before its idle memory is read: not a wait for an event,
/// the measurement's window (start-up allocations and the first garbage collections are over
/// by then). The app and the blank-window floor get the same.
const SETTLE: Duration = Duration::from_secs(3);

pub async fn run(args: AppBench) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || measure(&args)).await?
}

fn wd<T>(r: Result<T, String>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow!(e))
}

fn state(driver: &Driver) -> String {
    driver
        .exec("return document.body.dataset.state || ''", json!([]))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The join screen is interactive: its screen is up and its device menus are filled.
fn join_screen_ready(driver: &Driver) -> bool {
    state(driver) == "join"
        && driver
            .exec(
                "return document.querySelectorAll('#camera-select option').length > 0",
                json!([]),
            )
            .ok()
            == Some(Value::Bool(true))
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU time (user + system) of these processes so far.
fn cpu_time(pids: &[u32]) -> Duration {
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = after.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat; 11 and 12 after "state".
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    // Linux reports in USER_HZ, 100 per second on every common configuration.
    Duration::from_millis(ticks * 10)
}

struct Bots(Vec<Child>);

impl Drop for Bots {
    fn drop(&mut self) {
        for b in &mut self.0 {
            let _ = b.kill();
            let _ = b.wait();
        }
    }
}

fn measure(args: &AppBench) -> anyhow::Result<()> {
    let here = std::env::current_exe().context("cannot find this executable")?;
    let app = args
        .app
        .clone()
        .unwrap_or_else(|| here.with_file_name("between-app"));
    if !app.exists() {
        bail!(
            "{} is missing: build it with cargo build --release -p between-app",
            app.display()
        );
    }
    let build = build_info(&app)?;
    if build["production"] != Value::Bool(true) && !args.allow_dev_build {
        bail!(
            "{} is not a production build ({build}): its figures would describe an app nobody installs. Build it as scripts/run.sh and scripts/package.sh do, or pass --allow-dev-build",
            app.display()
        );
    }
    // A desktop has a sound server; the app's microphone and speaker are virtual devices.
    let pulse = PulseDaemon::start(&[
        "module-null-sink sink_name=speaker",
        "module-null-sink sink_name=room",
        "module-remap-source master=room.monitor source_name=mic",
    ])
    .map_err(anyhow::Error::msg)?;
    let pulse_env = pulse.server_env();
    // What users get: WebKit's default compositing (the tests turn it off for the whole
    // process; the app itself turns it off where GL is software, src-tauri/graphics.rs).
    let mut env: Vec<(&str, &str)> = vec![
        ("PULSE_SERVER", &pulse_env),
        ("WEBKIT_DISABLE_COMPOSITING_MODE", "0"),
    ];
    for kv in &args.app_env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--app-env {kv}: KEY=VALUE expected"))?;
        env.push((k, v));
    }
    let desktop = wd(Desktop::start(&app, &env))?;

    // Start-up: process start to a join screen with its device menus filled.
    let mut starts = Vec::new();
    let mut idle_bytes = 0;
    let mut idle_each: Vec<Value> = Vec::new();
    for i in 0..args.starts.max(1) {
        let t0 = Instant::now();
        let driver = wd(desktop.open_app())?;
        wd(driver.wait_until("the join screen", 60, join_screen_ready))?;
        starts.push(t0.elapsed().as_secs_f64() * 1000.0);
        if i == 0 {
            // Idle: settled on the join screen (the microphone meter running, as a user sees it).
            std::thread::sleep(SETTLE);
            let pids = desktop.app_processes();
            idle_bytes = memory_of(&pids);
            idle_each = pids
                .iter()
                .map(|pid| {
                    let name =
                        std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    json!({"process": name.trim(), "MiB": memory_of(&[*pid]) as f64 / 1048576.0})
                })
                .collect();
        }
        driver.quit();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !desktop.app_processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // A call: this app with its (synthetic) camera, and bots sending 720p30.
    let driver = wd(desktop.open_app())?;
    wd(driver.wait_until("the join screen", 60, join_screen_ready))?;
    wd(driver.exec(
        "const set = (sel, v) => { const e = document.querySelector(sel); e.value = v;
           e.dispatchEvent(new Event('input', {bubbles: true}));
           e.dispatchEvent(new Event('change', {bubbles: true})); };
         set('#camera-select', 'between:test-pattern');
         set('#call-id', 'bench-app');
         set('#display-name', 'Bench');
         document.querySelector('#join').click();",
        json!([]),
    ))?;
    wd(driver.wait_until("the call screen", 30, |d| state(d) == "call"))?;
    let server = wd(driver.exec_async(
        "const done = arguments[arguments.length - 1];
         window.__TAURI__.core.invoke('app_server').then(done, (e) => done({error: e}));",
        json!([]),
    ))?;
    let url = server["url"]
        .as_str()
        .context("no server URL from the app")?;
    let key = server["apiKey"]
        .as_str()
        .context("no API key from the app")?;
    let cli = here.with_file_name("between");
    let mut bots = Bots(Vec::new());
    for n in 0..args.bots {
        bots.0.push(
            Command::new("nice")
                .arg(format!("-n{}", args.bot_nice))
                .arg(&cli)
                .args(["join", "bench-app", "--server", url, "--api-key", key])
                .args([
                    "--data",
                    &json!({"name": format!("Bot {}", n + 1)}).to_string(),
                ])
                .args(["--pattern", "--video-size", "1280x720", "--fps", "30"])
                .args(["--tone", &(440 + 110 * n).to_string()])
                .args(match args.bot_loop {
                    0 => Vec::new(),
                    frames => vec!["--video-loop".to_string(), frames.to_string()],
                })
                .args(args.bot_simulcast.then_some("--simulcast"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {}", cli.display()))?,
        );
    }
    let tiles = "return [...document.querySelectorAll('[data-peer-id]:not([data-local]) canvas')]
                   .map((c) => ({frames: Number(c.dataset.frames || 0),
                                 latency: (c.betweenLatencies || []).slice(),
                                 renderer: c.dataset.renderer || '',
                                 w: c.width, h: c.height}));";
    wd(driver.wait_until("every bot's video drawn", 60, |d| {
        d.exec(tiles, json!([]))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|t| {
                t.len() >= args.bots && t.iter().all(|c| c["frames"].as_u64() > Some(30))
            })
    }))?;
    let pids = desktop.app_processes();
    let before = wd(driver.exec(tiles, json!([])))?;
    let cpu0 = cpu_time(&pids);
    let per0: Vec<Duration> = pids.iter().map(|p| cpu_time(&[*p])).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let after = wd(driver.exec(tiles, json!([])))?;
    let cpu = (cpu_time(&pids) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let elapsed = t0.elapsed().as_secs_f64();
    let per_process: Vec<Value> = pids
        .iter()
        .zip(per0)
        .map(|(pid, c0)| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            json!({
                "process": name.trim(),
                "cpuPercent": (cpu_time(&[*pid]).saturating_sub(c0)).as_secs_f64() / elapsed * 100.0,
                "MiB": memory_of(&[*pid]) as f64 / 1048576.0,
            })
        })
        .collect();
    let call_bytes = memory_of(&desktop.app_processes());
    let secs = t0.elapsed().as_secs_f64();
    let empty = Vec::new();
    let (b, a) = (
        before.as_array().unwrap_or(&empty),
        after.as_array().unwrap_or(&empty),
    );
    let mut fps: Vec<f64> = b
        .iter()
        .zip(a)
        .map(|(x, y)| {
            (y["frames"].as_f64().unwrap_or(0.0) - x["frames"].as_f64().unwrap_or(0.0)) / secs
        })
        .collect();
    let mut latencies: Vec<f64> = a
        .iter()
        .flat_map(|t| t["latency"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_f64())
        .collect();
    let tile_size = a
        .first()
        .map(|t| format!("{}x{}", t["w"], t["h"]))
        .unwrap_or_default();
    driver.quit();
    drop(bots);

    let installed = match &args.deb {
        Some(deb) => {
            let out = Command::new("dpkg-deb")
                .args(["-f"])
                .arg(deb)
                .arg("Installed-Size")
                .output()
                .context("dpkg-deb")?;
            let kib: u64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0);
            Some((kib * 1024, std::fs::metadata(deb)?.len()))
        }
        None => None,
    };
    let appimage = match &args.appimage {
        Some(path) => Some(appimage_starts(
            path,
            &pulse.server_env(),
            args.starts.max(2),
        )?),
        None => None,
    };
    let baseline = match &args.baseline {
        Some(path) => Some(baseline_memory(path)?),
        None => None,
    };
    let min_fps = fps.iter().copied().fold(f64::INFINITY, f64::min);
    let report = json!({
        "build": build,
        "startMs": median(&mut starts),
        "idleMiB": idle_bytes as f64 / 1048576.0,
        "callMiB": call_bytes as f64 / 1048576.0,
        "participants": args.bots + 1,
        "botLoopFrames": args.bot_loop,
        "botSimulcast": args.bot_simulcast,
        "tileSize": tile_size,
        "fpsPerTileMedian": median(&mut fps),
        "fpsPerTileMin": min_fps,
        "pageLatencyMsMedian": median(&mut latencies),
        "pageLatencySamples": latencies.len(),
        "appCpuPercentOfOneCore": cpu * 100.0,
        "perProcess": per_process,
        "idlePerProcess": idle_each,
        "renderers": a.iter().map(|t| t["renderer"].clone()).collect::<Vec<_>>(),
        "installedMiB": installed.map(|(i, _)| i as f64 / 1048576.0),
        "debMiB": installed.map(|(_, d)| d as f64 / 1048576.0),
        "appimage": appimage,
        "baseline": baseline,
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    println!("app: {} (build: {})", app.display(), report["build"]);
    println!(
        "start to interactive join screen, median of {}: {:.0} ms",
        starts.len(),
        report["startMs"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "memory (PSS, app + WebKit processes): idle {:.0} MiB; in a {}-person video call {:.0} MiB",
        report["idleMiB"].as_f64().unwrap_or(0.0),
        args.bots + 1,
        report["callMiB"].as_f64().unwrap_or(0.0)
    );
    for p in report["idlePerProcess"].as_array().into_iter().flatten() {
        println!(
            "  idle {:<18} {:>6.0} MiB",
            p["process"].as_str().unwrap_or(""),
            p["MiB"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "bots: {}",
        match args.bot_loop {
            0 => "encoding 720p30 live on this machine".to_string(),
            n => format!("sending a loop of {n} pictures encoded once"),
        }
    );
    println!(
        "frames drawn per remote tile ({} tiles of 720p30, drawn at {}): median {:.1}/s, lowest {:.1}/s",
        fps.len(),
        report["tileSize"].as_str().unwrap_or(""),
        report["fpsPerTileMedian"].as_f64().unwrap_or(0.0),
        min_fps
    );
    println!(
        "added by IPC + drawing per frame: median {:.1} ms ({} frames)",
        report["pageLatencyMsMedian"].as_f64().unwrap_or(f64::NAN),
        latencies.len()
    );
    println!("app CPU in the call: {:.0} % of one core", cpu * 100.0);
    for p in report["perProcess"].as_array().into_iter().flatten() {
        println!(
            "  {:<18} {:>5.0} % CPU {:>6.0} MiB",
            p["process"].as_str().unwrap_or(""),
            p["cpuPercent"].as_f64().unwrap_or(0.0),
            p["MiB"].as_f64().unwrap_or(0.0)
        );
    }
    println!("tile renderers: {}", report["renderers"]);
    if let Some((i, d)) = installed {
        println!(
            "installed size: {:.1} MiB (.deb {:.1} MiB)",
            i as f64 / 1048576.0,
            d as f64 / 1048576.0
        );
    }
    if let Some(b) = &report["baseline"].as_object() {
        println!(
            "floor: a Tauri window with a blank page {:.0} MiB",
            b["MiB"].as_f64().unwrap_or(0.0)
        );
        for p in b["perProcess"].as_array().into_iter().flatten() {
            println!(
                "  floor {:<17} {:>6.0} MiB",
                p["process"].as_str().unwrap_or(""),
                p["MiB"].as_f64().unwrap_or(0.0)
            );
        }
    }
    if let Some(a) = &report["appimage"].as_object() {
        println!(
            "AppImage: {:.1} MiB file, {:.1} MiB unpacked; first start to the join screen (unpacks) {:.0} ms, later starts median {:.0} ms",
            a["fileMiB"].as_f64().unwrap_or(0.0),
            a["unpackedMiB"].as_f64().unwrap_or(0.0),
            a["firstStartMs"].as_f64().unwrap_or(f64::NAN),
            a["laterStartMs"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

/// What the app says of its own build (`--build-info`).
fn build_info(app: &std::path::Path) -> anyhow::Result<Value> {
    // No display: an app too old to know the option fails to open a window and exits.
    let out = Command::new(app)
        .arg("--build-info")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", app.display()))?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "{} does not say how it was built (--build-info): an app older than this bench",
            app.display()
        )
    })
}

/// Starts the AppImage `starts` times on a desktop of its own (an empty cache, so the first
/// start unpacks it as on a user's first start).
fn appimage_starts(path: &std::path::Path, pulse: &str, starts: usize) -> anyhow::Result<Value> {
    let path = path
        .canonicalize()
        .with_context(|| format!("no AppImage at {}", path.display()))?;
    let desktop = wd(Desktop::start(
        &path,
        &[
            ("PULSE_SERVER", pulse),
            ("WEBKIT_DISABLE_COMPOSITING_MODE", "0"),
        ],
    ))?;
    let mut times = Vec::new();
    for _ in 0..starts {
        let t0 = Instant::now();
        let driver = wd(desktop.open_app())?;
        wd(driver.wait_until("the join screen", 60, join_screen_ready))?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        driver.quit();
    }
    let unpacked = dir_bytes(&desktop.home.join("cache/between/appimage"));
    let first = times.remove(0);
    Ok(json!({
        "fileMiB": std::fs::metadata(&path)?.len() as f64 / 1048576.0,
        "unpackedMiB": unpacked as f64 / 1048576.0,
        "firstStartMs": first,
        "laterStartMs": median(&mut times),
    }))
}

/// The memory of a blank Tauri window, measured as the app's idle memory is (settled 3 s
/// after its page loaded).
fn baseline_memory(path: &std::path::Path) -> anyhow::Result<Value> {
    // Compositing off (the tests' setting), as the app turns it off itself under software GL:
    // the cheapest way WebKit draws here.
    let desktop = wd(Desktop::start(path, &[]))?;
    let driver = wd(desktop.open_app())?;
    wd(driver.wait_until("the blank page", 60, |d| {
        d.exec("return document.readyState", json!([])).ok() == Some(json!("complete"))
    }))?;
    std::thread::sleep(SETTLE);
    let pids = desktop.app_processes();
    let report = json!({
        "MiB": memory_of(&pids) as f64 / 1048576.0,
        "perProcess": pids.iter().map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            json!({"process": name.trim(), "MiB": memory_of(&[*pid]) as f64 / 1048576.0})
        }).collect::<Vec<_>>(),
    });
    driver.quit();
    Ok(report)
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
