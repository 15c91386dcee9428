//! Entity extraction: order and invoice numbers, account ids, emails, phone numbers, amounts
//! with currency, and dates, from the customer's own words.
//!
//! Identifiers are taken only where a keyword introduces them ("order 8812", "invoice #00108"),
//! as customers write them (Bitext and ABCD entity spans follow this shape), so a bare number is
//! not mistaken for an order.

use baton_domain::{Entity, EntityKind};
use regex::Regex;

/// The compiled extractors.
pub struct Extractor {
    rules: Vec<(EntityKind, Regex)>,
}

// The patterns are constants of this crate, exercised by its tests.
#[allow(clippy::expect_used)]
fn re(p: &str) -> Regex {
    Regex::new(p).expect("built-in entity pattern compiles")
}

const MONTH: &str = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";

impl Default for Extractor {
    fn default() -> Self {
        Self::new()
    }
}

impl Extractor {
    /// Compiles the extractors.
    pub fn new() -> Self {
        let id = r"[:#]?\s*(?:is\s+|was\s+)?#?\s*([A-Za-z]{0,4}-?\d[\dA-Za-z-]{2,23})\b";
        Self {
            rules: vec![
                (
                    EntityKind::Email,
                    re(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b"),
                ),
                (
                    EntityKind::OrderId,
                    re(&format!(
                        r"(?i)\b(?:order|purchase|ord|shipment|package|parcel|tracking)(?:\s+(?:number|no\.?|num|id|#|code))?\s*{id}"
                    )),
                ),
                (
                    EntityKind::InvoiceId,
                    re(&format!(
                        r"(?i)\b(?:invoice|bill|receipt)(?:\s+(?:number|no\.?|num|id|#))?\s*{id}"
                    )),
                ),
                (
                    EntityKind::AccountId,
                    re(&format!(
                        r"(?i)\b(?:account|acct|customer|member|ticket|case)\s+(?:number|no\.?|num|id|#)\s*{id}"
                    )),
                ),
                (
                    EntityKind::Amount,
                    re(
                        r"(?i)(?:(?P<sym>[$€£¥])\s?(?P<n1>\d[\d,]*(?:\.\d{1,2})?)|(?P<n2>\d[\d,]*(?:\.\d{1,2})?)\s?(?P<word>usd|eur|gbp|cad|aud|jpy|dollars?|bucks|euros?|pounds?|quid)\b)",
                    ),
                ),
                (
                    EntityKind::Phone,
                    re(
                        r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\b\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}\b",
                    ),
                ),
                (
                    EntityKind::Date,
                    re(&format!(
                        r"(?i)\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|{MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH}(?:,?\s+\d{{4}})?|today|yesterday|tomorrow|last\s+(?:week|month|night|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|\d+\s+(?:days|weeks|months)\s+ago)\b"
                    )),
                ),
            ],
        }
    }

    /// Every entity in `text`, tagged with `turn`, in order of kind then position; an id found by
    /// a more specific rule is not reported again as a phone number.
    pub fn extract(&self, text: &str, turn: usize) -> Vec<Entity> {
        let mut out: Vec<Entity> = Vec::new();
        let mut taken: Vec<(usize, usize)> = Vec::new();
        for (kind, re) in &self.rules {
            for caps in re.captures_iter(text) {
                let Some(whole) = caps.get(0) else { continue };
                let (start, end) = (whole.start(), whole.end());
                if taken.iter().any(|(s, e)| start < *e && *s < end) {
                    continue;
                }
                let (shown, value) = match kind {
                    EntityKind::OrderId | EntityKind::InvoiceId | EntityKind::AccountId => {
                        let Some(id) = caps.get(1) else { continue };
                        (
                            id.as_str().to_owned(),
                            Some(id.as_str().trim_start_matches('#').to_uppercase()),
                        )
                    }
                    EntityKind::Amount => (whole.as_str().trim().to_owned(), amount_value(&caps)),
                    EntityKind::Phone => {
                        let digits: String = whole
                            .as_str()
                            .chars()
                            .filter(char::is_ascii_digit)
                            .collect();
                        if digits.len() < 9 {
                            continue;
                        }
                        (whole.as_str().trim().to_owned(), Some(digits))
                    }
                    EntityKind::Email => (
                        whole.as_str().to_owned(),
                        Some(whole.as_str().to_lowercase()),
                    ),
                    EntityKind::Date => (whole.as_str().to_owned(), None),
                };
                taken.push((start, end));
                out.push(Entity {
                    kind: *kind,
                    text: shown,
                    value,
                    turn,
                });
            }
        }
        out
    }
}

/// `ISO-4217 amount`, e.g. `USD 160.00`.
fn amount_value(caps: &regex::Captures<'_>) -> Option<String> {
    let number = caps
        .name("n1")
        .or_else(|| caps.name("n2"))?
        .as_str()
        .replace(',', "");
    let amount: f64 = number.parse().ok()?;
    let marker = caps
        .name("sym")
        .or_else(|| caps.name("word"))?
        .as_str()
        .to_lowercase();
    let currency = match marker.as_str() {
        "$" | "usd" | "dollar" | "dollars" | "bucks" => "USD",
        "€" | "eur" | "euro" | "euros" => "EUR",
        "£" | "gbp" | "pound" | "pounds" | "quid" => "GBP",
        "¥" | "jpy" => "JPY",
        "cad" => "CAD",
        "aud" => "AUD",
        _ => return None,
    };
    Some(format!("{currency} {amount:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(EntityKind, String, Option<String>)> {
        Extractor::new()
            .extract(text, 0)
            .into_iter()
            .map(|e| (e.kind, e.text, e.value))
            .collect()
    }

    #[test]
    fn finds_each_kind() {
        let found = kinds("my card was charged twice for order 8812, $49.99 each, on March 3rd. Mail me at dana@example.com or call (977) 625-2661. Invoice #00108 too.");
        let has = |k: EntityKind, v: &str| {
            found
                .iter()
                .any(|(kind, text, value)| *kind == k && (text == v || value.as_deref() == Some(v)))
        };
        assert!(has(EntityKind::OrderId, "8812"), "{found:?}");
        assert!(has(EntityKind::Amount, "USD 49.99"), "{found:?}");
        assert!(has(EntityKind::Date, "March 3rd"), "{found:?}");
        assert!(has(EntityKind::Email, "dana@example.com"), "{found:?}");
        assert!(has(EntityKind::Phone, "9776252661"), "{found:?}");
        assert!(has(EntityKind::InvoiceId, "00108"), "{found:?}");
    }

    #[test]
    fn abcd_and_bitext_shapes() {
        let found = kinds("Order ID: 3348917502");
        assert_eq!(found[0].2.as_deref(), Some("3348917502"));
        let found = kinds("how can I cancel purchase 113542617735902?");
        assert_eq!(found[0].0, EntityKind::OrderId);
        let found = kinds("i need a refund of 160 dollars");
        assert_eq!(found[0].2.as_deref(), Some("USD 160.00"));
        assert!(kinds("I have 3 questions about 2 orders").is_empty());
    }
}
