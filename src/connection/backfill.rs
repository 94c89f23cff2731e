//! Pure decisions of the chat fill-in: which messages of a REST history
//! answer to deliver, in which order, and whether the answer covers the gap.

use crate::event::ChatMessage;

use super::channel::After;

/// Messages asked for in one `GET /v1/chat/messages` (the API's maximum).
pub(crate) const LIMIT: u32 = 200;

/// What to deliver from one answer.
#[derive(Debug)]
pub(crate) struct FillIn {
    /// New messages, oldest first, each once.
    pub(crate) messages: Vec<ChatMessage>,
    /// The answer reaches back to the resume point: nothing else is missing.
    pub(crate) complete: bool,
}

/// Picks the messages after `after` not delivered yet (`seen`), in chat
/// order (time, then id), whatever the order of the answer. The answer is
/// complete when it holds fewer than `asked` or reaches back to `after`.
pub(crate) fn select(
    answer: Vec<ChatMessage>,
    after: After,
    seen: impl Fn(i64) -> bool,
    asked: usize,
) -> FillIn {
    let complete = answer.len() < asked || answer.iter().any(|m| !after.precedes(m.key()));
    let mut messages: Vec<ChatMessage> = answer
        .into_iter()
        .filter(|m| after.precedes(m.key()) && !seen(m.id))
        .collect();
    messages.sort_by_key(ChatMessage::key);
    messages.dedup_by_key(|m| m.id);
    FillIn { messages, complete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChatKey, Timestamp};

    fn message(id: i64, seconds: i64) -> ChatMessage {
        serde_json::from_value(serde_json::json!({
            "id": id, "created_at": seconds, "parts": []
        }))
        .map(|mut m: ChatMessage| {
            m.created_at = Timestamp::from_unix_seconds(seconds);
            m
        })
        .unwrap()
    }

    fn ids(fill_in: &FillIn) -> Vec<i64> {
        fill_in.messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn newest_first_answers_are_delivered_oldest_first_after_the_last_message() {
        let last = ChatKey {
            created_at_millis: 10_000,
            id: 10,
        };
        let answer = (5..=15).rev().map(|id| message(id, id)).collect();
        let fill_in = select(answer, After::Message(last), |_| false, 200);
        assert_eq!(ids(&fill_in), [11, 12, 13, 14, 15]);
        assert!(fill_in.complete);
    }

    #[test]
    fn messages_already_delivered_are_skipped_and_duplicates_collapse() {
        let answer = vec![message(3, 3), message(2, 2), message(3, 3), message(1, 1)];
        let fill_in = select(answer, After::Time(0), |id| id == 2, 200);
        assert_eq!(ids(&fill_in), [1, 3]);
    }

    #[test]
    fn a_full_answer_that_does_not_reach_back_is_incomplete() {
        let last = ChatKey {
            created_at_millis: 1_000,
            id: 1,
        };
        let answer: Vec<_> = (101..=300).map(|id| message(id, id)).collect();
        let fill_in = select(answer, After::Message(last), |_| false, 200);
        assert_eq!(fill_in.messages.len(), 200);
        assert!(!fill_in.complete);
        let reaching: Vec<_> = (1..=200).map(|id| message(id, id)).collect();
        assert!(select(reaching, After::Message(last), |_| false, 200).complete);
    }

    #[test]
    fn the_time_of_the_loss_bounds_a_chat_with_no_message_before() {
        let answer = vec![message(1, 4), message(2, 5), message(3, 6)];
        let fill_in = select(answer, After::Time(5_000), |_| false, 200);
        assert_eq!(ids(&fill_in), [2, 3]);
    }
}
