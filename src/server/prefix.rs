//! `--web.external-url` and `--web.route-prefix`, as blackbox computes them:
//! the external URL defaults to `http://<hostname>:<port of the first listen
//! address>/`, its path (without a trailing slash) is the default route
//! prefix, and the prefix is always `/` or `/<path>/` — the trailing slash
//! makes the landing page's relative links resolve under it.

/// Where the endpoints live and where `/` sends a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPaths {
    /// `/`, or `/<path>/`.
    prefix: String,
    /// Where a request for `/` is redirected when the prefix is not `/`.
    root_redirect: String,
    /// The external URL as computed (for the log).
    external_url: String,
}

/// Where a request path goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Routed<'a> {
    /// An endpoint path as if the prefix were `/` (`/probe`, `/`).
    Inside(&'a str),
    /// `/` with a prefix set: 302 to the external URL (blackbox, Prometheus).
    RedirectRoot(&'a str),
    /// The prefix without its trailing slash: 301 to it with the slash, as
    /// Go's ServeMux does for a subtree pattern.
    AddSlash(&'a str),
    NotFound,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    #[error("cannot infer the external URL with systemd socket activation: set --web.external-url")]
    SystemdNeedsUrl,
    #[error("URL must not begin or end with quotes")]
    Quoted,
    #[error("invalid --web.external-url {url:?}: {message}")]
    BadUrl { url: String, message: String },
    #[error("cannot infer the external URL from listen address {0:?}")]
    BadListenAddress(String),
}

impl Default for WebPaths {
    /// No prefix.
    fn default() -> Self {
        Self {
            prefix: "/".into(),
            root_redirect: "/".into(),
            external_url: String::new(),
        }
    }
}

impl WebPaths {
    /// From the flags. `hostname` is the machine's name (Go's
    /// `os.Hostname`), used only when no external URL is given.
    pub fn new(
        external_url: Option<&str>,
        route_prefix: Option<&str>,
        first_listen_address: Option<&str>,
        systemd_socket: bool,
        hostname: impl FnOnce() -> String,
    ) -> Result<Self, PrefixError> {
        let given = external_url.filter(|u| !u.is_empty());
        let text = match given {
            Some(u) => u.to_string(),
            None if systemd_socket => return Err(PrefixError::SystemdNeedsUrl),
            None => {
                let listen = first_listen_address.unwrap_or(":9115");
                let port = listen
                    .rsplit_once(':')
                    .map(|(_, port)| port)
                    .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| PrefixError::BadListenAddress(listen.to_string()))?;
                format!("http://{}:{port}/", hostname())
            }
        };
        if ["\"", "'"]
            .iter()
            .any(|q| text.starts_with(q) || text.ends_with(q))
        {
            return Err(PrefixError::Quoted);
        }
        // Go's url.Parse takes a bare path too (`/bb`); so do we.
        let (external, path) = match url::Url::parse(&text) {
            Ok(mut u) => {
                let path = normalize_url_path(u.path());
                u.set_path(&path);
                let mut shown = u.to_string();
                if path.is_empty() && shown.ends_with('/') && u.query().is_none() {
                    // Go prints an empty path as nothing: `http://host:9115`.
                    shown.pop();
                }
                (shown, path)
            }
            Err(url::ParseError::RelativeUrlWithoutBase) if text.starts_with('/') => {
                let path = normalize_url_path(text.split(['?', '#']).next().unwrap_or(""));
                (path.clone(), path)
            }
            Err(e) => {
                return Err(PrefixError::BadUrl {
                    url: text,
                    message: e.to_string(),
                });
            }
        };
        let prefix_source = route_prefix
            .filter(|p| !p.is_empty())
            .unwrap_or(path.as_str());
        let trimmed = prefix_source.trim_matches('/');
        let prefix = if trimmed.is_empty() {
            "/".to_string()
        } else {
            format!("/{trimmed}/")
        };
        // blackbox redirects `/` to the external URL. When that URL's path
        // is not under the prefix (a prefix given without an external URL,
        // say), the redirect would come straight back to `/`: go to the
        // prefix instead.
        let root_redirect = if path.is_empty() || path == "/" {
            prefix.clone()
        } else {
            external.clone()
        };
        Ok(Self {
            prefix,
            root_redirect,
            external_url: external,
        })
    }

    /// `/` or `/<path>/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn external_url(&self) -> &str {
        &self.external_url
    }

    /// Where `path` goes.
    pub fn route<'a>(&'a self, path: &'a str) -> Routed<'a> {
        if self.prefix == "/" {
            return Routed::Inside(path);
        }
        if let Some(rest) = path.strip_prefix(self.prefix.as_str()) {
            // Keep the leading slash: `/bb/probe` is `/probe`.
            let inside = &path[self.prefix.len() - 1..];
            debug_assert_eq!(&inside[1..], rest);
            return Routed::Inside(inside);
        }
        if path == &self.prefix[..self.prefix.len() - 1] {
            return Routed::AddSlash(&self.prefix);
        }
        if path == "/" {
            return Routed::RedirectRoot(&self.root_redirect);
        }
        Routed::NotFound
    }
}

