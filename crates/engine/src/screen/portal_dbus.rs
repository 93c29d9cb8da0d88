//! The xdg-desktop-portal ScreenCast conversation on the session bus: create a session, let
//! the person choose a screen or window in the desktop's own dialog, start it, and get the
//! PipeWire node and a PipeWire connection that may read it. Each call answers with a request
//! object whose `Response` signal carries the result; the handler is registered before the
//! call (its path is predictable from the handle token), so a fast answer cannot be missed.
//! The session's `Closed` signal is how the desktop says sharing ended (its "Stop sharing").

use super::unsupported;
use crate::error::BAError;
use between_protocol::ErrorCode;
use dbus::arg::{PropMap, RefArg, Variant};
use dbus::blocking::{Connection, Proxy};
use dbus::message::MatchRule;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PORTAL: &str = "org.freedesktop.portal.Desktop";
const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";
const SCREENCAST: &str = "org.freedesktop.portal.ScreenCast";
const REQUEST: &str = "org.freedesktop.portal.Request";
const SESSION: &str = "org.freedesktop.portal.Session";
/// How long one method call may take (not the person's choice, which is a signal).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the person may take in the chooser.
pub const CHOOSER_WAIT: Duration = Duration::from_secs(150);

/// ScreenCast source types and cursor modes (the portal's bit flags).
const SOURCE_MONITOR: u32 = 1;
const SOURCE_WINDOW: u32 = 2;
const CURSOR_EMBEDDED: u32 = 2;

/// A started screen cast: what to read, and the session to watch and close.
pub struct ScreenCast {
    pub connection: Connection,
    pub session: dbus::Path<'static>,
    pub node: u32,
    remote: Option<OwnedFd>,
    /// Set once the desktop closed the session.
    closed: Arc<AtomicBool>,
}

fn bus_error(e: &dbus::Error) -> BAError {
    unsupported(format!(
        "The desktop portal cannot be reached over D-Bus ({}). Screen sharing on Wayland needs xdg-desktop-portal.",
        e.message().unwrap_or("no session bus")
    ))
}

fn portal_failed(what: &str) -> BAError {
    unsupported(format!(
        "The desktop's screen-sharing portal did not start a share ({what}). Check that xdg-desktop-portal and a backend for this desktop are installed."
    ))
}

/// A token unique within this process, for request and session handles.
fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "between{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn string(value: impl Into<String>) -> Variant<Box<dyn RefArg>> {
    Variant(Box::new(value.into()))
}

fn uint(value: u32) -> Variant<Box<dyn RefArg>> {
    Variant(Box::new(value))
}

/// What a request's `Response` said, reduced to what the callers need (the results
/// themselves cannot leave the bus's handler: they are not `Send`).
enum Answer {
    Pending,
    Ok(Results),
    Cancelled,
    Failed(u32),
}

#[derive(Default)]
struct Results {
    /// CreateSession's.
    session_handle: Option<String>,
    /// Start's: the PipeWire node of the first stream.
    node: Option<u32>,
}

impl Results {
    fn read(results: &PropMap) -> Self {
        Self {
            session_handle: results
                .get("session_handle")
                .and_then(|v| v.0.as_str())
                .map(str::to_string),
            node: first_stream_node(results),
        }
    }
}

impl ScreenCast {
    /// Runs the whole conversation; the chooser may keep it waiting for the person.
    pub fn start() -> Result<Self, BAError> {
        let connection = Connection::new_session().map_err(|e| bus_error(&e))?;
        let sender = connection
            .unique_name()
            .trim_start_matches(':')
            .replace('.', "_");
        let cursor_modes = {
            let proxy = connection.with_proxy(PORTAL, PORTAL_PATH, CALL_TIMEOUT);
            use dbus::blocking::stdintf::org_freedesktop_dbus::Properties;
            proxy
                .get::<u32>(SCREENCAST, "AvailableCursorModes")
                .map_err(|e| {
                    if e.name() == Some("org.freedesktop.DBus.Error.ServiceUnknown") {
                        unsupported("This desktop has no screen-sharing portal (xdg-desktop-portal is not running). Install xdg-desktop-portal and the backend for your desktop.")
                    } else {
                        bus_error(&e)
                    }
                })?
        };

        let session_token = token();
        let mut options = PropMap::new();
        options.insert("session_handle_token".into(), string(&session_token));
        let results = request(&connection, &sender, "CreateSession", options, |p, o| {
            p.method_call(SCREENCAST, "CreateSession", (o,))
        })?;
        let session = results
            .session_handle
            .and_then(|s| dbus::Path::new(s).ok())
            .ok_or_else(|| portal_failed("no session handle"))?;

        // Watch for the end before anything can end it.
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        connection
            .add_match(
                MatchRule::new_signal(SESSION, "Closed").with_path(session.clone()),
                move |(): (), _, _| {
                    flag.store(true, Ordering::Relaxed);
                    true
                },
            )
            .map_err(|e| {
                close_session(&connection, &session);
                bus_error(&e)
            })?;

        let mut options = PropMap::new();
        options.insert("types".into(), uint(SOURCE_MONITOR | SOURCE_WINDOW));
        options.insert("multiple".into(), Variant(Box::new(false)));
        if cursor_modes & CURSOR_EMBEDDED != 0 {
            options.insert("cursor_mode".into(), uint(CURSOR_EMBEDDED));
        }
        let path = session.clone();
        let selected = request(&connection, &sender, "SelectSources", options, |p, o| {
            p.method_call(SCREENCAST, "SelectSources", (path.clone(), o))
        });
        let started = selected.and_then(|_| {
            let path = session.clone();
            request(&connection, &sender, "Start", PropMap::new(), |p, o| {
                p.method_call(SCREENCAST, "Start", (path.clone(), "", o))
            })
        });
        let cast = started.and_then(|results| {
            let node = results.node.ok_or_else(|| portal_failed("no stream"))?;
            let proxy = connection.with_proxy(PORTAL, PORTAL_PATH, CALL_TIMEOUT);
            let (remote,): (OwnedFd,) = proxy
                .method_call(
                    SCREENCAST,
                    "OpenPipeWireRemote",
                    (session.clone(), PropMap::new()),
                )
                .map_err(|e| portal_failed(&format!("no PipeWire connection: {e}")))?;
            Ok((node, remote))
        });
        match cast {
            Ok((node, remote)) => Ok(Self {
                connection,
                session,
                node,
                remote: Some(remote),
                closed,
            }),
            Err(e) => {
                close_session(&connection, &session);
                Err(e)
            }
        }
    }

