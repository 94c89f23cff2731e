//! `vklive emulator` and `vklive trigger` as a user runs them.
