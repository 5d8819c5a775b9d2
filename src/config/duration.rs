//! Go-compatible parsers for the two unit-bearing scalars of blackbox.yml:
//! `time.ParseDuration` (module `timeout`) and kingpin's `units.Base2Bytes`
//! (`body_size_limit`). Configs written for blackbox_exporter must mean the
//! same thing here, so both follow the Go grammar rather than humantime's.

use std::time::Duration;

/// Why a duration or size did not parse; the message mirrors Go's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid duration {0:?}")]
    InvalidDuration(String),
    #[error("missing unit in duration {0:?}")]
    MissingDurationUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownDurationUnit { unit: String, input: String },
    #[error("negative duration {0:?} is not allowed")]
    NegativeDuration(String),
    #[error("duration {0:?} is out of range")]
    DurationOverflow(String),
    #[error("invalid size {0:?} (expected e.g. 512, 1KiB, 10MB)")]
    InvalidSize(String),
    #[error(
        "unknown unit {unit:?} in size {input:?} (use B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB, EB/EiB)"
    )]
    UnknownSizeUnit { unit: String, input: String },
    #[error("size {0:?} is out of range")]
    SizeOverflow(String),
}

const NANOS_PER: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{00b5}s", 1_000), // U+00B5 micro sign
    ("\u{03bc}s", 1_000), // U+03BC Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3600 * 1_000_000_000),
];

/// One `<number><unit>` element: integer part, fraction digits and scale,
/// and the unit text, as Go's `leadingInt`/`leadingFraction` see them.
struct Element<'a> {
    int: u64,
    frac: u64,
    frac_scale: f64,
    unit: &'a str,
}

/// Splits the next `[0-9]*(\.[0-9]*)?[^0-9.]*` element off `s`.
/// Returns None when there are no digits at all or the integer part overflows.
fn next_element(s: &str) -> Option<(Element<'_>, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut int: u64 = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        int = int
            .checked_mul(10)?
            .checked_add(u64::from(bytes[i] - b'0'))?;
        i += 1;
    }
    let pre = i > 0;
    let mut frac: u64 = 0;
    let mut frac_scale = 1.0;
    let mut post = false;
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let start = i;
        let mut overflow = false;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            // Go stops accumulating once more digits cannot change the value.
            if !overflow {
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(bytes[i] - b'0')))
                {
                    Some(f) if f < (1 << 63) => {
                        frac = f;
                        frac_scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            i += 1;
        }
        post = i > start;
    }
    if !pre && !post {
        return None;
    }
    let unit_end = s[i..]
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .map_or(s.len(), |p| i + p);
    Some((
        Element {
            int,
            frac,
            frac_scale,
            unit: &s[i..unit_end],
        },
        &s[unit_end..],
    ))
}

/// Parses a Go duration string (`500ms`, `1.5s`, `1m30s`, `2h`, `300us`).
///
/// Unlike Go, negative values are rejected: every duration in the config is
/// a timeout, where a negative value can only be a mistake.
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let invalid = || UnitError::InvalidDuration(input.to_string());
    let mut s = input;
    if let Some(rest) = s.strip_prefix('-') {
        if rest == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(UnitError::NegativeDuration(input.to_string()));
    }
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s.starts_with('.') || s.starts_with(|c: char| c.is_ascii_digit())) {
            return Err(invalid());
        }
        let (el, rest) = next_element(s).ok_or_else(invalid)?;
        s = rest;
        if el.unit.is_empty() {
            return Err(UnitError::MissingDurationUnit(input.to_string()));
        }
        let unit = NANOS_PER
            .iter()
            .find(|(name, _)| *name == el.unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| UnitError::UnknownDurationUnit {
                unit: el.unit.to_string(),
                input: input.to_string(),
            })?;
        let overflow = || UnitError::DurationOverflow(input.to_string());
        let mut v = el.int.checked_mul(unit).ok_or_else(overflow)?;
        if el.frac > 0 {
            let f = (el.frac as f64 * (unit as f64 / el.frac_scale)) as u64;
            v = v.checked_add(f).ok_or_else(overflow)?;
        }
        total = total.checked_add(v).ok_or_else(overflow)?;
        if total > i64::MAX as u64 {
            return Err(overflow());
        }
    }
    Ok(Duration::from_nanos(total))
}

