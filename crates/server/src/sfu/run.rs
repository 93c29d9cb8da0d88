//! The task that owns the SFU's core: takes events in order, hands the core's outputs to the
//! participants' drivers (each gets its commands in the order the core made them) and to
//! signaling, and passes time to the core when something is due. No lock: the core is this
//! task's alone.

use super::core::Core;
use super::driver::{self, Command};
use super::env::Env;
use super::inputs::{Event, Inputs};
use super::io::{Input, Output};
use super::media::Media;
use between_protocol::{ErrorCode, ProtocolError, ServerMessage};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Events taken in one go before the core's deadlines are looked at again.
const BATCH: usize = 256;

/// A message for one participant's signaling connection.
pub(crate) type Signal = (String, ServerMessage);

pub(crate) fn not_in_call() -> ProtocolError {
    ProtocolError::new(ErrorCode::NotInCall, "Join the call before sending media.")
}

struct Runner {
    core: Core<Media>,
    drivers: HashMap<String, mpsc::UnboundedSender<Command>>,
    env: Arc<Env>,
    inputs: Inputs,
    signal: mpsc::UnboundedSender<Signal>,
}

pub(crate) async fn run(
    env: Arc<Env>,
    inputs: Inputs,
    signal: mpsc::UnboundedSender<Signal>,
    mut events: mpsc::UnboundedReceiver<Event>,
) {
    let mut r = Runner {
        core: Core::new(),
        drivers: HashMap::new(),
        env,
        inputs,
        signal,
    };
    loop {
        let deadline = r.core.poll_timeout();
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                if !r.on_event(event) {
                    return;
                }
                // Take what else is waiting before looking at the clock again, but not so
                // much that what is due (answers timing out, held keyframe requests) waits.
                for _ in 0..BATCH {
                    let Ok(event) = events.try_recv() else { break };
                    if !r.on_event(event) {
                        return;
                    }
                }
                if r.core.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                    r.core.handle_timeout(Instant::now());
                    r.dispatch();
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now))),
                if deadline.is_some() => {
                r.core.handle_timeout(Instant::now());
                r.dispatch();
            }
        }
    }
}

impl Runner {
    /// Handles one event; `false` once the SFU is gone.
    fn on_event(&mut self, event: Event) -> bool {
        match event {
            Event::Input(input) => {
                // Inputs from drivers and forwarding tasks are never refused; only a
                // participant's own (checked) ones are.
                let _ = self.input(input);
            }
            Event::Checked(input, reply) => {
                let _ = reply.send(self.input(input));
            }
            Event::Publish { peer, sdp, reply } => match self.drivers.get(&peer) {
                Some(d) => {
                    let _ = d.send(Command::Publish { sdp, reply });
                }
                None => {
                    let _ = reply.send(Err(not_in_call()));
                }
            },
            Event::StopPublishing { peer, kind } => {
                if let Some(d) = self.drivers.get(&peer) {
                    let _ = d.send(Command::StopPublishing(kind));
                }
            }
            // Dropping the drivers' command channels ends them; they close their connections.
            Event::Shutdown => return false,
        }
        true
    }

    fn input(&mut self, input: Input<Media>) -> Result<(), ProtocolError> {
        if let Input::Joined { peer, .. } = &input
            && !self.drivers.contains_key(peer)
        {
            let driver = driver::spawn(self.inputs.clone(), self.env.clone(), peer.clone());
            self.drivers.insert(peer.clone(), driver);
        }
        let result = self.core.handle_input(Instant::now(), input);
        self.dispatch();
        result
    }

    fn dispatch(&mut self) {
        while let Some(output) = self.core.poll_output() {
            let peer = match &output {
                Output::Signal { peer, msg } => {
                    let _ = self.signal.send((peer.clone(), msg.clone()));
                    continue;
                }
                Output::Subscribe { subscriber, .. }
                | Output::Unsubscribe { subscriber, .. }
                | Output::MakeOffer { subscriber, .. }
                | Output::ApplyAnswer { subscriber, .. }
                | Output::ResetSubscriber { subscriber }
                | Output::SelectLayer { subscriber, .. } => subscriber,
                Output::RequestKeyframe { publisher, .. } | Output::RelayLoss { publisher, .. } => {
                    publisher
                }
                Output::Close { peer } => peer,
            }
            .clone();
            let close = matches!(output, Output::Close { .. });
            if let Some(driver) = self.drivers.get(&peer) {
                let _ = driver.send(Command::Core(output));
            }
            if close {
                self.drivers.remove(&peer);
            }
        }
    }
}
