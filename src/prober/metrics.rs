//! Per-probe metric registry with presence declared up front.
//!
//! blackbox decides ad hoc, line by line, which gauges a probe registers, so
//! "absent" versus "0" differs per prober by accident. Here every prober
//! declares its gauges as [`GaugeSpec`]s with a [`Presence`] rule; the
//! registry pre-initialises the `Always` ones and only the declared families
//! can be set. The text exposition is rendered at the end (sorted by family
//! name, then by label values, as client_golang does).

use std::fmt::Write as _;
use std::sync::Mutex;

/// When a declared gauge appears in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Registered at probe start: present (0 unless set) on every probe of
    /// this prober. For labelled gauges, `initial` lists the series that
    /// start at 0.
    Always,
    /// Present only once the probe sets it.
    WhenSet,
}

/// A declared gauge family.
#[derive(Debug)]
pub struct GaugeSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub presence: Presence,
    /// Label value sets pre-initialised to 0 (only with `Presence::Always`),
    /// with `label_names` naming the labels in order.
    pub label_names: &'static [&'static str],
    pub initial: &'static [&'static [&'static str]],
}

impl GaugeSpec {
    pub const fn always(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            presence: Presence::Always,
            label_names: &[],
            initial: &[],
        }
    }

    pub const fn when_set(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            presence: Presence::WhenSet,
            label_names: &[],
            initial: &[],
        }
    }

    pub const fn labelled(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            presence: Presence::WhenSet,
            label_names,
            initial: &[],
        }
    }
}

type LabelSet = Vec<(String, String)>;

/// A family and its series, sorted by label values. Vectors, not maps: a
/// probe has a dozen families of mostly one series, and with thousands of
/// probes in flight a map's node per family is most of a probe's metrics.
struct Family {
    spec: &'static GaugeSpec,
    series: Vec<(LabelSet, f64)>,
}

impl Family {
    fn series_mut(&mut self, labels: LabelSet) -> &mut f64 {
        let i = match self.series.binary_search_by(|(l, _)| l.cmp(&labels)) {
            Ok(i) => i,
            Err(i) => {
                self.series.insert(i, (labels, 0.0));
                i
            }
        };
        &mut self.series[i].1
    }
}

/// The gauges of one probe. Interior mutability so the prober can write
/// through a shared reference while the handler keeps ownership: when the
/// deadline cancels the prober, what it recorded so far is still rendered.
pub struct ProbeMetrics {
    /// Sorted by family name.
    families: Mutex<Vec<Family>>,
    declared: Vec<&'static GaugeSpec>,
}

