//! Reason codes: why a conversation should reach a human (CONTRACTS.md, "Reason codes").

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal, $label:literal;)*) => {
        /// A reason code. The names and meanings are a public contract (CONTRACTS.md); the
        /// families are described in DESIGN.md section 2.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ReasonCode {
            $($(#[$doc])* $variant,)*
        }

        impl ReasonCode {
            /// Every code, in contract order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant,)*];

            /// The code as it appears on the wire, e.g. `human_requested`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ReasonCode::$variant => $code,)*
                }
            }

            /// A short human explanation, for briefs and agent-facing text.
            pub fn label(self) -> &'static str {
                match self {
                    $(ReasonCode::$variant => $label,)*
                }
            }
        }

        impl FromStr for ReasonCode {
            type Err = UnknownReasonCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($code => Ok(ReasonCode::$variant),)*
                    _ => Err(UnknownReasonCode(s.to_owned())),
                }
            }
        }
    };
}

reason_codes! {
    /// The customer asked for a person, in words or with a button.
    HumanRequested => "human_requested", "the customer asked for a person";
    /// Negative sentiment, or a falling sentiment trajectory over recent turns.
    NegativeSentiment => "negative_sentiment", "negative or falling sentiment";
    /// Frustration language ("I have been trying for hours", "nothing works").
    Frustration => "frustration", "the customer is frustrated";
    /// Urgency language ("this is blocking our launch").
    Urgency => "urgency", "the matter is urgent";
    /// Anger: profanity, shouting in capitals, "!!!", hostility.
    Anger => "anger", "the customer is angry";
    /// Helplessness language ("I give up").
    Helplessness => "helplessness", "the customer feels helpless";
    /// The customer threatens to leave or move to a competitor.
    ChurnRisk => "churn_risk", "the customer may leave";
    /// The AI was not confident, or the knowledge base had no good answer.
    LowConfidence => "low_confidence", "the AI was not confident in its answer";
    /// The customer rejected AI answers or asked the same question again.
    RepeatedFailure => "repeated_failure", "the AI's answers did not help";
    /// A disputed charge (charged twice, wrong amount, unrecognised payment).
    BillingDispute => "billing_dispute", "a disputed charge";
    /// A refund request.
    Refund => "refund", "a refund request";
    /// Account access or security: hacked, locked out, fraud, lost card.
    AccountSecurity => "account_security", "account access or security";
    /// Legal matters: lawyers, lawsuits, legal action.
    Legal => "legal", "a legal matter";
    /// Compliance: data protection, regulators, data requests.
    Compliance => "compliance", "a compliance or data-protection matter";
    /// A formal complaint.
    Complaint => "complaint", "a complaint";
    /// Cancelling an order, subscription or account.
    Cancellation => "cancellation", "a cancellation";
    /// Custom pricing, quotes or discounts that need a person.
    CustomPricing => "custom_pricing", "custom pricing or a quote";
    /// A complex problem: several product areas, account changes, an earlier unresolved contact.
    Complexity => "complexity", "a complex problem";
    /// A VIP or enterprise customer.
    VipCustomer => "vip_customer", "a VIP or enterprise customer";
    /// Three or more contacts about the same issue in 30 days.
    RepeatContact => "repeat_contact", "the customer has contacted us repeatedly about this";
    /// A customer in their first 7 days.
    NewCustomer => "new_customer", "a new customer";
    /// A high deal value.
    HighValue => "high_value", "a high-value account or deal";
    /// The AI itself decided to hand off.
    AiRequested => "ai_requested", "the AI asked for a human";
    /// A guardrail blocked the AI's answer.
    PolicyBlock => "policy_block", "a guardrail blocked the AI";
    /// A tool the AI relies on failed.
    ToolFailure => "tool_failure", "a tool the AI needed failed";
    /// Measurement only, never a reason to escalate: after a handoff the customer repeated
    /// context they had already given ("as I already told the bot").
    ContextRepetition => "context_repetition", "the customer had to repeat themselves";
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason code that is not in the contract list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason code `{0}`: expected one of human_requested, negative_sentiment, frustration, urgency, anger, helplessness, churn_risk, low_confidence, repeated_failure, billing_dispute, refund, account_security, legal, compliance, complaint, cancellation, custom_pricing, complexity, vip_customer, repeat_contact, new_customer, high_value, ai_requested, policy_block, tool_failure")]
pub struct UnknownReasonCode(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for code in ReasonCode::ALL {
            let json = serde_json::to_string(code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(code.as_str().parse::<ReasonCode>(), Ok(*code));
        }
        assert!("human".parse::<ReasonCode>().is_err());
    }

    #[test]
    fn contract_codes_are_all_present() {
        let contract = "human_requested negative_sentiment frustration urgency anger helplessness churn_risk low_confidence repeated_failure billing_dispute refund account_security legal compliance complaint cancellation custom_pricing complexity vip_customer repeat_contact new_customer high_value ai_requested policy_block tool_failure";
        for name in contract.split(' ') {
            assert!(name.parse::<ReasonCode>().is_ok(), "{name} missing");
        }
    }
}
