//! A parser for the Prometheus text exposition format (version 0.0.4), good
//! enough for comparing `/probe` and `/metrics` answers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    /// `name{k="v",...}` with the labels sorted by name.
    pub fn series(&self) -> String {
        series(&self.name, &self.labels)
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.series(), format_value(self.value))
    }
}

/// `name{k="v",...}` (labels in name order, values escaped), or `name`.
pub fn series(name: &str, labels: &Labels) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('\n', "\\n")
                .replace('"', "\\\"");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// A value the way Prometheus prints it (`NaN`, `+Inf`, `-Inf`, else Rust's
/// shortest round-trip form).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Equal values, with NaN equal to NaN.
pub fn same_value(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// `# HELP` text by metric family.
    pub help: BTreeMap<String, String>,
    /// `# TYPE` by metric family.
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses `text`, panicking with the offending line and the whole text
    /// when it is not valid exposition format.
    pub fn parse(text: &str) -> Self {
        match Self::try_parse(text) {
            Ok(e) => e,
            Err(err) => panic!("invalid exposition format: {err}\n--- text ---\n{text}"),
        }
    }

    pub fn try_parse(text: &str) -> Result<Self, String> {
        let mut out = Exposition::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let at = |e: String| format!("line {}: {e}: {raw:?}", i + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let rest = rest.trim_start();
                if let Some(rest) = rest.strip_prefix("HELP ") {
                    let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                    out.help.insert(name.to_string(), unescape_help(help));
                } else if let Some(rest) = rest.strip_prefix("TYPE ") {
                    let (name, ty) = rest
                        .split_once(' ')
                        .ok_or_else(|| at("TYPE without a type".into()))?;
                    out.types.insert(name.to_string(), ty.trim().to_string());
                }
                continue;
            }
            out.samples.push(parse_sample(line).map_err(at)?);
        }
        Ok(out)
    }

    /// The one sample named `name` whose labels include every `(k, v)` of
    /// `labels` (all samples of `name` when `labels` is empty). `None` when
    /// there is none; panics when several match.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        match matching.as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!(
                "{name} with {labels:?} is ambiguous: {}",
                many.iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }

    /// Like [`Exposition::value`] but panics with the whole exposition when
    /// the series is missing.
    pub fn expect(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{self}"))
    }

    /// The sample named `name` with exactly `labels`.
    pub fn get(&self, name: &str, labels: &Labels) -> Option<&Sample> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    pub fn samples_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// Label sets (names and values) of the samples named `name`.
    pub fn label_sets(&self, name: &str) -> Vec<Labels> {
        self.samples_named(name).map(|s| s.labels.clone()).collect()
    }

    /// The distinct sets of label names used by `name`.
    pub fn label_names(&self, name: &str) -> BTreeSet<BTreeSet<String>> {
        self.samples_named(name)
            .map(|s| s.labels.keys().cloned().collect())
            .collect()
    }
}

impl fmt::Display for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.samples {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // skip separators and whitespace
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            let Some(&(start, c)) = chars.peek() else {
                return Err("unterminated label set".into());
            };
            if c == '}' {
                rest = &after[start + 1..];
                break;
            }
            let mut key_end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    key_end = i + c.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let key = &after[start..key_end];
            if key.is_empty() {
                return Err("empty label name".into());
            }
            match chars.next() {
                Some((_, '=')) => {}
                _ => return Err(format!("expected '=' after label {key}")),
            }
            match chars.next() {
                Some((_, '"')) => {}
                _ => return Err(format!("expected '\"' for label {key}")),
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated value of label {key}")),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, other)) => {
                            return Err(format!("bad escape \\{other} in label {key}"));
                        }
                        None => return Err(format!("unterminated value of label {key}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            }
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("duplicate label {key}"));
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = parse_value(value)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing garbage".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse::<f64>().map_err(|_| format!("bad value {s:?}")),
    }
}
