//! `fail_if_body_json_matches_cel` / `fail_if_body_json_not_matches_cel`
//! (blackbox 0.27): the body is parsed as JSON and bound to `body`; the
//! expression must give a bool.
//!
//! Programs are compiled once, at config load, with the `cel` crate
//! (cel-rust). A body that is not JSON, an evaluation error (a missing key,
//! a type mismatch) and a result that is not a bool all fail the probe, as
//! in blackbox; every CEL failure is reason `http_body_cel` and sets
//! `probe_failed_due_to_cel`.

use std::fmt;
use std::sync::Arc;

use crate::config::{ConfigError, Ctx};
use crate::prober::reason::{FailureReason, ProbeFailure};

/// One compiled expression and its source (shown in logs and `/config`).
pub struct CelProgram {
    expression: String,
    program: cel::Program,
}

impl fmt::Debug for CelProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CelProgram").field(&self.expression).finish()
    }
}

impl CelProgram {
    /// Compile `expression` for `key`; a syntax error is a load error naming
    /// the key and the position.
    pub fn compile(ctx: &Ctx<'_>, key: &str, expression: &str) -> Result<Self, ConfigError> {
        if expression.trim().is_empty() {
            return Err(ctx.err(key, "CEL program must not be empty"));
        }
        let program = cel::Program::compile(expression).map_err(|e| {
            ctx.err(
                key,
                format!("could not compile CEL program {expression:?}: {e}"),
            )
        })?;
        Ok(Self {
            expression: expression.to_string(),
            program,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The expression's value for this body, or why there is none.
    fn eval(&self, body: &cel::Value) -> Result<bool, ProbeFailure> {
        let mut context = cel::Context::default();
        context.add_variable_from_value("body", body.clone());
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(fail(format!(
                "CEL evaluation result is not a boolean: {} gave {}",
                self.expression,
                type_name(&other)
            ))),
            Err(e) => Err(fail(format!(
                "Error evaluating CEL expression {}: {e}",
                self.expression
            ))),
        }
    }
}

/// The module's CEL matchers (either may be absent).
#[derive(Debug, Clone, Default)]
pub struct CelChecks {
    pub matches: Option<Arc<CelProgram>>,
    pub not_matches: Option<Arc<CelProgram>>,
}

impl CelChecks {
    pub fn build(
        ctx: &Ctx<'_>,
        matches: Option<&str>,
        not_matches: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let compile = |key: &str, e: Option<&str>| {
            e.map(|e| CelProgram::compile(ctx, key, e).map(Arc::new))
                .transpose()
        };
        Ok(Self {
            matches: compile("http.fail_if_body_json_matches_cel", matches)?,
            not_matches: compile("http.fail_if_body_json_not_matches_cel", not_matches)?,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.matches.is_some() || self.not_matches.is_some()
    }

    /// Parse the body as JSON and run the matchers over it, in blackbox's
    /// order (`matches` first). CPU-bound: the caller runs it off the
    /// runtime for large bodies.
    pub fn check(&self, body: &[u8]) -> Result<(), ProbeFailure> {
        if !self.is_configured() {
            return Ok(());
        }
        let json: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| fail(format!("Error unmarshalling HTTP body to JSON: {e}")))?;
        let value = cel::to_value(&json)
            .map_err(|e| fail(format!("Error converting HTTP body for CEL: {e}")))?;
        if let Some(p) = &self.matches
            && p.eval(&value)?
        {
            return Err(fail(format!(
                "Body matched CEL expression {}",
                p.expression
            )));
        }
        if let Some(p) = &self.not_matches
            && !p.eval(&value)?
        {
            return Err(fail(format!(
                "Body did not match CEL expression {}",
                p.expression
            )));
        }
        Ok(())
    }
}

fn fail(message: String) -> ProbeFailure {
    ProbeFailure::new(FailureReason::HttpBodyCel, message)
}

fn type_name(v: &cel::Value) -> &'static str {
    match v {
        cel::Value::List(_) => "a list",
        cel::Value::Map(_) => "a map",
        cel::Value::Function(..) => "a function",
        cel::Value::Int(_) => "an int",
        cel::Value::UInt(_) => "a uint",
        cel::Value::Float(_) => "a double",
        cel::Value::String(_) => "a string",
        cel::Value::Bytes(_) => "bytes",
        cel::Value::Bool(_) => "a bool",
        cel::Value::Null => "null",
        _ => "a value of another type",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            module: "m",
            base_dir: Path::new("/"),
        }
    }

    fn checks(matches: Option<&str>, not_matches: Option<&str>) -> CelChecks {
        CelChecks::build(&ctx(), matches, not_matches).expect("compiles")
    }

    const BODY: &[u8] = br#"{"status":"ok","count":3,"ratio":0.75,
        "checks":[{"name":"db","up":true},{"name":"cache","up":false}]}"#;

