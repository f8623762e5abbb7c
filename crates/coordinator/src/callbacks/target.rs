//! Where a callback may go. The coordinator POSTs only to the hosts the
//! operator allowed (`callback_hosts`), so that a job cannot make it
//! request any address it can reach (cloud metadata, internal services).
//! A URL is judged as the HTTP client will connect: read by the `url`
//! crate, ureq's own parser, and by the host and port that come out of it;
//! the client is then given that parsed URL, never the job's string, so
//! the check and the connection cannot read the URL differently.

use url::{Host, Url};

/// A callback URL the coordinator may POST to: http(s), with a host and no
/// user info (which would only be a place to hide a second host in).
#[derive(Debug, Clone)]
pub(crate) struct Target(Url);

impl Target {
    /// `None` when `url` is not such a URL.
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let url = Url::parse(url).ok()?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none();
        plain.then_some(Self(url))
    }

    /// `host[:port]` as `callback_hosts` names it: normalized (lowercase,
    /// IP addresses in their usual form), the port only when it is not the
    /// scheme's default.
    pub(crate) fn authority(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// Whether an entry of `callback_hosts` names this URL's host and port.
    pub(crate) fn allowed_by(&self, callback_hosts: &[String]) -> bool {
        callback_hosts
            .iter()
            .filter_map(|entry| AllowedHost::parse(entry))
            .any(|allowed| allowed.admits(&self.0))
    }

    /// The URL to send the request to: the one that was checked.
    pub(crate) fn url(&self) -> &Url {
        &self.0
    }
}

/// An entry of `callback_hosts`: `host`, which admits the host on its
/// scheme's default port (80 for http, 443 for https), or `host:port`. The
/// host is read as a URL's host is, so that `Hooks.Internal` and
/// `hooks.internal` are one host, and `[::1]` and `[0::1]` one address.
pub(crate) struct AllowedHost {
    host: Host,
    port: Option<u16>,
}

impl AllowedHost {
    /// `None` when `entry` is not `host` or `host:port` (an IPv6 address
    /// in brackets).
    pub(crate) fn parse(entry: &str) -> Option<Self> {
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                (host, Some(port.parse().ok()?))
            }
            _ => (entry, None),
        };
        let host = Host::parse(host).ok()?;
        Some(Self { host, port })
    }

    fn admits(&self, url: &Url) -> bool {
        let port = match self.port {
            None => url.port().is_none(),
            Some(port) => url.port_or_known_default() == Some(port),
        };
        port && url.host().is_some_and(|host| host == self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: [&str; 4] = [
        "hooks.example:8443",
        "Moderation",
        "127.0.0.1:9000",
        "[::1]:8080",
    ];

    /// The host the POST would connect to, or why there is none.
    fn connects_to(url: &str) -> Result<String, &'static str> {
        let hosts: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
        let target = Target::parse(url).ok_or("not an http(s) URL")?;
        if !target.allowed_by(&hosts) {
            return Err("not allowed");
        }
        let sent = target.url();
        Ok(format!(
            "{}:{}",
            sent.host_str().unwrap(),
            sent.port_or_known_default().unwrap()
        ))
    }

    #[test]
    fn allowed_hosts_are_matched_as_the_client_reads_them() {
        for (url, host) in [
            ("https://hooks.example:8443/dfscan", "hooks.example:8443"),
            ("http://moderation/hook?x=1", "moderation:80"),
            ("https://moderation/hook", "moderation:443"),
            ("HTTP://MODERATION/", "moderation:80"),
            ("http://moderation:80/", "moderation:80"),
            ("http://Hooks.Example:8443/", "hooks.example:8443"),
            ("http://moder%61tion/", "moderation:80"),
            ("http://127.0.0.1:9000/", "127.0.0.1:9000"),
            ("http://0x7f.0.0.1:9000/", "127.0.0.1:9000"),
            ("http://2130706433:9000/", "127.0.0.1:9000"),
            ("http://[::1]:8080/", "[::1]:8080"),
            ("http://[0:0::1]:8080/", "[::1]:8080"),
            // A backslash is a slash to the parser: the rest is a path.
            ("http://moderation\\@evil.example/", "moderation:80"),
        ] {
            assert_eq!(connects_to(url).as_deref(), Ok(host), "{url}");
        }
    }

    #[test]
    fn hostile_urls_do_not_pass() {
        for (url, refusal) in [
            // User info is refused, encoded or not, whatever it names.
            ("http://moderation@evil.example/", "not an http(s) URL"),
            ("http://moderation%2F@evil.example/", "not an http(s) URL"),
            ("http://moderation:80@evil.example/", "not an http(s) URL"),
            // Empty user info is no user info: the host is evil.example.
            ("http://:@evil.example/", "not allowed"),
            // What follows # or ? is no host.
            ("http://evil.example#@moderation", "not allowed"),
            ("http://evil.example?@moderation", "not allowed"),
            ("http://evil.example/#moderation", "not allowed"),
            // Characters a host cannot hold, percent-encoded or not.
            ("http://moderation%23.evil.example/", "not an http(s) URL"),
            ("http://moderation%2F.evil.example/", "not an http(s) URL"),
            ("http://moderation%00/", "not an http(s) URL"),
            // A trailing dot makes another name (no search domains).
            ("http://moderation./", "not allowed"),
            ("http://moderation.evil.example/", "not allowed"),
            ("http://evil.example/moderation", "not allowed"),
            // The port is part of the entry.
            ("http://moderation:8080/", "not allowed"),
            ("http://moderation:443/", "not allowed"),
            ("https://hooks.example/", "not allowed"),
            ("http://[::1]/", "not allowed"),
            ("http://[::ffff:127.0.0.1]:9000/", "not allowed"),
            ("http://127.0.0.2:9000/", "not allowed"),
            ("http://169.254.169.254/latest/meta-data", "not allowed"),
            // Only http and https.
            ("ftp://moderation/", "not an http(s) URL"),
            ("file:///etc/passwd", "not an http(s) URL"),
            ("moderation/hook", "not an http(s) URL"),
            ("//moderation/hook", "not an http(s) URL"),
            ("http://", "not an http(s) URL"),
        ] {
            assert_eq!(connects_to(url), Err(refusal), "{url}");
        }
    }

    #[test]
    fn entries_are_a_host_and_perhaps_a_port() {
        for entry in [
            "hooks",
            "hooks.internal:8443",
            "[::1]",
            "[::1]:80",
            "10.0.0.1",
        ] {
            assert!(AllowedHost::parse(entry).is_some(), "{entry}");
        }
        for entry in [
            "",
            "::1",
            "hooks:",
            "hooks:99999",
            "https://hooks",
            "hooks/path",
            "user@hooks",
            "hooks:80:80",
        ] {
            assert!(AllowedHost::parse(entry).is_none(), "{entry}");
        }
    }
}
