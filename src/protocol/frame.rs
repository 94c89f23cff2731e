//! A received text frame, as the connection's core sees it.

use std::ops::Range;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A received WebSocket text frame: shared bytes known to be UTF-8. A clone
/// takes a reference to the same bytes, never a copy.
///
/// The WebSocket library hands a text frame over as its own `Utf8Bytes`, a
/// [`bytes::Bytes`] it has checked for UTF-8 (tungstenite's type, converted
/// into `Bytes` without a copy). A `Frame` keeps that value, and with it the
/// check: the crate forbids `unsafe`, so a bare `Bytes` could be read as text
/// only by checking every byte again, for every frame. Nothing outside this
/// file knows which library it came from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Frame(Utf8Bytes);

impl Frame {
    /// The frame's text.
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The text in `range` (`null` for a range that does not fall on the
    /// frame's characters, which the cut never makes).
    pub(crate) fn slice(&self, range: &Range<usize>) -> &str {
        self.as_str().get(range.clone()).unwrap_or("null")
    }

    /// Where `part`, a slice of this frame's text, starts in it.
    pub(crate) fn offset_of(&self, part: &str) -> usize {
        part.as_ptr() as usize - self.as_str().as_ptr() as usize
    }

    /// Whether `other` is this very frame (the same bytes, not merely equal
    /// text).
    pub(crate) fn is_same(&self, other: &Frame) -> bool {
        self.as_str().as_ptr() == other.as_str().as_ptr() && self.len() == other.len()
    }

    /// A copy of its text, exactly sized, that shares nothing with the
    /// received bytes (a received frame is a slice of the socket's read
    /// buffer and keeps all of it alive).
    pub(crate) fn copy(&self) -> Frame {
        Frame::from(self.as_str().to_owned())
    }
}

impl From<Utf8Bytes> for Frame {
    /// The WebSocket library's text frame: a move, no copy, no check.
    fn from(text: Utf8Bytes) -> Frame {
        Frame(text)
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Frame {
        Frame(Utf8Bytes::from(text))
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Frame {
        Frame(Utf8Bytes::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_is_the_same_frame_and_a_copy_or_equal_text_is_not() {
        let frame = Frame::from("{\"a\":1}\n{}".to_owned());
        assert!(frame.is_same(&frame.clone()));
        assert!(!frame.is_same(&frame.copy()));
        assert!(!frame.is_same(&Frame::from(frame.as_str())));
        assert_eq!(frame.copy().as_str(), frame.as_str());
        let ping = &frame.as_str()[8..];
        assert_eq!(frame.offset_of(ping), 8);
        assert_eq!(frame.slice(&(8..10)), "{}");
        assert_eq!(frame.slice(&(8..99)), "null");
    }

    #[test]
    fn a_websocket_text_frame_becomes_a_frame_without_a_copy() {
        let text = Utf8Bytes::from("{}");
        let address = text.as_str().as_ptr();
        assert_eq!(Frame::from(text).as_str().as_ptr(), address);
    }
}
