//! Issue 9, item 12: a publication's `tags` are never built into a map.
//!
//! Nobody reads `tags`, yet a 7 MB tags object used to become a `HashMap` of
//! 100,000 entries (two `String`s each) in both decoders. A counting
//! allocator measures it: decoding such a line makes a handful of
//! allocations, not hundreds of thousands.

use std::alloc::{GlobalAlloc, Layout, System};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::de::IgnoredAny;
use vklive_pubsub::event::TypedPayload;
use vklive_pubsub::protocol::{Reply, decode_frame, decode_line, decode_publication};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a side effect only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations `work` makes.
fn allocations<T>(work: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let value = work();
    (ALLOCATIONS.load(Ordering::SeqCst) - before, value)
}

/// A chat publication whose `tags` object has 110,000 entries (about 7.5 MB).
fn line_with_huge_tags() -> String {
    let mut tags = String::from("{");
    for index in 0..110_000 {
        if index > 0 {
            tags.push(',');
        }
        tags.push_str(&format!(
            "\"tag-{index:06}\":\"value-{index:06}-padding-padding-padding-padding-padding\""
        ));
    }
    tags.push('}');
    assert!(tags.len() > 7_000_000, "{}", tags.len());
    let data = r#"{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}}"#;
    format!(
        r#"{{"push":{{"channel":"api-channel-chat:1","pub":{{"data":{data},"offset":5,"tags":{tags}}}}}}}"#
    )
}

/// Far below one allocation per tag: the line is decoded, the tags are not
/// built.
const FEW: usize = 100;

#[test]
fn a_huge_tags_object_is_not_built_into_a_map() {
    let line = line_with_huge_tags();

    let (count, reply) = allocations(|| decode_line::<Reply>(1, &line).expect("a valid line"));
    assert!(count < FEW, "the general decoder made {count} allocations");
    let publication = reply.push.unwrap().publication.unwrap();
    assert_eq!(publication.offset, 5);
    // Kept as the raw text it arrived as.
    let tags: &serde_json::value::RawValue = publication.tags.as_deref().expect("tags kept");
    assert!(tags.get().len() > 7_000_000);
    assert!(tags.get().starts_with("{\"tag-000000\":"));
    drop(publication);

    let (count, decoded) = allocations(|| decode_frame::<Reply>(&line).count());
    assert!(count < FEW, "decode_frame made {count} allocations");
    assert_eq!(decoded, 1);

    let (count, fast) = allocations(|| decode_publication(&line, PhantomData::<IgnoredAny>));
    assert!(count < FEW, "the one-pass decoder made {count} allocations");
    assert_eq!(fast.expect("taken in one pass").offset, 5);

    let (count, fast) = allocations(|| decode_publication(&line, TypedPayload));
    assert!(count < FEW, "the one-pass decoder made {count} allocations");
    assert_eq!(fast.expect("taken in one pass").offset, 5);
}

/// Both decoders still accept exactly the `tags` a map of strings would take.
#[test]
fn tags_keep_their_shape_in_both_decoders() {
    let line = |tags: &str| {
        format!(
            r#"{{"push":{{"channel":"c","pub":{{"data":{{"type":"x","data":{{}}}},"tags":{tags}}}}}}}"#
        )
    };
    for tags in [
        "null",
        "{}",
        r#"{"a":"b"}"#,
        r#"{"a":"b","a":"c"}"#,
        r#"{"\u0061":"\n"}"#,
    ] {
        let line = line(tags);
        let reply = decode_line::<Reply>(1, &line);
        assert!(reply.is_ok(), "{line}: {reply:?}");
        let kept = reply.unwrap().push.unwrap().publication.unwrap().tags;
        assert_eq!(
            kept.map(|raw| raw.get().to_owned()),
            (tags != "null").then(|| tags.to_owned())
        );
        assert!(
            decode_publication(&line, PhantomData::<IgnoredAny>).is_some(),
            "{line}"
        );
    }
    for tags in [
        r#"{"k":1}"#,
        r#"{"k":null}"#,
        r#"{"k":{}}"#,
        "[]",
        r#""x""#,
        "1",
        r#"{"k":"\ud800"}"#,
    ] {
        let line = line(tags);
        assert!(decode_line::<Reply>(1, &line).is_err(), "{line}");
        assert!(
            decode_publication(&line, PhantomData::<IgnoredAny>).is_none(),
            "{line}"
        );
    }
}
