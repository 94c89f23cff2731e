//! The fuzz targets, shared by `examples/fuzz.rs` (the mutation loop) and
//! `tests/fuzz_regressions.rs` (every kept input, on every test run).
//!
//! [`check`] runs one input through every target and returns a description
//! of the first disagreement; a panic inside a decoder propagates (the caller
//! catches it). Targets:
//! - `protocol::decode_frame`, as `Reply` (client side) and `Command`
//!   (emulator side), and `protocol::is_ping_line` on each line (a ping line
//!   decodes as an empty `Reply`);
//! - the publication fast path against the general decoder on every line:
//!   whenever `protocol::decode_publication` accepts a line,
//!   `protocol::decode_line::<Reply>` accepts it too with the same channel,
//!   offset and `data` (raw text), and the event `event::TypedPayload`
//!   decodes in one pass equals `VkEvent::decode` of that `data`;
//! - the VK event decoder, `VkEvent::decode_str` (the public face of
//!   `VkEvent::decode_json`: the same one-pass attempt, then the general
//!   path) on the whole input and on every publication's `data`: never panics.

use std::marker::PhantomData;

use serde_json::value::RawValue;
use vklive_pubsub::VkEvent;
use vklive_pubsub::event::TypedPayload;
use vklive_pubsub::protocol::{
    Command, Reply, decode_frame, decode_line, decode_publication, frame_lines, is_ping_line,
};

/// What one input exercised.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// Non-empty lines.
    pub lines: u64,
    /// Lines the general decoder accepted.
    pub decoded: u64,
    /// Lines the publication fast path accepted (and compared).
    pub fast: u64,
}

/// Runs `input` through every target. `Err` names a disagreement.
pub fn check(input: &[u8]) -> Result<Coverage, String> {
    // A WebSocket text frame is UTF-8; anything else is tried as its lossy text.
    let text = String::from_utf8_lossy(input);
    let frame: &str = &text;

    for reply in decode_frame::<Reply>(frame).flatten() {
        if let Some(publication) = reply.push.and_then(|push| push.publication) {
            let _ = VkEvent::decode(&publication.data);
        }
    }
    let _ = decode_frame::<Command>(frame).count();
    let _ = VkEvent::decode_str(frame);

    let mut coverage = Coverage::default();
    for (number, line) in frame_lines(frame) {
        check_line(number, line, &mut coverage)?;
    }
    Ok(coverage)
}

fn check_line(number: usize, line: &str, coverage: &mut Coverage) -> Result<(), String> {
    let general = decode_line::<Reply>(number, line);
    coverage.lines += 1;
    coverage.decoded += u64::from(general.is_ok());
    if is_ping_line(line) {
        match &general {
            Ok(reply) if serde_json::to_string(reply).is_ok_and(|json| json == "{}") => {}
            other => return Err(format!("line {number}: a ping line decodes as {other:?}")),
        }
    }

    let Some(fast) = decode_publication(line, PhantomData::<&RawValue>) else {
        // Declined: the general decoder has the line. The typed seed must
        // decline too when the raw one does (it accepts less, never more).
        if decode_publication(line, TypedPayload).is_some() {
            return Err(format!(
                "line {number}: TypedPayload took a line the raw seed declined"
            ));
        }
        return Ok(());
    };
    coverage.fast += 1;
    let reply = general.map_err(|error| {
        format!("line {number}: fast path took a line the general one rejects: {error}")
    })?;
    if reply.id != 0 {
        return Err(format!(
            "line {number}: fast path took a reply with id {}",
            reply.id
        ));
    }
    let push = reply
        .push
        .ok_or_else(|| format!("line {number}: fast path took a line without a push"))?;
    let publication = push
        .publication
        .ok_or_else(|| format!("line {number}: fast path took a push without a publication"))?;
    if fast.channel != push.channel {
        return Err(format!(
            "line {number}: channel {:?} (fast) != {:?} (general)",
            fast.channel, push.channel
        ));
    }
    if fast.offset != publication.offset {
        return Err(format!(
            "line {number}: offset {} (fast) != {} (general)",
            fast.offset, publication.offset
        ));
    }
    if fast.data.get() != publication.data.get() {
        return Err(format!("line {number}: data differs between the decoders"));
    }
    let event = VkEvent::decode(&publication.data);
    let _ = VkEvent::decode_str(publication.data.get());
    if let Some(typed) = decode_publication(line, TypedPayload)
        && typed.data != event
    {
        return Err(format!(
            "line {number}: one-pass event {:?} != general event {:?}",
            typed.data, event
        ));
    }
    Ok(())
}
