//! Resource records as the `validate_*_rrs` regexes see them, and the
//! validators' semantics.

use std::fmt::Write as _;

use hickory_proto::rr::{RData, Record};

use super::config::RrValidator;

/// A record in zone-file presentation form the way miekg/dns prints it
/// (what blackbox's regexes are written against): name, TTL, class, type
/// and data separated by tabs, e.g. `example.org.\t300\tIN\tA\t192.0.2.1`.
/// TXT strings are quoted as miekg/dns quotes them; other data is
/// hickory's presentation form, which agrees for the common types.
pub fn presentation(record: &Record) -> String {
    let mut out = format!(
        "{}\t{}\t{}\t{}\t",
        record.name,
        record.ttl,
        record.dns_class,
        record.record_type()
    );
    match &record.data {
        RData::TXT(txt) => {
            for (i, s) in txt.txt_data.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                quote(&mut out, s);
            }
        }
        data => {
            let _ = write!(out, "{data}");
        }
    }
    out
}

/// A character-string quoted, `"` and `\` escaped, bytes outside
/// printable ASCII as `\DDD`.
fn quote(out: &mut String, s: &[u8]) {
    out.push('"');
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

/// blackbox's checks of one section, in its order; the error says which
/// failed and on what record.
///
/// - `fail_if_matches_regexp`: fail when any record matches any regex.
/// - `fail_if_not_matches_regexp`: fail when any record does not match
///   one of the regexes, and on an empty section.
/// - `fail_if_none_matches_regexp`: fail when no record matches one of the
///   regexes (any regex, any record), and on an empty section.
/// - `fail_if_all_match_regexp`: despite its name, blackbox fails when
///   *not* every record matches every regex (an empty section passes);
///   kept for compatibility (README, "Differences").
pub fn validate(records: &[String], v: &RrValidator) -> Result<(), String> {
    if records.is_empty() && !v.fail_if_not_matches.is_empty() {
        return Err("fail_if_not_matches_regexp specified but no RRs returned".into());
    }
    if records.is_empty() && !v.fail_if_none_matches.is_empty() {
        return Err("fail_if_none_matches_regexp specified but no RRs returned".into());
    }
    let mut all_match = true;
    let mut any_match = false;
    for rr in records {
        if let Some(re) = v.fail_if_matches.iter().find(|re| re.is_match(rr)) {
            return Err(format!(
                "at least one RR matched regexp {:?}: {rr:?}",
                re.as_str()
            ));
        }
        if v.fail_if_all_match.iter().any(|re| !re.is_match(rr)) {
            all_match = false;
        }
        if let Some(re) = v.fail_if_not_matches.iter().find(|re| !re.is_match(rr)) {
            return Err(format!(
                "at least one RR did not match regexp {:?}: {rr:?}",
                re.as_str()
            ));
        }
        if v.fail_if_none_matches.iter().any(|re| re.is_match(rr)) {
            any_match = true;
        }
    }
    if !v.fail_if_all_match.is_empty() && !all_match {
        return Err("not all RRs matched fail_if_all_match_regexp".into());
    }
    if !v.fail_if_none_matches.is_empty() && !any_match {
        return Err("none of the RRs matched fail_if_none_matches_regexp".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{A, MX, SOA, TXT};
    use hickory_proto::rr::{Name, RData, Record};

    use super::*;

    fn re(patterns: &[&str]) -> Vec<regex::Regex> {
        patterns
            .iter()
            .map(|p| regex::Regex::new(p).expect("regex"))
            .collect()
    }

    fn rrs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    fn name(s: &str) -> Name {
        Name::from_str(s).expect("name")
    }

    #[test]
    fn presentation_as_miekg_prints_it() {
        let a = Record::from_rdata(
            name("www.example.org."),
            300,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        );
        assert_eq!(presentation(&a), "www.example.org.\t300\tIN\tA\t192.0.2.1");
        let mx = Record::from_rdata(
            name("example.org."),
            60,
            RData::MX(MX::new(10, name("mail.example.org."))),
        );
        assert_eq!(
            presentation(&mx),
            "example.org.\t60\tIN\tMX\t10 mail.example.org."
        );
        let soa = Record::from_rdata(
            name("example.org."),
            3600,
            RData::SOA(SOA::new(
                name("ns1.example.org."),
                name("hostmaster.example.org."),
                2026112701,
                7200,
                900,
                1209600,
                300,
            )),
        );
        assert_eq!(
            presentation(&soa),
            "example.org.\t3600\tIN\tSOA\tns1.example.org. hostmaster.example.org. 2026112701 7200 900 1209600 300"
        );
        let txt = Record::from_rdata(
            name("example.org."),
            5,
            RData::TXT(TXT::from_bytes(vec![&b"v=spf1 -all"[..], b"a\"b\\c\x01"])),
        );
        assert_eq!(
            presentation(&txt),
            "example.org.\t5\tIN\tTXT\t\"v=spf1 -all\" \"a\\\"b\\\\c\\001\""
        );
    }

    #[test]
    fn fail_if_matches() {
        let v = RrValidator {
            fail_if_matches: re(&["10\\.0\\."]),
            ..RrValidator::default()
        };
        assert!(validate(&rrs(&["a\tA\t1.2.3.4"]), &v).is_ok());
        assert!(validate(&rrs(&[]), &v).is_ok());
        let e = validate(&rrs(&["a\tA\t1.2.3.4", "b\tA\t10.0.0.1"]), &v).unwrap_err();
        assert!(e.contains("matched"), "{e}");
    }

    #[test]
    fn fail_if_not_matches() {
        let v = RrValidator {
            fail_if_not_matches: re(&["\tA\t"]),
            ..RrValidator::default()
        };
        assert!(validate(&rrs(&["a\tA\t1.2.3.4", "b\tA\t5.6.7.8"]), &v).is_ok());
        assert!(validate(&rrs(&["a\tA\t1.2.3.4", "a\tMX\t10 m."]), &v).is_err());
        // An empty section fails.
        assert!(validate(&rrs(&[]), &v).is_err());
        // Every regex must match every record.
        let v = RrValidator {
            fail_if_not_matches: re(&["\tA\t", "^a"]),
            ..RrValidator::default()
        };
        assert!(validate(&rrs(&["a\tA\t1"]), &v).is_ok());
        assert!(validate(&rrs(&["a\tA\t1", "b\tA\t2"]), &v).is_err());
    }

    #[test]
    fn fail_if_none_matches() {
        let v = RrValidator {
            fail_if_none_matches: re(&["1\\.2\\.3\\.4$", "^zzz"]),
            ..RrValidator::default()
        };
        assert!(validate(&rrs(&["a\tA\t9.9.9.9", "a\tA\t1.2.3.4"]), &v).is_ok());
        assert!(validate(&rrs(&["zzz\tA\t9.9.9.9"]), &v).is_ok());
        assert!(validate(&rrs(&["a\tA\t9.9.9.9"]), &v).is_err());
        assert!(validate(&rrs(&[]), &v).is_err());
    }

    #[test]
    fn fail_if_all_match_is_blackbox_s_inverted_check() {
        let v = RrValidator {
            fail_if_all_match: re(&["\tA\t"]),
            ..RrValidator::default()
        };
        // Every record matches: passes (blackbox's observed behaviour).
        assert!(validate(&rrs(&["a\tA\t1", "b\tA\t2"]), &v).is_ok());
        // One does not: fails.
        assert!(validate(&rrs(&["a\tA\t1", "a\tMX\t10 m."]), &v).is_err());
        // An empty section passes.
        assert!(validate(&rrs(&[]), &v).is_ok());
    }

    #[test]
    fn checks_combine() {
        let v = RrValidator {
            fail_if_matches: re(&["bad"]),
            fail_if_none_matches: re(&["good"]),
            ..RrValidator::default()
        };
        assert!(validate(&rrs(&["good"]), &v).is_ok());
        assert!(validate(&rrs(&["good", "bad"]), &v).is_err());
        assert!(validate(&rrs(&["other"]), &v).is_err());
        assert!(validate(&rrs(&[]), &RrValidator::default()).is_ok());
    }
}
