//! Who may do what: one authorisation decision per command, made by the service.
//!
//! Every command and read of [`crate::Service`] names its [`Action`] and asks [`authorize`]
//! with the caller ([`Actor`]), the agent the call acts as, and the caller's [`Relation`] to
//! the conversation. The rules, in words:
//!
//! - **Bots** (an API key with scope `bot`) create conversations and post customer and AI
//!   turns, read conversations (not internal notes); they never speak as an agent or act for
//!   one, and see no queue or agent figures.
//! - **Agents** speak and act only as themselves. They read what they hold, were offered,
//!   held before, or what waits in a queue they serve; they write notes on what they hold or
//!   were offered; they never post customer or AI turns.
//! - **Supervisors** read everything and move conversations for any agent (claim for, decline,
//!   transfer, resolve, hand back, presence); words (turns, replies, notes) stay their own.
//! - **Admins** are supervisors who also manage agents. Programs with an `agent` key act for
//!   any agent (an integration that relays agents' actions), with an `admin` key for anything.
//! - **Customers** (the widget's token) post customer turns, choose a follow-up, rate and read
//!   their own conversation only, never its notes.
//! - **Open** (no credential exists yet; the server then serves loopback clients only) may do
//!   everything, as the quick start needs.
//!
//! The table in `docs/access.md` is generated from [`authorize`] by [`table`] and kept current
//! by a test; the anchors are the OWASP API Security Top 10 (object-level and function-level
//! authorisation) and ASVS level 2, chapter 4 (access control).

use baton_domain::Role;
use baton_store::AccountRole;

/// What an API key may do; a key has one or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// A bot: conversations, customer and AI turns.
    Bot,
    /// An integration acting for agents.
    Agent,
    /// Everything.
    Admin,
}

impl KeyScope {
    /// The scope named `s` (`bot`, `agent`, `admin`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bot" => Some(KeyScope::Bot),
            "agent" => Some(KeyScope::Agent),
            "admin" => Some(KeyScope::Admin),
            _ => None,
        }
    }
}

/// Who is calling, as the service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No credential exists yet (the server serves loopback clients only): everything.
    Open,
    /// A program with an API key.
    Key {
        /// Its scopes.
        scopes: Vec<KeyScope>,
    },
    /// A signed-in console user.
    User {
        /// The agent's id.
        id: String,
        /// The account's role.
        role: AccountRole,
    },
    /// The customer of one conversation (the widget's token).
    Customer {
        /// Their conversation.
        conversation: String,
    },
}

/// What a command or read does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create a conversation.
    CreateConversation,
    /// Post a turn with this role.
    PostTurn(Role),
    /// Choose the async path (email, callback, meeting).
    Followup,
    /// Rate the human part (CSAT).
    Rate,
    /// Read a conversation: turns, state, brief, events other than notes, its place in line.
    Read,
    /// Read a conversation's internal notes.
    ReadNotes,
    /// See why a conversation is where it is and every agent's verdict, or suggestions.
    Explain,
    /// Claim (for the agent acted as).
    Claim,
    /// Decline an offer.
    Decline,
    /// Reply to the customer.
    Reply,
    /// Write an internal note.
    Note,
    /// Resolve.
    Resolve,
    /// Hand back to the AI.
    Handback,
    /// Transfer to another queue or agent.
    Transfer,
    /// Set an agent's presence.
    SetPresence,
    /// Create or replace an agent.
    UpsertAgent,
    /// List queues and their figures.
    ListQueues,
    /// List agents and their load.
    ListAgents,
    /// The supervisor view (all queues, escalations, SLA breaches, the audit log).
    Supervise,
    /// List, add, change and remove console accounts and API keys.
    ManageCredentials,
}

