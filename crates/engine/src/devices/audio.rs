//! Audio devices through cpal.

use super::{DeviceKind, MediaDeviceInfo};
use cpal::traits::{DeviceTrait, HostTrait};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One host for the whole process, made on first use. cpal's PulseAudio host is a client
/// connection with a thread of its own that does not end when the host is dropped (the
/// `pulseaudio` crate's reactor sleeps in `poll` until the server next writes, which it does
/// not), so a host per use leaked a thread, a socket and a 1 MiB buffer each time: twice a
/// second for a whole call through the device watcher (BENCHMARKS.md).
static HOST: Mutex<Option<Cached>> = Mutex::new(None);

struct Cached {
    host: Arc<cpal::Host>,
    made: Instant,
}

/// A host without a sound server (ALSA) is asked again this often whether one answers now.
const RETRY_SOUND_SERVER: Duration = Duration::from_secs(5);

/// The host for listing devices: PulseAudio where a sound server answers (Linux), else the
/// platform default (ALSA on Linux, CoreAudio on macOS, WASAPI on Windows).
pub(super) fn host() -> Arc<cpal::Host> {
    let mut cached = HOST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = cached.as_ref()
        && !(wants_sound_server(&c.host) && c.made.elapsed() >= RETRY_SOUND_SERVER)
    {
        return c.host.clone();
    }
    let host = Arc::new(new_host());
    *cached = Some(Cached {
        host: host.clone(),
        made: Instant::now(),
    });
    host
}

/// Drops the shared host after it failed (the sound server went away or restarted, or stopped
/// answering): the next use connects again.
pub(super) fn forget_host(failed: &cpal::Host) {
    let mut cached = HOST.lock().unwrap_or_else(PoisonError::into_inner);
    if cached
        .as_ref()
        .is_some_and(|c| std::ptr::eq(Arc::as_ptr(&c.host), failed))
    {
        *cached = None;
    }
}

/// Drops the shared host whatever it is (a listing through it never came back): the next use
/// connects again.
pub(super) fn forget_current_host() {
    *HOST.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// A fallback host on a system where a sound server may yet start.
fn wants_sound_server(host: &cpal::Host) -> bool {
    #[cfg(target_os = "linux")]
    {
        host.id() != cpal::HostId::PulseAudio
            && cpal::available_hosts().contains(&cpal::HostId::PulseAudio)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = host;
        false
    }
}

/// A host of its own for one stream, once the listing host has found the device (an unknown
/// device, or none at all, makes no connection: a connection dropped without a stream on it
/// never ends, and the watcher retries a failed fallback twice a second). Streams cannot share
/// the listing host's connection: the `pulseaudio` crate gives every stream sync ID 0, and the
/// server refuses ("Invalid") a second playback stream with the same sync ID on another sink
/// of the same connection, as when the new speaker opens before the old one closes. A
/// stream's connection ends with it: closing the stream makes the server answer after the host
/// is gone, which ends its thread.
pub(super) fn stream_host_for(
    id: Option<&str>,
    input: bool,
) -> Result<cpal::Host, crate::error::BAError> {
    find(&host(), id, input)?;
    Ok(new_host())
}

fn new_host() -> cpal::Host {
    #[cfg(target_os = "linux")]
    if cpal::available_hosts().contains(&cpal::HostId::PulseAudio) {
        ensure_pulse_cookie();
        match cpal::host_from_id(cpal::HostId::PulseAudio) {
            Ok(host) => return host,
            Err(e) => tracing::info!(error = %e, "no PulseAudio server; using ALSA"),
        }
        // Not `default_host()`, which would try the sound server a second time.
        if let Ok(alsa) = cpal::host_from_id(cpal::HostId::Alsa) {
            return alsa;
        }
    }
    cpal::default_host()
}

/// cpal's PulseAudio client sends an empty cookie when it finds no cookie file, and the server
/// kicks it for a protocol error ("failed to fill whole buffer" here), so the app would fall
/// back to ALSA on a machine whose user has never run a libpulse program. libpulse creates a
/// random cookie in that case; do the same (servers with anonymous auth accept any cookie,
/// desktop servers share the user's cookie, which then exists already).
#[cfg(target_os = "linux")]
fn ensure_pulse_cookie() {
    if std::env::var_os("PULSE_COOKIE").is_some() {
        return;
    }
    let Some(home) = std::env::var_os("HOME").map(std::path::PathBuf::from) else {
        return;
    };
    let candidates = [
        home.join(".config/pulse/cookie"),
        home.join(".pulse-cookie"),
    ];
    if candidates.iter().any(|p| p.exists()) {
        return;
    }
    let mut cookie = [0u8; 256];
    if getrandom::fill(&mut cookie).is_err() {
        return;
    }
    let path = &candidates[0];
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(path)?.write_all(&cookie)
        });
    if let Err(e) = written {
        tracing::debug!(error = %e, path = %path.display(), "no PulseAudio cookie could be made");
    }
}

