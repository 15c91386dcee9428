//! `baton eval` and `baton train`.

use crate::cli::{for_each_line, EngineArgs};
use anyhow::{bail, Context, Result};
use baton_detect::model::{self, TrainConfig};
use baton_detect::Detectors;
use baton_domain::{ReasonCode, Role};
use baton_engine::Engine;
use baton_eval::datasets::{self, Dataset, Labelled, LabelledConversation, LabelledTurn, Split};
use baton_eval::timing::{self, TimingConfig, TimingReport};
use baton_eval::{training, UtteranceReport};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `baton eval` options.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Labelled utterances ({"id", "text", "labels": ["code", ...]}) or labelled conversations
    /// ({"id", "turns": [{"role", "text", "satisfaction"?: 1-5, "annotator_ratings"?: [1-5]}],
    /// "rating"?: 1-5, "annotator_ratings"?: [1-5]}), JSON Lines.
    #[arg(required_unless_present = "dataset", conflicts_with = "dataset")]
    input: Option<PathBuf>,
    /// A labelled dataset (from `--datasets DIR`) instead of a file: bitext, banking77, clinc150, goemotions, vader, uss,
    /// or `all`.
    #[arg(long)]
    dataset: Option<String>,
    /// Which split of the dataset: train, validation or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// The labelled datasets folder: one subfolder per set (`banking77`, `clinc150_oos`, ...)
    /// with `ESCALATION_LABEL_MAP.json` beside them; docs/measurements.md describes it.
    #[arg(long, env = "BATON_DATASETS", default_value = "../shared/datasets")]
    datasets: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Conversation mode: mean turn rating at or below which a customer turn is dissatisfied.
    #[arg(long, default_value_t = 2.0)]
    dissatisfied_at_or_below: f64,
    /// Conversation mode: mean overall rating from which a conversation went well.
    #[arg(long, default_value_t = 4.0)]
    good_at_or_above: f64,
    #[command(flatten)]
    engine: EngineArgs,
}

/// `baton train` options.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The labelled datasets folder: one subfolder per set (`banking77`, `clinc150_oos`, ...)
    /// with `ESCALATION_LABEL_MAP.json` beside them; docs/measurements.md describes it.
    #[arg(long, env = "BATON_DATASETS", default_value = "../shared/datasets")]
    datasets: PathBuf,
    /// Hand-written seed utterances trained beside the datasets (empty string: none).
    #[arg(long, default_value = "model/seed.jsonl")]
    seed_data: PathBuf,
    /// Where to write the model file.
    #[arg(long, default_value = "model/baton-detect.model")]
    out: PathBuf,
    /// Where to write the training report (JSON: per-head validation figures, provenance).
    #[arg(long, default_value = "model/training-report.json")]
    report: PathBuf,
    /// log2 of the number of hash buckets.
    #[arg(long, default_value_t = TrainConfig::default().bits, value_parser = clap::value_parser!(u8).range(8..=22))]
    bits: u8,
    /// Passes over the training data.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Seed of the shuffle (training is deterministic for a seed).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// AdaGrad's base learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// L2 penalty per example.
    #[arg(long, default_value_t = TrainConfig::default().l2)]
    l2: f64,
    /// Share of training steps that see only the lexicon and form features.
    #[arg(long, default_value_t = TrainConfig::default().ngram_dropout)]
    ngram_dropout: f64,
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} {per_sec}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

enum Report {
    Utterances(UtteranceReport),
    Timing(TimingReport),
}

