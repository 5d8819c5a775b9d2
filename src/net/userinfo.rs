//! The `user:password@` part of URLs: sent as Basic credentials, never
//! shown. One home for it, used by targets, redirect hops, proxy URLs, logs
//! and error messages alike.

use super::Secret;

/// What replaces a password wherever a URL is shown (prometheus/common's
/// `url.Redacted()` writes the same).
pub const REDACTED: &str = "xxxxx";

/// `Basic base64(user:password)` from a URL's user info, if it has any
/// (percent-decoded, as Go's `url.User` does).
pub fn basic_authorization(url: &url::Url) -> Option<Secret> {
    use base64::Engine as _;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let user = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy();
    let pass =
        percent_encoding::percent_decode_str(url.password().unwrap_or("")).decode_utf8_lossy();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    Some(Secret::new(format!("Basic {token}")))
}

/// The URL without its user info (what goes on the wire as a request
/// target).
pub fn without_userinfo(url: &url::Url) -> url::Url {
    let mut bare = url.clone();
    // Only URLs that cannot have user info refuse these, and they have none.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare
}

/// A URL, or text that looks like one, with its password replaced by
/// [`REDACTED`]; anything else unchanged. Text that does not parse as a URL
/// is still searched for `scheme://user:password@`, so a broken URL in an
/// error message does not show its password either.
pub fn redact(text: &str) -> String {
    if let Ok(mut url) = url::Url::parse(text) {
        if url.password().is_some() && url.set_password(Some(REDACTED)).is_ok() {
            return url.to_string();
        }
        return text.to_string();
    }
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}{REDACTED}{}",
                &text[..scheme_end + 3],
                &rest[..=colon],
                &rest[at..]
            ),
            None => text.to_string(),
        },
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(
            redact("http://u:pw@proxy:3128"),
            "http://u:xxxxx@proxy:3128/"
        );
        assert_eq!(redact("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(
            redact("http://u:pw@proxy:99999999"),
            "http://u:xxxxx@proxy:99999999"
        );
        assert_eq!(redact("http://u:p@w@[bad/x"), "http://u:xxxxx@[bad/x");
        assert_eq!(redact("127.0.0.1:22"), "127.0.0.1:22");
    }

    #[test]
    fn credentials() {
        let url = url::Url::parse("http://us%40er:p%3Aw@h/").unwrap();
        assert_eq!(
            basic_authorization(&url).map(|s| s.expose().to_string()),
            Some(format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "us@er:p:w")
            ))
        );
        assert_eq!(without_userinfo(&url).as_str(), "http://h/");
        assert!(basic_authorization(&url::Url::parse("http://h/").unwrap()).is_none());
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// A URL with `user:password@`. The password starts with an upper-case
    /// letter, which the rest of the URL never contains, so finding it in
    /// the output means it leaked.
    fn url_with_password() -> impl Strategy<Value = (String, String)> {
        (
            prop::sample::select(&["http", "https", "ws", "wss", "socks5", "foo", "file"][..]),
            "[a-z0-9._~-]{0,8}",
            "[A-Z][A-Z!$&'()*+,;=:@]{0,11}",
            "[a-z0-9]([a-z0-9.-]{0,12}[a-z0-9])?",
            prop_oneof![
                Just(String::new()),
                (0u32..70_000).prop_map(|p| format!(":{p}")),
                Just(":99999999".to_string()),
            ],
            "(/[a-z0-9]{0,6}){0,3}(\\?[a-z0-9=]{0,6})?",
        )
            .prop_map(|(scheme, user, pass, host, port, path)| {
                (format!("{scheme}://{user}:{pass}@{host}{port}{path}"), pass)
            })
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(256))]

        #[test]
        fn redact_never_shows_the_password((text, pass) in url_with_password()) {
            let out = redact(&text);
            prop_assert!(!out.contains(&pass), "{:?} -> {:?}", text, out);
            prop_assert!(out.contains(REDACTED), "{:?} -> {:?}", text, out);
            // A URL stays a URL, with only its password replaced.
            if let Ok(url) = url::Url::parse(&text) {
                let shown = url::Url::parse(&out).expect("redacted URL parses");
                prop_assert_eq!(shown.password(), Some(REDACTED));
                prop_assert_eq!(shown.username(), url.username());
                prop_assert_eq!(shown.host_str(), url.host_str());
                prop_assert_eq!(shown.path(), url.path());
            }
        }

        #[test]
        fn redact_never_panics_and_keeps_text_without_credentials(s in "\\PC{0,40}") {
            let out = redact(&s);
            if !s.contains('@') {
                prop_assert_eq!(out, s);
            }
        }

        #[test]
        fn without_userinfo_removes_only_the_user_info((text, _) in url_with_password()) {
            let Ok(url) = url::Url::parse(&text) else {
                return Ok(());
            };
            let bare = without_userinfo(&url);
            prop_assert_eq!(bare.username(), "");
            prop_assert_eq!(bare.password(), None);
            prop_assert!(!bare.as_str().contains('@'), "{}", bare);
            prop_assert_eq!(bare.host_str(), url.host_str());
            prop_assert_eq!(bare.port(), url.port());
            prop_assert_eq!(bare.path(), url.path());
            prop_assert_eq!(bare.query(), url.query());
            prop_assert!(basic_authorization(&bare).is_none());
            prop_assert!(basic_authorization(&url).is_some());
        }
    }
}
