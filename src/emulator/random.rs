//! Random identifiers: tokens, epochs, stream and category ids.

/// A random alphanumeric string.
pub(crate) fn random_string(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(len)
        .collect()
}

/// A random version-4 UUID in its text form.
pub(crate) fn random_uuid() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        (fastrand::u16(..) & 0x3fff) | 0x8000,
        fastrand::u64(..1 << 48)
    )
}