impl ProbeMetrics {
    /// A registry accepting exactly the given families.
    pub fn new(declared: &[&'static [&'static GaugeSpec]]) -> Self {
        let declared: Vec<&'static GaugeSpec> = declared
            .iter()
            .flat_map(|set| set.iter().copied())
            .collect();
        let mut families: Vec<Family> = Vec::new();
        for spec in &declared {
            if spec.presence != Presence::Always {
                continue;
            }
            let mut family = Family {
                spec,
                series: Vec::new(),
            };
            if spec.label_names.is_empty() {
                family.series.push((Vec::new(), 0.0));
            } else {
                for values in spec.initial {
                    family.series_mut(label_set(spec, values));
                }
            }
            families.push(family);
        }
        families.sort_by_key(|f| f.spec.name);
        families.dedup_by_key(|f| f.spec.name);
        Self {
            families: Mutex::new(families),
            declared,
        }
    }

    fn with_family<R>(&self, spec: &'static GaugeSpec, f: impl FnOnce(&mut Family) -> R) -> R {
        debug_assert!(
            self.declared.iter().any(|d| std::ptr::eq(*d, spec)),
            "metric {} set but not declared by this prober",
            spec.name
        );
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let i = match families.binary_search_by_key(&spec.name, |f| f.spec.name) {
            Ok(i) => i,
            Err(i) => {
                families.insert(
                    i,
                    Family {
                        spec,
                        series: Vec::new(),
                    },
                );
                i
            }
        };
        f(&mut families[i])
    }

    /// Set an unlabelled gauge.
    pub fn set(&self, spec: &'static GaugeSpec, value: f64) {
        self.with_family(spec, |f| *f.series_mut(Vec::new()) = value);
    }

    /// Set one series of a gauge whose label names are declared.
    pub fn set_labelled(&self, spec: &'static GaugeSpec, values: &[&str], value: f64) {
        let labels = label_set(spec, values);
        self.with_family(spec, |f| *f.series_mut(labels) = value);
    }

    /// Add to one series (phase durations summed over redirects).
    pub fn add_labelled(&self, spec: &'static GaugeSpec, values: &[&str], delta: f64) {
        let labels = label_set(spec, values);
        self.with_family(spec, |f| *f.series_mut(labels) += delta);
    }

    /// Set a series whose label names are chosen by the user's config
    /// (`probe_expect_info`).
    pub fn set_dynamic(&self, spec: &'static GaugeSpec, labels: Vec<(String, String)>, value: f64) {
        self.with_family(spec, |f| *f.series_mut(labels) = value);
    }

    /// Read back a series (tests, history, self-metrics).
    pub fn get(&self, name: &str, values: &[(&str, &str)]) -> Option<f64> {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.iter().find(|f| f.spec.name == name)?;
        family.series.iter().find_map(|(labels, v)| {
            let matches = labels.len() == values.len()
                && labels
                    .iter()
                    .zip(values)
                    .all(|((ln, lv), (n, v))| ln == n && lv == v);
            matches.then_some(*v)
        })
    }

    /// Text exposition format 0.0.4.
    pub fn encode_text(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(2048);
        for family in families.iter() {
            if family.series.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "# HELP {} {}",
                family.spec.name,
                escape_help(family.spec.help)
            );
            let _ = writeln!(out, "# TYPE {} gauge", family.spec.name);
            for (labels, value) in &family.series {
                out.push_str(family.spec.name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (name, value)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{name}=\"{}\"", escape_label_value(value));
                    }
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&format_value(*value));
                out.push('\n');
            }
        }
        out
    }
}

fn label_set(spec: &GaugeSpec, values: &[&str]) -> LabelSet {
    debug_assert_eq!(
        spec.label_names.len(),
        values.len(),
        "label arity for {}",
        spec.name
    );
    spec.label_names
        .iter()
        .zip(values)
        .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
        .collect()
}

/// Prometheus sample value formatting (shortest round-trip, Go spellings
/// for the special values).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: GaugeSpec = GaugeSpec::always("probe_a", "A gauge");
    static B: GaugeSpec = GaugeSpec::when_set("probe_b", "B gauge");
    static PHASE: GaugeSpec = GaugeSpec {
        name: "probe_phase_seconds",
        help: "Phases",
        presence: Presence::Always,
        label_names: &["phase"],
        initial: &[&["connect"], &["tls"]],
    };
    static SET: &[&GaugeSpec] = &[&A, &B, &PHASE];

    #[test]
    fn always_present_when_set_absent() {
        let m = ProbeMetrics::new(&[SET]);
        let text = m.encode_text();
        assert!(text.contains("probe_a 0\n"), "{text}");
        assert!(!text.contains("probe_b"), "{text}");
        assert!(text.contains("probe_phase_seconds{phase=\"connect\"} 0\n"));
        m.set(&B, 2.5);
        m.add_labelled(&PHASE, &["connect"], 0.25);
        m.add_labelled(&PHASE, &["connect"], 0.25);
        m.add_labelled(&PHASE, &["resolve"], 1.0);
        let text = m.encode_text();
        assert!(text.contains("probe_b 2.5\n"));
        assert!(text.contains("probe_phase_seconds{phase=\"connect\"} 0.5\n"));
        assert!(text.contains("probe_phase_seconds{phase=\"resolve\"} 1\n"));
        assert_eq!(
            m.get("probe_phase_seconds", &[("phase", "resolve")]),
            Some(1.0)
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(-62135596800.0), "-62135596800");
    }
}
