//! The command line: `llmgate serve`, `check`, `health`, `rotate-keys` and `import`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError, ConfigSource, Env};
use crate::log_lines::{BatchedLines, Flusher};
use crate::master_key::{KeyOrigin, MasterKey, byok_key_from_dir, data_dir};
use crate::server::{Server, shutdown_signal};
use crate::state::{provider_names, provider_problems};

#[derive(Debug, Parser)]
#[command(
    name = "llmgate",
    version,
    about = "An OpenAI-compatible LLM gateway with credits, BYOK and routing."
)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway until SIGINT/SIGTERM, then drain in-flight requests.
    Serve {
        /// The YAML config (else $LLMGATE_CONFIG, else ./llmgate.yaml, else the built-in default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen on this IP:PORT instead of `server.listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Validate a config: exit 0, or exit 1 listing every problem with its YAML path.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask a running server whether it is ready (`GET /health/ready`): exit 0 on 200, else 1.
    /// For container health checks.
    Health {
        /// The readiness URL.
        #[arg(long, env = "LLMGATE_HEALTH_URL", default_value = crate::probe::DEFAULT_URL)]
        url: String,
        /// Give up after this many milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Print the llmgate config equivalent to another gateway's (stdout), and what did not
    /// carry over (stderr).
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Re-seal every stored BYOK key under `byok.encryption_key` (the keys in
    /// `byok.previous_keys` open the old ones) and report the counts. Safe while serving.
    RotateKeys {
        /// The YAML config (else $LLMGATE_CONFIG, else ./llmgate.yaml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The credit ledger: `llmgate ledger verify`.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
}

/// `llmgate ledger ...`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check the ledger's invariants in the database: no balance below zero, every account's
    /// entries sum to its balance (with running balances), and balance = credits - charges -
    /// open holds. Exit 0, or 1 listing the accounts that differ. Reads only.
    Verify {
        /// The YAML config (else $LLMGATE_CONFIG, else ./llmgate.yaml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Configs `llmgate import` translates.
#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// A LiteLLM proxy `config.yaml`. Exit 1, printing no config, when a key that does not
    /// carry over would change what clients get.
    Litellm {
        /// The LiteLLM config file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held to the end of `main`: dropping it writes the last buffered log lines.
    let _log_flusher = init_logging(cli.log_json);
    let env = Env::process();
    match cli.command {
        Command::Check { config } => check(&config, &env),
        Command::Health { url, timeout_ms } => {
            crate::probe::run(&url, std::time::Duration::from_millis(timeout_ms))
        }
        Command::RotateKeys { config } => crate::rotate_keys::main(config.as_deref(), &env),
        Command::Ledger {
            command: LedgerCommand::Verify { config },
        } => crate::ledger_verify::main(config.as_deref(), &env),
        Command::Import {
            from: ImportFrom::Litellm { file },
        } => import_litellm(&file),
        Command::Serve { config, listen } => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(config, listen, env))
        }
    }
}

fn init_logging(json: bool) -> Flusher {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (lines, flusher) = BatchedLines::start(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(lines);
    let _ = if json {
        // One flat object per line: the event's fields at the top, the request span's fields
        // (request id, model, provider, ...) under `span`.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    flusher
}

/// `llmgate check --config FILE`.
pub fn check(path: &std::path::Path, env: &Env) -> ExitCode {
    let (problems, warnings) = match Config::load_file_noting(path, env) {
        Ok((config, mut warnings)) => {
            warnings.extend(
                crate::storage::byok_warning(&config).map(|w| crate::config::Problem::new("", w)),
            );
            (provider_problems(&config), warnings)
        }
        Err(error) => (error.problems, Vec::new()),
    };
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if problems.is_empty() {
        println!("config OK");
        ExitCode::SUCCESS
    } else {
        println!("{} has {} problem(s):", path.display(), problems.len());
        for problem in &problems {
            println!("  {problem}");
        }
        ExitCode::FAILURE
    }
}

/// `llmgate import litellm FILE`.
pub fn import_litellm(path: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let import = crate::config::litellm::import(&text);
    for notice in &import.notices {
        let level = if notice.fatal { "error" } else { "warning" };
        if notice.path.is_empty() {
            eprintln!("{level}: {}", notice.message);
        } else {
            eprintln!("{level}: {}: {}", notice.path, notice.message);
        }
    }
    if import.has_errors() {
        eprintln!(
            "{} cannot be served as llmgate without changing what clients get; no config printed",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    print!("{}", import.yaml);
    ExitCode::SUCCESS
}

async fn serve(config: Option<PathBuf>, listen: Option<String>, env: Env) -> ExitCode {
    let source = ConfigSource::locate(config.as_deref(), &env);
    let mut config = match Config::load(&source, &env) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    if let Some(listen) = listen {
        config.server.listen = listen;
        if let Err(error) = config.check() {
            return fail(&error);
        }
    }
    let master = match MasterKey::resolve(&config, &env) {
        Ok(master) => master,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The built-in default has BYOK on: its sealing key lives beside the master key. A
    // configured `byok.encryption_key` (any config file) wins.
    if matches!(source, ConfigSource::BuiltIn) && config.byok.encryption_key.is_none() {
        match byok_key_from_dir(&data_dir(&config)) {
            Ok((key, origin)) => {
                if let KeyOrigin::Generated(path) = origin {
                    // The path only: the key itself is never printed.
                    println!(
                        "Generated the BYOK sealing key (saved to {}); keep it with the database: \
                         stored provider keys cannot be opened without it.\n",
                        path.display()
                    );
                }
                config.byok.encryption_key = Some(key);
            }
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let KeyOrigin::Generated(path) = &master.origin {
        // Shown once: later starts read the file silently.
        println!(
            "Generated the master key (saved to {}):\n\n    {}\n\nUse it as `Authorization: Bearer <key>`; it is not shown again.\n",
            path.display(),
            master.key.expose()
        );
    }
    let listener = match TcpListener::bind(&config.server.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", config.server.listen);
            return ExitCode::FAILURE;
        }
    };
    let providers = provider_names(&config).join(", ");
    let models = config.models.len();
    let server = match Server::new(config, &master.key, listener).await {
        Ok(server) => server,
        Err(error) => return fail(&error),
    };
    match server.local_addr() {
        Ok(addr) => {
            tracing::info!(%addr, config = %source, %providers, models, "llmgate listening")
        }
        Err(error) => tracing::warn!(%error, "the listener has no local address"),
    }
    match server.run(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn fail(error: &ConfigError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}
