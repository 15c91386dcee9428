//! Subcommands.

use anyhow::{Context, Result};
use baton_detect::{kb::KnowledgeBase, model::LinearModel};
use baton_domain::{ConversationId, Customer, Role, Turn};
use baton_engine::Engine;
use baton_policy::Policy;
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Baton hands customer conversations from an AI assistant to human agents, at the right moment
/// and with full context.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (defaults: 127.0.0.1:8080, SQLite file `baton.db`, built-in policy).
    Serve(baton_server::ServeArgs),
    /// Validate a policy file and report every error with line, column and a hint.
    Check {
        /// The policy file (YAML).
        #[arg(required_unless_present_any = ["print_default", "schema"])]
        policy: Option<PathBuf>,
        /// Print the built-in default policy instead, as a starting point.
        #[arg(long)]
        print_default: bool,
        /// Print a JSON Schema instead: `policy` (the policy file) or `brief` (the handoff brief);
        /// or `openapi`, the HTTP API's OpenAPI 3.1 document (as served at `/openapi.json`).
        #[arg(long, value_parser = ["policy", "brief", "openapi"])]
        schema: Option<String>,
    },
    /// Decide on each line of a JSON Lines file of utterances, each as the first customer turn
    /// of a new conversation; one JSON line out per line in.
    Detect {
        #[command(flatten)]
        engine: EngineArgs,
        /// Utterances, JSON Lines: {"id", "text", "labels"?, "customer"?}. `-` reads stdin.
        input: PathBuf,
        /// After the last line, report throughput to stderr: utterances per second for the
        /// whole run (reading, detecting, writing JSON) and for detection and decision alone.
        #[arg(long)]
        stats: bool,
    },
    /// Run conversations turn by turn through the whole pipeline; one JSON line per turn.
    Replay {
        #[command(flatten)]
        engine: EngineArgs,
        /// Print each brief as Markdown to stderr as it is made.
        #[arg(long)]
        markdown: bool,
        /// Conversations, JSON Lines: {"id", "customer"?, "turns": [...]}. `-` reads stdin.
        input: PathBuf,
    },
    /// Measure detection: per-code precision, recall and F1 and the escalation decision on
    /// labelled utterances, or escalation timing on conversations with satisfaction labels.
    Eval(crate::eval::EvalArgs),
    /// Retrain the learned detection model from the labelled datasets (Bitext, BANKING77,
    /// CLINC150, GoEmotions; `--datasets DIR`) and write the model file.
    Train(crate::eval::TrainArgs),
    /// Simulate arrivals against agents with the real routing code and simulated time; writes a
    /// JSON report (service level, waits, abandonment, occupancy, wait-estimate accuracy, and
    /// Erlang C's figures for M/M/c queues) to stdout.
    Simulate {
        /// The scenario (YAML): queues, agent groups, arrival streams, handle time, patience.
        scenario: PathBuf,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Console accounts: `baton agents add ID --name NAME --role agent|supervisor|admin`
    /// (password from `--password` or, safer, `--password-stdin`).
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// API keys for programs: `baton keys add --name NAME --scope bot|agent|admin` prints the
    /// key once; only its digest is stored.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Ask a running `baton serve` why a conversation is in its queue, and which agents are
    /// eligible for it and why the first would be chosen.
    Explain {
        /// The conversation's id.
        conversation: String,
        /// The server's address.
        #[arg(long, env = "BATON_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
        /// An API key with scope `agent` or `admin`, once the server has credentials.
        #[arg(long, env = "BATON_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
}

/// `baton agents`.
#[derive(Debug, clap::Subcommand)]
enum AgentsCommand {
    /// Adds (or updates) an agent with a console account.
    Add {
        /// The agent's id.
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Role: agent, supervisor or admin.
        #[arg(long, default_value = "agent", value_parser = ["agent", "supervisor", "admin"])]
        role: String,
        /// Skills, comma-separated, each with an optional proficiency level after a colon
        /// (`billing:4,vip`; levels 1 to 5, 1 when left out).
        #[arg(long, value_delimiter = ',')]
        skills: Vec<String>,
        /// Languages the agent serves customers in, comma-separated ISO 639-1 codes (`en,de`);
        /// none means any.
        #[arg(long, value_delimiter = ',')]
        languages: Vec<String>,
        /// Concurrent conversations.
        #[arg(long, default_value_t = 3)]
        capacity: u32,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Lists the console accounts: id and role.
    List {
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Replaces an account's password; its sessions end at once.
    Passwd {
        /// The agent's id.
        id: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Removes an account: its sessions end at once and the agent goes offline (their routing
    /// record and history stay).
    Remove {
        /// The agent's id.
        id: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
}

/// Where a password comes from.
#[derive(Debug, clap::Args)]
struct PasswordArgs {
    /// The password (visible to other users of this machine: prefer --password-stdin).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArgs {
    /// The password, at least 8 characters.
    fn read(self) -> Result<String> {
        let password = match (self.password, self.password_stdin) {
            (Some(p), _) => p,
            (None, true) => {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
            (None, false) => {
                anyhow::bail!("give the password with --password-stdin (or --password)")
            }
        };
        if password.chars().count() < 8 {
            anyhow::bail!("the password is shorter than 8 characters: choose a longer one");
        }
        Ok(password)
    }
}

/// The database of the account and key commands.
#[derive(Debug, clap::Args)]
struct DatabaseArg {
    /// Database.
    #[arg(long, env = "BATON_DATABASE_URL", default_value = "sqlite://baton.db")]
    database_url: String,
}

/// `baton keys`.
#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Creates an API key and prints it (once).
    Add {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// Scopes: bot, agent, admin (repeat or comma-separate).
        #[arg(long = "scope", required = true, value_delimiter = ',', value_parser = ["bot", "agent", "admin"])]
        scopes: Vec<String>,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Lists the keys (id, name, scopes, created, revoked); never the keys themselves.
    List {
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Revokes a key by its id (from `baton keys list`): it opens nothing from then on.
    Revoke {
        /// The key's id.
        id: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
}

/// What the engine runs with: policy, knowledge base and learned model.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Policy file; the built-in default when absent.
    #[arg(long, env = "BATON_POLICY")]
    pub policy: Option<PathBuf>,
    /// Knowledge base: a folder of Markdown, text or JSON articles; customer turns without a
    /// `kb_similarity` are compared with it.
    #[arg(long, env = "BATON_KB")]
    pub kb: Option<PathBuf>,
    /// A model file made by `baton train`, instead of the built-in one.
    #[arg(long, conflicts_with = "no_model")]
    pub model: Option<PathBuf>,
    /// Detect with the lexicons alone, without the learned model (for comparison).
    #[arg(long)]
    pub no_model: bool,
}

impl EngineArgs {
    /// Builds the engine these options describe.
    ///
    /// # Errors
    /// An unreadable or invalid policy, knowledge base or model file.
    pub fn engine(&self) -> Result<Engine> {
        let policy = load_policy(self.policy.as_deref())?;
        let model = if self.no_model {
            None
        } else if let Some(path) = &self.model {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read model file `{}`", path.display()))?;
            Some(std::sync::Arc::new(
                LinearModel::from_bytes(&bytes)
                    .with_context(|| format!("model file `{}`", path.display()))?,
            ))
        } else {
            baton_detect::builtin_model()
        };
        let kb = self.kb.as_deref().map(load_kb).transpose()?;
        Ok(Engine::with_model(policy, model).with_knowledge_base(kb))
    }
}

/// Loads and indexes a knowledge-base folder.
fn load_kb(dir: &Path) -> Result<std::sync::Arc<KnowledgeBase>> {
    Ok(std::sync::Arc::new(
        KnowledgeBase::load_dir(dir)
            .with_context(|| format!("knowledge base `{}`", dir.display()))?,
    ))
}

/// Runs a parsed command line.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Serve(serve) => {
            let policy = load_policy(serve.policy.as_deref())?;
            let kb = serve.kb.as_deref().map(load_kb).transpose()?;
            let engine = Engine::new(policy).with_knowledge_base(kb);
            init_tracing();
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(baton_server::serve(serve, engine))
        }
        Command::Check {
            policy,
            print_default,
            schema,
        } => {
            if let Some(which) = schema {
                if which == "openapi" {
                    println!("{}", baton_server::openapi::json());
                    return Ok(());
                }
                let schema = if which == "brief" {
                    baton_brief::json_schema()
                } else {
                    baton_policy::json_schema()
                };
                println!("{}", serde_json::to_string_pretty(&schema)?);
                return Ok(());
            }
            if print_default {
                print!("{}", baton_policy::DEFAULT_POLICY_YAML);
                return Ok(());
            }
            let path = policy.context("give a policy file")?;
            let p = load_policy(Some(&path))?;
            println!(
                "{}: ok ({} triggers, {} weights, {} rules, {} queues)",
                path.display(),
                p.file.triggers.len(),
                p.file.weights.len(),
                p.file.rules.len(),
                p.file.queues.len()
            );
            Ok(())
        }
        Command::Detect {
            engine,
            input,
            stats,
        } => detect(&engine.engine()?, &input, stats),
        Command::Replay {
            engine,
            markdown,
            input,
        } => replay(engine.engine()?, &input, markdown),
        Command::Eval(args) => crate::eval::eval(&args),
        Command::Train(args) => crate::eval::train(&args),
        Command::Simulate { scenario, seed } => simulate(&scenario, seed),
        Command::Explain {
            conversation,
            url,
            json,
            api_key,
        } => explain(&url, &conversation, json, api_key.as_deref()),
        Command::Agents(command) => agents(command),
        Command::Keys(command) => keys(command),
    }
}

/// `baton agents ...`.
fn agents(command: AgentsCommand) -> Result<()> {
    match command {
        AgentsCommand::Add {
            id,
            name,
            role,
            skills,
            languages,
            capacity,
            password,
            db,
        } => {
            let password = password.read()?;
            let agent = baton_domain::Agent {
                id: baton_domain::AgentId::parse(id.clone())?,
                name,
                skills: skills
                    .iter()
                    .map(|s| parse_skill(s))
                    .collect::<Result<_>>()?,
                languages,
                capacity: capacity.max(1),
                status: baton_domain::AgentStatus::Offline,
            };
            let hash = baton_server::auth::hash_password(&password)?;
            let account_role = baton_store::AccountRole::parse(&role).with_context(|| {
                format!("unknown role `{role}`: use agent, supervisor or admin")
            })?;
            with_store(&db.database_url, async |store| {
                let mut change = baton_store::Change::at(baton_store::now_ms());
                change.agents.push(baton_store::AgentChange::Upsert(agent));
                store.apply(change).await?;
                store.upsert_user(&id, &hash, account_role).await?;
                audit(
                    store,
                    "account_changed",
                    &id,
                    &format!("added or replaced, role {role}"),
                )
                .await
            })?;
            eprintln!("baton: agent `{id}` ({role}) can sign in at /console");
            Ok(())
        }
        AgentsCommand::List { db } => with_store(&db.database_url, async |store| {
            for u in store.users().await? {
                println!("{}\t{}", u.id, u.role);
            }
            Ok(())
        }),
        AgentsCommand::Passwd { id, password, db } => {
            let hash = baton_server::auth::hash_password(&password.read()?)?;
            with_store(&db.database_url, async |store| {
                let user = account(store, &id).await?;
                store.upsert_user(&id, &hash, user.role).await?;
                audit(store, "account_changed", &id, "password changed").await
            })?;
            eprintln!("baton: the password of `{id}` is changed; their sessions have ended");
            Ok(())
        }
        AgentsCommand::Remove { id, db } => {
            with_store(&db.database_url, async |store| {
                account(store, &id).await?;
                store.delete_user(&id).await?;
                if let Some(agent) = store
                    .agents()
                    .await?
                    .into_iter()
                    .find(|a| a.id == id.as_str())
                {
                    let mut change = baton_store::Change::at(baton_store::now_ms());
                    change.agents.push(baton_store::AgentChange::Status {
                        id: agent.id,
                        status: baton_domain::AgentStatus::Offline,
                    });
                    store.apply(change).await?;
                }
                audit(store, "account_removed", &id, "removed; sessions ended").await
            })?;
            eprintln!("baton: the account `{id}` is removed; their sessions have ended and they are offline");
            Ok(())
        }
    }
}

/// Appends an account or key change made from the command line to the audit log.
async fn audit(
    store: &dyn baton_store::Store,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<()> {
    store
        .record_audit(baton_store::AuditEntry {
            at: baton_store::now_ms(),
            actor: "cli".into(),
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
        })
        .await?;
    Ok(())
}

/// The account `id`, or an error that says how to find the ids.
async fn account(store: &dyn baton_store::Store, id: &str) -> Result<baton_store::User> {
    store
        .user(id)
        .await?
        .with_context(|| format!("no account `{id}`: `baton agents list` shows them"))
}

/// `baton keys ...`.
fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Add { name, scopes, db } => {
            let (id, key, digest) = baton_server::auth::new_api_key();
            with_store(&db.database_url, async |store| {
                store.create_api_key(&id, &digest, &name, &scopes).await?;
                audit(
                    store,
                    "key_created",
                    &id,
                    &format!("`{name}`, scopes {}", scopes.join(",")),
                )
                .await
            })?;
            println!("{key}");
            eprintln!("baton: key `{name}` (id {id}; {}) created; send it as `Authorization: Bearer KEY`. It is not shown again.", scopes.join(", "));
            Ok(())
        }
        KeysCommand::List { db } => with_store(&db.database_url, async |store| {
            for k in store.api_keys().await? {
                let revoked = k.revoked_at.map_or_else(
                    || "active".to_owned(),
                    |at| format!("revoked {}", baton_core::rfc3339(at)),
                );
                println!(
                    "{}\t{}\t{}\tcreated {}\t{revoked}",
                    k.id,
                    k.name,
                    k.scopes.join(","),
                    baton_core::rfc3339(k.created_at)
                );
            }
            Ok(())
        }),
        KeysCommand::Revoke { id, db } => {
            with_store(&db.database_url, async |store| {
                if !store.api_keys().await?.iter().any(|k| k.id == id) {
                    anyhow::bail!("no key `{id}`: `baton keys list` shows the ids");
                }
                store.revoke_api_key(&id, baton_store::now_ms()).await?;
                audit(store, "key_revoked", &id, "revoked").await
            })?;
            eprintln!("baton: key `{id}` is revoked; it opens nothing from now on");
            Ok(())
        }
    }
}

/// Logs to stderr: `BATON_LOG` filters (default `info`); `BATON_LOG_FORMAT=json` writes one
/// JSON object per line; colour codes only when stderr is a terminal.
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("BATON_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Loads a policy file, or the built-in one.
pub fn load_policy(path: Option<&Path>) -> Result<Policy> {
    match path {
        None => Ok(Policy::builtin()?),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read policy file `{}`", path.display()))?;
            Policy::parse(&text, &path.display().to_string()).map_err(|e| anyhow::anyhow!("{e}"))
        }
    }
}

/// `baton simulate`: runs the scenario and prints the report; the wall time goes to stderr.
fn simulate(path: &Path, seed: Option<u64>) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read scenario `{}`", path.display()))?;
    let mut scenario = baton_sim::parse(&text, &path.display().to_string())?;
    if let Some(seed) = seed {
        scenario.seed = seed;
    }
    let started = std::time::Instant::now();
    let report = baton_sim::simulate(&scenario);
    let wall = started.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "baton: simulated {} arrivals over {:.0} s in {wall:.2} s ({:.0} arrivals/s)",
        report.arrivals,
        report.simulated_seconds,
        report.arrivals as f64 / wall.max(1e-9)
    );
    Ok(())
}

/// Runs `f` against the database at `url`.
fn with_store(url: &str, f: impl AsyncFnOnce(&dyn baton_store::Store) -> Result<()>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = baton_store::connect(url)
            .await
            .with_context(|| format!("cannot open database `{url}`"))?;
        let result = f(store.as_ref()).await;
        store.close().await;
        result
    })
}

