//! Every shipped script validates, and every shipped case passes.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use waihu_dialog::testing::{load_cases, run_cases};

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scripts")
}

/// `x.zh.yaml` and `x.en.yaml` share `x.cases.yaml`.
fn cases_for(script: &Path) -> PathBuf {
    let name = script
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let base = name
        .trim_end_matches(".yaml")
        .trim_end_matches(".zh")
        .trim_end_matches(".en");
    script.with_file_name(format!("{base}.cases.yaml"))
}

#[test]
fn shipped_scripts_validate_and_pass_their_cases() {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(scripts_dir())
        .expect("examples/scripts exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".yaml") && !n.ends_with(".cases.yaml")
        })
        .collect();
    scripts.sort();
    assert!(
        scripts.len() >= 12,
        "expected 6 templates x 2 languages, found {}",
        scripts.len()
    );
    let mut failures = Vec::new();
    let mut ran = 0;
    for s in &scripts {
        let prog = match waihu_dialog::load_file(s) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let cases_path = cases_for(s);
        let cases = load_cases(&cases_path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cases.cases.len() >= 4,
            "{}: too few cases",
            cases_path.display()
        );
        for r in run_cases(&prog, &cases, None) {
            ran += 1;
            if !r.passed {
                failures.push(format!(
                    "{} / {}: {}",
                    s.display(),
                    r.name,
                    r.failures.join("; ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
