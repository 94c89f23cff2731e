//! The relay's defaults.

use std::time::Duration;

/// The stream's default name.
pub const DEFAULT_STREAM: &str = "VKLIVE";
/// The lease bucket's default name.
pub const DEFAULT_BUCKET: &str = "vklive-leases";
/// The lease's default TTL.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// How many publications may wait for their JetStream ack at once.
pub const DEFAULT_ACK_WINDOW: usize = 1024;