/// Runs `baton eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let engine = args.engine.engine()?;
    let timing = TimingConfig {
        dissatisfied_at_or_below: args.dissatisfied_at_or_below,
        good_at_or_above: args.good_at_or_above,
    };
    let mut reports = Vec::new();
    match (&args.input, &args.dataset) {
        (Some(input), _) => reports.push(eval_file(&engine, input, timing)?),
        (None, Some(name)) => {
            let split = Split::parse(&args.split).map_err(anyhow::Error::msg)?;
            let sets: Vec<Dataset> = if name == "all" {
                Dataset::ALL.to_vec()
            } else {
                vec![Dataset::parse(name).map_err(anyhow::Error::msg)?]
            };
            for set in sets {
                // VADER ground truth only has a test split.
                if name == "all" && set == Dataset::Vader && split != Split::Test {
                    continue;
                }
                // CLINC150's out-of-scope check runs against its in-scope training utterances,
                // one article per intent, unless a knowledge base was given.
                let clinc = (set == Dataset::Clinc150 && args.engine.kb.is_none())
                    .then(|| -> Result<Engine> {
                        let kb = datasets::clinc_knowledge_base(&args.datasets)?;
                        Ok(args
                            .engine
                            .engine()?
                            .with_knowledge_base(Some(Arc::new(kb))))
                    })
                    .transpose()?;
                let engine = clinc.as_ref().unwrap_or(&engine);
                reports.push(eval_dataset(engine, &args.datasets, set, split, timing)?);
            }
        }
        (None, None) => bail!("give an input file or --dataset NAME"),
    }
    if args.json {
        let values: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| match r {
                Report::Utterances(u) => serde_json::to_value(u),
                Report::Timing(t) => serde_json::to_value(t),
            })
            .collect::<Result<_, _>>()?;
        let out = if values.len() == 1 {
            values.into_iter().next().unwrap_or_default()
        } else {
            serde_json::Value::Array(values)
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &reports {
            match r {
                Report::Utterances(u) => println!("{}", baton_eval::render_table(u)),
                Report::Timing(t) => println!("{}", timing::render_timing(t)),
            }
        }
    }
    Ok(())
}

fn eval_dataset(
    engine: &Engine,
    dir: &Path,
    set: Dataset,
    split: Split,
    timing: TimingConfig,
) -> Result<Report> {
    let name = format!("{} {}", set.name(), split_name(split));
    if set.is_conversations() {
        let conversations = datasets::load_conversations(dir, split)?;
        let bar = progress(conversations.len(), &name);
        let r = timing::evaluate_timing(engine, &name, &conversations, timing, |i| {
            bar.set_position(i as u64)
        });
        bar.finish_and_clear();
        return Ok(Report::Timing(r));
    }
    let utterances = datasets::load_utterances(dir, set, split)?;
    let bar = progress(utterances.rows.len(), &name);
    let r =
        baton_eval::evaluate_utterances(engine, &name, &utterances.rows, &utterances.codes, |i| {
            bar.set_position(i as u64)
        });
    bar.finish_and_clear();
    Ok(Report::Utterances(r))
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Validation => "validation",
        Split::Test => "test",
    }
}

