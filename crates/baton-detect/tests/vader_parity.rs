//! Differential test: Baton's sentiment scores equal Python `vaderSentiment` 3.3.2's on every
//! text of the VADER ground truth (Hutto & Gilbert 2014; 23,703 texts).
//!
//! Needs `../shared/datasets/vader_ground_truth` and `pip install vaderSentiment==3.3.2`, so it
//! is ignored in a plain `cargo test`; `.ci/run` runs it with `--ignored` where `../shared` exists.

use baton_detect::{DetectConfig, Detectors};
use std::path::PathBuf;
use std::process::Command;

#[test]
#[ignore = "needs ../shared/datasets and Python vaderSentiment 3.3.2; .ci/run runs it"]
fn compound_scores_match_python_vader_sentiment_exactly() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let folder = std::env::var_os("BATON_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../../shared/datasets"))
        .join("vader_ground_truth");
    assert!(
        folder.is_dir(),
        "{} not found: set BATON_DATASETS to the shared datasets folder",
        folder.display()
    );
    let output = Command::new("python3")
        .arg(manifest.join("tests/vader_oracle.py"))
        .arg(&folder)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let detectors = Detectors::new(DetectConfig::default());
    let (mut total, mut mismatches) = (0usize, Vec::new());
    for line in String::from_utf8(output.stdout).expect("utf-8").lines() {
        let oracle: serde_json::Value = serde_json::from_str(line).expect("oracle line");
        let text = oracle["text"].as_str().expect("text");
        let ours = detectors.vader(text);
        total += 1;
        let same = [
            (ours.compound, &oracle["compound"]),
            (ours.neg, &oracle["neg"]),
            (ours.neu, &oracle["neu"]),
            (ours.pos, &oracle["pos"]),
        ]
        .iter()
        .all(|(x, y)| y.as_f64() == Some(*x));
        if !same {
            mismatches.push(format!(
                "{} {}: ours {ours:?}, python {oracle}",
                oracle["file"], oracle["id"]
            ));
        }
    }
    assert_eq!(total, 23_703, "expected every ground-truth text");
    assert!(
        mismatches.is_empty(),
        "{} of {total} differ:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("vader parity: {total} of {total} texts identical (compound, neg, neu, pos)");
}
