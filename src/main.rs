//! The `duet` command: `serve`, `migrate`, and `user` administration for operators.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use duet::config::{self, KEYS, Raw, Settings};
use duet::store::Store;

#[derive(Parser)]
#[command(name = "duet", version, about = "Self-hosted one-to-one video calling server")]
struct Cli {
    /// A TOML file of settings (flags and DUET_* variables override it).
    #[arg(long, global = true, env = "DUET_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(SettingsArgs),
    /// Create or update the database schema, then exit.
    Migrate(DatabaseArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the sample settings file (duet.example.toml).
    ConfigSample,
    /// Check this deployment's settings (database, ports, addresses, certificate) and say what works.
    Doctor(SettingsArgs),
    /// Put load on a server: a connect storm, idle connections, call flows, relayed candidates.
    Loadtest(duet::loadtest::Args),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password comes from --password or the first line of stdin.
    Add {
        username: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Set an account's password (from --password or stdin) and log it out everywhere.
    Passwd {
        username: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Disable an account and log it out everywhere.
    Disable {
        username: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Enable a disabled account again.
    Enable {
        username: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Args, Clone)]
struct DatabaseArgs {
    /// sqlite://<path>, postgres://… or mysql://…
    #[arg(long, env = "DUET_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
}

/// Every setting of `config::KEYS` as a flag with its environment variable, kept as raw text so
/// that `config` can parse it and name the setting in its error.
struct SettingsArgs(Raw);

impl FromArgMatches for SettingsArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let raw = KEYS
            .iter()
            .filter_map(|k| m.get_one::<String>(k.name).map(|v| (k.name, v.clone())))
            .collect();
        Ok(SettingsArgs(raw))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for SettingsArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        KEYS.iter().fold(cmd, |cmd, k| {
            cmd.arg(
                Arg::new(k.name)
                    .long(k.name.replace('_', "-"))
                    .env(k.env)
                    .hide_env_values(true)
                    .value_name("VALUE")
                    .help(match k.default {
                        Some(d) => format!("{} [default: {d}]", k.help),
                        None => k.help.to_string(),
                    }),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("duet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => config::read_file(path)?,
        None => Raw::new(),
    };
    let database_settings = |db: DatabaseArgs| -> anyhow::Result<Settings> {
        let cli_raw: Raw = db.database_url.map(|u| ("database_url", u)).into_iter().collect();
        Ok(Settings::from_raw(&config::merge(cli_raw, file.clone()))?)
    };
    match cli.command {
        Command::ConfigSample => {
            print!("{}", config::sample_file());
            Ok(())
        }
        Command::Serve(args) => {
            let settings = Settings::from_raw(&config::merge(args.0, file.clone()))?;
            runtime()?.block_on(async {
                let telemetry = duet::telemetry::init(settings.otlp_endpoint.as_deref(), &duet::telemetry::node_name())?;
                let served = duet::http::serve(settings).await;
                telemetry.shutdown().await;
                served
            })
        }
        Command::Doctor(args) => {
            let settings = Settings::from_raw(&config::merge(args.0, file.clone()))?;
            let ok = runtime()?.block_on(async {
                let findings = duet::doctor::run(&settings).await;
                duet::doctor::print(&findings)
            });
            if ok { Ok(()) } else { Err(anyhow::anyhow!("doctor found failures")) }
        }
        Command::Migrate(db) => {
            let settings = database_settings(db)?;
            init_logging();
            runtime()?.block_on(async {
                let shown = duet::store::redact(&settings.database_url);
                let store = Store::connect_only(&settings.database_url, settings.store).await?;
                let ran = store.migrate().await?;
                for name in &ran {
                    println!("applied {name}");
                }
                match ran.len() {
                    0 => println!("{shown} ({}) was already up to date", store.backend_name()),
                    n => println!("{shown} ({}) is up to date: {n} migration(s) applied", store.backend_name()),
                }
                Ok(())
            })
        }
        Command::User(cmd) => runtime()?.block_on(user_command(cmd, database_settings)),
        Command::Loadtest(args) => {
            if std::env::var_os("RUST_LOG").is_none() {
                // SAFETY: single-threaded here, before the runtime starts.
                unsafe { std::env::set_var("RUST_LOG", "warn") };
            }
            init_logging();
            runtime()?.block_on(duet::loadtest::run(args))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    duet::telemetry::init_stderr();
}

/// A password from the flag, or else the first line of stdin.
fn password_from(flag: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = flag {
        return Ok(p);
    }
    eprintln!("password (one line on stdin):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn user_command(cmd: UserCommand, settings: impl Fn(DatabaseArgs) -> anyhow::Result<Settings>) -> anyhow::Result<()> {
    use duet::auth::{check_password, check_username, clean_display_name, password};
    let open = |db: DatabaseArgs| async {
        let settings = settings(db)?;
        Store::open_with(&settings.database_url, settings.store).await
    };
    let find = |store: Store, name: String| async move {
        store.user_by_username(&name).await?.ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))
    };
    match cmd {
        UserCommand::Add { username, display_name, password: pw, db } => {
            let store = open(db).await?;
            check_username(&username).map_err(|e| anyhow::anyhow!(e.message))?;
            let display_name = clean_display_name(display_name.as_deref().unwrap_or(&username)).map_err(|e| anyhow::anyhow!(e.message))?;
            let pw = password_from(pw)?;
            check_password(&pw).map_err(|e| anyhow::anyhow!(e.message))?;
            if store.user_by_username(&username).await?.is_some() {
                anyhow::bail!("the username {username:?} is taken");
            }
            let hash = password::hash_async(pw).await?;
            let user = store
                .create_user(duet::store::NewUser { username: &username, display_name: &display_name, password_hash: &hash })
                .await?;
            println!("created user {} ({})", user.username, user.id);
        }
        UserCommand::List { db } => {
            let store = open(db).await?;
            println!("{:>6}  {:<32}  {:<8}  display name", "id", "username", "state");
            for u in store.list_users().await? {
                let state = if u.disabled { "disabled" } else { "active" };
                println!("{:>6}  {:<32}  {:<8}  {}", u.id, u.username, state, u.display_name);
            }
        }
        UserCommand::Passwd { username, password: pw, db } => {
            let store = open(db).await?;
            let user = find(store.clone(), username).await?;
            let pw = password_from(pw)?;
            check_password(&pw).map_err(|e| anyhow::anyhow!(e.message))?;
            store.set_password_hash(user.id, &password::hash_async(pw).await?).await?;
            let n = store.delete_user_sessions(user.id).await?;
            println!("password of {} changed; {n} session(s) logged out", user.username);
        }
        UserCommand::Disable { username, db } => {
            let store = open(db).await?;
            let user = find(store.clone(), username).await?;
            store.set_disabled(user.id, true).await?;
            let n = store.delete_user_sessions(user.id).await?;
            println!("{} disabled; {n} session(s) logged out", user.username);
        }
        UserCommand::Enable { username, db } => {
            let store = open(db).await?;
            let user = find(store.clone(), username).await?;
            store.set_disabled(user.id, false).await?;
            println!("{} enabled", user.username);
        }
    }
    Ok(())
}
