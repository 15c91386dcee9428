//! Knowledge-base similarity: how well the best article of a knowledge base covers a customer's
//! question, so that `low_confidence` works with bots that report no `kb_similarity` of their
//! own.
//!
//! The method is TF-IDF over character 3- to 5-grams inside words (each word padded with a
//! space on both sides), with sublinear term frequency (`1 + ln tf`), smoothed inverse document
//! frequency (`ln((1 + N) / (1 + df)) + 1`, N articles) and cosine similarity; an article is one
//! document. Character n-grams carry over to inflections and typos that whole words miss. On
//! CLINC150 (Larson et al., EMNLP 2019), with each in-scope intent's training utterances as one
//! article, the best cosine separates out-of-scope test queries from in-scope ones with an AUROC
//! of about 0.92 (`baton eval --dataset clinc150`).
//!
//! Articles are read from a folder: Markdown or text files (`.md`, `.markdown`, `.txt`; the
//! first `# ` heading, else the file name, is the title) and JSON files (an object with `id`?,
//! `title`? and `body` or `text`, or an array of such objects).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One article's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    /// Stable id (file stem, or the JSON `id`).
    pub id: String,
    /// Title shown as evidence.
    pub title: String,
}

/// Why a knowledge base could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// A file or the folder is unreadable.
    #[error("cannot read `{path}`")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON article file is malformed.
    #[error("`{path}`: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What to fix.
        message: String,
    },
    /// The folder holds no article.
    #[error("`{0}` holds no article: add .md, .txt or .json files")]
    Empty(PathBuf),
}

/// An indexed knowledge base.
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    articles: Vec<Article>,
    /// n-gram -> (article, normalised weight).
    postings: HashMap<u64, Vec<(u32, f32)>>,
    /// n-gram -> idf.
    idf: HashMap<u64, f32>,
}

fn grams(text: &str, mut each: impl FnMut(u64)) {
    let mut padded: Vec<u8> = Vec::with_capacity(32);
    for word in crate::model::words(text) {
        padded.clear();
        padded.push(b' ');
        padded.extend_from_slice(word.as_bytes());
        padded.push(b' ');
        for n in 3..=5 {
            for g in padded.windows(n) {
                each(xxhash_rust::xxh3::xxh3_64(g));
            }
        }
    }
}

/// Each n-gram of `text` with its count, in n-gram order: sums over it come out the same on
/// every run (a hash map's order would change the last bits of the similarity from run to
/// run).
fn term_counts(text: &str) -> Vec<(u64, u32)> {
    let mut tf: HashMap<u64, u32> = HashMap::new();
    grams(text, |g| *tf.entry(g).or_default() += 1);
    let mut tf: Vec<(u64, u32)> = tf.into_iter().collect();
    tf.sort_unstable_by_key(|(g, _)| *g);
    tf
}

impl KnowledgeBase {
    /// Indexes `(article, text)` pairs.
    pub fn build(articles: Vec<(Article, String)>) -> Self {
        let n = articles.len() as f32;
        let counts: Vec<Vec<(u64, u32)>> =
            articles.iter().map(|(_, text)| term_counts(text)).collect();
        let mut df: HashMap<u64, u32> = HashMap::new();
        for tf in &counts {
            for (g, _) in tf {
                *df.entry(*g).or_default() += 1;
            }
        }
        let idf: HashMap<u64, f32> = df
            .into_iter()
            .map(|(g, d)| (g, ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0))
            .collect();
        let mut postings: HashMap<u64, Vec<(u32, f32)>> = HashMap::new();
        for (a, tf) in counts.iter().enumerate() {
            let weights: Vec<(u64, f32)> = tf
                .iter()
                .map(|&(g, c)| (g, (1.0 + (c as f32).ln()) * idf[&g]))
                .collect();
            let norm = weights.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            for (g, w) in weights {
                postings.entry(g).or_default().push((a as u32, w / norm));
            }
        }
        Self {
            articles: articles.into_iter().map(|(a, _)| a).collect(),
            postings,
            idf,
        }
    }