fn id_of(device: &cpal::Device) -> Option<String> {
    device.id().ok().map(|id| id.to_string())
}

/// A sink's monitor is an input in PulseAudio's model, but not a microphone: the menu leaves
/// it out (by the `.monitor` naming convention every PulseAudio and PipeWire server uses).
fn is_monitor(id: &str) -> bool {
    id.ends_with(".monitor")
}

/// On the ALSA host (no sound server) cpal lists every PCM of the ALSA configuration,
/// including plugins that are not devices (`null`, rate converters, up/down-mixers, `jack`,
/// `oss`, `dmix`...). A person's menu keeps the default and the sound cards' own outputs.
fn is_alsa_plugin(id: &str) -> bool {
    let Some(pcm) = id.strip_prefix("alsa:") else {
        return false;
    };
    let name = pcm.split(':').next().unwrap_or(pcm);
    !matches!(
        name,
        "default" | "sysdefault" | "hw" | "plughw" | "front" | "hdmi" | "usbstream" | "iec958"
    )
}

pub(super) fn list(host: &cpal::Host) -> Vec<MediaDeviceInfo> {
    let default_in = host.default_input_device().as_ref().and_then(id_of);
    let default_out = host.default_output_device().as_ref().and_then(id_of);
    let devices = match host.devices() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list audio devices");
            // Only a connection that is gone is replaced: dropping a live one would leak it.
            if matches!(
                e.kind(),
                cpal::ErrorKind::StreamInvalidated | cpal::ErrorKind::HostUnavailable
            ) {
                forget_host(host);
            }
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for device in devices {
        let Some(id) = id_of(&device) else { continue };
        if is_alsa_plugin(&id) {
            continue;
        }
        let label = device
            .description()
            .map(|d| d.name().to_string())
            .unwrap_or_else(|_| id.clone());
        if device.supports_output() {
            out.push(MediaDeviceInfo {
                is_default: default_out.as_deref() == Some(id.as_str()),
                device_id: id.clone(),
                kind: DeviceKind::AudioOutput,
                label: label.clone(),
            });
        }
        if device.supports_input() && !is_monitor(&id) {
            out.push(MediaDeviceInfo {
                is_default: default_in.as_deref() == Some(id.as_str()),
                device_id: id,
                kind: DeviceKind::AudioInput,
                label,
            });
        }
    }
    out
}

/// The device with this ID (`None`: the system default) for input or output, and its ID.
pub(super) fn find(
    host: &cpal::Host,
    id: Option<&str>,
    input: bool,
) -> Result<(cpal::Device, String), crate::error::BAError> {
    use between_protocol::ErrorCode;
    let what = if input { "microphone" } else { "speaker" };
    let not_found = |detail: String| crate::error::BAError::new(ErrorCode::DeviceNotFound, detail);
    let device = match id {
        None => {
            let d = if input {
                host.default_input_device()
            } else {
                host.default_output_device()
            };
            d.ok_or_else(|| {
                not_found(format!(
                    "No {what} was found. Plug one in or pick another in the device menu."
                ))
            })?
        }
        Some(id) => {
            let parsed: cpal::DeviceId = id.parse().map_err(|_| {
                not_found(format!(
                    "There is no {what} \"{id}\". Pick one from the device menu."
                ))
            })?;
            let d = host.device_by_id(&parsed).ok_or_else(|| {
                not_found(format!(
                    "The {what} \"{id}\" is not connected. Plug it in or pick another in the device menu."
                ))
            })?;
            let usable = if input {
                d.supports_input()
            } else {
                d.supports_output()
            };
            if !usable {
                return Err(not_found(format!(
                    "\"{id}\" is not a {what}. Pick one from the device menu."
                )));
            }
            d
        }
    };
    let id = id_of(&device).unwrap_or_default();
    Ok((device, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alsa_plugins_are_not_offered_but_cards_and_the_default_are() {
        for plugin in [
            "alsa:null",
            "alsa:lavrate",
            "alsa:samplerate",
            "alsa:upmix",
            "alsa:jack",
            "alsa:dmix:CARD=PCH",
        ] {
            assert!(is_alsa_plugin(plugin), "{plugin}");
        }
        for device in [
            "alsa:default",
            "alsa:sysdefault:CARD=PCH",
            "alsa:hw:CARD=PCH,DEV=0",
            "alsa:front:CARD=PCH,DEV=0",
            "alsa:hdmi:CARD=HDMI,DEV=3",
            "pulseaudio:alsa_output.pci-0000_00_1f.3.analog-stereo",
        ] {
            assert!(!is_alsa_plugin(device), "{device}");
        }
    }
}
