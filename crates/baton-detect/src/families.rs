//! The built-in lexicons, one per reason code that language can show.
//!
//! Written from the definitions in DESIGN.md section 2 and the label semantics documented for
//! the shared datasets (Bitext intents, BANKING77 categories, GoEmotions anger): each family
//! names the concept through stems and synonyms ("refund", "reimburse", "money back",
//! "compensation", "rebate") rather than through whole sentences, so it carries over to wording
//! it was not written from.

use crate::lexicon::Family;
use baton_domain::ReasonCode;

/// Words that name a human on the company's side, after any swearing or emphasis an upset
/// customer puts in front ("a damn agent", "an actual person").
const HUMAN: &str = r"(?:(?:damn|goddamn|goddam|fucking|freaking|frigging|bloody|effing|stupid|real|actual|proper) )?(?:human|person|people|agent|representative|rep|operator|somebody|someone|staff|supervisor|manager|employee|advisor|adviser|assistant|associate|specialist|consultant|teammate|team member|customer (?:service|support|care) (?:agent|rep|representative|team|person)|live chat|real one)s?";
/// Verbs of reaching someone.
const REACH: &str = r"(?:speak|speaking|talk|talking|chat|chatting|connect|connecting|transfer|transferring|put|get|getting|reach|reaching|contact|contacting|escalate|escalating|call|calling|ring|message|messaging|hand|pass|direct|directing|redirect|redirecting)";

