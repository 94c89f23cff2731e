//! The `nick_color` palette (vk-devapi.md §7).
//!
//! VK sends a palette index, not a colour, and does not publish the palette.
//! The sixteen values below are the ones two independent clients agree on.

use serde::{Deserialize, Serialize};

/// The sixteen nick colours, `#RRGGBB`, indexed by `nick_color`.
pub const PALETTE: [&str; 16] = [
    "#D66E34", "#B8AAFF", "#1D90FF", "#9961F9", "#59A840", "#E73629", "#DE6489", "#20BBA1",
    "#F8B301", "#0099BB", "#7BBEFF", "#E542FF", "#A36C59", "#8BA259", "#00A9FF", "#A20BFF",
];

/// A `nick_color` palette index as sent by VK.
///
/// Kept as the raw integer (not a `u8`) so that an out-of-range value still
/// decodes: a colour we cannot map must not cost the whole chat message.
/// Documented range: 0–15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NickColor(pub i64);

impl NickColor {
    /// The palette index, when it is inside the palette (0–15).
    pub fn index(self) -> Option<u8> {
        u8::try_from(self.0)
            .ok()
            .filter(|index| usize::from(*index) < PALETTE.len())
    }

    /// The colour as `#RRGGBB`; `None` outside 0–15.
    ///
    /// ```
    /// use vklive_pubsub::event::NickColor;
    /// assert_eq!(NickColor(2).hex(), Some("#1D90FF"));
    /// assert_eq!(NickColor(16).hex(), None);
    /// assert_eq!(NickColor(-1).hex(), None);
    /// ```
    pub fn hex(self) -> Option<&'static str> {
        self.index().map(|index| PALETTE[usize::from(index)])
    }

    /// The colour as `[r, g, b]`; `None` outside 0–15.
    pub fn rgb(self) -> Option<[u8; 3]> {
        let hex = self.hex()?;
        let channel = |at: usize| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok();
        Some([channel(1)?, channel(3)?, channel(5)?])
    }
}
