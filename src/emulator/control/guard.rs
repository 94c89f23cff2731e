//! What keeps a web page from driving the control API.
//!
//! A page on any site can make the browser send a "simple" cross-origin POST
//! (`text/plain`, a form, or no body) to `127.0.0.1`, and a page behind DNS
//! rebinding can even read the answer. So a control request must name the
//! emulator as its `Host` (a loopback name or address, or the address it
//! listens on), must not come from another `Origin` (403 both), and a POST
//! must say `Content-Type: application/json` (415), which no simple request
//! can.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::emulator::http::vk_error;

/// Why a control request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A POST whose body is not declared JSON.
    NotJson,
    /// An `Origin` other than the emulator's own.
    ForeignOrigin(String),
    /// A `Host` that names something other than the emulator.
    ForeignHost(String),
}

/// The middleware: passes the request on, or answers the refusal.
pub(super) async fn check(
    State(bound): State<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match refusal(request.method(), host.as_deref(), request.headers(), bound) {
        None => next.run(request).await,
        Some(refusal) => answer(&refusal),
    }
}

fn answer(refusal: &Refusal) -> Response {
    match refusal {
        Refusal::NotJson => vk_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "control requests take a JSON body: send Content-Type: application/json",
        ),
        Refusal::ForeignOrigin(origin) => vk_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("control requests from the origin {origin:?} are refused"),
        ),
        Refusal::ForeignHost(host) => vk_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("control requests for the host {host:?} are refused"),
        ),
    }
}

/// Why a control request must be refused, if it must. `host` is the
/// request's `Host` (or URI authority); `bound` where the emulator listens.
pub(super) fn refusal(
    method: &Method,
    host: Option<&str>,
    headers: &HeaderMap,
    bound: SocketAddr,
) -> Option<Refusal> {
    if let Some(host) = host
        && !host_allowed(host, bound)
    {
        return Some(Refusal::ForeignHost(shown(host)));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let text = origin.to_str().unwrap_or_default();
        if !origin_allowed(text, bound) {
            return Some(Refusal::ForeignOrigin(shown(text)));
        }
    }
    if method == Method::POST && !is_json(headers) {
        return Some(Refusal::NotJson);
    }
    None
}

/// At most 100 characters of a header, for the error message.
fn shown(text: &str) -> String {
    text.chars().take(100).collect()
}

/// `Content-Type: application/json`, parameters (a charset) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Splits `host[:port]` (an IPv6 address in brackets) into host and port.
fn split_host(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// A name or address that reaches the emulator: `localhost`, a loopback
/// address, the address it listens on, or any address when it listens on
/// all of them. A name other than `localhost` is what DNS rebinding uses.
fn names_the_emulator(host: &str, bound: SocketAddr) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let Ok(ip) = host.parse::<IpAddr>() else {
        return false;
    };
    ip.is_loopback() || ip == bound.ip() || bound.ip().is_unspecified()
}

/// Whether a `Host` header names the emulator (any port: a port mapping
/// may stand between the client and the socket).
fn host_allowed(host: &str, bound: SocketAddr) -> bool {
    split_host(host).is_some_and(|(name, _)| names_the_emulator(name, bound))
}

/// Whether an `Origin` is the emulator's own: `http`, a name of the
/// emulator, its port. `null` (a sandboxed or file page) is foreign.
fn origin_allowed(origin: &str, bound: SocketAddr) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    match split_host(authority) {
        Some((name, port)) => names_the_emulator(name, bound) && port.unwrap_or(80) == bound.port(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const BOUND: &str = "127.0.0.1:8099";

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn check(method: Method, host: &str, pairs: &[(header::HeaderName, &str)]) -> Option<Refusal> {
        refusal(&method, Some(host), &headers(pairs), BOUND.parse().unwrap())
    }

    #[test]
    fn json_posts_from_the_emulator_s_own_names_pass() {
        let json = (header::CONTENT_TYPE, "application/json");
        for host in [
            "127.0.0.1:8099",
            "localhost:8099",
            "[::1]:8099",
            "LOCALHOST",
        ] {
            assert_eq!(
                check(Method::POST, host, std::slice::from_ref(&json)),
                None,
                "{host}"
            );
        }
        let with_charset = (header::CONTENT_TYPE, "Application/JSON; charset=utf-8");
        assert_eq!(check(Method::POST, BOUND, &[with_charset]), None);
        let own = (header::ORIGIN, "http://localhost:8099");
        assert_eq!(check(Method::POST, BOUND, &[json, own]), None);
        assert_eq!(check(Method::GET, BOUND, &[]), None);
    }

    #[test]
    fn a_post_that_a_page_could_send_is_refused() {
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            assert_eq!(
                check(Method::POST, BOUND, &[(header::CONTENT_TYPE, content_type)]),
                Some(Refusal::NotJson)
            );
        }
        assert_eq!(check(Method::POST, BOUND, &[]), Some(Refusal::NotJson));
    }

    #[test]
    fn foreign_origins_and_hosts_are_refused() {
        let json = (header::CONTENT_TYPE, "application/json");
        for origin in [
            "https://attacker.example",
            "http://127.0.0.1:3000",
            "null",
            "http://attacker.example:8099",
        ] {
            assert!(
                matches!(
                    check(
                        Method::POST,
                        BOUND,
                        &[json.clone(), (header::ORIGIN, origin)]
                    ),
                    Some(Refusal::ForeignOrigin(_))
                ),
                "{origin}"
            );
        }
        for host in [
            "attacker.example:8099",
            "attacker.example",
            "10.0.0.5:8099",
            "[::1",
        ] {
            assert!(
                matches!(check(Method::GET, host, &[]), Some(Refusal::ForeignHost(_))),
                "{host}"
            );
        }
    }

    #[test]
    fn listening_on_every_address_accepts_any_address_but_no_name() {
        let bound: SocketAddr = "0.0.0.0:8099".parse().unwrap();
        let json = headers(&[(header::CONTENT_TYPE, "application/json")]);
        assert_eq!(
            refusal(&Method::POST, Some("192.168.1.20:8099"), &json, bound),
            None
        );
        assert!(refusal(&Method::POST, Some("rebind.example:8099"), &json, bound).is_some());
    }
}