/// A skill from the command line: `NAME` or `NAME:LEVEL`.
fn parse_skill(text: &str) -> Result<baton_domain::Skill> {
    let (name, level) = match text.split_once(':') {
        Some((name, level)) => {
            let level: u8 = level.trim().parse().with_context(|| {
                format!(
                    "skill `{text}`: the level after `:` must be a whole number from {} to {}",
                    baton_domain::MIN_LEVEL,
                    baton_domain::MAX_LEVEL
                )
            })?;
            (name.trim(), level)
        }
        None => (text.trim(), baton_domain::MIN_LEVEL),
    };
    if !(baton_domain::MIN_LEVEL..=baton_domain::MAX_LEVEL).contains(&level) {
        anyhow::bail!(
            "skill `{text}`: level {level} is outside {} to {}",
            baton_domain::MIN_LEVEL,
            baton_domain::MAX_LEVEL
        );
    }
    Ok(baton_domain::Skill::new(name, level))
}

/// `baton explain`: fetches `/v1/conversations/{id}/explain` and prints it.
fn explain(url: &str, conversation: &str, json: bool, api_key: Option<&str>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut address = reqwest::Url::parse(url).with_context(|| {
        format!("`{url}` is not a URL: give the server's, e.g. http://127.0.0.1:8080")
    })?;
    address
        .path_segments_mut()
        .map_err(|()| anyhow::anyhow!("`{url}` cannot take a path: give the server's http URL"))?
        .pop_if_empty()
        .extend(["v1", "conversations", conversation, "explain"]);
    let (status, body): (u16, serde_json::Value) = runtime.block_on(async {
        let mut request = reqwest::Client::new().get(address.clone());
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}: is `baton serve` running there?"))?;
        let status = response.status().as_u16();
        let body = response
            .json()
            .await
            .with_context(|| format!("{address} did not answer with JSON"))?;
        anyhow::Ok((status, body))
    })?;
    if status != 200 {
        anyhow::bail!(
            "{}",
            body["error"]["message"]
                .as_str()
                .unwrap_or("the server refused the request")
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    println!(
        "conversation {}: {} in queue `{}` ({})",
        text(&body["conversation"]),
        text(&body["state"]),
        text(&body["queue"]),
        text(&body["queue_why"])
    );
    println!(
        "  step {}, skills [{}], language {}, effective priority {:.1}, position {}",
        body["step"],
        body["skills"]
            .as_array()
            .map(|s| s.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        text(&body["language"]),
        body["effective_priority"].as_f64().unwrap_or(0.0),
        body["position"]
    );
    if let Some(agent) = body["agent"].as_str() {
        println!("  held by agent `{agent}`");
    }
    for verdict in body["agents"].as_array().into_iter().flatten() {
        let mark = match verdict["rank"].as_u64() {
            Some(rank) => format!("#{rank}"),
            None => "--".to_owned(),
        };
        println!(
            "  {mark:>4} {}: {}",
            text(&verdict["agent"]),
            text(&verdict["why"])
        );
    }
    Ok(())
}

/// Reads JSON Lines, calling `each(line_number, value)` for every non-blank line. A line that
/// does not parse stops the run with its line number and what to fix; lines already written
/// stay written.
pub(crate) fn for_each_line<T: for<'de> Deserialize<'de>>(
    input: &Path,
    mut each: impl FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let reader: Box<dyn BufRead> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(input)
            .with_context(|| format!("cannot open `{}`", input.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    for (i, line) in reader.lines().enumerate() {
        let line =
            line.with_context(|| format!("{}:{}: cannot read line", input.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: T = serde_json::from_str(&line).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}: {e}: each line must be one JSON object in the format of CONTRACTS.md",
                input.display(),
                i + 1
            )
        })?;
        each(i + 1, value)?;
    }
    Ok(())
}

/// JSON Lines on stdout, buffered; flushed at the end of a run.
struct JsonLines(BufWriter<std::io::StdoutLock<'static>>);

impl JsonLines {
    fn stdout() -> Self {
        JsonLines(BufWriter::new(std::io::stdout().lock()))
    }

    fn write<T: Serialize>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.0, value)?;
        self.0.write_all(b"\n")?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.0.flush()?;
        Ok(())
    }
}

/// A labelled utterance (CONTRACTS.md).
#[derive(Deserialize)]
struct Utterance {
    id: serde_json::Value,
    text: String,
    #[serde(default)]
    customer: Customer,
}

#[derive(Serialize)]
struct DetectLine<'a> {
    id: &'a serde_json::Value,
    escalate: bool,
    mode: baton_domain::Mode,
    score: f64,
    reasons: &'a [baton_domain::ReasonCode],
    signals: &'a [baton_domain::Signal],
}

