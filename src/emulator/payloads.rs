//! Payload builders for VK events (the `{"type":…,"data":…}` envelopes of
//! vk-devapi.md §6) and the demo users, phrases and rewards they draw from.
//!
//! The builders are public so tests and benchmarks can make realistic
//! payloads: `emulator.publish(&names.chat, demo_chat_message(1, "привет"))`.

use serde_json::{Value, json};

use super::clock::unix_now;

const IMAGES: &str = "https://images.emulator.invalid";

/// A viewer, moderator or owner that demo payloads use as author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoUser {
    /// User id.
    pub id: u64,
    /// Nick (Cyrillic or Latin).
    pub nick: String,
    /// Palette index 0–15.
    pub nick_color: u8,
    /// The channel owner.
    pub is_owner: bool,
    /// A chat moderator.
    pub is_moderator: bool,
    /// A paid subscriber (gets the `subscription_01` badge).
    pub is_subscriber: bool,
}

impl DemoUser {
    /// A plain viewer.
    pub fn new(id: u64, nick: &str) -> DemoUser {
        DemoUser {
            id,
            nick: nick.to_owned(),
            nick_color: (id % 16) as u8,
            is_owner: false,
            is_moderator: false,
            is_subscriber: false,
        }
    }

    fn avatar_url(&self) -> String {
        format!("{IMAGES}/avatar/{}.png", self.id)
    }

    /// The short `{id, nick, nick_color}` form used by follows, raids, …
    fn short(&self) -> Value {
        json!({"id": self.id, "nick": self.nick, "nick_color": self.nick_color})
    }

    /// The chat `author` object (vk-devapi.md §6.1).
    fn author(&self) -> Value {
        let mut badges = Vec::new();
        if self.is_owner {
            badges.push(badge("owner"));
        }
        if self.is_subscriber {
            badges.push(badge("subscription_01"));
        }
        let mut roles = Vec::new();
        if self.is_moderator {
            roles.push(json!({
                "id": "5f0c1a52-0000-4000-8000-00000000m0d1",
                "name": "Модератор",
                "small_url": format!("{IMAGES}/roles/moderator/small.png"),
                "medium_url": format!("{IMAGES}/roles/moderator/medium.png"),
                "large_url": format!("{IMAGES}/roles/moderator/large.png"),
            }));
        }
        json!({
            "id": self.id,
            "nick": self.nick,
            "nick_color": self.nick_color,
            "avatar_url": self.avatar_url(),
            "is_owner": self.is_owner,
            "is_moderator": self.is_moderator,
            "badges": badges,
            "roles": roles,
        })
    }
}

fn badge(achievement: &str) -> Value {
    json!({
        "id": format!("badge-{achievement}"),
        "name": "",
        "achievement_name": achievement,
        "small_url": format!("{IMAGES}/badges/{achievement}/small.png"),
        "medium_url": format!("{IMAGES}/badges/{achievement}/medium.png"),
        "large_url": format!("{IMAGES}/badges/{achievement}/large.png"),
    })
}

/// A few dozen demo users: the first is the owner, a few are moderators,
/// some are subscribers; nicks are Cyrillic and Latin.
pub fn demo_users() -> Vec<DemoUser> {
    const NICKS: [&str; 36] = [
        "Стример",
        "Вася_Пупкин",
        "котик_мурзик",
        "Алёна",
        "Дед_Максим",
        "ночной_дозор",
        "Ёжик_в_тумане",
        "Сибиряк",
        "Настя🌸",
        "Батя",
        "Шарик",
        "ТанкистЪ",
        "Ирина_К",
        "пельмень",
        "Жора",
        "Лиса_Алиса",
        "Mr_Pickles",
        "xX_Sniper_Xx",
        "gamer2007",
        "NightOwl",
        "pixel_pusher",
        "LuckyLuke",
        "frostbyte",
        "tea_enjoyer",
        "Ghost",
        "captain_obvious",
        "Mila",
        "byte_me",
        "Neo",
        "sunny_day",
        "ДимонЧ",
        "Kotleta",
        "Лёха_42",
        "ZenMaster",
        "Юля",
        "чат_бот_не_я",
    ];
    NICKS
        .iter()
        .enumerate()
        .map(|(index, nick)| {
            let id = 10_000 + index as u64 * 7_919;
            let mut user = DemoUser::new(id, nick);
            user.is_owner = index == 0;
            user.is_moderator = index == 0 || index % 9 == 3;
            user.is_subscriber = index % 4 == 1;
            user
        })
        .collect()
}

/// A `text` message part.
pub fn text_part(content: &str) -> Value {
    json!({"text": {"content": content}})
}

/// A `mention` message part.
pub fn mention_part(id: u64, nick: &str) -> Value {
    json!({"mention": {"id": id, "nick": nick}})
}

