//! The `http` block, from old (`http.method`, `http.url`, …) and new (`http.request.method`,
//! `url.full`, …) semantic conventions alike.

use std::borrow::Cow;

use xray_model::limits::{MAX_STRING_CHARS, limit_string, strip_password};
use xray_model::{Http, HttpRequest, HttpResponse};

use crate::keys::{K, Known};
use crate::view::SpanKind;

/// Whether a string fits a field limited to [`MAX_STRING_CHARS`]; when it does not, the
/// field gets a cut copy and the attribute stays unmarked, so its full value is kept in
/// metadata.
fn fits(s: &str) -> bool {
    s.len() <= MAX_STRING_CHARS || s.chars().count() <= MAX_STRING_CHARS
}

/// Whether `s` holds the ASCII byte `b`: one vector search (`str::contains` with a `char`
/// goes through a character searcher first).
#[inline]
fn has_byte(s: &str, b: u8) -> bool {
    memchr::memchr(b, s.as_bytes()).is_some()
}

/// Takes a string attribute into a limited field, marking it used only when it fits whole.
fn limited<'a>(known: &mut Known<'a>, keys: &[K]) -> Option<Cow<'a, str>> {
    let value = known.peek_first_str(keys)?;
    if fits(value) {
        known.mark_str(keys, value);
    }
    Some(limit_string(Cow::Borrowed(value)))
}

/// The full URL without credentials; marked used when it fits or had credentials removed.
fn url_field<'a>(known: &mut Known<'a>) -> Option<Cow<'a, str>> {
    let keys = [K::UrlFull, K::HttpUrl];
    let value = known.peek_first_str(&keys)?;
    // Only a user-info part can hold a password in a URL.
    let clean = if has_byte(value, b'@') {
        strip_password(value)
    } else {
        Cow::Borrowed(value)
    };
    if matches!(clean, Cow::Owned(_)) || fits(value) {
        known.mark_str(&keys, value);
    }
    Some(limit_string(clean))
}

/// Builds the URL of a request from its parts when no full URL was recorded.
fn rebuild_url<'a>(known: &mut Known<'a>, kind: SpanKind) -> Option<Cow<'a, str>> {
    let (host_keys, port_keys): (&[K], &[K]) = if kind == SpanKind::Server {
        (
            &[K::ServerAddress, K::HttpServerName, K::NetHostName],
            &[K::ServerPort, K::NetHostPort],
        )
    } else {
        (
            &[K::ServerAddress, K::NetPeerName, K::NetPeerIp],
            &[K::ServerPort, K::NetPeerPort],
        )
    };
    let path = known.peek_str(K::HttpTarget).or(known.peek_str(K::UrlPath));
    // `http.host` carries the port already.
    let host_header = known.peek_str(K::HttpHost).filter(|h| !h.is_empty());
    let host = host_header.or_else(|| known.peek_first_str(host_keys));
    if host.is_none() && path.is_none() {
        return None;
    }
    // A host attribute never carries user info into the URL.
    let host_attribute = host;
    let host = host.map(|h| h.rsplit_once('@').map_or(h, |(_, h)| h));
    let mut url = String::with_capacity(64);
    if let Some(host) = host {
        let scheme = known
            .first_str(&[K::UrlScheme, K::HttpScheme])
            .unwrap_or("http");
        url.push_str(scheme);
        url.push_str("://");
        // An IPv6 address is bracketed, so its colons are not read as a port.
        let ipv6 = host_header.is_none() && has_byte(host, b':') && !host.starts_with('[');
        if ipv6 {
            url.push('[');
        }
        url.push_str(host);
        if ipv6 {
            url.push(']');
        }
        if host_header.is_some() {
            known.mark(K::HttpHost);
        } else {
            if let Some(attribute) = host_attribute {
                known.mark_str(host_keys, attribute);
            }
            if let Some(port) = known.first_int(port_keys) {
                let default = matches!((scheme, port), ("http", 80) | ("https", 443));
                if !default {
                    url.push(':');
                    url.push_str(&port.to_string());
                }
            }
        }
    }
    match known.peek_str(K::HttpTarget) {
        Some(target) if !target.is_empty() => {
            known.mark(K::HttpTarget);
            if !target.starts_with('/') && host.is_some() {
                url.push('/');
            }
            url.push_str(target);
        }
        _ => match known.peek_str(K::UrlPath) {
            Some(p) => {
                known.mark(K::UrlPath);
                if !p.starts_with('/') && host.is_some() {
                    url.push('/');
                }
                url.push_str(p);
                if let Some(q) = known.peek_str(K::UrlQuery).filter(|q| !q.is_empty()) {
                    known.mark(K::UrlQuery);
                    if !q.starts_with('?') {
                        url.push('?');
                    }
                    url.push_str(q);
                }
            }
            None => url.push('/'),
        },
    }
    // Parts can carry credentials too (a host attribute holding a whole URL).
    let url = match has_byte(&url, b'@').then(|| strip_password(&url)) {
        Some(Cow::Owned(clean)) => clean,
        _ => url,
    };
    Some(limit_string(Cow::Owned(url)))
}