fn detect(engine: &Engine, input: &Path, stats: bool) -> Result<()> {
    let mut out = JsonLines::stdout();
    let id = ConversationId::parse("detect").context("internal id")?;
    let started = std::time::Instant::now();
    let mut assessing = std::time::Duration::ZERO;
    let mut count = 0u64;
    for_each_line(input, |line, u: Utterance| {
        let turn = Turn::new(Role::Customer, u.text)
            .map_err(|e| anyhow::anyhow!("{}:{line}: {e}", input.display()))?;
        let before = std::time::Instant::now();
        let mut session = engine.start(id.clone(), u.customer, None);
        let (signals, decision) = engine.assess(&mut session, &turn);
        assessing += before.elapsed();
        count += 1;
        out.write(&DetectLine {
            id: &u.id,
            escalate: decision.escalate,
            mode: decision.mode,
            score: decision.score,
            reasons: &decision.reasons,
            signals: &signals,
        })
    })?;
    out.finish()?;
    if stats {
        let per_second = |d: std::time::Duration| count as f64 / d.as_secs_f64().max(1e-9);
        eprintln!(
            "{count} utterances in {:.3} s: {:.0}/s in all (reading, detecting, writing JSON); \
             detection and decision alone {:.0}/s",
            started.elapsed().as_secs_f64(),
            per_second(started.elapsed()),
            per_second(assessing),
        );
    }
    Ok(())
}