/// Words that link a verb of reaching to the person reached ("talk to a", "get me through
/// to the").
const LINK: &str = r"(?:to|with|me|through|over|in|touch|into|contact|a|an|the|some|your|one|of|help|assistance|support|directly)";

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Builds every phrase family, paired with the code it signals.
pub fn all() -> Vec<(ReasonCode, Family)> {
    let human_strong = [
        format!(r"\b{REACH}\b(?:\W+\w+){{0,4}}?\W+(?:a |an |the |some |your )?(?:real|live|actual|human|another|living|proper|flesh and blood)\W+{HUMAN}\b"),
        format!(r"\b{REACH}\b(?:\W+{LINK}){{0,5}}\W+{HUMAN}\b"),
        r"\b(?:want|wanna|need|needs|request|requesting|demand|demanding|prefer|give me|get me|send me|bring me|find me|i'd like|i would like|we'd like|we would like|rather have|looking for|where is|ask for|asking for)\b(?:\W+(?:to|a|an|the|some|real|live|actual|talk|speak|chat|with|one|another|just|please|right|now|human)){0,4}\W+(?:human|person|agent|representative|rep|operator|supervisor|manager|somebody|someone)s?\b".to_owned(),
        // "Real people" alone describes ("based on real people"); "a real person" asks.
        r"\b(?:real|live|actual) (?:human|person|agent|operator|representative)s?\b".to_owned(),
        // Failing to reach a person is asking for one ("I can't speak to a live agent"); the
        // pattern starts at the negator, so negation does not cancel it.
        format!(r"\b(?:can't|cannot|couldn't|could not|unable to|not able to)\b(?:\W+\w+){{0,2}}?\W+{REACH}\b(?:\W+\w+){{0,4}}?\W+{HUMAN}\b"),
        r"\bhuman (?:being|agent|support|help|assistance|operator)s?\b".to_owned(),
        r"\b(?:stop|quit)\b(?:\W+\w+){0,2}\W+(?:bot|robot|machine|automated)".to_owned(),
        r"\b(?:don't|do not|dont) want (?:to (?:talk|speak|chat) (?:to|with) )?(?:a |the |this |your )?(?:bot|robot|machine|ai|chatbot|automated)".to_owned(),
        r"\b(?:this|the|you|your|stupid|useless|dumb) (?:bot|robot|chatbot|ai|machine|automated system)\b(?:\W+\w+){0,3}\W+(?:useless|stupid|dumb|pointless|not help\w*|no help|doesn't help|can't help|broken|rubbish|garbage|worthless|waste)".to_owned(),
        r"^\W*(?:human|agent|representative|operator|person|real person|live agent|customer service|supervisor|manager)(?: please| now| pls| plz|!|\.|\?)*\W*$".to_owned(),
    ];
    let human_weak = [
        format!(r"\b{REACH}\b(?:\W+\w+){{0,4}}?\W+{HUMAN}\b"),
        r"\bare you (?:a )?(?:real|human|bot|robot|person)\b".to_owned(),
        r"\b(?:you(?:'re| are)|this is) (?:not|no) help(?:ful|ing)?\b".to_owned(),
    ];

    vec![
        (
            ReasonCode::HumanRequested,
            Family::new(&strs(&human_strong), &strs(&human_weak), true),
        ),
        (
            ReasonCode::Refund,
            Family::new(
                &[
                    // "Refundable" asks about the policy ("is the ticket refundable?"), which
                    // the assistant can answer; Bitext files it under `check_refund_policy`.
                    r"\brefund(?:s|ed|ing)?\b",
                    r"\breimburs\w*",
                    r"\b(?:my|the|our|get|getting|want|need|return\w*|give|send|put) (?:my |the |our |all )?money back\b",
                    r"\bcharge ?backs?\b",
                    r"\brebat\w*",
                    r"\bcompensat\w* (?:of|for) (?:my |the )?(?:money|payment|order|purchase)",
                    r"\b(?:pay|paying|credit|crediting) me back\b",
                    r"\breturn (?:of )?(?:my|the) (?:money|payment|funds)\b",
                ],
                &[
                    r"\bcompensat\w*",
                    r"\bmoney back\b",
                    r"\breverse (?:the|this|that|my) (?:charge|payment|transaction)",
                ],
                true,
            ),
        ),
        (
            ReasonCode::BillingDispute,
            Family::new(
                &[
                    r"\b(?:charged|billed|debited|taken|deducted)\b(?:\W+\w+){0,4}?\W+(?:twice|two times|double|2 times|three times|multiple times|again)\b",
                    r"\bdouble[- ]?(?:charg|bill|pay)\w*",
                    r"\bover[- ]?(?:charg|bill)\w*",
                    r"\b(?:charged|billed) (?:me )?(?:the )?(?:wrong|incorrect\w*|too much|more than|extra)",
                    r"\b(?:wrong|incorrect|unexpected|extra|additional|unknown|strange|weird|duplicate|mystery|hidden|unfair) (?:charge|fee|amount|payment|transaction|debit|bill|invoice)s?\b",
                    r"\bunauthori[sz]ed (?:charge|payment|transaction|debit|withdrawal)s?\b",
                    r"\b(?:charge|payment|transaction|debit|withdrawal)s?\b(?:\W+\w+){0,5}?\W+(?:don't|do not|didn't|did not|can't|cannot) (?:recogni[sz]e|remember|know about|make|authori[sz]e)",
                    r"\b(?:don't|do not|didn't|did not|can't|cannot) recogni[sz]e (?:this|the|a|that|these|an|some) (?:\w+ )?(?:charge|payment|transaction|debit|withdrawal)",
                    r"\bdisput\w*",
                    r"\b(?:billing|payment|invoice|charge) (?:error|mistake|issue|problem|discrepanc\w*|trouble)s?\b",
                    r"\b(?:issue|problem|error|trouble|mistake)s? (?:with|on|in) (?:my |the |a |an |online )?(?:payment|bill|billing|invoice|charge)s?\b",
                    r"\bcharged (?:a |an )?(?:fee|commission)\b",
                    r"\bwrong (?:exchange )?rate\b",
                    r"\bgot (?:less|the wrong amount)\b",
                ],
                &[
                    r"\b(?:fee|charge)s? (?:on|in) my (?:statement|account|card)\b",
                    r"\bwhy (?:was|am|were|have) (?:i|we) (?:been )?(?:charged|billed)\b",
                ],
                true,
            ),
        ),
        (
            ReasonCode::AccountSecurity,
            Family::new(
                &[
                    r"\bhack\w*",
                    r"\bcompromis\w*",
                    r"\bstolen\b",
                    r"\b(?:lost|lose|misplaced) (?:my |our |the )?(?:card|phone|wallet|device|credit card|debit card)\b",
                    r"\bfraud\w*",
                    r"\bscam(?:med|mer)?\b",
                    r"\bphish\w*",
                    r"\bidentity theft\b",
                    r"\bunauthori[sz]ed (?:access|log ?in|sign ?in|use|user|person)\b",
                    r"\bsomeone (?:else )?(?:has )?(?:logged|got|gotten|broke|accessed|used|is using)\b(?:\W+\w+){0,3}\W+(?:account|card|into)",
                    r"\bsuspicious (?:activity|log ?in|sign ?in|transaction|email|charge|payment)s?\b",
                    r"\blocked out\b",
                    r"\b(?:card|account|pin) (?:is |was |has been |got )?(?:blocked|frozen|locked|suspended|swallowed|eaten|retained)\b",
                    r"\b(?:atm|machine) (?:ate|swallowed|kept|took) (?:my )?card\b",
                    r"\b(?:can't|cannot|unable to|not able to|couldn't) (?:verify|prove) (?:my )?identity\b",
                    r"\b(?:two[- ]factor|2fa|mfa|one[- ]time (?:code|password)|verification code)\b",
                    r"\b(?:card|phone|wallet)\b(?:\W+\w+){0,2}\W+(?:is |was |has |have |went |gone )+missing\b",
                    r"\b(?:someone|somebody|a stranger)\b(?:\W+\w+){0,3}\W+(?:has|have|got|knows?|stole|took|used|is using)\b(?:\W+\w+){0,2}\W+(?:card|pin|password|details|account|phone)\b",
                    r"\b(?:card|pin|password|account|details) (?:has been |have been |was |were |got )?(?:stolen|copied|skimmed|cloned|leaked|exposed|breached)\b",
                    r"\b(?:atm|cash machine|machine)\b(?:\W+\w+){0,3}\W+(?:kept|keeps|took|takes|swallowed|ate|retained|won't (?:give|return)|didn't (?:give|return))\b",
                    r"\b(?:freeze|block|deactivate|cancel|stop) (?:my |the )?(?:stolen|lost|compromised) card\b",
                    r"\bsecurity (?:breach|issue|problem|concern|risk)\b",
                ],
                &[
                    r"\b(?:forgot|forgotten|reset|recover|lost) (?:my |the )?(?:password|passcode|pin|username|login)\b",
                    r"\b(?:can't|cannot|unable to|not able to|couldn't) (?:log|sign) ?(?:in|on|into)\b",
                    r"\bverify (?:my )?identity\b",
                ],
                true,
            ),
        ),
        (
            ReasonCode::Legal,
            Family::new(
                &[
                    r"\b(?:lawyer|attorney|solicitor|barrister)s?\b",
                    r"\blegal (?:action|proceedings|steps|team|department|counsel|advice|notice)\b",
                    // "Sue" as a verb, with its object, not a name ("Curly Sue", "thanks, Sue").
                    r"\b(?:sue|sued) (?:you|your|them|the|this|that|over|for|if|unless)\b",
                    r"\b(?:suing|lawsuit|litigation|class action)\b",
                    r"\b(?:small claims|in court|to court)\b",
                    r"\bcease and desist\b",
                    r"\bbreach of contract\b",
                ],
                &[r"\blegal\w*", r"\bconsumer (?:rights|protection)\b"],
                true,
            ),
        ),
        (
            ReasonCode::Compliance,
            Family::new(
                &[
                    r"\b(?:gdpr|ccpa|hipaa|pci[- ]?dss|lgpd|pipeda)\b",
                    r"\bdata protection\b",
                    r"\bright to (?:be forgotten|erasure|access|rectification|data portability)\b",
                    r"\b(?:subject access request|dsar)\b",
                    r"\b(?:delete|erase|remove|wipe) (?:all )?(?:of )?my (?:personal )?(?:data|information|info|details)\b",
                    r"\b(?:what|which) (?:personal )?data (?:do you|you) (?:hold|have|keep|store)\b",
                    r"\b(?:regulator|ombudsman|financial conduct authority|fca|ftc|cfpb|ico)\b",
                    r"\b(?:data|privacy|security) breach\b",
                    r"\bprivacy (?:violation|complaint|concern|issue)s?\b",
                ],
                &[r"\bprivacy\b", r"\bpersonal data\b"],
                true,
            ),
        ),
        (
            ReasonCode::Complaint,
            Family::new(
                &[
                    r"\bcomplain\w*",
                    r"\b(?:file|make|lodge|submit|raise|register|open|write|log) (?:a |an |my )?(?:formal |official |customer |consumer )?(?:complaint|claim|grievance|reclamation)s?\b",
                    r"\b(?:consumer|customer) (?:claim|complaint)s?\b",
                    r"\breclamation\b",
                    r"\b(?:claim|grievance)s? against\b",
                    r"\bunacceptable\b",
                    r"\b(?:disgrace\w*|appalling|outrageous|shameful|disgusting)\b",
                    r"\b(?:terrible|awful|horrible|poor|bad|worst|lousy|shocking|abysmal|pathetic) (?:customer )?(?:service|support|experience|treatment|company|product)\b",
                    r"\b(?:very |extremely |really )?(?:unhappy|dissatisfied|displeased|disappointed) with\b",
                ],
                &[
                    r"\b(?:unhappy|dissatisf\w*|displeased)\b",
                    r"\bnegative (?:feedback|review)\b",
                ],
                true,
            ),
        ),
        (
            ReasonCode::Cancellation,
            Family::new(
                &[
                    r"\bcancel\w*",
                    r"\bterminat\w*",
                    r"\b(?:close|closing|shut|shutting|delete|deleting|remove|removing|deactivate|deactivating|end|ending|stop|stopping|discontinue) (?:down )?(?:of )?(?:my|the|our|this|an?) (?:\w+ )?(?:account|subscription|membership|contract|plan|service|order|profile)s?\b",
                    r"\b(?:account|subscription|membership|contract|profile) (?:closure|removal|deletion|termination|deactivation)s?\b",
                    r"\b(?:closure|removal|deletion|deactivation) of (?:my |the |our |an? )?(?:\w+ )?(?:account|subscription|membership|profile)s?\b",
                    r"\bunsubscrib\w*",
                    r"\bopt(?:ing)? out\b",
                ],
                &[r"\b(?:call|calling) off (?:my |the )?order\b"],
                true,
            ),
        ),
        (
            ReasonCode::CustomPricing,
            Family::new(
                &[
                    r"\bcustom (?:pricing|price|quote|plan|deal|contract|package)s?\b",
                    r"\b(?:quote|quotation|proposal) for\b",
                    r"\b(?:volume|bulk|enterprise|nonprofit|non-profit|education|academic|multi-year) (?:discount|pricing|price|license|licence|plan|deal|rate)s?\b",
                    r"\bnegotiat\w*",
                    r"\b(?:special|better|discounted|lower) (?:price|pricing|rate|deal|offer)\b",
                    r"\bdiscount for (?:\d+|our|a team|the team|multiple|several)\b",
                    // A price for a team, not for one booking ("the price for 1 night").
                    r"\b(?:pricing|price|cost) for (?:\d+ (?:seats?|users?|licen[cs]es?|employees?|agents?|members?|staff|locations?|sites?|people)|our (?:team|company|organi[sz]ation)|a team of)\b",
                    r"\b(?:\d{2,}|hundreds of|thousands of) (?:seats|licenses|licences|users)\b",
                ],
                // Asking for a discount for oneself; whether discounts exist ("are there
                // discounts for kids?") is a question the assistant answers.
                &[
                    r"\b(?:get|give|offer|apply) (?:me |us )?(?:a |any |some |the )?discount",
                    r"\bdiscount (?:for|to) (?:me|us|my|our)\b",
                    r"\bpricing\b",
                ],
                true,
            ),
        ),
        (
            ReasonCode::ChurnRisk,
            Family::new(
                &[
                    r"\b(?:switch|switching|move|moving|go|going|change|changing|take|taking) (?:my (?:business|account|money) )?(?:over )?to (?:a |an |another |your |other )?(?:competitor|provider|company|bank|service|carrier|supplier|vendor|platform)s?\b",
                    r"\btak(?:e|ing) my (?:business|money|custom) (?:elsewhere|somewhere else)\b",
                    r"\b(?:never|won't|will not|not going to|no longer) (?:ever )?(?:use|buy|order|shop|fly|bank|deal|work)\w*(?: \w+){0,3} (?:again|anymore|any more)\b",
                    r"\bnot (?:going to |gonna )?renew\w*",
                    // Leaving the company, not the chat ("I need to leave you now, bye").
                    r"\b(?:leave|leaving|quit|quitting|ditch|ditching|drop|dropping) (?:you(?: guys)?(?: for\b|\s*[.!]|\s*$)|your (?:service|company|bank|app|product|platform))",
                    r"\b(?:done|finished|through) with (?:you|your (?:company|service|bank|app|product)|this (?:company|service|bank))\b",
                    r"\blooking (?:at|for) (?:other|another|alternative)s? (?:provider|option|service|company|bank)s?\b",
                    r"\b(?:close|closing|cancel\w*|terminat\w*) (?:my|our) (?:whole |entire )?(?:account|subscription|contract|membership)\b",
                ],
                &[r"\bcompetitor\w*"],
                true,
            ),
        ),
        (
            ReasonCode::Frustration,
            Family::new(
                &[
                    r"\b(?:been )?trying (?:for|since) (?:hours|days|weeks|months|ages|forever|so long|an hour|a week|\d+ \w+)\b",
                    r"\bfor (?:hours|days|weeks|months|ages) now\b",
                    r"\bnothing (?:works|is working|worked|helps|helped|has (?:worked|helped|changed))\b",
                    r"\b(?:still|keeps?|keep on|again) (?:not working|doesn't work|broken|failing|happening|crashing|getting|giving)\b",
                    r"\b(?:waste|wasting|wasted) (?:of )?(?:my |our )?(?:time|day|morning|afternoon|hours)\b",
                    r"\b(?:fed up|sick (?:and tired )?of|tired of|had enough|at the end of my rope)\b",
                    r"\bfrustrat\w*",
                    r"\b(?:so many|countless|several|multiple|how many) times\b",
                    r"\b(?:again and again|over and over|round in circles|around in circles|going in circles)\b",
                    r"\bthis is (?:a )?(?:joke|ridiculous|absurd|insane|nonsense|a nightmare)\b",
                    r"\b(?:ridiculous|absurd|nightmare)\b",
                    r"\bstill (?:waiting|haven't|hasn't|have not|has not|no|not)\b",
                ],
                &[
                    r"\b(?:doesn't|does not|isn't|is not|won't|will not|not) work(?:ing)?\b",
                    r"\b(?:annoy|irritat|exasperat)\w*",
                    r"\buseless\b",
                    r"\bagain\b",
                ],
                false,
            ),
        ),
        (
            ReasonCode::Urgency,
            Family::new(
                &[
                    r"\burgent\w*",
                    r"\b(?:asap|a\.s\.a\.p)\b",
                    r"\bimmediate(?:ly)?\b",
                    r"\bemergenc\w*",
                    r"\bas soon as (?:possible|you can)\b",
                    r"\btime[- ]sensitive\b",
                    r"\bblock(?:ing|s|ed)? (?:our|my|the|a) (?:launch|release|business|work|team|deployment|production|go-live|payroll|shipment)\b",
                    r"\b(?:production|site|website|system|server|service|store|shop) (?:is )?(?:down|offline)\b",
                    r"\b(?:losing|lose|losing out on) (?:money|customers|business|sales|revenue)\b",
                    r"\b(?:can't|cannot|can not) wait\b",
                    r"\b(?:deadline|right now|right away|straight away)\b",
                    r"\b(?:by|before) (?:today|tonight|tomorrow|end of (?:the )?day|eod|monday|tuesday|wednesday|thursday|friday)\b",
                ],
                &[r"\b(?:critical|quickly|hurry|today|tonight|now)\b"],
                true,
            ),
        ),
        (
            ReasonCode::Anger,
            Family::new(
                &[
                    r"\b(?:fuck\w*|f\*+k\w*|shit\w*|bullshit|wtf|stfu|damn\w*|goddamn\w*|crap\w*|bloody|bastard\w*|asshole\w*|arsehole\w*|piss\w*|dick\w*|screw (?:you|this|that))\b",
                    r"\b(?:idiot\w*|moron\w*|stupid|incompetent|pathetic|clowns?|useless (?:company|service|people|bank)|thie(?:f|ves)|crooks?|liars?|rip[- ]?off|daylight robbery)\b",
                    r"\b(?:angry|furious|livid|outraged|enraged|infuriat\w*|mad at|pissed)\b",
                    r"\b(?:how dare you|shame on you|you people|disgusted)\b",
                    r"\b(?:report|reporting) you\b",
                    r"\b(?:bad|terrible|negative) review\w* (?:everywhere|online|on)\b",
                ],
                &[r"\b(?:hate|hated|hating|sucks?|horrible|terrible|awful|worst)\b"],
                true,
            ),
        ),
        (
            ReasonCode::Helplessness,
            Family::new(
                &[
                    r"\b(?:give|giving|gave) up\b",
                    r"\b(?:don't|do not|no longer) know what (?:else )?(?:to do|i can do|i should do)\b",
                    r"\bno idea what (?:else )?to do\b",
                    r"\bat (?:my |a )?(?:wit's end|wits end|loss)\b",
                    r"\b(?:hopeless|helpless|desperate|defeated)\b",
                    r"\b(?:nobody|no one|no-one) (?:can|will|is able to|seems to|wants to) help\b",
                    r"\bout of (?:options|ideas)\b",
                    r"\b(?:i'm|i am|im) (?:completely |totally )?(?:stuck|lost)\b",
                    r"\bwhat (?:am i supposed|else am i supposed|should i|else can i) (?:to )?do\b",
                    r"\b(?:please|pls|plz) help\b(?:\W+me)?\W*(?:!|$)",
                ],
                &[
                    r"\b(?:can't|cannot) figure (?:it |this |out)",
                    r"\bi (?:just )?want (?:this|it) (?:fixed|sorted|resolved)\b",
                ],
                true,
            ),
        ),
        (
            ReasonCode::Complexity,
            Family::new(
                &[
                    r"\b(?:contacted|called|emailed|wrote to|messaged|spoke (?:to|with)|chatted with|reached out to) (?:you|your (?:team|support|company)|support|customer service|someone|the support team)\b(?:\W+\w+){0,4}?\W+(?:before|already|last (?:week|time|month)|yesterday|earlier|several times|multiple times|twice|times)\b",
                    r"\b(?:ticket|case|complaint) (?:number|#|no\.?|id)\b",
                    r"\b(?:second|third|fourth|fifth|\d+(?:nd|rd|th)) time (?:i|i've|i'm|that|contacting|calling|writing|asking)\b",
                    r"\b(?:still )?(?:haven't|hasn't|have not|has not) (?:heard back|been (?:resolved|fixed|sorted)|got a (?:reply|response|answer))\b",
                    r"\b(?:several|multiple|two|three|a few|many) (?:different )?(?:issues|problems|things|questions)\b",
                    r"\b(?:error|bug|crash\w*|exception|stack trace|error code|integration|api|webhook|sso|migration)\b",
                    r"\b(?:change|transfer|merge|split|move) (?:the |my |our )?(?:account )?(?:owner\w*|ownership|legal entity|billing entity|accounts)\b",
                ],
                &[],
                true,
            ),
        ),
    ]
}