    /// Reads and indexes every article in `dir` (not recursive; files in name order).
    ///
    /// # Errors
    /// [`KbError`] for an unreadable folder or file, malformed JSON, or no article at all.
    pub fn load_dir(dir: &Path) -> Result<Self, KbError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KbError::Io { path, source }
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let mut articles = Vec::new();
        for path in files {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            match ext.as_str() {
                "md" | "markdown" | "txt" => {
                    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                    let title = text
                        .lines()
                        .find_map(|l| l.strip_prefix("# "))
                        .map_or_else(|| stem.clone(), |t| t.trim().to_owned());
                    articles.push((Article { id: stem, title }, text));
                }
                "json" => {
                    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                    articles.extend(json_articles(&path, &stem, &text)?);
                }
                _ => {}
            }
        }
        if articles.is_empty() {
            return Err(KbError::Empty(dir.to_owned()));
        }
        Ok(Self::build(articles))
    }

    /// How many articles are indexed.
    pub fn len(&self) -> usize {
        self.articles.len()
    }

    /// Whether no article is indexed.
    pub fn is_empty(&self) -> bool {
        self.articles.is_empty()
    }

    /// The best article for `text` and its cosine similarity in `[0, 1]`; `None` when no
    /// n-gram of the text occurs in the knowledge base.
    pub fn best(&self, text: &str) -> Option<(f64, &Article)> {
        let tf = term_counts(text);
        let query: Vec<(u64, f32)> = tf
            .iter()
            .filter_map(|&(g, c)| Some((g, (1.0 + (c as f32).ln()) * self.idf.get(&g)?)))
            .collect();
        // The query's norm counts n-grams unknown to the base at the highest idf: a question
        // made of words the base never uses is far from every article.
        let unseen = (1.0 + self.articles.len() as f32).ln() + 1.0;
        let norm = tf
            .iter()
            .map(|&(g, c)| {
                let w = (1.0 + (c as f32).ln()) * self.idf.get(&g).copied().unwrap_or(unseen);
                w * w
            })
            .sum::<f32>()
            .sqrt();
        if norm == 0.0 {
            return None;
        }
        let mut dots = vec![0f32; self.articles.len()];
        for (g, w) in &query {
            for (a, aw) in &self.postings[g] {
                dots[*a as usize] += w * aw;
            }
        }
        let (best, dot) = dots.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        Some((
            f64::from((dot / norm).clamp(0.0, 1.0)),
            &self.articles[best],
        ))
    }
}

fn json_articles(path: &Path, stem: &str, text: &str) -> Result<Vec<(Article, String)>, KbError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| KbError::Format {
        path: path.to_owned(),
        message: format!("{e}: give an object or an array of objects with `body` or `text`"),
    })?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let get = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let body = get("body")
                .or_else(|| get("text"))
                .ok_or_else(|| KbError::Format {
                    path: path.to_owned(),
                    message: format!("article {i} has no `body` or `text` string"),
                })?;
            let id = get("id").unwrap_or_else(|| format!("{stem}-{i}"));
            let title = get("title").unwrap_or_else(|| id.clone());
            Ok((Article { id, title }, body))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> KnowledgeBase {
        KnowledgeBase::build(vec![
            (
                Article {
                    id: "returns".into(),
                    title: "Returns and refunds".into(),
                },
                "How to return an item and get a refund within 30 days of delivery.".into(),
            ),
            (
                Article {
                    id: "shipping".into(),
                    title: "Shipping times".into(),
                },
                "Standard shipping takes 3 to 5 business days; express shipping 1 day.".into(),
            ),
        ])
    }

    #[test]
    fn a_covered_question_scores_above_an_uncovered_one() {
        let kb = kb();
        let (covered, article) = kb
            .best("how do I return my item for a refund")
            .expect("match");
        assert_eq!(article.id, "returns");
        let uncovered = kb
            .best("what's the weather in tokyo tomorrow")
            .map_or(0.0, |(s, _)| s);
        assert!(covered > uncovered + 0.2, "{covered} vs {uncovered}");
        assert!(kb.best("").is_none());
    }

    #[test]
    fn the_same_articles_give_the_same_similarity_to_the_last_bit() {
        let (a, b) = (kb(), kb());
        for text in [
            "how do I return my item for a refund within thirty days",
            "express shipping to the delivery address takes how many days",
            "refund refund refund shipping",
        ] {
            let x = a.best(text).map(|(s, _)| s.to_bits());
            let y = b.best(text).map(|(s, _)| s.to_bits());
            assert_eq!(x, y, "{text}");
        }
    }

    #[test]
    fn a_folder_of_markdown_and_json_articles_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.md"),
            "# Returns\nReturn items within 30 days.",
        )
        .expect("w");
        std::fs::write(
            dir.path().join("b.json"),
            r#"[{"id": "ship", "title": "Shipping", "body": "Shipping takes 3 days."}]"#,
        )
        .expect("w");
        std::fs::write(dir.path().join("ignored.png"), "x").expect("w");
        let kb = KnowledgeBase::load_dir(dir.path()).expect("kb");
        assert_eq!(kb.len(), 2);
        let (_, best) = kb.best("how long does shipping take").expect("match");
        assert_eq!(best.title, "Shipping");

        std::fs::write(dir.path().join("c.json"), r#"{"title": "no body"}"#).expect("w");
        let err = KnowledgeBase::load_dir(dir.path())
            .expect_err("no body")
            .to_string();
        assert!(err.contains("no `body` or `text`"), "{err}");
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            KnowledgeBase::load_dir(empty.path()),
            Err(KbError::Empty(_))
        ));
    }
}