/// A `smile` message part, with image URLs.
pub fn smile_part(id: &str, name: &str, animated: bool) -> Value {
    json!({"smile": {
        "id": id,
        "name": name,
        "animated": animated,
        "small_url": format!("{IMAGES}/smiles/{id}/small.png"),
        "medium_url": format!("{IMAGES}/smiles/{id}/medium.png"),
        "large_url": format!("{IMAGES}/smiles/{id}/large.png"),
    }})
}

/// A `link` message part.
pub fn link_part(url: &str) -> Value {
    json!({"link": {"content": url, "url": url}})
}

/// A `channel_chat_message_send` envelope (vk-devapi.md §6.1).
pub fn chat_message_send(id: i64, created_at: u64, author: &DemoUser, parts: Vec<Value>) -> Value {
    json!({
        "type": "channel_chat_message_send",
        "data": {"chat_message": {
            "id": id,
            "created_at": created_at,
            "is_private": false,
            "author": author.author(),
            "parts": parts,
        }},
    })
}

/// A chat message with one text part from a fixed viewer: the quickest way
/// to make a realistic `channel_chat_message_send` in a test or benchmark.
pub fn demo_chat_message(id: i64, text: &str) -> Value {
    let mut author = DemoUser::new(35_461_641, "viewer");
    author.nick_color = 7;
    chat_message_send(id, unix_now(), &author, vec![text_part(text)])
}

/// A `channel_chat_message_delete` envelope (§6.2).
pub fn chat_message_delete(id: i64) -> Value {
    json!({"type": "channel_chat_message_delete", "data": {"chat_message": {"id": id}}})
}

/// A `channel_follow_create` envelope (§6.3).
pub fn follow_create(follower: &DemoUser) -> Value {
    json!({"type": "channel_follow_create", "data": {"follow": {"follower": follower.short()}}})
}

/// A `channel_raid_income` envelope (§6.4).
pub fn raid_income(raider: &DemoUser, raiders_count: u64) -> Value {
    json!({"type": "channel_raid_income", "data": {"raid": {
        "source": {"owner": raider.short(), "channel": {"url": raider.nick.to_lowercase()}},
        "raiders_count": raiders_count,
        "started_at": unix_now(),
    }}})
}

/// A `channel_subscription_create` envelope (§6.5).
pub fn subscription_create(subscriber: &DemoUser, level_name: &str, price: u64) -> Value {
    json!({"type": "channel_subscription_create", "data": {"subscription": {
        "subscriber": subscriber.short(),
        "level": {"id": "3c1d5f3e-0000-4000-8000-000000000001", "name": level_name, "price": price},
        "amount": price,
        "days_duration": 30,
        "kind": "first_subscription",
        "started_at": unix_now(),
    }}})
}

/// A channel-points reward that demo payloads redeem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReward {
    /// Reward id (a UUID).
    pub id: String,
    /// Its title, as the streamer named it.
    pub name: String,
    /// Its price in channel points.
    pub price: i64,
}

impl DemoReward {
    /// A reward with this id, title and price.
    pub fn new(id: &str, name: &str, price: i64) -> DemoReward {
        DemoReward {
            id: id.to_owned(),
            name: name.to_owned(),
            price,
        }
    }
}

/// The id of the reward the demo traffic and `vklive trigger reward` redeem.
pub(crate) const SONG_REWARD_ID: &str = "bc211809-1e52-4180-8dbc-e106649ef78a";

/// A few rewards a channel might offer; the first is the one the demo
/// traffic and `vklive trigger reward` redeem.
pub fn demo_rewards() -> Vec<DemoReward> {
    vec![
        DemoReward::new(SONG_REWARD_ID, "Заказать трек", 500),
        DemoReward::new("5e7d0c1a-0000-4000-8000-000000000002", "Пей воду", 100),
        DemoReward::new("5e7d0c1a-0000-4000-8000-000000000003", "Hydrate", 250),
    ]
}

/// A `channel_points_reward_demand_create` envelope (§6.6) for the reward
/// `reward_id`: it carries the title and price of the demo reward with that
/// id (see [`demo_rewards`]), or the title "Награда" for another id, so a
/// client always has a name to show.
pub fn reward_demand_create(id: i64, user: &DemoUser, reward_id: &str, text: &str) -> Value {
    let reward = demo_rewards()
        .into_iter()
        .find(|reward| reward.id == reward_id)
        .unwrap_or_else(|| DemoReward::new(reward_id, "Награда", 100));
    reward_demand(id, user, &reward, text)
}

/// A `channel_points_reward_demand_create` envelope (§6.6) for `reward`.
pub fn reward_demand(id: i64, user: &DemoUser, reward: &DemoReward, text: &str) -> Value {
    json!({"type": "channel_points_reward_demand_create", "data": {"demand": {
        "id": id,
        "created_at": unix_now(),
        "user": {"id": user.id, "nick": user.nick},
        "reward": {"id": reward.id, "name": reward.name, "price": reward.price},
        "message_parts": [text_part(text)],
    }}})
}