/// A request for a person with one linking word mistyped ("speak t someone", "talk wth a
/// person"): a verb of reaching, linking words and one short word that is none of them, then
/// the person. Kept out of the request family, whose automaton it would make several times
/// larger (a third slower on every turn): the detectors try it only on a text where the
/// family's weak "reach ... person" form matched.
pub fn garbled_request() -> Family {
    let pattern =
        format!(r"\b{REACH}\b(?:\W+{LINK}){{0,3}}\W+[a-z]{{1,3}}(?:\W+{LINK}){{0,3}}\W+{HUMAN}\b");
    Family::new(&[pattern.as_str()], &[], true)
}

/// Words for a person that [`respell_people`] restores from a slip of the finger: five letters
/// or more, so that one slip rarely lands on another English word.
const PEOPLE: &[&str] = &[
    "person",
    "someone",
    "somebody",
    "operator",
    "assistant",
    "representative",
    "supervisor",
    "human",
    "agent",
];

/// Words an upset or hurried customer runs into the word for a person ("bloodyperson").
const RUN_IN: &[&str] = &[
    "damn", "bloody", "fucking", "freaking", "real", "live", "actual", "human", "a", "an", "the",
];

/// Whether `a` and `b` differ by exactly one slip: a letter dropped, added or replaced, or two
/// neighbours swapped (the single edits of Damerau 1964, which account for most misspellings
/// in typed text).
fn one_slip(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match long.len() - short.len() {
        0 => {
            let mut diff = (0..a.len()).filter(|&i| a[i] != b[i]);
            match (diff.next(), diff.next(), diff.next()) {
                (Some(_), None, _) => true,
                (Some(i), Some(j), None) => j == i + 1 && a[i] == b[j] && a[j] == b[i],
                _ => false,
            }
        }
        1 => {
            let first = (0..short.len())
                .find(|&i| short[i] != long[i])
                .unwrap_or(short.len());
            short[first..] == long[first + 1..]
        }
        _ => false,
    }
}

