//! The VK event catalogue against its fixtures (`tests/fixtures/*.json`) and
//! against hostile input. Each fixture test compares whole structs, so every
//! field is asserted; run with `--features strict` too, where a fixture
//! field the types do not know fails the test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use vklive_pubsub::event::{
    Author, Badge, ChannelCounters, ChannelInfo, ChannelKey, ChannelOwner, ChannelRef,
    ChannelResponse, ChatMessage, ChatMessageDelete, EventKind, Follow, LinkPart, MentionPart,
    NickColor, PALETTE, Part, Raid, RaidSource, Reward, RewardDemand, Role, SmilePart,
    StreamCategory, StreamCounters, StreamEventKind, StreamInfo, Subscription, SubscriptionLevel,
    TextPart, Timestamp, UnknownEvent, User, VkEvent, WebSocketChannels, kind, plain_text,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("test JSON is valid")
}

fn decode(json: &str) -> VkEvent {
    VkEvent::decode(&raw(json))
}

fn decode_fixture(name: &str) -> VkEvent {
    decode(&fixture(name))
}

fn ts(seconds: i64) -> Option<Timestamp> {
    Timestamp::from_unix_seconds(seconds)
}

fn text(content: &str) -> Part {
    Part::Text(TextPart {
        content: content.to_owned(),
    })
}

fn user(id: i64, nick: &str, nick_color: Option<i64>) -> User {
    User {
        id: Some(id),
        nick: nick.to_owned(),
        nick_color: nick_color.map(NickColor),
    }
}

fn urls(base: &str) -> [Option<String>; 3] {
    ["small", "medium", "large"].map(|size| Some(format!("{base}/{size}.png")))
}

