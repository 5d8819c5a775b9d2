//! The shipped deploy and dashboard files are well-formed, and every
//! exporter config shipped inside them loads. (promtool/amtool checks live
//! in `deploy/check`; the dashboards' queries are run against a real
//! Prometheus in `e2e_prometheus`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handshake_exporter::prober::{load_file, load_str};
use serde_json::Value;

use crate::common::json::array;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files under `dir` (recursively) whose name ends with one of `exts`.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if exts.iter().any(|e| path.to_string_lossy().ends_with(e)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_yaml_file_parses() {
    let mut checked = 0;
    for dir in ["deploy", "grafana", "examples"] {
        for path in files(&repo().join(dir), &[".yml", ".yaml"]) {
            let text = std::fs::read_to_string(&path).expect("read");
            serde_saphyr::from_multiple::<serde::de::IgnoredAny>(&text)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} YAML files found");
}

#[test]
fn dashboards_are_valid_json_with_the_shared_variables() {
    let dashboards = files(&repo().join("grafana/dashboards"), &[".json"]);
    assert_eq!(dashboards.len(), 2, "{dashboards:?}");
    for path in dashboards {
        let text = std::fs::read_to_string(&path).expect("read");
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            json["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{}: uid",
            path.display()
        );
        let vars: Vec<&str> = array(&json["templating"]["list"])
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for want in ["datasource", "job", "service", "instance", "vantage"] {
            assert!(
                vars.contains(&want),
                "{}: variable {want} missing: {vars:?}",
                path.display()
            );
        }
        // Several vantage points (SPEC section 12): "All" must be `.*`, which
        // also matches the series of a single exporter that have no
        // `vantage` label at all (without it, All becomes the alternation of
        // the values seen, and a single exporter has none).
        let vantage = array(&json["templating"]["list"])
            .iter()
            .find(|v| v["name"] == "vantage")
            .expect("vantage variable");
        assert_eq!(vantage["multi"], true, "{}: vantage multi", path.display());
        assert_eq!(
            vantage["includeAll"],
            true,
            "{}: vantage includeAll",
            path.display()
        );
        assert_eq!(
            vantage["allValue"],
            ".*",
            "{}: vantage allValue",
            path.display()
        );
    }

    // The overview's vantage point x target matrix: Grafana's "grouping to
    // matrix" transformation with one column per vantage point.
    let text = std::fs::read_to_string(repo().join("grafana/dashboards/handshake-overview.json"))
        .expect("read");
    let overview: Value = serde_json::from_str(&text).expect("overview is JSON");
    let matrix = array(&overview["panels"]).iter().any(|p| {
        array(&p["transformations"])
            .iter()
            .any(|t| t["id"] == "groupingToMatrix" && t["options"]["columnField"] == "vantage")
    });
    assert!(
        matrix,
        "the overview has no panel with a groupingToMatrix transformation by vantage"
    );
}

/// The part of a Kubernetes ConfigMap this test reads.
#[derive(serde::Deserialize)]
struct ConfigMap {
    kind: String,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[test]
fn shipped_exporter_configs_load() {
    for path in [
        "deploy/docker/blackbox.yml",
        "examples/websocket_apps.yml",
        "examples/sse.yml",
        "examples/websocket_session.yml",
        "src/config/default.yml",
    ] {
        load_file(&repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let text =
        std::fs::read_to_string(repo().join("deploy/kubernetes/configmap.yaml")).expect("read");
    let docs: Vec<ConfigMap> = serde_saphyr::from_multiple(&text).expect("configmap parses");
    let configs: Vec<&String> = docs
        .iter()
        .filter(|d| d.kind == "ConfigMap")
        .flat_map(|d| d.data.values())
        .collect();
    assert!(!configs.is_empty(), "no config in the ConfigMap");
    for config in configs {
        load_str(config, Path::new("/etc/handshake_exporter"))
            .unwrap_or_else(|e| panic!("the ConfigMap's config does not load: {e}"));
    }
}