impl Action {
    /// Every action, in the table's order.
    pub const ALL: [Action; 22] = [
        Action::CreateConversation,
        Action::PostTurn(Role::Customer),
        Action::PostTurn(Role::Ai),
        Action::PostTurn(Role::Agent),
        Action::Followup,
        Action::Rate,
        Action::Read,
        Action::ReadNotes,
        Action::Explain,
        Action::Claim,
        Action::Decline,
        Action::Reply,
        Action::Note,
        Action::Resolve,
        Action::Handback,
        Action::Transfer,
        Action::SetPresence,
        Action::UpsertAgent,
        Action::ListQueues,
        Action::ListAgents,
        Action::Supervise,
        Action::ManageCredentials,
    ];

    /// The action in words, for messages and the table.
    pub fn describe(self) -> &'static str {
        match self {
            Action::CreateConversation => "create a conversation",
            Action::PostTurn(Role::Customer) => "post a customer turn",
            Action::PostTurn(Role::Ai) => "post an AI turn",
            Action::PostTurn(Role::Agent) => "post an agent turn",
            Action::Followup => "choose a follow-up",
            Action::Rate => "rate the conversation",
            Action::Read => "read a conversation",
            Action::ReadNotes => "read internal notes",
            Action::Explain => "explain routing, suggest replies",
            Action::Claim => "claim",
            Action::Decline => "decline an offer",
            Action::Reply => "reply",
            Action::Note => "write a note",
            Action::Resolve => "resolve",
            Action::Handback => "hand back to the AI",
            Action::Transfer => "transfer",
            Action::SetPresence => "set presence",
            Action::UpsertAgent => "add or change an agent",
            Action::ListQueues => "list queues",
            Action::ListAgents => "list agents",
            Action::Supervise => "the supervisor view, the audit log",
            Action::ManageCredentials => "manage accounts and keys",
        }
    }

    /// Whether the action is a conversation's, so the caller's relation to it counts.
    fn on_conversation(self) -> bool {
        !matches!(
            self,
            Action::CreateConversation
                | Action::SetPresence
                | Action::UpsertAgent
                | Action::ListQueues
                | Action::ListAgents
                | Action::Supervise
                | Action::ManageCredentials
        )
    }

    /// Whether the action puts words in someone's mouth (a turn, a reply, a note): a person
    /// only ever does that as themselves.
    fn speaks(self) -> bool {
        matches!(
            self,
            Action::PostTurn(Role::Agent) | Action::Reply | Action::Note
        )
    }

    /// Whether the command names the agent it acts as (`agent_id`): what it says or moves.
    fn names_agent(self) -> bool {
        self.speaks() || self.moves()
    }

    /// Whether the action moves a conversation or an agent for an agent (supervisors may do
    /// it for anyone).
    fn moves(self) -> bool {
        matches!(
            self,
            Action::Claim
                | Action::Decline
                | Action::Resolve
                | Action::Handback
                | Action::Transfer
                | Action::SetPresence
        )
    }
}

/// The caller's tie to the conversation an action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The agent holds it (assigned).
    Holds,
    /// It is offered to the agent.
    Offered,
    /// It waits in a queue the agent serves (has the skills and language for).
    Waiting,
    /// The agent held it before (its last holder).
    Held,
    /// The caller is its customer.
    Customer,
    /// None of these.
    None,
}

impl Relation {
    const ALL: [Relation; 6] = [
        Relation::Holds,
        Relation::Offered,
        Relation::Waiting,
        Relation::Held,
        Relation::Customer,
        Relation::None,
    ];

    fn describe(self) -> &'static str {
        match self {
            Relation::Holds => "holds",
            Relation::Offered => "offered",
            Relation::Waiting => "in their queues",
            Relation::Held => "held before",
            Relation::Customer => "their own",
            Relation::None => "any",
        }
    }
}

/// Who `actor` is in the audit log: `agent:ID`, `key`, `customer:CONVERSATION` or `open`.
pub fn label(actor: &Actor) -> String {
    match actor {
        Actor::Open => "open".to_owned(),
        Actor::Key { .. } => "key".to_owned(),
        Actor::User { id, .. } => format!("agent:{id}"),
        Actor::Customer { conversation } => format!("customer:{conversation}"),
    }
}

