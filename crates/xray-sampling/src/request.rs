//! What a rule is matched against: the span's HTTP details (old and new semantic
//! conventions), its attributes, and what the sampler knows about the service.

use opentelemetry::{KeyValue, Value};

/// The service this process is: the same for every span, set once on the builder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceInfo {
    /// `ServiceName` rules match this (`service.name`).
    pub name: Option<String>,
    /// `ServiceType` rules match this (an X-Ray origin such as `AWS::EC2::Instance`).
    pub service_type: Option<String>,
    /// `ResourceARN` rules match this when the span names no ARN itself.
    pub resource_arn: Option<String>,
}

/// A span's request details, borrowed from its attributes (no allocation).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Request<'a> {
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub host: Option<&'a str>,
    pub resource_arn: Option<&'a str>,
    pub attributes: &'a [KeyValue],
}

impl<'a> Request<'a> {
    /// Reads the request details from span attributes, preferring the current semantic
    /// conventions over the old ones.
    pub(crate) fn from_attributes(attributes: &'a [KeyValue]) -> Self {
        let (mut method, mut old_method) = (None, None);
        let (mut path, mut target, mut full_url) = (None, None, None);
        let (mut host, mut old_host) = (None, None);
        let mut arn = None;
        for kv in attributes {
            let Value::String(s) = &kv.value else {
                continue;
            };
            let s = s.as_str();
            match kv.key.as_str() {
                "http.request.method" => method = Some(s),
                "http.method" => old_method = Some(s),
                "url.path" => path = Some(s),
                "http.target" => target = Some(s),
                "url.full" => full_url = Some(s),
                "http.url" => full_url = full_url.or(Some(s)),
                "server.address" => host = Some(s),
                "http.host" | "net.host.name" => old_host = old_host.or(Some(s)),
                "aws.lambda.invoked_arn" | "cloud.resource_id" => arn = arn.or(Some(s)),
                _ => {}
            }
        }
        let url_parts = full_url.map(split_url);
        Request {
            method: method.or(old_method),
            path: path
                .or_else(|| target.map(strip_query))
                .or_else(|| url_parts.map(|(_, p)| p)),
            host: host.or(old_host).or_else(|| url_parts.and_then(|(h, _)| h)),
            resource_arn: arn,
            attributes,
        }
    }
}

/// `/a/b?x=1#f` -> `/a/b`.
fn strip_query(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    &target[..end]
}

/// `https://user@host:8080/a/b?x` -> (`Some("host")`, `/a/b`); a URL with no path gives `/`.
fn split_url(url: &str) -> (Option<&str>, &str) {
    let Some(scheme_end) = url.find("://") else {
        return (None, strip_query(url));
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if host_port.starts_with('[') {
        host_port.find(']').map_or(host_port, |i| &host_port[..=i])
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    let path = strip_query(&rest[authority_end..]);
    let path = if path.is_empty() { "/" } else { path };
    ((!host.is_empty()).then_some(host), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_conventions_win_over_old() {
        let attrs = [
            KeyValue::new("http.method", "POST"),
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.target", "/old?q=1"),
            KeyValue::new("url.path", "/new"),
            KeyValue::new("http.host", "old.example"),
            KeyValue::new("server.address", "new.example"),
        ];
        let r = Request::from_attributes(&attrs);
        assert_eq!(r.method, Some("GET"));
        assert_eq!(r.path, Some("/new"));
        assert_eq!(r.host, Some("new.example"));
    }

    #[test]
    fn old_conventions_and_urls() {
        let attrs = [
            KeyValue::new("http.method", "DELETE"),
            KeyValue::new("http.target", "/users/1?x=2"),
        ];
        let r = Request::from_attributes(&attrs);
        assert_eq!(
            (r.method, r.path, r.host),
            (Some("DELETE"), Some("/users/1"), None)
        );

        let attrs = [KeyValue::new(
            "url.full",
            "https://u:p@api.example.com:8443/v1/items?id=3#x",
        )];
        let r = Request::from_attributes(&attrs);
        assert_eq!(
            (r.host, r.path),
            (Some("api.example.com"), Some("/v1/items"))
        );

        let attrs = [KeyValue::new("http.url", "http://[::1]:80")];
        let r = Request::from_attributes(&attrs);
        assert_eq!((r.host, r.path), (Some("[::1]"), Some("/")));
    }

    proptest::proptest! {
        #[test]
        fn any_url_or_target_is_safe(url in "\\PC{0,60}", target in "\\PC{0,30}") {
            let attrs = [KeyValue::new("url.full", url), KeyValue::new("http.target", target)];
            let r = Request::from_attributes(&attrs);
            let _ = (r.host, r.path);
        }
    }

    #[test]
    fn odd_values_do_not_panic() {
        for url in [
            "",
            "://",
            "http://",
            "http://@",
            "x://[",
            "/just/a/path?",
            "?#",
        ] {
            let attrs = [
                KeyValue::new("url.full", url),
                KeyValue::new("http.method", 3),
            ];
            let r = Request::from_attributes(&attrs);
            assert_eq!(r.method, None);
            let _ = (r.host, r.path);
        }
    }
}