pub(crate) const PHRASES: [&str; 24] = [
    "привет всем 👋",
    "GG 🔥🔥🔥",
    "ахахах 😂",
    "когда следующий стрим?",
    "лучший стрим недели 💯",
    "а что за игра?",
    "всем добра ❤️",
    "ну давай, давай!",
    "F",
    "это было больно 😬",
    "музыка огонь 🎶",
    "сколько часов уже играешь?",
    "hello from Berlin 🇩🇪",
    "lol",
    "nice play!",
    "pog",
    "first time here, hi 🙂",
    "chat is so fast today",
    "ez",
    "можно музыку погромче?",
    "Ёлки-палки, вот это поворот",
    "🎉🎉🎉",
    "кто тут из Питера?",
    "ставлю лайк 👍",
];

const SMILES: [(&str, &str, bool); 5] = [
    ("b7f2a1d4-0000-4000-8000-000000000001", "Kappa", false),
    ("b7f2a1d4-0000-4000-8000-000000000002", "PogChamp", false),
    ("b7f2a1d4-0000-4000-8000-000000000003", "котэ", true),
    ("b7f2a1d4-0000-4000-8000-000000000004", "LUL", false),
    ("b7f2a1d4-0000-4000-8000-000000000005", "ура", true),
];

const LINKS: [&str; 3] = [
    "https://youtu.be/dQw4w9WgXcQ",
    "https://live.vkvideo.ru/",
    "https://example.org/обзор?id=42",
];

pub(crate) fn pick<T>(items: &[T]) -> &T {
    &items[fastrand::usize(..items.len())]
}

pub(crate) fn pick_str(items: &[&'static str]) -> &'static str {
    items[fastrand::usize(..items.len())]
}

pub(crate) fn random_parts(users: &[DemoUser]) -> Vec<Value> {
    let mut parts = Vec::new();
    match fastrand::u32(..100) {
        0..=54 => parts.push(text_part(pick_str(&PHRASES))),
        55..=69 => {
            let target = pick(users);
            parts.push(mention_part(target.id, &target.nick));
            parts.push(text_part(&format!(", {}", pick_str(&PHRASES))));
        }
        70..=84 => {
            let (id, name, animated) = *pick(&SMILES);
            parts.push(text_part(&format!("{} ", pick_str(&PHRASES))));
            parts.push(smile_part(id, name, animated));
        }
        85..=92 => {
            parts.push(text_part("!sr "));
            parts.push(link_part(pick_str(&LINKS)));
        }
        _ => {
            let (id, name, animated) = *pick(&SMILES);
            parts.push(smile_part(id, name, animated));
            parts.push(smile_part(id, name, animated));
        }
    }
    if fastrand::u32(..10) == 0 {
        // Real clients send a trailing newline part now and then.
        parts.push(text_part("\n"));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_message_has_the_documented_shape() {
        let payload = demo_chat_message(7, "привет 👋");
        assert_eq!(payload["type"], "channel_chat_message_send");
        let message = &payload["data"]["chat_message"];
        assert_eq!(message["id"], 7);
        assert_eq!(message["parts"][0]["text"]["content"], "привет 👋");
        assert!(message["author"]["nick_color"].as_u64().unwrap() < 16);
        assert!(message["author"]["badges"].is_array());
    }

    #[test]
    fn reward_demands_carry_the_reward_s_title_and_price() {
        let user = DemoUser::new(5, "fan");
        let demand = reward_demand_create(1, &user, SONG_REWARD_ID, "play X");
        let reward = &demand["data"]["demand"]["reward"];
        assert_eq!(reward["name"], "Заказать трек");
        assert_eq!(reward["price"], 500);
        let other = reward_demand_create(2, &user, "unknown-reward", "x");
        assert_eq!(other["data"]["demand"]["reward"]["id"], "unknown-reward");
        assert!(other["data"]["demand"]["reward"]["name"].is_string());
    }

    #[test]
    fn demo_users_mix_owner_moderators_and_subscribers() {
        let users = demo_users();
        assert!(users.len() >= 30);
        assert!(users[0].is_owner);
        assert!(users.iter().filter(|u| u.is_moderator).count() >= 3);
        assert!(users.iter().any(|u| u.is_subscriber));
        assert!(users.iter().all(|u| u.nick_color < 16));
        let author = users[1].author();
        assert_eq!(
            author["badges"][0]["achievement_name"], "subscription_01",
            "{author}"
        );
    }

    #[test]
    fn random_parts_are_one_of_the_four_kinds() {
        let users = demo_users();
        for _ in 0..500 {
            for part in random_parts(&users) {
                let object = part.as_object().unwrap();
                assert_eq!(object.len(), 1);
                let kind = object.keys().next().unwrap();
                assert!(["text", "mention", "smile", "link"].contains(&kind.as_str()));
            }
        }
    }
}