    /// The PipeWire connection to read the stream through (once).
    pub fn take_remote(&mut self) -> Option<OwnedFd> {
        self.remote.take()
    }

    /// Handles what came in on the bus (the `Closed` signal); true once the session closed.
    pub fn poll_closed(&self) -> bool {
        while let Ok(true) = self.connection.process(Duration::ZERO) {}
        self.closed.load(Ordering::Relaxed)
    }

    /// Ends the session: the desktop stops the stream and takes down its indicator.
    pub fn close(&self) {
        if !self.closed.load(Ordering::Relaxed) {
            close_session(&self.connection, &self.session);
        }
    }
}

fn close_session(connection: &Connection, session: &dbus::Path<'static>) {
    let proxy = connection.with_proxy(PORTAL, session.clone(), CALL_TIMEOUT);
    let closed: Result<(), dbus::Error> = proxy.method_call(SESSION, "Close", ());
    if let Err(e) = closed {
        tracing::debug!(error = %e, "closing the portal session");
    }
}

/// The PipeWire node of the first stream in Start's results (`streams`: `a(ua{sv})`).
fn first_stream_node(results: &PropMap) -> Option<u32> {
    let streams = results.get("streams")?;
    let mut streams = streams.0.as_iter()?;
    let first = streams.next()?;
    let mut fields = first.as_iter()?;
    u32::try_from(fields.next()?.as_u64()?).ok()
}

/// Calls a portal method that answers through a request object and waits for its answer.
fn request(
    connection: &Connection,
    sender: &str,
    method: &str,
    mut options: PropMap,
    call: impl FnOnce(&Proxy<'_, &Connection>, PropMap) -> Result<(dbus::Path<'static>,), dbus::Error>,
) -> Result<Results, BAError> {
    let handle = token();
    let expected = format!("{PORTAL_PATH}/request/{sender}/{handle}");
    options.insert("handle_token".into(), string(&handle));
    let answer = Arc::new(Mutex::new(Answer::Pending));
    let slot = answer.clone();
    let rule = MatchRule::new_signal(REQUEST, "Response")
        .with_path(dbus::Path::new(expected.clone()).map_err(|e| portal_failed(&e))?);
    let watch = connection
        .add_match(rule, move |(code, results): (u32, PropMap), _, _| {
            let said = match code {
                0 => Answer::Ok(Results::read(&results)),
                1 => Answer::Cancelled,
                other => Answer::Failed(other),
            };
            if let Ok(mut slot) = slot.lock() {
                *slot = said;
            }
            // Kept until `remove_match` below, which also takes the rule off the bus.
            true
        })
        .map_err(|e| bus_error(&e))?;
    let proxy = connection.with_proxy(PORTAL, PORTAL_PATH, CALL_TIMEOUT);
    let called = call(&proxy, options);
    let outcome = match called {
        Err(e) => Err(portal_failed(&format!("{method}: {e}"))),
        Ok((path,)) if *path != *expected => {
            // An old portal (before version 0.9) picks its own path: too old to rely on.
            Err(portal_failed(&format!(
                "{method} answered on {path}, not {expected}; the portal is too old"
            )))
        }
        Ok(_) => wait_for_answer(connection, &answer, method),
    };
    let _ = connection.remove_match(watch);
    outcome
}

fn wait_for_answer(
    connection: &Connection,
    answer: &Mutex<Answer>,
    method: &str,
) -> Result<Results, BAError> {
    let deadline = Instant::now() + CHOOSER_WAIT;
    loop {
        let said = match answer.lock() {
            Ok(mut slot) => std::mem::replace(&mut *slot, Answer::Pending),
            Err(_) => return Err(portal_failed("internal state lost")),
        };
        match said {
            Answer::Ok(results) => return Ok(results),
            Answer::Cancelled => {
                return Err(BAError::new(
                    ErrorCode::ScreenshareDenied,
                    "Screen sharing was cancelled in the system's dialog.",
                ));
            }
            Answer::Failed(code) => {
                return Err(portal_failed(&format!("{method} answered {code}")));
            }
            Answer::Pending => {}
        }
        if Instant::now() >= deadline {
            return Err(portal_failed(&format!(
                "no answer to {method} within {} s",
                CHOOSER_WAIT.as_secs()
            )));
        }
        connection
            .process(Duration::from_millis(100))
            .map_err(|e| bus_error(&e))?;
    }
}