/// Go's computeExternalURL: no trailing slash, a leading one when not empty.
fn normalize_url_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// The machine's host name as Go's `os.Hostname` finds it on Linux.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(url: Option<&str>, prefix: Option<&str>) -> WebPaths {
        WebPaths::new(url, prefix, Some(":9115"), false, || "box".into()).expect("valid")
    }

    #[test]
    fn external_url_is_inferred_from_hostname_and_port() {
        let p = paths(None, None);
        assert_eq!(p.external_url(), "http://box:9115");
        assert_eq!(p.prefix(), "/");
        let p =
            WebPaths::new(None, None, Some("127.0.0.1:8080"), false, || "h".into()).expect("valid");
        assert_eq!(p.external_url(), "http://h:8080");
        let p = WebPaths::new(None, None, Some("[::1]:9"), false, || "h".into()).expect("valid");
        assert_eq!(p.external_url(), "http://h:9");
    }

    #[test]
    fn prefix_defaults_to_the_external_url_path() {
        for url in [
            "http://proxy.example/bb",
            "http://proxy.example/bb/",
            "http://proxy.example//bb//",
        ] {
            let p = paths(Some(url), None);
            assert_eq!(p.prefix(), "/bb/", "{url}");
        }
        let p = paths(Some("https://proxy.example/a/b/"), None);
        assert_eq!(p.prefix(), "/a/b/");
        assert_eq!(p.external_url(), "https://proxy.example/a/b");
        assert_eq!(
            p.route("/"),
            Routed::RedirectRoot("https://proxy.example/a/b")
        );
        let p = paths(Some("http://proxy.example/"), None);
        assert_eq!(p.prefix(), "/");
        assert_eq!(p.external_url(), "http://proxy.example");
        let p = paths(Some("/relative/"), None);
        assert_eq!(p.prefix(), "/relative/");
        assert_eq!(p.route("/"), Routed::RedirectRoot("/relative"));
    }

    #[test]
    fn route_prefix_flag_wins_and_is_normalized() {
        for given in ["internal", "/internal", "internal/", "/internal//"] {
            let p = paths(Some("http://proxy.example/public/"), Some(given));
            assert_eq!(p.prefix(), "/internal/", "{given}");
            assert_eq!(
                p.route("/"),
                Routed::RedirectRoot("http://proxy.example/public")
            );
        }
        let p = paths(Some("http://proxy.example/public/"), Some("/"));
        assert_eq!(p.prefix(), "/");
    }

    #[test]
    fn routing_under_a_prefix() {
        let p = paths(Some("http://proxy.example/bb"), None);
        assert_eq!(p.route("/bb/probe"), Routed::Inside("/probe"));
        assert_eq!(p.route("/bb/"), Routed::Inside("/"));
        assert_eq!(p.route("/bb/-/healthy"), Routed::Inside("/-/healthy"));
        assert_eq!(p.route("/bb"), Routed::AddSlash("/bb/"));
        assert_eq!(
            p.route("/"),
            Routed::RedirectRoot("http://proxy.example/bb")
        );
        assert_eq!(p.route("/probe"), Routed::NotFound);
        assert_eq!(p.route("/bbx/probe"), Routed::NotFound);
        assert_eq!(p.route("/metrics"), Routed::NotFound);
        let none = WebPaths::default();
        assert_eq!(none.route("/probe"), Routed::Inside("/probe"));
        assert_eq!(none.route("/"), Routed::Inside("/"));
    }

    #[test]
    fn a_prefix_without_external_path_redirects_root_to_the_prefix() {
        let p = paths(None, Some("/bb"));
        assert_eq!(p.route("/"), Routed::RedirectRoot("/bb/"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            WebPaths::new(None, None, Some(":9115"), true, || "h".into()),
            Err(PrefixError::SystemdNeedsUrl)
        );
        assert!(WebPaths::new(Some("http://x/"), None, None, true, || "h".into()).is_ok());
        for quoted in ["'http://x/'", "\"http://x/", "http://x/'"] {
            assert_eq!(
                WebPaths::new(Some(quoted), None, Some(":9115"), false, || "h".into()),
                Err(PrefixError::Quoted)
            );
        }
        assert!(matches!(
            WebPaths::new(Some("http://[x/"), None, Some(":9115"), false, || "h"
                .into()),
            Err(PrefixError::BadUrl { .. })
        ));
        assert!(matches!(
            WebPaths::new(None, None, Some("nonsense"), false, || "h".into()),
            Err(PrefixError::BadListenAddress(_))
        ));
    }
}