/// `units.MakeUnitMap(suffix, "B", 1024)`: B, K<suffix>, M<suffix>, ... E<suffix>.
fn size_unit(unit: &str, suffix: &str) -> Option<f64> {
    if unit == "B" {
        return Some(1.0);
    }
    let rest = unit.strip_suffix(suffix)?;
    let power = match rest {
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        "E" => 6,
        _ => return None,
    };
    Some(1024f64.powi(power))
}

/// Go `units.ParseUnit` over one unit map; Ok(None) means "unknown unit"
/// so the caller can retry with the other map, as `ParseBase2Bytes` does.
fn parse_size_with(input: &str, suffix: &str) -> Result<Option<i64>, UnitError> {
    let invalid = || UnitError::InvalidSize(input.to_string());
    let mut s = input;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Some(0));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !s.is_empty() {
        if !(s.starts_with('.') || s.starts_with(|c: char| c.is_ascii_digit())) {
            return Err(invalid());
        }
        let (el, rest) = next_element(s).ok_or_else(invalid)?;
        s = rest;
        let Some(unit) = size_unit(el.unit, suffix) else {
            return Ok(None);
        };
        let value = el.int as f64 + el.frac as f64 / el.frac_scale;
        total += value * unit;
    }
    if neg {
        total = -total;
    }
    if total < i64::MIN as f64 || total > i64::MAX as f64 {
        return Err(UnitError::SizeOverflow(input.to_string()));
    }
    Ok(Some(total as i64))
}