/// Why a call was refused, in words (the API answers 403 with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Decides whether `actor` may do `action`, acting as agent `as_agent` (the agent a command
/// names: its `agent_id`; `None` when it names none), with `relation` to the conversation
/// (ignored for actions that are not a conversation's).
///
/// # Errors
/// A [`Refusal`] that says what the caller is and what the action needs.
pub fn authorize(
    actor: &Actor,
    action: Action,
    as_agent: Option<&str>,
    relation: Relation,
) -> Result<(), Refusal> {
    if allowed(actor, action, as_agent, relation) {
        return Ok(());
    }
    let who = match actor {
        Actor::Open => "an open server".to_owned(),
        Actor::Key { scopes } => format!("a key with scopes {scopes:?}").to_lowercase(),
        Actor::User { id, role } => format!("`{id}` ({role})"),
        Actor::Customer { .. } => "the customer of another conversation".to_owned(),
    };
    let detail = match (actor, as_agent) {
        (Actor::User { id, .. }, Some(other)) if other != id && action.speaks() => {
            format!(": you can speak only as yourself, not as `{other}`")
        }
        (Actor::User { id, role }, Some(other))
            if other != id && *role == AccountRole::Agent =>
        {
            format!(": you can act only as yourself, not as `{other}`")
        }
        (Actor::User { .. }, _) if action.on_conversation() => format!(
            ": this conversation is not yours ({})",
            match relation {
                Relation::None => "you do not hold it, were not offered it and it is not waiting in one of your queues",
                r => r.describe(),
            }
        ),
        _ => String::new(),
    };
    Err(Refusal(format!(
        "{who} may not {}{detail}",
        action.describe()
    )))
}

fn allowed(actor: &Actor, action: Action, as_agent: Option<&str>, relation: Relation) -> bool {
    use Action as A;
    use Relation as R;
    match actor {
        Actor::Open => true,
        Actor::Key { scopes } => {
            let has = |s| scopes.contains(&s) || scopes.contains(&KeyScope::Admin);
            let bot = matches!(
                action,
                A::CreateConversation
                    | A::PostTurn(Role::Customer | Role::Ai)
                    | A::Followup
                    | A::Rate
                    | A::Read
            );
            let agent = !matches!(
                action,
                A::CreateConversation
                    | A::PostTurn(Role::Customer | Role::Ai)
                    | A::Followup
                    | A::Rate
                    | A::UpsertAgent
                    | A::Supervise
                    | A::ManageCredentials
            );
            scopes.contains(&KeyScope::Admin)
                || (bot && has(KeyScope::Bot))
                || (agent && has(KeyScope::Agent))
        }
        Actor::Customer { .. } => {
            relation == R::Customer
                && matches!(
                    action,
                    A::PostTurn(Role::Customer) | A::Followup | A::Rate | A::Read
                )
        }
        Actor::User { id, role } => {
            let myself = as_agent.is_none_or(|a| a == id);
            let staff = matches!(role, AccountRole::Supervisor | AccountRole::Admin);
            if action.speaks() && !myself {
                return false;
            }
            if action.moves() && !myself && !staff {
                return false;
            }
            let reads = matches!(relation, R::Holds | R::Offered | R::Waiting | R::Held);
            match action {
                A::CreateConversation
                | A::PostTurn(Role::Customer | Role::Ai)
                | A::Followup
                | A::Rate => false,
                A::UpsertAgent | A::ManageCredentials => *role == AccountRole::Admin,
                A::Supervise => staff,
                A::ListQueues | A::ListAgents | A::SetPresence => true,
                A::Read | A::ReadNotes | A::Explain => staff || reads,
                A::Note => staff || matches!(relation, R::Holds | R::Offered),
                A::PostTurn(Role::Agent) | A::Reply | A::Resolve | A::Handback | A::Transfer => {
                    // The owner check of the command itself refuses a non-holder; a
                    // supervisor acting for the holder moves it as the holder.
                    staff || relation == R::Holds
                }
                A::Claim => staff || matches!(relation, R::Holds | R::Offered | R::Waiting),
                A::Decline => staff || relation == R::Offered,
            }
        }
    }
}

