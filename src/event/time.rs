//! [`Timestamp`]: a Unix time that may arrive in seconds or milliseconds.
//!
//! Chat `created_at` is documented in seconds, but fixtures of the channel
//! info disagree (`started_at` in seconds or in ms). Following one community
//! client, a value below 10^10 is read as seconds (10^10 s is the year 2286;
//! 10^10 ms is April 1970), anything else as milliseconds. Floats and numeric
//! strings are accepted too, since nothing in the docs rules them out.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Values below this are seconds, values at or above it milliseconds.
const SECONDS_LIMIT: i64 = 10_000_000_000;

/// A point in time, stored as Unix milliseconds.
///
/// Serializes as whole Unix seconds when it has no millisecond part, else as
/// Unix milliseconds, so that what it writes reads back to the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    millis: i64,
}

impl Timestamp {
    /// A timestamp from Unix seconds. `None` if it overflows in milliseconds.
    pub fn from_unix_seconds(seconds: i64) -> Option<Timestamp> {
        seconds.checked_mul(1000).map(Timestamp::from_unix_millis)
    }

    /// A timestamp from Unix milliseconds.
    pub fn from_unix_millis(millis: i64) -> Timestamp {
        Timestamp { millis }
    }

    /// Reads a wire number with the seconds/milliseconds rule.
    ///
    /// ```
    /// use vklive_pubsub::event::Timestamp;
    /// let seconds = Timestamp::from_wire(1_700_000_000).unwrap();
    /// let millis = Timestamp::from_wire(1_700_000_000_000).unwrap();
    /// assert_eq!(seconds, millis);
    /// assert_eq!(seconds.unix_seconds(), 1_700_000_000);
    /// ```
    pub fn from_wire(value: i64) -> Option<Timestamp> {
        if value < SECONDS_LIMIT {
            Timestamp::from_unix_seconds(value)
        } else {
            Some(Timestamp::from_unix_millis(value))
        }
    }

    /// [`from_wire`](Timestamp::from_wire) for a float; fractions of a
    /// millisecond are rounded. `None` for NaN, infinities and values out of range.
    pub fn from_wire_f64(value: f64) -> Option<Timestamp> {
        if !value.is_finite() {
            return None;
        }
        let millis = if value < SECONDS_LIMIT as f64 {
            value * 1000.0
        } else {
            value
        }
        .round();
        // The range check keeps the cast below exact instead of saturating.
        let in_range = millis >= i64::MIN as f64 && millis < i64::MAX as f64;
        in_range.then(|| Timestamp::from_unix_millis(millis as i64))
    }

    /// Whole Unix seconds (rounded towards the past).
    pub fn unix_seconds(self) -> i64 {
        self.millis.div_euclid(1000)
    }

    /// Unix milliseconds.
    pub fn unix_millis(self) -> i64 {
        self.millis
    }

    /// The same instant as a [`SystemTime`]. Saturates at the epoch if the
    /// platform cannot represent a time that far before it.
    pub fn system_time(self) -> SystemTime {
        let offset = Duration::from_millis(self.millis.unsigned_abs());
        let time = if self.millis >= 0 {
            UNIX_EPOCH.checked_add(offset)
        } else {
            UNIX_EPOCH.checked_sub(offset)
        };
        time.unwrap_or(UNIX_EPOCH)
    }
}

impl From<Timestamp> for SystemTime {
    fn from(timestamp: Timestamp) -> SystemTime {
        timestamp.system_time()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.millis % 1000 == 0 {
            serializer.serialize_i64(self.unix_seconds())
        } else {
            serializer.serialize_i64(self.millis)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TimestampVisitor)
    }
}

struct TimestampVisitor;

impl TimestampVisitor {
    fn out_of_range<E: de::Error>() -> E {
        E::custom("timestamp out of range")
    }
}

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Unix time in seconds or milliseconds")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        Timestamp::from_wire(v).ok_or_else(Self::out_of_range)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        let v = i64::try_from(v).map_err(|_| Self::out_of_range())?;
        self.visit_i64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        Timestamp::from_wire_f64(v).ok_or_else(Self::out_of_range)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        let v = v.trim();
        if let Ok(integer) = v.parse::<i64>() {
            return self.visit_i64(integer);
        }
        match v.parse::<f64>() {
            Ok(float) => self.visit_f64(float),
            Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}