    #[test]
    fn matches_fails_when_true() {
        let e = checks(Some("body.status == 'down'"), None).check(BODY);
        assert!(e.is_ok(), "{e:?}");
        let e = checks(Some("body.checks.exists(c, !c.up)"), None)
            .check(BODY)
            .expect_err("a check is down");
        assert_eq!(e.reason, FailureReason::HttpBodyCel);
        assert!(e.message.contains("Body matched CEL expression"), "{e:?}");
    }

    #[test]
    fn not_matches_fails_when_false() {
        let c = checks(None, Some("body.count >= 3 && body.ratio > 0.5"));
        assert!(c.check(BODY).is_ok());
        let e = checks(None, Some("body.checks.all(c, c.up)"))
            .check(BODY)
            .expect_err("not all up");
        assert!(
            e.message.contains("Body did not match CEL expression"),
            "{e:?}"
        );
    }

    #[test]
    fn numbers_compare_across_int_and_double() {
        // Go decodes every JSON number as a double; comparisons with int
        // literals still hold there, and must here.
        for e in [
            "body.count == 3",
            "body.count == 3.0",
            "body.count > 2",
            "body.ratio < 1",
        ] {
            assert!(checks(None, Some(e)).check(BODY).is_ok(), "{e}");
        }
    }

    #[test]
    fn not_json_not_bool_and_errors_fail() {
        for (m, n, body, want) in [
            (
                Some("body.ok"),
                None,
                &b"<html>"[..],
                "Error unmarshalling HTTP body to JSON",
            ),
            (None, Some("body.count"), BODY, "is not a boolean"),
            (
                None,
                Some("body.missing == 1"),
                BODY,
                "Error evaluating CEL",
            ),
            (Some("1 + 'a' == 2"), None, BODY, "Error evaluating CEL"),
            (None, Some("body.ok"), &b""[..], "Error unmarshalling"),
        ] {
            let e = checks(m, n).check(body).expect_err(want);
            assert_eq!(e.reason, FailureReason::HttpBodyCel);
            assert!(e.message.contains(want), "{want}: {e:?}");
        }
        // `has()` tests for a key without failing.
        assert!(checks(Some("has(body.missing)"), None).check(BODY).is_ok());
    }

    #[test]
    fn json_that_is_not_an_object_is_bound_too() {
        let c = checks(None, Some("size(body) == 2 && body[0] == 'a'"));
        assert!(c.check(br#"["a","b"]"#).is_ok());
    }

    #[test]
    fn compile_errors_name_the_key() {
        for (m, n, key) in [
            (Some("body."), None, "http.fail_if_body_json_matches_cel"),
            (
                None,
                Some("body.ok =="),
                "http.fail_if_body_json_not_matches_cel",
            ),
            (Some(""), None, "http.fail_if_body_json_matches_cel"),
        ] {
            let e = CelChecks::build(&ctx(), m, n).expect_err(key).to_string();
            assert!(e.contains(key), "{e}");
            assert!(e.contains("module \"m\""), "{e}");
        }
        assert!(!CelChecks::default().is_configured());
    }
}
