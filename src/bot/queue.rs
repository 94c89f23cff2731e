//! [`DropOldest`]: a bounded queue that makes room by dropping its oldest
//! item, and counts what it dropped.

use std::collections::VecDeque;

/// A queue of at most `capacity` items (at least 1): a push into a full
/// queue drops the oldest item and counts it, so the newest always get in
/// and memory stays bounded.
#[derive(Debug)]
pub(crate) struct DropOldest<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// Dropped since the last [`DropOldest::take_dropped`].
    dropped: u64,
}

impl<T> DropOldest<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        DropOldest {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds `item` at the back; whether the oldest item was dropped for it.
    pub(crate) fn push(&mut self, item: T) -> bool {
        let full = self.items.len() >= self.capacity;
        if full {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(item);
        full
    }

    /// The oldest item.
    pub(crate) fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// How many items were dropped since the last call; resets the count.
    pub(crate) fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts_them() {
        let mut queue = DropOldest::new(3);
        for n in 0..10 {
            queue.push(n);
            assert!(queue.len() <= 3);
        }
        assert_eq!(queue.take_dropped(), 7);
        assert_eq!(queue.take_dropped(), 0);
        assert_eq!(
            std::iter::from_fn(|| queue.pop()).collect::<Vec<_>>(),
            [7, 8, 9]
        );
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_zero_capacity_holds_one() {
        let mut queue = DropOldest::new(0);
        assert!(!queue.push('a'));
        assert!(queue.push('b'));
        assert_eq!(queue.pop(), Some('b'));
    }
}