/// Parses a Go `units.Base2Bytes` string: `1KiB`/`1KB` = 1024, `10MB`,
/// `1.5GiB`, `512B`. A bare number is taken as bytes (YAML integers reach
/// blackbox as plain byte counts). The result may be negative; callers treat
/// `<= 0` as "no limit", as blackbox does.
pub fn parse_base2_bytes(input: &str) -> Result<i64, UnitError> {
    let trimmed = input.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return Ok(n);
    }
    if let Some(n) = parse_size_with(trimmed, "iB")? {
        return Ok(n);
    }
    if let Some(n) = parse_size_with(trimmed, "B")? {
        return Ok(n);
    }
    // Report the first unit neither map knows.
    let mut s = trimmed.trim_start_matches(['-', '+']);
    while let Some((el, rest)) = next_element(s) {
        if size_unit(el.unit, "iB").is_none() && size_unit(el.unit, "B").is_none() {
            return Err(UnitError::UnknownSizeUnit {
                unit: el.unit.to_string(),
                input: input.to_string(),
            });
        }
        s = rest;
    }
    Err(UnitError::InvalidSize(input.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("5s"), Ok(ms(5000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("300us"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_duration("300µs"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_duration("300μs"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_duration("42ns"), Ok(Duration::from_nanos(42)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("1.s"), Ok(ms(1000)));
        assert_eq!(parse_duration("+2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h2m3.5s"), Ok(ms(3_723_500)));
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn bad_durations() {
        assert_eq!(
            parse_duration("1d"),
            Err(UnitError::UnknownDurationUnit {
                unit: "d".into(),
                input: "1d".into()
            })
        );
        assert_eq!(
            parse_duration("5"),
            Err(UnitError::MissingDurationUnit("5".into()))
        );
        assert_eq!(
            parse_duration("-5s"),
            Err(UnitError::NegativeDuration("-5s".into()))
        );
        assert!(matches!(
            parse_duration(""),
            Err(UnitError::InvalidDuration(_))
        ));
        assert!(matches!(
            parse_duration("s"),
            Err(UnitError::InvalidDuration(_))
        ));
        assert!(matches!(
            parse_duration(".s"),
            Err(UnitError::InvalidDuration(_))
        ));
        assert!(matches!(
            parse_duration("5 s"),
            Err(UnitError::UnknownDurationUnit { .. })
        ));
        assert!(matches!(
            parse_duration("3000000h"),
            Err(UnitError::DurationOverflow(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999s"),
            Err(UnitError::InvalidDuration(_))
        ));
        assert!(
            parse_duration("1d")
                .unwrap_err()
                .to_string()
                .contains("unknown unit \"d\"")
        );
    }

    #[test]
    fn base2_sizes() {
        assert_eq!(parse_base2_bytes("512"), Ok(512));
        assert_eq!(parse_base2_bytes("0"), Ok(0));
        assert_eq!(parse_base2_bytes("512B"), Ok(512));
        assert_eq!(parse_base2_bytes("1KiB"), Ok(1024));
        assert_eq!(parse_base2_bytes("1KB"), Ok(1024));
        assert_eq!(parse_base2_bytes("10MB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_base2_bytes("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_base2_bytes("1GB"), Ok(1 << 30));
        assert_eq!(parse_base2_bytes("1.5KB"), Ok(1536));
        assert_eq!(parse_base2_bytes("1MB512KB"), Ok(1024 * 1024 + 512 * 1024));
        assert_eq!(parse_base2_bytes("-1KB"), Ok(-1024));
        assert_eq!(parse_base2_bytes("-1"), Ok(-1));
    }

    #[test]
    fn bad_sizes() {
        assert!(matches!(
            parse_base2_bytes("10XB"),
            Err(UnitError::UnknownSizeUnit { ref unit, .. }) if unit == "XB"
        ));
        assert!(matches!(
            parse_base2_bytes("10kb"),
            Err(UnitError::UnknownSizeUnit { .. })
        ));
        assert!(matches!(
            parse_base2_bytes("1KiB1KB"),
            Err(UnitError::InvalidSize(_))
        ));
        assert!(matches!(
            parse_base2_bytes(""),
            Err(UnitError::InvalidSize(_))
        ));
        assert!(matches!(
            parse_base2_bytes("MB"),
            Err(UnitError::InvalidSize(_))
        ));
        assert!(matches!(
            parse_base2_bytes("99999EB"),
            Err(UnitError::SizeOverflow(_))
        ));
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    const NANOS_PER_HOUR: u64 = 3_600_000_000_000;

    /// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `300µs`, `42ns`,
    /// `0s` (written here from its definition, not from the parser).
    fn go_format(d: Duration) -> String {
        let n = d.as_nanos();
        if n == 0 {
            return "0s".into();
        }
        // Below a second: one unit with a fraction.
        let fraction = |value: u128, unit: u128, digits: usize| {
            let whole = value / unit;
            let frac = value % unit;
            if frac == 0 {
                format!("{whole}")
            } else {
                let text = format!("{frac:0digits$}");
                format!("{whole}.{}", text.trim_end_matches('0'))
            }
        };
        if n < 1_000 {
            return format!("{n}ns");
        }
        if n < 1_000_000 {
            return format!("{}µs", fraction(n, 1_000, 3));
        }
        if n < 1_000_000_000 {
            return format!("{}ms", fraction(n, 1_000_000, 6));
        }
        let hours = n / u128::from(NANOS_PER_HOUR);
        let rest = n % u128::from(NANOS_PER_HOUR);
        let minutes = rest / 60_000_000_000;
        let seconds = fraction(rest % 60_000_000_000, 1_000_000_000, 9);
        if hours > 0 {
            format!("{hours}h{minutes}m{seconds}s")
        } else if minutes > 0 {
            format!("{minutes}m{seconds}s")
        } else {
            format!("{seconds}s")
        }
    }

    /// Prometheus' `model.Duration.String()` shape: whole units, largest
    /// first, zero units left out. Days, weeks and years are left to hours
    /// because blackbox's `timeout` (a Go `time.Duration`) does not take
    /// them; sub-millisecond parts use Go's `us` and `ns`.
    fn prometheus_format(d: Duration) -> String {
        let mut n = d.as_nanos();
        if n == 0 {
            return "0s".into();
        }
        let mut out = String::new();
        for (unit, nanos) in [
            ("h", u128::from(NANOS_PER_HOUR)),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ] {
            let k = n / nanos;
            if k > 0 {
                out.push_str(&format!("{k}{unit}"));
                n %= nanos;
            }
        }
        out
    }

    /// Durations a config may hold: up to Go's maximum (`i64::MAX` ns),
    /// weighted towards the timeouts people write.
    fn any_duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..=i64::MAX as u64).prop_map(Duration::from_nanos),
            (0u64..3_600_000).prop_map(Duration::from_millis),
            (0u64..100_000).prop_map(Duration::from_secs),
            (0u64..1_000_000).prop_map(Duration::from_micros),
        ]
    }

    const SIZE_UNITS: &[(&str, u32)] = &[
        ("B", 0),
        ("KB", 1),
        ("KiB", 1),
        ("MB", 2),
        ("MiB", 2),
        ("GB", 3),
        ("GiB", 3),
        ("TB", 4),
        ("TiB", 4),
        ("PB", 5),
        ("PiB", 5),
    ];

    proptest! {
        #![proptest_config(crate::net::proptest_config(256))]

        #[test]
        fn go_formatted_durations_round_trip(d in any_duration()) {
            let text = go_format(d);
            prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
        }

        #[test]
        fn prometheus_formatted_durations_round_trip(d in any_duration()) {
            let text = prometheus_format(d);
            prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
        }

        #[test]
        fn a_leading_plus_changes_nothing(d in any_duration()) {
            let text = go_format(d);
            prop_assert_eq!(parse_duration(&format!("+{text}")), parse_duration(&text));
        }

        #[test]
        fn negative_durations_are_refused(d in any_duration()) {
            prop_assume!(!d.is_zero());
            let text = format!("-{}", go_format(d));
            prop_assert_eq!(parse_duration(&text), Err(UnitError::NegativeDuration(text.clone())));
        }

        #[test]
        fn past_go_range_is_an_overflow_not_a_wrap(extra in 1u64..1_000_000) {
            // i64::MAX ns is 2562047h47m16.854775807s.
            let text = format!("2562047h47m{}ns", 16_854_775_807u64 + extra);
            prop_assert_eq!(parse_duration(&text), Err(UnitError::DurationOverflow(text.clone())));
        }

        #[test]
        fn duration_parsing_never_panics(s in "\\PC{0,24}") {
            if let Ok(d) = parse_duration(&s) {
                prop_assert!(d.as_nanos() <= i64::MAX as u128);
            }
        }

        #[test]
        fn duration_like_text_never_panics(s in "[-+]?([0-9]{0,25}\\.?[0-9]{0,25}(ns|us|µs|μs|ms|s|m|h|d|x|)){1,4}") {
            if let Ok(d) = parse_duration(&s) {
                prop_assert!(d.as_nanos() <= i64::MAX as u128);
            }
        }

        #[test]
        fn byte_counts_parse_as_themselves(n in any::<i64>()) {
            prop_assert_eq!(parse_base2_bytes(&n.to_string()), Ok(n));
            prop_assert_eq!(parse_base2_bytes(&format!(" {n}\t")), Ok(n));
        }

        #[test]
        fn sizes_with_a_unit_are_base_2(v in 0u64..1_000_000, unit in 0..SIZE_UNITS.len()) {
            let (name, power) = SIZE_UNITS[unit];
            let want = u128::from(v) * 1024u128.pow(power);
            let got = parse_base2_bytes(&format!("{v}{name}"));
            if want <= i64::MAX as u128 {
                prop_assert_eq!(got, Ok(want as i64));
            } else {
                prop_assert!(matches!(got, Err(UnitError::SizeOverflow(_))), "{:?}", got);
            }
        }

        #[test]
        fn size_parsing_never_panics(s in "\\PC{0,24}") {
            let _ = parse_base2_bytes(&s);
        }

        #[test]
        fn size_like_text_never_panics(s in "[-+ ]?([0-9]{0,22}\\.?[0-9]{0,22}(B|KB|KiB|MiB|EB|EiB|kb|X|)){1,4}") {
            let _ = parse_base2_bytes(&s);
        }
    }
}