/// The `http` block, or `None` when the span is not an HTTP request. `traced` is set on
/// outgoing calls whose callee receives the trace header.
pub(crate) fn http_block<'a>(
    known: &mut Known<'a>,
    kind: SpanKind,
    is_segment: bool,
    traced: bool,
) -> Option<Http<'a>> {
    let has_http = known.has(K::HttpRequestMethod)
        || known.has(K::HttpMethod)
        || known.has(K::UrlFull)
        || known.has(K::HttpUrl)
        || known.has(K::HttpResponseStatusCode)
        || known.has(K::HttpStatusCode);
    if !has_http {
        return None;
    }
    let mut request = HttpRequest {
        method: known
            .first_str(&[K::HttpRequestMethod, K::HttpMethod])
            .map(|m| limit_string(Cow::Borrowed(m))),
        ..HttpRequest::default()
    };
    request.url = match url_field(known) {
        Some(url) => Some(url),
        None => rebuild_url(known, kind),
    };
    request.user_agent = limited(known, &[K::UserAgentOriginal, K::HttpUserAgent]);
    if is_segment {
        if let Some(ip) = known.first_str(&[K::HttpClientIp]) {
            request.client_ip = Some(limit_string(Cow::Borrowed(ip)));
            request.x_forwarded_for = true;
        } else if let Some(ip) = known.first_str(&[K::ClientAddress]) {
            // `client.address` comes from X-Forwarded-For/Forwarded when those were sent;
            // a socket peer that differs proves it.
            let peer = known.peek_str(K::NetworkPeerAddress);
            request.x_forwarded_for = peer.is_some_and(|p| p != ip);
            request.client_ip = Some(limit_string(Cow::Borrowed(ip)));
        } else if kind == SpanKind::Server
            && let Some(ip) =
                known.first_str(&[K::NetworkPeerAddress, K::NetSockPeerAddr, K::NetPeerIp])
        {
            request.client_ip = Some(limit_string(Cow::Borrowed(ip)));
        }
    }
    request.traced = traced;

    let mut response = HttpResponse::default();
    let status_keys = [K::HttpResponseStatusCode, K::HttpStatusCode];
    if let Some(value) = status_keys.iter().find_map(|&k| known.peek_int(k))
        && let Ok(code) = u16::try_from(value)
    {
        known.mark_int(&status_keys, value);
        response.status = Some(code);
    }
    let length_keys = [K::HttpResponseBodySize, K::HttpResponseContentLength];
    if let Some(value) = length_keys.iter().find_map(|&k| known.peek_int(k))
        && let Ok(len) = u64::try_from(value)
    {
        known.mark_int(&length_keys, value);
        response.content_length = Some(len);
    }
    let response = (response != HttpResponse::default()).then_some(response);
    Some(Http {
        request: Some(request),
        response,
    })
}