/// The columns of the table: a representative caller of each kind.
fn columns() -> Vec<(&'static str, Actor)> {
    let user = |role| Actor::User {
        id: "me".into(),
        role,
    };
    vec![
        (
            "bot key",
            Actor::Key {
                scopes: vec![KeyScope::Bot],
            },
        ),
        (
            "agent key",
            Actor::Key {
                scopes: vec![KeyScope::Agent],
            },
        ),
        (
            "admin key",
            Actor::Key {
                scopes: vec![KeyScope::Admin],
            },
        ),
        ("agent", user(AccountRole::Agent)),
        ("supervisor", user(AccountRole::Supervisor)),
        ("admin", user(AccountRole::Admin)),
        (
            "customer (widget)",
            Actor::Customer {
                conversation: "c".into(),
            },
        ),
        ("open (no credential, loopback)", Actor::Open),
    ]
}

/// One cell of the table: what `actor` may do of `action`, in words, found by asking
/// [`authorize`] for every relation, as themselves and as another agent.
fn cell(actor: &Actor, action: Action) -> String {
    let relations: &[Relation] = if action.on_conversation() {
        &Relation::ALL
    } else {
        &[Relation::None]
    };
    let ok = |as_agent: Option<&str>, r: Relation| authorize(actor, action, as_agent, r).is_ok();
    let agent_named = action.names_agent();
    let mine: Vec<Relation> = relations
        .iter()
        .copied()
        .filter(|r| ok(agent_named.then_some("me"), *r))
        .collect();
    let others = agent_named && relations.iter().all(|r| ok(Some("other"), *r));
    let some_other = agent_named && relations.iter().any(|r| ok(Some("other"), *r));
    if mine.is_empty() {
        return "no".into();
    }
    let scope = if mine.len() == relations.len() {
        "yes".to_owned()
    } else {
        mine.iter()
            .map(|r| r.describe())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let whom = if !agent_named || matches!(actor, Actor::Key { .. } | Actor::Open) {
        ""
    } else if others {
        ", for anyone"
    } else if some_other {
        ", for anyone who may"
    } else {
        ", as themselves"
    };
    format!("{scope}{whom}")
}

/// The access table as Markdown: every action against every kind of caller, generated from
/// [`authorize`].
pub fn table() -> String {
    let columns = columns();
    let mut out = String::from("| action |");
    for (name, _) in &columns {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    for action in Action::ALL {
        out.push_str(&format!("| {} |", action.describe()));
        for (_, actor) in &columns {
            out.push_str(&format!(" {} |", cell(actor, action)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, role: AccountRole) -> Actor {
        Actor::User {
            id: id.into(),
            role,
        }
    }

    fn key(scope: KeyScope) -> Actor {
        Actor::Key {
            scopes: vec![scope],
        }
    }

    #[test]
    fn no_one_speaks_as_someone_else() {
        let ana = user("ana", AccountRole::Agent);
        let sue = user("sue", AccountRole::Supervisor);
        let turn = Action::PostTurn(Role::Agent);
        // A bot cannot post an agent's turn, whoever it names.
        assert!(authorize(&key(KeyScope::Bot), turn, Some("bob"), Relation::None).is_err());
        // Ana speaks as herself where she holds the conversation, never as Bob.
        assert!(authorize(&ana, turn, Some("ana"), Relation::Holds).is_ok());
        let refused = authorize(&ana, turn, Some("bob"), Relation::Holds).expect_err("as bob");
        assert!(refused.0.contains("only as yourself"), "{refused:?}");
        // Nor does a supervisor, although they may move conversations for Bob.
        assert!(authorize(&sue, Action::Reply, Some("bob"), Relation::None).is_err());
        assert!(authorize(&sue, Action::Note, Some("bob"), Relation::None).is_err());
        assert!(authorize(&sue, Action::Transfer, Some("bob"), Relation::None).is_ok());
        // Agents post no customer or AI turns; customers only their own.
        for role in [Role::Customer, Role::Ai] {
            assert!(authorize(&ana, Action::PostTurn(role), None, Relation::Holds).is_err());
        }
        let customer = Actor::Customer {
            conversation: "c".into(),
        };
        let own = Action::PostTurn(Role::Customer);
        assert!(authorize(&customer, own, None, Relation::Customer).is_ok());
        assert!(authorize(&customer, own, None, Relation::None).is_err());
        assert!(authorize(
            &customer,
            Action::PostTurn(Role::Ai),
            None,
            Relation::Customer
        )
        .is_err());
    }

    #[test]
    fn agents_read_only_what_is_theirs_and_notes_stay_internal() {
        let ana = user("ana", AccountRole::Agent);
        for r in [
            Relation::Holds,
            Relation::Offered,
            Relation::Waiting,
            Relation::Held,
        ] {
            assert!(authorize(&ana, Action::Read, None, r).is_ok(), "{r:?}");
        }
        assert!(authorize(&ana, Action::Read, None, Relation::None).is_err());
        assert!(authorize(&ana, Action::Note, Some("ana"), Relation::Waiting).is_err());
        assert!(authorize(&ana, Action::Note, Some("ana"), Relation::Offered).is_ok());
        assert!(authorize(&key(KeyScope::Bot), Action::ReadNotes, None, Relation::None).is_err());
        let customer = Actor::Customer {
            conversation: "c".into(),
        };
        assert!(authorize(&customer, Action::ReadNotes, None, Relation::Customer).is_err());
        assert!(authorize(
            &user("sue", AccountRole::Supervisor),
            Action::ReadNotes,
            None,
            Relation::None
        )
        .is_ok());
    }

    #[test]
    fn managing_agents_and_the_supervisor_view_need_the_role() {
        let sue = user("sue", AccountRole::Supervisor);
        let ana = user("ana", AccountRole::Agent);
        assert!(authorize(&ana, Action::Supervise, None, Relation::None).is_err());
        assert!(authorize(&sue, Action::Supervise, None, Relation::None).is_ok());
        assert!(authorize(&sue, Action::UpsertAgent, None, Relation::None).is_err());
        assert!(authorize(
            &user("root", AccountRole::Admin),
            Action::UpsertAgent,
            None,
            Relation::None
        )
        .is_ok());
        assert!(authorize(&ana, Action::SetPresence, Some("bob"), Relation::None).is_err());
        assert!(authorize(
            &key(KeyScope::Agent),
            Action::UpsertAgent,
            None,
            Relation::None
        )
        .is_err());
        assert!(authorize(
            &key(KeyScope::Bot),
            Action::ListAgents,
            None,
            Relation::None
        )
        .is_err());
    }

    /// `docs/access.md` holds the generated table; regenerate it with
    /// `BATON_WRITE_ACCESS_TABLE=1 cargo test -p baton-core access`.
    #[test]
    fn the_table_in_the_docs_is_the_code_s() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/access.md");
        let doc = std::fs::read_to_string(path).expect("docs/access.md");
        let (head, rest) = doc.split_once("<!-- table -->\n").expect("table start");
        let (_, tail) = rest.split_once("<!-- end -->").expect("table end");
        let current = format!("{head}<!-- table -->\n{}<!-- end -->{tail}", table());
        if std::env::var_os("BATON_WRITE_ACCESS_TABLE").is_some() {
            std::fs::write(path, &current).expect("write");
        }
        assert_eq!(
            doc, current,
            "docs/access.md is stale: regenerate it (see above)"
        );
    }
}