#[derive(Deserialize)]
struct UtteranceLine {
    id: serde_json::Value,
    text: String,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
struct ConversationLine {
    id: serde_json::Value,
    turns: Vec<ConversationTurn>,
    #[serde(default)]
    rating: Option<f64>,
    /// Each annotator's overall rating (the mean stands in for a missing `rating`).
    #[serde(default)]
    annotator_ratings: Vec<f64>,
}

#[derive(Deserialize)]
struct ConversationTurn {
    role: Role,
    text: String,
    #[serde(default)]
    satisfaction: Option<f64>,
    /// Each annotator's rating, in the same annotator order on every turn.
    #[serde(default)]
    annotator_ratings: Vec<f64>,
}

fn id_text(id: &serde_json::Value) -> String {
    match id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn eval_file(engine: &Engine, input: &Path, timing: TimingConfig) -> Result<Report> {
    // The first line tells conversations from utterances; the file is then read once, line by
    // line, by `for_each_line`.
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open `{}`", input.display()))?;
    let first = std::io::BufRead::lines(std::io::BufReader::new(file))
        .map_while(Result::ok)
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("`{}` is empty", input.display()))?;
    let first: serde_json::Value = serde_json::from_str(&first)
        .with_context(|| format!("{}: the first line is not JSON", input.display()))?;
    let name = input.display().to_string();
    if first.get("turns").is_some() {
        let mut conversations = Vec::new();
        for_each_line(input, |_, c: ConversationLine| {
            conversations.push(LabelledConversation {
                id: id_text(&c.id),
                turns: c
                    .turns
                    .into_iter()
                    .map(|t| LabelledTurn {
                        role: t.role,
                        text: t.text,
                        satisfaction: t
                            .satisfaction
                            .or_else(|| datasets::mean(&t.annotator_ratings)),
                        annotator_ratings: t.annotator_ratings,
                    })
                    .collect(),
                overall: c.rating.or_else(|| datasets::mean(&c.annotator_ratings)),
                overall_annotator_ratings: c.annotator_ratings,
            });
            Ok(())
        })?;
        let bar = progress(conversations.len(), "conversations");
        let r = timing::evaluate_timing(engine, &name, &conversations, timing, |i| {
            bar.set_position(i as u64)
        });
        bar.finish_and_clear();
        return Ok(Report::Timing(r));
    }
    let mut rows = Vec::new();
    let mut codes = BTreeSet::new();
    for_each_line(input, |line, u: UtteranceLine| {
        let labels = u
            .labels
            .iter()
            .map(|l| {
                l.parse::<ReasonCode>().map_err(|e| {
                    anyhow::anyhow!(
                        "{}:{line}: {e}: labels must be reason codes",
                        input.display()
                    )
                })
            })
            .collect::<Result<BTreeSet<_>>>()?;
        codes.extend(labels.iter().copied());
        rows.push(Labelled {
            id: id_text(&u.id),
            text: u.text,
            labels,
            native: String::new(),
            out_of_scope: false,
            rating: None,
        });
        Ok(())
    })?;
    let bar = progress(rows.len(), "utterances");
    let codes: Vec<ReasonCode> = codes.into_iter().collect();
    let r = baton_eval::evaluate_utterances(engine, &name, &rows, &codes, |i| {
        bar.set_position(i as u64)
    });
    bar.finish_and_clear();
    Ok(Report::Utterances(r))
}

/// Runs `baton train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let config = TrainConfig {
        bits: args.bits,
        epochs: args.epochs,
        seed: args.seed,
        learning_rate: args.learning_rate,
        l2: args.l2,
        ngram_dropout: args.ngram_dropout,
    };
    let policy = crate::cli::load_policy(None)?;
    let detectors = Detectors::with_model(policy.file.detectors.clone(), None);
    let bar = progress(0, "features");
    let data = training::build_examples(
        &args.datasets,
        (!args.seed_data.as_os_str().is_empty()).then_some(args.seed_data.as_path()),
        &detectors,
        &config,
        |name, i, len| {
            if i == 1 {
                bar.set_length(len as u64);
                bar.set_message(name.to_owned());
            }
            bar.set_position(i as u64);
        },
    )?;
    bar.finish_and_clear();
    eprintln!(
        "training {} heads and {} intent classes on {} examples ({} for validation)...",
        training::HEADS.len(),
        data.intents.len(),
        data.examples.len(),
        data.examples.iter().filter(|e| e.validation).count()
    );
    let (model, reports) = model::train(
        training::HEADS,
        &data.intents,
        &data.examples,
        &config,
        data.provenance,
    );
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    let bytes = model.to_bytes();
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write `{}`", args.out.display()))?;
    let report = serde_json::json!({
        "model": args.out.display().to_string(),
        "bytes": bytes.len(),
        "heads": reports,
        "provenance": model.header().provenance,
    });
    std::fs::write(&args.report, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write `{}`", args.report.display()))?;
    println!(
        "{:<18} {:>14} {:>14} {:>10} {:>8}",
        "head", "train (pos/all)", "valid (pos/all)", "threshold", "val F1"
    );
    for r in &reports {
        println!(
            "{:<18} {:>14} {:>14} {:>10.3} {:>8.3}",
            r.code.as_str(),
            format!("{}/{}", r.train.0, r.train.1),
            format!("{}/{}", r.validation.0, r.validation.1),
            r.threshold,
            r.validation_f1
        );
    }
    println!(
        "wrote {} ({} bytes) and {}",
        args.out.display(),
        bytes.len(),
        args.report.display()
    );
    Ok(())
}