/// The unknown event a payload must become, with its raw text untouched.
fn assert_unknown(json: &str, expected_kind: &str) {
    match decode(json) {
        VkEvent::Unknown(unknown) => {
            assert_eq!(unknown.kind, expected_kind, "kind of {json}");
            assert_eq!(unknown.raw.get(), json, "raw of {json}");
        }
        other => panic!("{json} decoded as {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Fixtures, one per event type
// ---------------------------------------------------------------------------

fn expected_chat_message() -> ChatMessage {
    let [sub_s, sub_m, sub_l] = urls("https://images.live.vkvideo.ru/badge/sub");
    let [cus_s, cus_m, cus_l] = urls("https://images.live.vkvideo.ru/badge/custom");
    let [vip_s, vip_m, vip_l] = urls("https://images.live.vkvideo.ru/role/vip");
    let [smile_s, smile_m, smile_l] = urls("https://images.live.vkvideo.ru/smile/kappa");
    ChatMessage {
        id: 627867254,
        created_at: ts(1785110751),
        is_private: false,
        author: Some(Author {
            id: 35461641,
            nick: "Зритель_42".into(),
            nick_color: Some(NickColor(7)),
            avatar_url: Some("https://images.live.vkvideo.ru/avatar/35461641.png".into()),
            is_owner: false,
            is_moderator: true,
            badges: vec![
                Badge {
                    id: "8d4a6b3e-1f2c-4a5b-9c7d-0e1f2a3b4c5d".into(),
                    name: String::new(),
                    achievement_name: "subscription_01".into(),
                    small_url: sub_s,
                    medium_url: sub_m,
                    large_url: sub_l,
                },
                Badge {
                    id: "2c1b0a9f-8e7d-4c6b-5a49-382716051423".into(),
                    name: "Ветеран канала".into(),
                    achievement_name: "custom".into(),
                    small_url: cus_s,
                    medium_url: cus_m,
                    large_url: cus_l,
                },
            ],
            roles: vec![Role {
                id: "5e6f7a8b-9c0d-4e1f-2a3b-4c5d6e7f8a9b".into(),
                name: "VIP".into(),
                small_url: vip_s,
                medium_url: vip_m,
                large_url: vip_l,
            }],
        }),
        parts: vec![
            text("Привет, чат! 🎉 !sr "),
            Part::Link(LinkPart {
                content: "youtu.be/x".into(),
                url: "https://youtu.be/x".into(),
            }),
            text(" спасибо "),
            Part::Mention(MentionPart {
                id: Some(123),
                nick: "Стример".into(),
            }),
            text(" "),
            Part::Smile(SmilePart {
                id: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d".into(),
                name: "Kappa".into(),
                animated: false,
                small_url: smile_s,
                medium_url: smile_m,
                large_url: smile_l,
            }),
            text("\n"),
        ],
    }
}

#[test]
fn chat_message_fixture_decodes_every_field() {
    let event = decode_fixture("channel_chat_message_send.json");
    assert_eq!(event.kind(), "channel_chat_message_send");
    assert_eq!(
        event,
        VkEvent::ChatMessage(Box::new(expected_chat_message()))
    );
}

#[test]
fn chat_message_helpers_on_the_fixture() {
    let message = expected_chat_message();
    assert_eq!(
        message.plain_text(),
        "Привет, чат! 🎉 !sr youtu.be/x спасибо @Стример :Kappa:"
    );
    let author = message.author.expect("fixture has an author");
    assert!(author.is_subscriber());
    assert!(!author.is_platform_bot());
    assert_eq!(author.nick_color_hex(), Some("#20BBA1"));
    assert_eq!(
        message.created_at.map(Timestamp::unix_seconds),
        Some(1785110751)
    );
}

#[test]
fn platform_bot_notice_fixture() {
    let VkEvent::ChatMessage(message) = decode_fixture("channel_chat_message_send_bot.json") else {
        panic!("bot notice did not decode as a chat message");
    };
    let expected = ChatMessage {
        id: 627867300,
        created_at: ts(1785110800),
        is_private: false,
        author: Some(Author {
            id: 1,
            nick: "ChatBot".into(),
            nick_color: Some(NickColor(0)),
            avatar_url: None,
            is_owner: false,
            is_moderator: false,
            badges: vec![Badge {
                id: "bot".into(),
                name: String::new(),
                achievement_name: "internal_chatbot".into(),
                small_url: Some("https://images.live.vkvideo.ru/badge/bot/small.png".into()),
                medium_url: Some("https://images.live.vkvideo.ru/badge/bot/medium.png".into()),
                large_url: Some("https://images.live.vkvideo.ru/badge/bot/large.png".into()),
            }],
            roles: vec![],
        }),
        parts: vec![
            Part::Mention(MentionPart {
                id: Some(555),
                nick: "tester".into(),
            }),
            text(" получает награду: Заказ трека за 100"),
        ],
    };
    assert_eq!(*message, expected);
    let author = message.author.as_ref().expect("has an author");
    assert!(author.is_platform_bot());
    assert!(!author.is_subscriber());
    assert_eq!(
        message.plain_text(),
        "@tester получает награду: Заказ трека за 100"
    );
}

#[test]
fn chat_message_delete_fixture() {
    let event = decode_fixture("channel_chat_message_delete.json");
    assert_eq!(event.kind(), kind::CHAT_MESSAGE_DELETE);
    assert_eq!(
        event,
        VkEvent::ChatMessageDelete(ChatMessageDelete { id: 627867254 })
    );
}

#[test]
fn follow_fixture() {
    let event = decode_fixture("channel_follow_create.json");
    assert_eq!(event.kind(), kind::FOLLOW_CREATE);
    let expected = Follow {
        follower: user(1, "newbie", Some(5)),
    };
    assert_eq!(event, VkEvent::Follow(expected));
}

#[test]
fn raid_fixture() {
    let event = decode_fixture("channel_raid_income.json");
    assert_eq!(event.kind(), kind::RAID_INCOME);
    let expected = Raid {
        source: RaidSource {
            owner: Some(user(1, "raider", Some(2))),
            channel: Some(ChannelRef {
                url: "raiderchannel".into(),
            }),
        },
        raiders_count: Some(42),
        started_at: ts(1700000000),
    };
    assert_eq!(event, VkEvent::Raid(Box::new(expected)));
}

#[test]
fn subscription_fixture() {
    let event = decode_fixture("channel_subscription_create.json");
    assert_eq!(event.kind(), kind::SUBSCRIPTION_CREATE);
    let expected = Subscription {
        subscriber: Some(user(1, "fan", Some(4))),
        level: Some(SubscriptionLevel {
            id: Some("3f2e1d0c-b9a8-4765-8432-10fedcba9876".into()),
            name: Some("Tier name".into()),
            price: Some(99),
        }),
        amount: Some(99),
        days_duration: Some(30),
        kind: Some("first_subscription".into()),
        started_at: ts(1700000000),
        ended_at: None,
        renewed_at: None,
        changed_at: None,
        previous_level: None,
    };
    assert_eq!(event, VkEvent::Subscription(Box::new(expected)));
}

#[test]
fn reward_demand_fixture() {
    let event = decode_fixture("channel_points_reward_demand_create.json");
    assert_eq!(event.kind(), kind::POINTS_REWARD_DEMAND_CREATE);
    let expected = RewardDemand {
        id: 9179,
        created_at: ts(1787682950),
        user: Some(User {
            id: Some(555),
            nick: "tester".into(),
            nick_color: None,
        }),
        reward: Reward {
            id: "bc211809-1e52-4180-8dbc-e106649ef78a".into(),
            name: None,
            price: None,
        },
        message_parts: vec![text("play song X")],
        message: None,
        status: None,
    };
    assert_eq!(event, VkEvent::RewardDemand(Box::new(expected.clone())));
    assert_eq!(expected.message_text(), "play song X");
}

#[test]
fn reward_demand_with_plain_message_string() {
    let json = r#"{"type":"channel_points_reward_demand_create","data":{"demand":{"id":1,"reward":{"id":"r","name":"Hydrate","price":500},"message":"пей воду","status":"pending"}}}"#;
    let VkEvent::RewardDemand(demand) = decode(json) else {
        panic!("did not decode");
    };
    assert_eq!(demand.message.as_deref(), Some("пей воду"));
    assert_eq!(demand.message_text(), "пей воду");
    assert_eq!(demand.reward.name.as_deref(), Some("Hydrate"));
    assert_eq!(demand.reward.price, Some(500));
    assert_eq!(demand.status.as_deref(), Some("pending"));
    assert_eq!(demand.user, None);
    assert_eq!(demand.created_at, None);
}

#[test]
fn stream_fixtures_are_typed_by_kind_with_raw_data() {
    let kinds = [
        ("start", StreamEventKind::Start),
        ("pause", StreamEventKind::Pause),
        ("resume", StreamEventKind::Resume),
        ("stop", StreamEventKind::Stop),
        ("settings_change", StreamEventKind::SettingsChange),
        ("record_new", StreamEventKind::RecordNew),
    ];
    for (suffix, expected) in kinds {
        let name = format!("channel_stream_{suffix}");
        let VkEvent::Stream(event) = decode_fixture(&format!("{name}.json")) else {
            panic!("{name} is not a stream event");
        };
        assert_eq!(event.kind, expected);
        assert_eq!(event.kind.as_str(), name);
        assert_eq!(StreamEventKind::from_type(&name), Some(expected));
        assert_eq!(event.data.get(), "{}");
    }
}

#[test]
fn stream_event_keeps_any_data_and_tolerates_none() {
    let json = r#"{"type":"channel_stream_start","data":{"stream":{"id":"x","title":"Привет"}}}"#;
    let VkEvent::Stream(event) = decode(json) else {
        panic!("not a stream event");
    };
    assert_eq!(
        event.data.get(),
        r#"{"stream":{"id":"x","title":"Привет"}}"#
    );
    let VkEvent::Stream(bare) = decode(r#"{"type":"channel_stream_stop"}"#) else {
        panic!("a stream event without data is still a stream event");
    };
    assert_eq!(bare.data.get(), "null");
}

fn expected_channel_response() -> ChannelResponse {
    ChannelResponse {
        channel: ChannelInfo {
            id: 123456,
            url: "somechannel".into(),
            nick: "SomeChannel".into(),
            nick_color: Some(NickColor(3)),
            avatar_url: Some("https://images.live.vkvideo.ru/avatar/123456.png".into()),
            status: Some("online".into()),
            counters: Some(ChannelCounters {
                subscribers: Some(128),
            }),
            web_socket_channels: WebSocketChannels {
                chat: Some("api-channel-chat:123456".into()),
                private_chat: Some("api-channel-chat:123456#777".into()),
                info: Some("api-channel-info:123456".into()),
                private_info: Some("api-channel-info:123456#777".into()),
                channel_points: Some("api-channel-points:123456".into()),
                private_channel_points: Some("api-channel-points:123456#777".into()),
                limited_chat: Some("api-limited-chat:123456".into()),
                limited_private_chat: Some("api-limited-chat:123456#777".into()),
            },
        },
        owner: Some(ChannelOwner {
            id: Some(123456),
            nick: "SomeChannel".into(),
            nick_color: Some(NickColor(3)),
            avatar_url: None,
            is_verified_streamer: true,
        }),
        stream: Some(StreamInfo {
            id: "0b7c6d5e-4f3a-4b2c-9d1e-0f9e8d7c6b5a".into(),
            title: "Стрим: проходим игру".into(),
            started_at: ts(1700000000),
            ended_at: None,
            category: Some(StreamCategory {
                id: "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d".into(),
                title: "Just Chatting".into(),
                kind: Some("game".into()),
            }),
            counters: Some(StreamCounters {
                viewers: Some(512),
                views: Some(1024),
            }),
        }),
        streams: vec![],
    }
}

#[test]
fn channel_info_fixture_decodes_every_field() {
    let answer = ChannelResponse::from_json(&fixture("channel_info.json")).expect("decodes");
    assert_eq!(answer, expected_channel_response());
    assert!(answer.stream.as_ref().is_some_and(StreamInfo::is_live));
}

#[test]
fn web_socket_channels_split_public_and_private() {
    let channels = expected_channel_response().channel.web_socket_channels;
    assert_eq!(
        channels.public(),
        [
            "api-channel-chat:123456",
            "api-channel-info:123456",
            "api-channel-points:123456"
        ]
    );
    assert_eq!(
        channels.private(),
        [
            "api-channel-chat:123456#777",
            "api-channel-info:123456#777",
            "api-channel-points:123456#777",
            "api-limited-chat:123456",
            "api-limited-chat:123456#777"
        ]
    );
    assert_eq!(channels.all().len(), 8);
    assert_eq!(channels.all()[..3], channels.public()[..]);
    assert_eq!(
        channels.get(ChannelKey::Info),
        Some("api-channel-info:123456")
    );
    assert!(
        ChannelKey::ALL
            .iter()
            .all(|key| channels.get(*key).is_some())
    );
}

#[test]
fn web_socket_channels_skip_absent_and_empty_names() {
    let channels: WebSocketChannels =
        serde_json::from_str(r#"{"chat":"c","info":"","private_chat":null}"#).expect("decodes");
    assert_eq!(channels.public(), ["c"]);
    assert!(channels.private().is_empty());
    assert_eq!(channels.all(), ["c"]);
}

#[test]
fn web_socket_channels_accept_the_php_sdk_key() {
    let channels: WebSocketChannels =
        serde_json::from_str(r#"{"private_limited_chat":"lp"}"#).expect("decodes");
    assert_eq!(channels.limited_private_chat.as_deref(), Some("lp"));
    assert_eq!(channels.private(), ["lp"]);
    let both: WebSocketChannels =
        serde_json::from_str(r#"{"limited_private_chat":"doc","private_limited_chat":"sdk"}"#)
            .expect("both keys at once still decode");
    assert_eq!(both.limited_private_chat.as_deref(), Some("doc"));
}

#[test]
fn channel_info_offline_stream_null_or_absent() {
    for stream in [r#","stream":null"#, ""] {
        let body = format!(r#"{{"data":{{"channel":{{"id":1,"url":"c"}},"owner":null{stream}}}}}"#);
        let answer = ChannelResponse::from_json(&body).expect("decodes");
        assert_eq!(answer.stream, None, "{body}");
        assert_eq!(answer.owner, None);
        assert_eq!(
            answer.channel.web_socket_channels,
            WebSocketChannels::default()
        );
    }
}

#[test]
fn channel_info_error_answer_is_an_error() {
    let body = r#"{"error":"unauthorized","error_description":"Not authorized"}"#;
    assert!(ChannelResponse::from_json(body).is_err());
}

#[test]
fn stream_liveness_follows_ended_at() {
    let live = |ended: &str| {
        let stream: StreamInfo =
            serde_json::from_str(&format!(r#"{{"id":"s"{ended}}}"#)).expect("decodes");
        stream.is_live()
    };
    assert!(live(""));
    assert!(live(r#","ended_at":null"#));
    assert!(live(r#","ended_at":0"#));
    assert!(!live(r#","ended_at":1700000100"#));
}

// ---------------------------------------------------------------------------
// Unknown and malformed input
// ---------------------------------------------------------------------------

#[test]
fn unknown_event_type_arrives_intact() {
    let json =
        r#"{ "type": "reaction", "data": {"reaction": {"emoji": "🔥", "count": 3}}, "id": 9 }"#;
    assert_unknown(json, "reaction");
}

#[test]
fn internal_api_types_are_recognised_as_such() {
    let VkEvent::Unknown(unknown) = decode(r#"{"type":"message","data":{"isPrivate":false}}"#)
    else {
        panic!("internal types are not typed");
    };
    assert!(unknown.is_internal_api());
    let VkEvent::Unknown(other) = decode(r#"{"type":"reaction","data":{}}"#) else {
        panic!("reaction is not typed");
    };
    assert!(!other.is_internal_api());
}

#[test]
fn unknown_part_kind_is_kept_as_the_raw_part() {
    let json = r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":1,"parts":[
        {"text":{"content":"a"}},
        {"poll": {"id": 5, "question": "Да?"}},
        {"sticker\"x":[1,2]},
        {}
    ]}}}"#;
    let VkEvent::ChatMessage(message) = decode(json) else {
        panic!("an unknown part must not cost the message");
    };
    let raws: Vec<&str> = message
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Unknown(raw) => Some(raw.get()),
            _ => None,
        })
        .collect();
    assert_eq!(
        raws,
        [
            r#"{"poll":{"id": 5, "question": "Да?"}}"#,
            r#"{"sticker\"x":[1,2]}"#,
            "{}"
        ]
    );
    assert_eq!(message.parts[1].kind(), None);
    assert_eq!(message.parts[0].kind(), Some("text"));
    // Each rebuilt part is valid JSON and says what it held.
    let poll: serde_json::Value = serde_json::from_str(raws[0]).expect("valid JSON");
    assert_eq!(poll["poll"]["question"], "Да?");
    assert_eq!(message.plain_text(), "a");
}

#[test]
fn malformed_envelopes_become_unknown() {
    let cases = [
        ("[]", ""),
        ("[1,2]", ""),
        (r#""channel_chat_message_send""#, ""),
        ("42", ""),
        ("null", ""),
        ("true", ""),
        ("{}", ""),
        (r#"{"data":{"chat_message":{"id":1}}}"#, ""),
        (r#"{"type":5,"data":{}}"#, ""),
        (r#"{"type":null,"data":{}}"#, ""),
        (r#"{"type":"a","type":"b","data":{}}"#, ""),
        (r#"{"type":"","data":{}}"#, ""),
        (r#"{"type":"esc\"aped","data":{}}"#, "esc\"aped"),
    ];
    for (json, expected_kind) in cases {
        assert_unknown(json, expected_kind);
    }
}

#[test]
fn known_types_with_bad_data_become_unknown() {
    let chat = "channel_chat_message_send";
    let cases = [
        format!(r#"{{"type":"{chat}"}}"#),
        format!(r#"{{"type":"{chat}","data":null}}"#),
        format!(r#"{{"type":"{chat}","data":[]}}"#),
        format!(r#"{{"type":"{chat}","data":"text"}}"#),
        format!(r#"{{"type":"{chat}","data":{{}}}}"#),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":null}}}}"#),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":{{}}}}}}"#),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":{{"id":"abc"}}}}}}"#),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":{{"id":1.5}}}}}}"#),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":{{"id":1,"parts":{{}}}}}}}}"#),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":{{"id":1,"parts":["hi"]}}}}}}"#),
        format!(
            r#"{{"type":"{chat}","data":{{"chat_message":{{"id":1,"parts":[{{"text":5}}]}}}}}}"#
        ),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":{{"id":1,"created_at":true}}}}}}"#),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":{{"id":1,"created_at":"soon"}}}}}}"#),
        format!(
            r#"{{"type":"{chat}","data":{{"chat_message":{{"id":1,"author":{{"id":"x"}}}}}}}}"#
        ),
        format!(
            r#"{{"type":"{chat}","data":{{"chat_message":{{"id":1,"author":{{"id":2,"nick_color":"red"}}}}}}}}"#
        ),
        format!(r#"{{"type":"{chat}","data":{{"chat_message":{{"id":99999999999999999999}}}}}}"#),
        r#"{"type":"channel_chat_message_delete","data":{"chat_message":{}}}"#.to_owned(),
        r#"{"type":"channel_follow_create","data":{"follow":{"follower":{"id":"x"}}}}"#.to_owned(),
        r#"{"type":"channel_raid_income","data":{"raid":{"raiders_count":"many"}}}"#.to_owned(),
        r#"{"type":"channel_subscription_create","data":{"subscription":"x"}}"#.to_owned(),
        r#"{"type":"channel_points_reward_demand_create","data":{"demand":{"reward":{}}}}"#
            .to_owned(),
    ];
    for json in &cases {
        let expected_kind = serde_json::from_str::<serde_json::Value>(json).expect("valid")["type"]
            .as_str()
            .expect("has a type")
            .to_owned();
        assert_unknown(json, &expected_kind);
    }
}

#[test]
fn nulls_and_missing_fields_fall_back_to_defaults() {
    let json = r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":5,
        "created_at":null,"is_private":null,"parts":null,
        "author":{"id":6,"nick":null,"nick_color":null,"avatar_url":null,"is_owner":null,
            "is_moderator":null,"badges":null,"roles":null}}}}"#;
    let VkEvent::ChatMessage(message) = decode(json) else {
        panic!("nulls must be tolerated");
    };
    let expected = ChatMessage {
        id: 5,
        created_at: None,
        is_private: false,
        author: Some(Author {
            id: 6,
            ..Author::default()
        }),
        parts: vec![],
    };
    assert_eq!(*message, expected);
    let VkEvent::ChatMessage(bare) =
        decode(r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":5}}}"#)
    else {
        panic!("only the id is required");
    };
    assert_eq!(
        *bare,
        ChatMessage {
            author: None,
            ..expected
        }
    );
}

#[test]
fn numeric_string_ids_are_accepted() {
    let json = r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":1,
        "author":{"id":2,"badges":[{"id":77,"achievement_name":"owner"}]},
        "parts":[{"smile":{"id":12,"name":"x"}}]}}}"#;
    let VkEvent::ChatMessage(message) = decode(json) else {
        panic!("numeric string ids must be tolerated");
    };
    let author = message.author.expect("author");
    assert_eq!(author.badges[0].id, "77");
    assert!(matches!(&message.parts[0], Part::Smile(smile) if smile.id == "12"));
}

#[cfg(not(feature = "strict"))]
#[test]
fn unknown_fields_are_ignored_without_strict() {
    let json = r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":1,"new_field":[1],
        "parts":[{"text":{"content":"a","style":"bold"},"extra":{}}]},"channel":{"url":"c"}}}"#;
    let VkEvent::ChatMessage(message) = decode(json) else {
        panic!("unknown fields must be ignored");
    };
    assert_eq!(message.parts, [text("a")]);
}

#[cfg(feature = "strict")]
#[test]
fn unknown_fields_are_rejected_with_strict() {
    let cases = [
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":1,"new_field":[1]}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":1},"channel":{}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":1,"parts":[{"text":{"content":"a"},"extra":{}}]}}}"#,
        r#"{"type":"channel_follow_create","data":{"follow":{"follower":{"nick":"a","avatar":"x"}}}}"#,
    ];
    for json in cases {
        assert_unknown(json, &json[9..json.find("\",").expect("type")]);
    }
}

#[test]
fn no_panic_on_mutated_fixtures() {
    let replacements = ["", "null", "1", "\"x\"", "[]", "{}", "-1e999", "}", "\""];
    for name in [
        "channel_chat_message_send.json",
        "channel_raid_income.json",
        "channel_subscription_create.json",
        "channel_points_reward_demand_create.json",
    ] {
        let json = serde_json::to_string(
            &serde_json::from_str::<serde_json::Value>(&fixture(name)).expect("fixture is JSON"),
        )
        .expect("re-encodes");
        let boundaries: Vec<usize> = (0..=json.len())
            .filter(|i| json.is_char_boundary(*i))
            .collect();
        for window in boundaries.windows(2) {
            for replacement in replacements {
                let mutated = format!("{}{replacement}{}", &json[..window[0]], &json[window[1]..]);
                let event = VkEvent::decode_str(&mutated);
                // Whatever it became, it still names a kind and serializes.
                let _ = event.kind();
                serde_json::to_string(&event).expect("every event serializes");
            }
        }
    }
}

#[test]
fn decode_str_keeps_non_json_text() {
    let VkEvent::Unknown(unknown) = VkEvent::decode_str("not json \"at all\"") else {
        panic!("text is not an event");
    };
    assert_eq!(unknown.kind, "");
    assert_eq!(unknown.raw.get(), r#""not json \"at all\"""#);
}

// ---------------------------------------------------------------------------
// Timestamps, palette, helpers
// ---------------------------------------------------------------------------

fn read_ts(json: &str) -> Result<Timestamp, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn timestamps_in_seconds_and_milliseconds() {
    let expected = Timestamp::from_unix_millis(1_700_000_000_000);
    for json in [
        "1700000000",
        "1700000000000",
        "1700000000.0",
        "1.7e9",
        "1.7e12",
        r#""1700000000""#,
        r#"" 1700000000000 ""#,
        r#""1700000000.0""#,
    ] {
        assert_eq!(read_ts(json).expect(json), expected, "{json}");
    }
    let fractional = read_ts("1700000000.25").expect("fraction");
    assert_eq!(fractional.unix_millis(), 1_700_000_000_250);
    assert_eq!(fractional.unix_seconds(), 1_700_000_000);
    assert_eq!(
        read_ts("9999999999").expect("last second").unix_seconds(),
        9_999_999_999
    );
    assert_eq!(
        read_ts("10000000000").expect("first ms").unix_millis(),
        10_000_000_000
    );
    assert_eq!(read_ts("0").expect("epoch").unix_millis(), 0);
    assert_eq!(read_ts("-1").expect("before epoch").unix_millis(), -1000);
}

#[test]
fn bad_timestamps_are_errors_not_panics() {
    for json in [
        "true",
        "[]",
        "{}",
        r#""""#,
        r#""soon""#,
        r#""NaN""#,
        r#""inf""#,
        "1e300",
        "-1e300",
        "18446744073709551615",
        "-9223372036854775808",
    ] {
        assert!(read_ts(json).is_err(), "{json}");
    }
    assert_eq!(Timestamp::from_unix_seconds(i64::MAX), None);
    assert_eq!(Timestamp::from_wire_f64(f64::NAN), None);
}

#[test]
fn timestamps_convert_to_system_time_and_serialize_back() {
    let seconds = Timestamp::from_wire(1_785_110_751).expect("in range");
    assert_eq!(
        SystemTime::from(seconds),
        UNIX_EPOCH + Duration::from_secs(1_785_110_751)
    );
    assert_eq!(
        serde_json::to_string(&seconds).expect("serializes"),
        "1785110751"
    );
    let millis = Timestamp::from_unix_millis(1_785_110_751_500);
    assert_eq!(
        millis.system_time(),
        UNIX_EPOCH + Duration::from_millis(1_785_110_751_500)
    );
    let written = serde_json::to_string(&millis).expect("serializes");
    assert_eq!(written, "1785110751500");
    assert_eq!(read_ts(&written).expect("reads back"), millis);
    let before = Timestamp::from_unix_millis(-1500);
    assert_eq!(before.unix_seconds(), -2);
    assert!(before.system_time() <= UNIX_EPOCH);
}

#[test]
fn palette_maps_the_sixteen_indices() {
    let expected = [
        "#D66E34", "#B8AAFF", "#1D90FF", "#9961F9", "#59A840", "#E73629", "#DE6489", "#20BBA1",
        "#F8B301", "#0099BB", "#7BBEFF", "#E542FF", "#A36C59", "#8BA259", "#00A9FF", "#A20BFF",
    ];
    assert_eq!(PALETTE, expected);
    for (index, hex) in expected.iter().enumerate() {
        let color = NickColor(index as i64);
        assert_eq!(color.hex(), Some(*hex));
        assert_eq!(color.index(), Some(index as u8));
    }
    assert_eq!(NickColor(0).rgb(), Some([0xD6, 0x6E, 0x34]));
    assert_eq!(NickColor(15).rgb(), Some([0xA2, 0x0B, 0xFF]));
}

#[test]
fn palette_out_of_range_is_unknown() {
    for value in [-1, 16, 255, 256, i64::MIN, i64::MAX] {
        let color = NickColor(value);
        assert_eq!(color.hex(), None, "{value}");
        assert_eq!(color.index(), None, "{value}");
        assert_eq!(color.rgb(), None, "{value}");
    }
    // An out-of-range colour still decodes the message.
    let json = r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":1,"author":{"id":2,"nick_color":300}}}}"#;
    let VkEvent::ChatMessage(message) = decode(json) else {
        panic!("out-of-range colour must not cost the message");
    };
    let author = message.author.expect("author");
    assert_eq!(author.nick_color, Some(NickColor(300)));
    assert_eq!(author.nick_color_hex(), None);
    assert_eq!(Author::default().nick_color_hex(), None);
}

#[test]
fn plain_text_rules() {
    let parts = [
        text("  hi "),
        Part::Mention(MentionPart {
            id: Some(9),
            nick: String::new(),
        }),
        text(" "),
        Part::Link(LinkPart {
            content: String::new(),
            url: "https://vk.com".into(),
        }),
        text("\nline two"),
        Part::Unknown(raw(r#"{"poll":{}}"#)),
        text(" \n"),
        text("\n"),
    ];
    assert_eq!(plain_text(&parts), "  hi @9 https://vk.com\nline two");
    assert_eq!(plain_text(&[]), "");
    assert_eq!(plain_text(&[text("\n")]), "");
}

#[test]
fn subscriber_and_bot_helpers() {
    let with = |names: &[&str]| Author {
        badges: names
            .iter()
            .map(|name| Badge {
                achievement_name: (*name).to_owned(),
                ..Badge::default()
            })
            .collect(),
        ..Author::default()
    };
    assert!(with(&["subscription_01"]).is_subscriber());
    assert!(with(&["owner", "subscription_12"]).is_subscriber());
    assert!(with(&["subscription"]).is_subscriber());
    assert!(!with(&["owner", "verified_streamer"]).is_subscriber());
    assert!(!with(&["Subscription_01"]).is_subscriber());
    assert!(!with(&[]).is_subscriber());
    assert!(with(&["internal_chatbot"]).is_platform_bot());
    assert!(!with(&["internal_chatbot_2", "owner"]).is_platform_bot());
}

// ---------------------------------------------------------------------------
// Serialization
// ---------------------------------------------------------------------------

#[test]
fn events_serialize_untagged_for_ndjson() {
    let event = decode_fixture("channel_follow_create.json");
    let line = serde_json::json!({"type": event.kind(), "data": event}).to_string();
    assert_eq!(
        line,
        r#"{"data":{"follower":{"id":1,"nick":"newbie","nick_color":5}},"type":"channel_follow_create"}"#
    );
}

#[test]
fn unknown_events_serialize_their_raw_payload() {
    let json = r#"{"type":"reaction","data":{"x":[1, 2]}}"#;
    let event = decode(json);
    assert_eq!(serde_json::to_string(&event).expect("serializes"), json);
    let unknown = UnknownEvent {
        kind: "reaction".into(),
        raw: raw(json),
    };
    assert_eq!(event, VkEvent::Unknown(unknown));
}

#[test]
fn typed_structs_serialize_back_to_what_they_read() {
    let message = expected_chat_message();
    let written = serde_json::to_string(&message).expect("serializes");
    let read: ChatMessage = serde_json::from_str(&written).expect("reads back");
    assert_eq!(read, message);
    // Parts keep the wire shape, so the payload can be rebuilt from the type.
    let parts = serde_json::to_value(&message.parts).expect("serializes");
    assert_eq!(parts[1]["link"]["url"], "https://youtu.be/x");
    assert_eq!(parts[0]["text"]["content"], "Привет, чат! 🎉 !sr ");

    let answer = expected_channel_response();
    let written = serde_json::to_string(&answer).expect("serializes");
    let read: ChannelResponse = serde_json::from_str(&written).expect("reads back");
    assert_eq!(read, answer);
}

/// Every kind's fixtures, serialized and wrapped again by the table's
/// `data_key`, read back to the same event.
#[test]
fn every_fixture_event_round_trips_through_serialize() {
    for kind in EventKind::ALL {
        for wire in kind.wire_types() {
            let name = format!("{wire}.json");
            let event = decode_fixture(&name);
            let data = serde_json::to_value(&event).expect("serializes");
            let data = match kind.data_key() {
                Some(key) => serde_json::json!({ key: data }),
                None => data,
            };
            let rebuilt = serde_json::json!({"type": event.kind(), "data": data}).to_string();
            assert_eq!(decode(&rebuilt), event, "{name}");
        }
    }
}

// ---------------------------------------------------------------------------
// With the rest of the crate
// ---------------------------------------------------------------------------

#[test]
fn frame_lines_decode_to_events_in_order() {
    use vklive_pubsub::protocol::{Reply, decode_frame};
    let chat: serde_json::Value =
        serde_json::from_str(&fixture("channel_chat_message_send.json")).expect("JSON");
    let frame = [
        format!(
            r#"{{"push":{{"channel":"api-channel-chat:1","pub":{{"data":{chat},"offset":7}}}}}}"#
        ),
        "{}".to_owned(),
        "not json".to_owned(),
        r#"{"push":{"channel":"api-channel-info:1","pub":{"data":{"type":"reaction","data":{}}}}}"#
            .to_owned(),
    ]
    .join("\n");
    let events: Vec<VkEvent> = decode_frame::<Reply>(&frame)
        .filter_map(Result::ok)
        .filter_map(|reply| reply.push?.publication)
        .map(|publication| VkEvent::decode(&publication.data))
        .collect();
    let kinds: Vec<&str> = events.iter().map(VkEvent::kind).collect();
    assert_eq!(kinds, ["channel_chat_message_send", "reaction"]);
    assert_eq!(
        events[0],
        VkEvent::ChatMessage(Box::new(expected_chat_message()))
    );
}

/// A `Write` into a shared buffer, to read back what tracing printed.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn decode_failures_are_logged_at_debug_without_payload_values() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let json =
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":"SECRET_TEXT"}}}"#;
    let event = tracing::subscriber::with_default(subscriber, || {
        // Another test's thread may have registered the decoder's log line
        // while no subscriber wanted it, caching "never" for it: ask again
        // now that this one is in place (the race made this test flaky).
        tracing::callsite::rebuild_interest_cache();
        decode(json)
    });
    assert!(matches!(event, VkEvent::Unknown(_)));
    let output =
        String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("UTF-8");
    assert!(output.contains("DEBUG"), "{output}");
    assert!(output.contains("channel_chat_message_send"), "{output}");
    assert!(!output.contains("SECRET_TEXT"), "{output}");
}
