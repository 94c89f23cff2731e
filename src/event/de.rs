//! Lenient field decoders shared by the typed payloads.
//!
//! VK documents few of its payloads, so the types accept what a reasonable
//! server could send for a field (a `null` for an empty value, a number where
//! an id is usually a string) instead of losing the whole event over it.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

/// A `null` reads as the type's default; `#[serde(default)]` alone only
/// covers a missing key.
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A string id that may also arrive as a number (badge, smile, reward and
/// stream ids are documented as strings, but nothing pins that down).
pub(crate) fn string_id<'de, D>(deserializer: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(deserializer
        .deserialize_any(StringIdVisitor)?
        .unwrap_or_default())
}

/// [`string_id`] for an optional field.
pub(crate) fn opt_string_id<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_any(StringIdVisitor)
}

struct StringIdVisitor;

impl<'de> Visitor<'de> for StringIdVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or integer id")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A map key, borrowed when the JSON string has no escapes.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct Key<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

/// Compares two raw JSON texts. `RawValue` has no `PartialEq`; equal text is
/// the only equality that needs no re-parse, and it is what "arrived intact"
/// means.
pub(crate) fn raw_eq(a: &RawValue, b: &RawValue) -> bool {
    a.get() == b.get()
}
