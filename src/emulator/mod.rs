//! An emulator of the VK DevAPI and its Centrifugo pubsub (work in progress).