/// A conversation (CONTRACTS.md); the id is echoed as given, string or number.
#[derive(Deserialize)]
struct ReplayConversation {
    id: serde_json::Value,
    #[serde(default)]
    customer: Customer,
    #[serde(default)]
    channel: Option<String>,
    turns: Vec<Turn>,
}

/// One line of `baton replay`'s output (CONTRACTS.md).
#[derive(Serialize)]
struct ReplayLine {
    conversation_id: serde_json::Value,
    turn: usize,
    role: Role,
    escalate: bool,
    mode: baton_domain::Mode,
    score: f64,
    reasons: Vec<baton_domain::ReasonCode>,
    state: baton_domain::HandoffState,
    queue: Option<String>,
    signals: Vec<baton_domain::Signal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    brief: Option<baton_domain::Brief>,
}

/// How many conversations a replay runs at once (their writes share commits); the output
/// stays in input order.
const REPLAY_IN_FLIGHT: usize = 64;

/// A replayed conversation's lines, or what went wrong (with its input line).
type Replayed = tokio::task::JoinHandle<Result<Vec<ReplayLine>>>;

/// Replays `input` through the service the server runs ([`baton_core::Service`]), on a
/// scratch store that is removed afterwards, each turn as a recorded transcript's turn
/// ([`baton_core::Service::record_turn`]). Up to [`REPLAY_IN_FLIGHT`] conversations run at
/// once; each is written whole, in input order. A conversation id seen before in the same
/// input is replayed under `ID#LINE` (its output still echoes the id as given).
fn replay(engine: Engine, input: &Path, markdown: bool) -> Result<()> {
    let scratch = tempfile::tempdir().context("creating a scratch directory for the replay")?;
    let url = format!("sqlite://{}", scratch.path().join("replay.db").display());
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let service = runtime.block_on(async {
        let store = baton_store::sqlite::SqliteStore::open_scratch(&url).await?;
        baton_core::Service::open(
            engine,
            std::sync::Arc::new(store),
            std::sync::Arc::new(baton_core::SystemClock),
            REPLAY_IN_FLIGHT * 2,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    let mut out = JsonLines::stdout();
    let mut tally = ReplayTally::default();
    let mut write = |done: Replayed| -> Result<()> {
        let lines = runtime.block_on(done).context("a replay task failed")??;
        tally.add(&lines);
        for l in lines {
            if markdown {
                if let Some(b) = &l.brief {
                    eprintln!("{}", baton_brief::render_markdown(b));
                }
            }
            out.write(&l)?;
        }
        Ok(())
    };
    let mut seen = std::collections::HashSet::new();
    let mut in_flight = std::collections::VecDeque::new();
    for_each_line(input, |line, c: ReplayConversation| {
        let at = format!("{}:{line}", input.display());
        let mut id = match &c.id {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => anyhow::bail!("{at}: conversation `id` is {other}: give a string or a number"),
        };
        if !seen.insert(id.clone()) {
            id = format!("{id}#{line}");
        }
        let id = ConversationId::parse(id).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        in_flight.push_back(runtime.spawn(replay_one(service.clone(), id, c, at)));
        if in_flight.len() >= REPLAY_IN_FLIGHT {
            if let Some(done) = in_flight.pop_front() {
                write(done)?;
            }
        }
        Ok(())
    })?;
    for done in in_flight {
        write(done)?;
    }
    runtime.block_on(service.shutdown());
    out.finish()?;
    eprintln!("{}", tally.paragraph());
    Ok(())
}

/// What a replay found, for the paragraph it ends with on stderr.
#[derive(Default)]
struct ReplayTally {
    conversations: usize,
    turns: usize,
    escalated: usize,
    /// Handoffs started, by reason code (a handoff counts once for each of its reasons).
    reasons: std::collections::BTreeMap<baton_domain::ReasonCode, usize>,
}

impl ReplayTally {
    fn add(&mut self, lines: &[ReplayLine]) {
        self.conversations += 1;
        self.turns += lines.len();
        let started: Vec<&ReplayLine> = lines.iter().filter(|l| l.brief.is_some()).collect();
        if !started.is_empty() {
            self.escalated += 1;
        }
        for l in started {
            for r in &l.reasons {
                *self.reasons.entry(*r).or_default() += 1;
            }
        }
    }

    /// "30 conversations (412 turns) replayed; 9 escalated (30%), by reason: ...".
    fn paragraph(&self) -> String {
        let share = 100.0 * self.escalated as f64 / self.conversations.max(1) as f64;
        let mut text = format!(
            "baton replay: {} conversations ({} turns) replayed; {} handed to a person ({share:.0}%)",
            self.conversations, self.turns, self.escalated
        );
        if self.reasons.is_empty() {
            text.push('.');
        } else {
            let mut by: Vec<(&baton_domain::ReasonCode, &usize)> = self.reasons.iter().collect();
            by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let parts: Vec<String> = by.iter().map(|(code, n)| format!("{code} {n}")).collect();
            text.push_str(&format!(", by reason: {}.", parts.join(", ")));
        }
        text
    }
}

/// One conversation of a replay, turn by turn; errors name `at` (the input's file and line).
async fn replay_one(
    service: std::sync::Arc<baton_core::Service>,
    id: ConversationId,
    c: ReplayConversation,
    at: String,
) -> Result<Vec<ReplayLine>> {
    let fail = |e: baton_core::CoreError| anyhow::anyhow!("{at}: {e}");
    service
        .create_conversation(
            &baton_core::Actor::Open,
            Some(id.clone()),
            c.customer,
            c.channel,
        )
        .await
        .map_err(fail)?;
    let mut lines = Vec::with_capacity(c.turns.len());
    for turn in c.turns {
        let a = service.record_turn(id.clone(), turn).await.map_err(fail)?;
        lines.push(ReplayLine {
            conversation_id: c.id.clone(),
            turn: a.turn,
            role: a.role,
            escalate: a.escalate,
            mode: a.mode,
            score: a.score,
            reasons: a.reasons,
            state: a.state,
            queue: a.queue,
            signals: a.signals,
            brief: a.brief,
        });
    }
    Ok(lines)
}
