//! Decoding cost of VK events.
//!
//! - `typed_chat`: `VkEvent::decode` of one realistic chat publication payload
//!   (the `chat_message` fixture: Cyrillic, emoji, badges, roles, every part kind);
//! - `frame_to_event`: one server frame line, `{"push":{"channel":…,"pub":{"data":…}}}`,
//!   through `protocol::decode_frame::<Reply>` and then `VkEvent::decode`;
//! - `frame_batch_16`: the same with sixteen publications in one frame;
//! - `one_pass_to_event` / `one_pass_batch_16`: the connector's hot path, the
//!   same lines through `protocol::decode_publication` with
//!   `event::TypedPayload` (one scan, no copy of the payload);
//! - `via_value_baseline`: the same payload through `serde_json::Value` first,
//!   the approach the two-phase decoder avoids (for comparison only);
//! - `skim/validate_raw`: what the actor did to a publication line before the
//!   cut, `protocol::decode_publication` with a `&RawValue` seed (a full
//!   validating scan); `skim/cut`: `protocol::cut_publication`, what it does
//!   now; `skim/cut_then_typed`: the cut plus the caller's typed decode, the
//!   whole JSON work of one publication;
//! - `decode/chat_summary`: `event::ChatSummary::decode` of the same payload
//!   (id, author, nick, plain text), next to `decode/typed_chat`;
//! - `decode/typed_chat_serde`: the same payload through `event::TypedPayload`
//!   alone, the serde path `typed_chat` takes when the direct chat reader
//!   declines a payload (and took for every payload before that reader);
//! - `decode/chat_key`: `event::chat_key` of the same payload, what the
//!   actor reads of each chat publication of a channel followed with its
//!   slug, to skip messages a REST fill-in delivered already.
//!
//! Run: `cargo bench --bench decode -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::de::DeserializeSeed;
use serde_json::value::RawValue;
use vklive_pubsub::event::{ChatMessage, ChatSummary, TypedPayload, VkEvent, chat_key};
use vklive_pubsub::protocol::{
    Reply, cut_publication, decode_frame, decode_publication, frame_lines,
};

const CHAT_FIXTURE: &str = include_str!("../tests/fixtures/channel_chat_message_send.json");

/// The chat payload as it travels: compact JSON, `type` first as VK sends it
/// (a `serde_json::Value` would sort `data` first).
fn chat_payload() -> Box<RawValue> {
    let value: serde_json::Value = serde_json::from_str(CHAT_FIXTURE).expect("fixture is JSON");
    let text = format!(r#"{{"type":{},"data":{}}}"#, value["type"], value["data"]);
    RawValue::from_string(text).expect("valid JSON")
}

fn push_line(payload: &RawValue, offset: u64) -> String {
    format!(
        r#"{{"push":{{"channel":"api-channel-chat:123456","pub":{{"data":{},"offset":{offset}}}}}}}"#,
        payload.get()
    )
}

/// Decodes every publication of a frame; returns how many were typed.
fn decode_frame_events(frame: &str) -> usize {
    decode_frame::<Reply>(frame)
        .filter_map(Result::ok)
        .filter_map(|reply| reply.push?.publication)
        .map(|publication| VkEvent::decode(&publication.data))
        .filter(|event| !matches!(event, VkEvent::Unknown(_)))
        .count()
}

/// The connector's path: one pass per line; returns how many were typed.
fn one_pass_events(frame: &str) -> usize {
    frame_lines(frame)
        .filter_map(|(_, line)| decode_publication(line, TypedPayload))
        .filter(|publication| !matches!(publication.data, VkEvent::Unknown(_)))
        .count()
}

fn typed_chat(c: &mut Criterion) {
    let payload = chat_payload();
    assert!(matches!(VkEvent::decode(&payload), VkEvent::ChatMessage(_)));
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("typed_chat", |b| {
        b.iter(|| VkEvent::decode(black_box(&payload)))
    });
    group.bench_function("typed_chat_serde", |b| {
        b.iter(|| typed_with_serde(black_box(payload.get())))
    });
    group.bench_function("chat_summary", |b| {
        b.iter(|| ChatSummary::decode(black_box(payload.get())).map(|s| s.id))
    });
    // What the actor reads of each chat publication of a channel followed
    // with its slug (`chat_channel`, `channel_url`), to skip what a REST
    // fill-in delivered already.
    group.bench_function("chat_key", |b| {
        b.iter(|| chat_key(black_box(payload.get())))
    });
    group.bench_function("via_value_baseline", |b| {
        b.iter(|| via_value(black_box(payload.get())))
    });
    group.finish();
}

/// The serde path `VkEvent::decode` takes for payloads the direct chat
/// reader declines (and took for every payload before it).
fn typed_with_serde(payload: &str) -> Option<VkEvent> {
    TypedPayload
        .deserialize(&mut serde_json::Deserializer::from_str(payload))
        .ok()
}

/// What a one-phase decoder through `serde_json::Value` would cost.
fn via_value(payload: &str) -> Option<ChatMessage> {
    let mut value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let message = value.get_mut("data")?.get_mut("chat_message")?.take();
    serde_json::from_value(message).ok()
}

fn frames(c: &mut Criterion) {
    let payload = chat_payload();
    let line = push_line(&payload, 1);
    let batch: Vec<String> = (1..=16).map(|offset| push_line(&payload, offset)).collect();
    let batch = batch.join("\n");
    assert_eq!(decode_frame_events(&line), 1);
    assert_eq!(decode_frame_events(&batch), 16);
    assert_eq!(one_pass_events(&line), 1);
    assert_eq!(one_pass_events(&batch), 16);

    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("frame_to_event", |b| {
        b.iter(|| decode_frame_events(black_box(&line)))
    });
    group.bench_function("one_pass_to_event", |b| {
        b.iter(|| one_pass_events(black_box(&line)))
    });
    group.throughput(Throughput::Elements(16));
    group.bench_function("frame_batch_16", |b| {
        b.iter(|| decode_frame_events(black_box(&batch)))
    });
    group.bench_function("one_pass_batch_16", |b| {
        b.iter(|| one_pass_events(black_box(&batch)))
    });
    group.finish();
}

fn skim(c: &mut Criterion) {
    let payload = chat_payload();
    let line = push_line(&payload, 1);
    let raw = std::marker::PhantomData::<&RawValue>;
    assert!(decode_publication(&line, raw).is_some());
    assert!(cut_publication(&line).is_some());

    let mut group = c.benchmark_group("skim");
    group.throughput(Throughput::Bytes(line.len() as u64));
    group.bench_function("validate_raw", |b| {
        b.iter(|| decode_publication(black_box(&line), raw).map(|p| p.offset))
    });
    group.bench_function("cut", |b| {
        b.iter(|| cut_publication(black_box(&line)).map(|cut| cut.offset))
    });
    group.bench_function("cut_then_typed", |b| {
        b.iter(|| {
            let cut = cut_publication(black_box(&line))?;
            let payload = serde_json::from_str::<&RawValue>(&line[cut.data]).ok()?;
            Some(VkEvent::decode(payload))
        })
    });
    group.finish();
}

criterion_group!(benches, typed_chat, frames, skim);
criterion_main!(benches);