/// The word for a person that `word` (lowercase ASCII letters) is a slip of, if any. Cheap on
/// the common case: only the words of [`PEOPLE`] within one letter of its length are compared.
fn person_word(word: &[u8]) -> Option<&'static str> {
    if !(4..=15).contains(&word.len()) {
        return None;
    }
    let mut found = None;
    for person in PEOPLE {
        let p = person.as_bytes();
        if p.len().abs_diff(word.len()) > 1 {
            continue;
        }
        // The word itself, or its plural, which the families already read.
        if p == word || word.strip_suffix(b"s") == Some(p) {
            return None;
        }
        if found.is_none()
            && (p[0] == word[0] || p[p.len() - 1] == word[word.len() - 1])
            && one_slip(p, word)
        {
            found = Some(*person);
        }
    }
    found
}

/// The lowercase ASCII letters of `word`, one bit each.
const fn letter_set(word: &[u8]) -> u32 {
    let (mut set, mut i) = (0u32, 0);
    while i < word.len() {
        if word[i].is_ascii_lowercase() {
            set |= 1 << (word[i] - b'a');
        }
        i += 1;
    }
    set
}

/// [`letter_set`] of each word of [`PEOPLE`].
const PEOPLE_LETTERS: [u32; PEOPLE.len()] = {
    let mut sets = [0; PEOPLE.len()];
    let mut i = 0;
    while i < PEOPLE.len() {
        sets[i] = letter_set(PEOPLE[i].as_bytes());
        i += 1;
    }
    sets
};

