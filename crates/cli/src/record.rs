//! `--record DIR`: one WAV (48 kHz mono) and one Y4M per remote peer, named by peer ID, in real
//! time order. Audio arrives every 20 ms with silence filled in by the playout; video is
//! sampled at a fixed rate from the latest decoded frame, so a stalled stream repeats its last
//! picture and both files stay aligned with the clock.

use between_engine::{PeerAudioTap, RemoteVideo};
use between_media::wav::WavWriter;
use between_media::y4m::{Y4mHeader, Y4mWriter};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// A peer's WAV file and the frames written to it.
type PeerWav = (WavWriter<BufWriter<File>>, u32);

pub struct AudioRecorder {
    dir: PathBuf,
    files: Mutex<HashMap<String, PeerWav>>,
}

impl AudioRecorder {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Completes every file's header.
    pub fn finish(&self) {
        if let Ok(mut files) = self.files.lock() {
            for (_, (w, _)) in files.iter_mut() {
                let _ = w.update_header();
            }
        }
    }
}

impl PeerAudioTap for AudioRecorder {
    fn write(&self, peer_id: &str, samples: &[f32]) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        if !files.contains_key(peer_id) {
            let path = self.dir.join(format!("{peer_id}.wav"));
            match File::create(&path)
                .map_err(|e| e.to_string())
                .and_then(|f| WavWriter::new(BufWriter::new(f), 48_000).map_err(|e| e.to_string()))
            {
                Ok(w) => {
                    files.insert(peer_id.to_string(), (w, 0));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot record");
                    return;
                }
            }
        }
        if let Some((w, frames)) = files.get_mut(peer_id) {
            let _ = w.write(samples);
            *frames += 1;
            // Keep the header valid every second, so a killed recorder leaves a playable file.
            if *frames % 50 == 0 {
                let _ = w.update_header();
            }
        }
    }
}

/// Records one video (a peer's camera or share) into `path` until the track ends, `stop`
/// fires, or `closed` (the share closed) fires.
pub async fn record_video(
    path: PathBuf,
    mut video: RemoteVideo,
    fps: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    // The file's size is the first frame's.
    let first = tokio::select! {
        f = video.next() => f,
        _ = stop.changed() => None,
        _ = closed.changed() => None,
    };
    let Some(first) = first else { return };
    let header = Y4mHeader {
        width: first.frame.width(),
        height: first.frame.height(),
        fps: (fps, 1),
    };
    let mut writer = match File::create(&path)
        .map_err(|e| e.to_string())
        .and_then(|f| Y4mWriter::new(BufWriter::new(f), header).map_err(|e| e.to_string()))
    {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot record");
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / fps.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if video.has_ended() {
                    break;
                }
                if let Some(latest) = video.latest()
                    && writer.write(&latest.frame).is_err() {
                        break;
                    }
            }
            _ = stop.changed() => break,
            _ = closed.changed() => break,
        }
    }
    let _ = writer.finish();
}