/// `lower` (a lowercased text) with each word that is one slip away from a word for a person
/// ("someolne", "agemt") written correctly, and such a word run into a word that goes before
/// it ("bloodyperson", "aperson") split off; `None` when nothing needed mending. The request
/// family is matched again on the mended text, so a misspelt request for a person still reads
/// as one.
pub fn respell_people(lower: &str) -> Option<String> {
    let bytes = lower.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_lowercase() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_lowercase() {
            i += 1;
        }
        let word = &bytes[start..i];
        // A slip of a person's word, alone or run into another, keeps all its letters but
        // one: a word lacking two of every person word's letters needs no closer look.
        let letters = letter_set(word);
        if !PEOPLE_LETTERS
            .iter()
            .any(|p| (p & !letters).count_ones() <= 1)
        {
            continue;
        }
        let mended = person_word(word).map(str::to_owned).or_else(|| {
            // Shortest run-in: "a" before a slip of a five-letter word.
            if word.len() < 5 {
                return None;
            }
            RUN_IN.iter().find_map(|head| {
                let rest = word.strip_prefix(head.as_bytes())?;
                let person = PEOPLE
                    .iter()
                    .find(|p| p.as_bytes() == rest)
                    .copied()
                    .or_else(|| person_word(rest))?;
                Some(format!("{head} {person}"))
            })
        });
        if let Some(mended) = mended {
            out.push_str(&lower[copied..start]);
            out.push_str(&mended);
            copied = i;
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&lower[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slips_of_a_word_for_a_person_are_mended() {
        assert_eq!(
            respell_people("i can't contact someolne").as_deref(),
            Some("i can't contact someone")
        );
        assert_eq!(
            respell_people("talk to a live agemt").as_deref(),
            Some("talk to a live agent")
        );
        assert_eq!(
            respell_people("speak to a bloodyperson").as_deref(),
            Some("speak to a bloody person")
        );
        assert_eq!(
            respell_people("a presonal opertaor").as_deref(),
            Some("a presonal operator")
        );
        // Correct words, other words and words two slips away are left alone.
        assert_eq!(respell_people("talk to someone about my agenda"), None);
        assert_eq!(respell_people("the humans and the urgent parcel"), None);
        assert_eq!(respell_people("é someone"), None);
    }
}
