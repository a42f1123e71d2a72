//! The `oxibeat` command line. Only argument handling lives here; everything else is in the lib.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use oxibeat::config::{source, Config};

const DEFAULT_CONFIG: &str = "oxibeat.toml";

#[derive(Parser)]
#[command(
    name = "oxibeat",
    version,
    about = "A Beats-compatible log and metrics shipper",
    after_help = "Without a command, oxibeat runs the agent (as `filebeat -e -c filebeat.yml` does)."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct Global {
    /// Configuration file: oxibeat TOML, or a filebeat.yml (by extension or content),
    /// relative to --path.config when that is given. Without -c, oxibeat.toml (or
    /// filebeat.yml) there; when neither exists, the built-in quickstart (sample logs to
    /// stdout), except under systemd.
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a setting, e.g. -E output.file.path=/tmp/out (repeatable).
    #[arg(short = 'E', global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Override path.data (registry and agent id).
    #[arg(long = "path.data", global = true, value_name = "DIR")]
    path_data: Option<PathBuf>,
    /// Filebeat's path.home: the default parent of path.config, path.data and path.logs.
    #[arg(long = "path.home", global = true, value_name = "DIR")]
    path_home: Option<PathBuf>,
    /// Where a relative -c file (and filebeat.config.inputs) is found.
    #[arg(long = "path.config", global = true, value_name = "DIR")]
    path_config: Option<PathBuf>,
    /// Override path.logs (the agent's own log files).
    #[arg(long = "path.logs", global = true, value_name = "DIR")]
    path_logs: Option<PathBuf>,
    /// Log to stderr instead of the log file.
    #[arg(short = 'e', global = true)]
    stderr: bool,
    /// Debug logging for these components (comma-separated, `*` for all), as Filebeat's -d.
    #[arg(short = 'd', global = true, value_name = "SELECTORS")]
    debug: Option<String>,
    /// Read every matched file to EOF, deliver, persist the registry and exit.
    #[arg(long, global = true)]
    once: bool,
    /// Run a filebeat.yml without the settings oxibeat does not implement (they are listed).
    #[arg(long = "ignore-unsupported", global = true)]
    ignore_unsupported: bool,
    /// Log level (logging.level).
    #[arg(long = "log-level", global = true, value_name = "LEVEL", value_parser = oxibeat::config::LOG_LEVELS)]
    log_level: Option<String>,
    /// Refuse a configuration or keystore that others can write (or read, for the
    /// keystore), or owned by another user than root or this one; --strict.perms=false
    /// turns the check off.
    #[arg(
        long = "strict.perms",
        global = true,
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    strict_perms: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default command).
    Run,
    /// Check the configuration or the output.
    Test {
        #[command(subcommand)]
        what: TestWhat,
    },
    /// Print the effective configuration (secrets masked) or an asset.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Load index templates, ILM, ingest pipelines, ML jobs and Kibana dashboards
    /// (everything when no flag is given).
    Setup {
        /// The ILM policy and the component and index templates.
        #[arg(long = "index-management")]
        index_management: bool,
        /// The ingest pipelines.
        #[arg(long)]
        pipelines: bool,
        /// The ML anomaly detection jobs and their datafeeds (opened and started).
        #[arg(long)]
        ml: bool,
        /// The Kibana saved objects: data views, dashboards, saved searches.
        #[arg(long)]
        dashboards: bool,
    },
    /// Search the logs in Elasticsearch: hybrid BM25 + ELSER (reranked) when the cluster can,
    /// lexical otherwise (and says why); --answer asks an LLM, with checked citations.
    Search(SearchArgs),
    /// Show the registry: one line per file with its cursor.
    Registry,
    /// The dead-letter files of the Kafka or Elasticsearch output: count their events, or send
    /// them again.
    Dlq {
        #[command(subcommand)]
        what: DlqWhat,
    },
    /// The disk queue ([queue.disk]): its size and oldest event, or a check of every frame.
    Queue {
        #[command(subcommand)]
        what: QueueWhat,
    },
    /// The secrets keystore (<path.data>/oxibeat.keystore): values for ${KEY} in the
    /// configuration, kept out of it.
    Keystore {
        #[command(subcommand)]
        what: KeystoreWhat,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum KeystoreWhat {
    /// Create an empty keystore.
    Create {
        /// Replace an existing keystore (its values are lost).
        #[arg(long)]
        force: bool,
    },
    /// Add a value (asked for on the terminal, or read from stdin with --stdin).
    Add {
        key: String,
        /// Read the value from stdin (a trailing newline is dropped).
        #[arg(long)]
        stdin: bool,
        /// Replace the value of a key that exists.
        #[arg(long)]
        force: bool,
    },
    /// List the keys (never the values).
    List,
    /// Remove a key.
    Remove { key: String },
}

#[derive(Args)]
struct SearchArgs {
    /// What to look for, in words.
    query: String,
    /// Look back this long (30m, 24h, 7d; default 24h).
    #[arg(long, conflicts_with = "from")]
    since: Option<String>,
    /// Start of the range: RFC 3339, a date, or now-2h.
    #[arg(long, value_name = "TS")]
    from: Option<String>,
    /// End of the range (default now).
    #[arg(long, value_name = "TS")]
    until: Option<String>,
    /// Only lines of this host.name (repeatable).
    #[arg(long = "host", value_name = "H")]
    hosts: Vec<String>,
    /// Only this data_stream.dataset (repeatable; `app` means oxibeat.app).
    #[arg(long = "dataset", value_name = "D")]
    datasets: Vec<String>,
    /// Only lines of this log.level or a more severe one (debug, info, warn, error, critical).
    #[arg(long)]
    level: Option<String>,
    #[arg(long, value_enum, default_value_t = SearchMode::Hybrid)]
    mode: SearchMode,
    /// Rerank (fails when no reranker is available); default: rerank when one is.
    #[arg(long, overrides_with = "no_rerank")]
    rerank: bool,
    #[arg(long = "no-rerank")]
    no_rerank: bool,
    /// Number of hits.
    #[arg(long, default_value_t = 10)]
    size: usize,
    /// One JSON object per hit and line.
    #[arg(long)]
    json: bool,
    /// Answer the question from the top hits with an LLM, citing them.
    #[arg(long)]
    answer: bool,
    /// The inference endpoint for --answer (chat_completion or completion).
    #[arg(long, value_name = "INFERENCE_ID", requires = "answer")]
    llm: Option<String>,
    /// Print the request bodies sent (stderr).
    #[arg(long)]
    explain: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SearchMode {
    Hybrid,
    Semantic,
    Lexical,
}

#[derive(Subcommand)]
enum QueueWhat {
    /// Events not yet delivered, size, segments and the oldest event.
    Show,
    /// Read and verify every frame of every segment; exits 1 if damage is found.
    Check,
}

#[derive(Subcommand)]
enum TestWhat {
    /// Load and validate the configuration.
    Config,
    /// Check that the output can be reached.
    Output,
}

#[derive(Subcommand)]
enum DlqWhat {
    /// Count the dead-lettered events by topic or index and error.
    Show,
    /// Send the dead-lettered events again (with the output's settings); those that fail
    /// again stay in the dead-letter file with their new error.
    Replay {
        /// Kafka: send to this topic instead of the one each event was meant for.
        #[arg(long)]
        topic: Option<String>,
        /// Elasticsearch: send to this index instead of the one each event was meant for.
        #[arg(long)]
        index: Option<String>,
        /// Kafka: how long to wait for each delivery before keeping the event (seconds).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum ExportWhat {
    /// The effective configuration, with defaults, overrides and ${VAR} applied; secrets
    /// masked. With --format, the configuration as a file to use instead: `toml` (oxibeat's,
    /// e.g. from a filebeat.yml) or `yaml` (Filebeat's layout), ${VAR} references kept.
    Config {
        #[arg(long, value_enum)]
        format: Option<ConfigFormat>,
    },
    /// Component and index templates (Dev Tools requests).
    Template,
    /// The ILM policy.
    IlmPolicy,
    /// Ingest pipelines.
    Pipelines,
    /// ML anomaly detection jobs and datafeeds.
    Ml,
    /// Kibana saved objects (NDJSON).
    Dashboards,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConfigFormat {
    Toml,
    Yaml,
}

/// Used when no configuration file is given and `oxibeat.toml` does not exist: tails the
/// sample logs of the repository (and the generator's demo directory) to the console.
const QUICKSTART: &str = include_str!("../examples/quickstart.toml");

/// Where the configuration comes from.
enum ConfigSource {
    File(PathBuf),
    Quickstart,
}

impl ConfigSource {
    fn name(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Quickstart => "built-in quickstart".into(),
        }
    }
}

/// Started by systemd (a unit sets these): a missing configuration is then an error, never
/// the quickstart.
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The configuration file: -c (relative to --path.config, else --path.home, as Filebeat
/// resolves it), else oxibeat.toml or filebeat.yml in that directory (or here); the
/// quickstart when there is none.
fn config_source(g: &Global) -> anyhow::Result<ConfigSource> {
    let dir = g
        .path_config
        .clone()
        .or_else(|| g.path_home.clone())
        .unwrap_or_default();
    if let Some(c) = &g.config {
        let p = if c.is_relative() {
            dir.join(c)
        } else {
            c.clone()
        };
        if !p.exists() {
            anyhow::bail!(
                "configuration file {} does not exist; pass -c with the path of your configuration \
                 (oxibeat TOML or a filebeat.yml; examples/quickstart.toml is a small one to start from)",
                p.display()
            );
        }
        return Ok(ConfigSource::File(p));
    }
    if let Some(p) = [DEFAULT_CONFIG, "filebeat.yml"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
    {
        return Ok(ConfigSource::File(p));
    }
    let here = if dir.as_os_str().is_empty() {
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| ".".into())
    } else {
        dir.display().to_string()
    };
    if under_systemd() {
        anyhow::bail!(
            "no configuration: -c was not given and there is no {DEFAULT_CONFIG} or filebeat.yml in {here}; \
             add -c /etc/oxibeat/oxibeat.toml (or your file) to the unit's ExecStart \
             (the built-in quickstart is never used under systemd)"
        );
    }
    eprintln!(
        "oxibeat: no -c given and no {DEFAULT_CONFIG} or filebeat.yml in {here}: using the built-in \
         quickstart configuration (sample logs to stdout); pass -c FILE to use your own"
    );
    Ok(ConfigSource::Quickstart)
}

fn load(g: &Global) -> anyhow::Result<(Config, toml::Value, ConfigSource)> {
    let overrides = overrides(g);
    let src = config_source(g)?;
    let resolver = resolver(g, &src, &overrides)?;
    let lookup = |n: &str| resolver.lookup(n);
    let loaded = match &src {
        ConfigSource::Quickstart => {
            Config::from_str_with(QUICKSTART, "built-in quickstart", &overrides, &lookup)
        }
        ConfigSource::File(p) => {
            let opts = oxibeat::config::LoadOptions {
                ignore_unsupported: g.ignore_unsupported,
                strict_perms: g.strict_perms,
            };
            Config::load_with(p, &overrides, &lookup, &opts)
        }
    };
    // Secret values never reach a log line or an error message.
    oxibeat::secrets::publish(&resolver);
    let (cfg, tree) = loaded
        .map_err(|e| anyhow::anyhow!(resolver.redact(&e.to_string())))
        .with_context(|| format!("configuration {}", src.name()))?;
    Ok((cfg, tree, src))
}

/// `-E` overrides, then the `--path.*` flags, `--log-level` and `-d` as overrides (their
/// values quoted, which TOML and YAML both read), so a reload keeps them too.
fn overrides(g: &Global) -> Vec<String> {
    let mut overrides = g.overrides.clone();
    for (key, value) in [
        ("path.home", &g.path_home),
        ("path.config", &g.path_config),
        ("path.data", &g.path_data),
        ("path.logs", &g.path_logs),
    ] {
        if let Some(p) = value {
            overrides.push(format!(
                "{key}={}",
                toml::Value::String(p.display().to_string())
            ));
        }
    }
    // Filebeat's -d: debug level for the selected components (`*`: all).
    if let Some(d) = &g.debug {
        let selectors: Vec<toml::Value> = d
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| toml::Value::String(s.to_string()))
            .collect();
        overrides.push(format!(
            "logging.selectors={}",
            toml::Value::Array(selectors)
        ));
        overrides.push("logging.level=\"debug\"".into());
    }
    if let Some(level) = &g.log_level {
        overrides.push(format!(
            "logging.level={}",
            toml::Value::String(level.clone())
        ));
    }
    overrides
}

/// What loading said about the file (translated Filebeat options, ignored ones), logged.
fn log_notes(cfg: &Config) {
    for n in &cfg.notes {
        if n.starts_with("ignored") {
            tracing::warn!(setting = %n, "configuration");
        } else {
            tracing::info!(setting = %n, "configuration");
        }
    }
}

/// `path.data` before `${NAME}` can be resolved (the keystore lives there): from
/// `--path.data`/`-E`, else the file's `path.data` (environment variables expanded), else the
/// default.
fn data_dir_hint(src: &ConfigSource, overrides: &[String]) -> PathBuf {
    match src {
        // Bounded (a FIFO or /dev/zero named as the file): the real load reports the error.
        ConfigSource::File(p) => {
            let text = oxibeat::config::read_config_file(p).unwrap_or_default();
            let syntax = oxibeat::config::Syntax::detect(p, &text);
            oxibeat::config::path_data_hint(&text, syntax, overrides)
        }
        ConfigSource::Quickstart => {
            oxibeat::config::path_data_hint(QUICKSTART, oxibeat::config::Syntax::Toml, overrides)
        }
    }
}

/// Where `${NAME}` is looked up: keystore, then systemd credentials, then the environment.
fn resolver(
    g: &Global,
    src: &ConfigSource,
    overrides: &[String],
) -> anyhow::Result<oxibeat::secrets::Resolver> {
    let data = data_dir_hint(src, overrides);
    oxibeat::secrets::Resolver::new(&data, g.strict_perms)
        .with_context(|| format!("configuration {}", src.name()))
}

/// `oxibeat keystore ...`: works on `<path.data>/oxibeat.keystore` without loading the rest
/// of the configuration (its `${KEY}` may name keys not added yet).
fn keystore_command(g: &Global, what: KeystoreWhat) -> anyhow::Result<ExitCode> {
    use oxibeat::secrets::keystore::{self, Keystore};
    let src = config_source(g)?;
    let path = keystore::path_in(&data_dir_hint(&src, &overrides(g)));
    match what {
        KeystoreWhat::Create { force } => {
            Keystore::create(&path, force)?;
            println!("Created oxibeat keystore {}", path.display());
        }
        KeystoreWhat::Add { key, stdin, force } => {
            let mut ks = Keystore::open_existing(&path, g.strict_perms)?;
            let value = read_secret_value(&key, stdin)?;
            ks.add(&key, oxibeat::config::Secret::new(value), force)?;
            println!("Successfully updated the keystore");
        }
        KeystoreWhat::List => {
            let ks = Keystore::open_existing(&path, g.strict_perms)?;
            for k in ks.keys() {
                println!("{k}");
            }
        }
        KeystoreWhat::Remove { key } => {
            let mut ks = Keystore::open_existing(&path, g.strict_perms)?;
            ks.remove(&key)?;
            println!("Successfully removed {key} from the keystore");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The value for `keystore add`: stdin with `--stdin`, else asked on the terminal without
/// echo (as Beats' `keystore add` does).
fn read_secret_value(key: &str, stdin: bool) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Read, Write};
    let mut value = String::new();
    if stdin {
        std::io::stdin()
            .read_to_string(&mut value)
            .context("reading the value from stdin")?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
    } else {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "oxibeat keystore add {key}: stdin is not a terminal; pass --stdin to read the value from it"
            );
        }
        eprint!("Enter value for {key}: ");
        let _ = std::io::stderr().flush();
        let _echo = EchoOff::new();
        std::io::stdin()
            .lock()
            .read_line(&mut value)
            .context("reading the value")?;
        eprintln!();
        while value.ends_with('\n') || value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        anyhow::bail!("oxibeat keystore add {key}: the value is empty; nothing was stored");
    }
    Ok(value)
}

/// Terminal echo off while a secret is typed; restored on drop.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: tcgetattr/tcsetattr read and write the struct passed in, on fd 0.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return EchoOff(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            EchoOff(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the attributes read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// An error and its causes, each said once: a message that already quotes its cause (as
/// `cannot use directory X: <io error>; ...` does) is not followed by that cause again.
fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What `run` needs beyond a configuration that loads: one output, at least one input.
fn runnable(cfg: &Config, src: &ConfigSource) -> anyhow::Result<()> {
    cfg.output
        .selected()
        .and_then(|_| cfg.check_inputs())
        .with_context(|| format!("configuration {}", src.name()))?;
    Ok(())
}

fn init_logging(g: &Global, cfg: &Config) {
    let l = &cfg.logging;
    let default_dir = cfg
        .path
        .logs
        .clone()
        .unwrap_or_else(|| cfg.path.data.join("logs"));
    let dest = oxibeat::logging::destination(
        g.stderr || l.to_stderr,
        l.to_files,
        &l.files,
        &default_dir,
        oxibeat::logging::stderr_is_journal(),
    );
    oxibeat::logging::init(dest, l.json, &l.level, &l.selectors);
}

/// Many files are read at once: use the hard limit on open descriptors, as daemons do.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `oxibeat queue show|check`: read only, so it can run beside the agent.
fn queue_command(cfg: &Config, what: QueueWhat) -> anyhow::Result<ExitCode> {
    use oxibeat::pipeline::disk;
    let dir = match &cfg.queue.disk {
        Some(d) => d.dir(&cfg.path.data),
        None => {
            let dir = disk::default_dir(&cfg.path.data);
            if !dir.exists() {
                anyhow::bail!(
                    "oxibeat queue: no [queue.disk] in the configuration and no disk queue at {}",
                    dir.display()
                );
            }
            eprintln!(
                "no [queue.disk] in the configuration: looking at {}",
                dir.display()
            );
            dir
        }
    };
    if !dir.exists() {
        anyhow::bail!(
            "oxibeat queue: {} does not exist (the agent creates it at its first start)",
            dir.display()
        );
    }
    match what {
        QueueWhat::Show => {
            print!("{}", disk::inspect::show(&dir)?);
            Ok(ExitCode::SUCCESS)
        }
        QueueWhat::Check => {
            let report = disk::inspect::check(&dir)?;
            print!("{}", report.text);
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn main() -> ExitCode {
    oxibeat::malloc::tune();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", render_error(&e));
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = cli.global;
    match cli.command.unwrap_or(Command::Run) {
        Command::Version => {
            println!(
                "oxibeat version {} (Beats-compatible event format: Filebeat 9.x, ECS 8.0.0)",
                env!("CARGO_PKG_VERSION")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            what: TestWhat::Config,
        } => {
            let (cfg, _, src) = load(&g)?;
            runnable(&cfg, &src)?;
            for n in &cfg.notes {
                println!("note: {n}");
            }
            println!("Config OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            what: TestWhat::Output,
        } => {
            let (cfg, _, src) = load(&g)?;
            let kind = cfg
                .output
                .selected()
                .with_context(|| format!("configuration {}", src.name()))?;
            let msg = oxibeat::output::test(&kind)?;
            println!("{msg}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            what: ExportWhat::Config {
                format: Some(format),
            },
        } => {
            let (cfg, _, _) = load(&g)?;
            let tree = cfg
                .source_tree
                .clone()
                .context("the configuration's tree was not kept")?;
            let tree = source::masked_keep_refs(&tree);
            if cfg.source_tree.as_ref() != Some(&tree) {
                eprintln!("note: secret values are written as \"xxxxx\": put them back, or use ${{VAR}} references");
            }
            for n in cfg.notes.iter().filter(|n| n.starts_with("ignored")) {
                eprintln!("note: {n}");
            }
            match format {
                ConfigFormat::Toml => print!("{}", toml::to_string_pretty(&tree)?),
                ConfigFormat::Yaml => {
                    let fb = oxibeat::config::filebeat::to_filebeat_layout(&tree);
                    print!(
                        "{}",
                        oxibeat::config::yaml::emit(&oxibeat::config::yaml::from_toml(&fb))
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            what: ExportWhat::Config { format: None },
        } => {
            let (cfg, _, _) = load(&g)?;
            // Defaults included: serialise the typed config, then mask secrets.
            let mut tree = toml::Value::try_from(&cfg).context("serialising the configuration")?;
            if let toml::Value::Table(t) = &mut tree {
                let inputs: Vec<toml::Value> = cfg
                    .inputs
                    .iter()
                    .filter_map(|i| toml::Value::try_from(i).ok())
                    .collect();
                t.insert("inputs".into(), toml::Value::Array(inputs));
            }
            let text = toml::to_string_pretty(&source::masked(&tree))?;
            // Values from the keystore or systemd credentials, wherever they went.
            let secrets = oxibeat::secrets::shared()
                .read()
                .map(|s| s.clone())
                .unwrap_or_default();
            print!("{}", oxibeat::secrets::redact_with(&text, &secrets));
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { what } => {
            let name = match what {
                ExportWhat::Template => "template",
                ExportWhat::IlmPolicy => "ilm-policy",
                ExportWhat::Pipelines => "pipelines",
                ExportWhat::Ml => "ml",
                ExportWhat::Dashboards => "dashboards",
                ExportWhat::Config { .. } => unreachable!("handled above"),
            };
            print!("{}", oxibeat::setup::export(name)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Setup {
            index_management,
            pipelines,
            ml,
            dashboards,
        } => {
            let (cfg, _, _) = load(&g)?;
            init_logging(&g, &cfg);
            let all = !(index_management || pipelines || ml || dashboards);
            let sel = oxibeat::setup::Selection {
                index_management: all || index_management,
                pipelines: all || pipelines,
                ml: all || ml,
                dashboards: all || dashboards,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let report = rt.block_on(oxibeat::setup::run(&cfg, &sel, &mut std::io::stdout()))?;
            Ok(if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Search(a) => {
            let (cfg, _, src) = load(&g)?;
            if g.stderr {
                init_logging(&g, &cfg);
            }
            use oxibeat::search::{self, Mode, RerankChoice};
            let opts = search::Options {
                query: a.query,
                range: search::time::RangeArgs {
                    since: a.since,
                    from: a.from,
                    until: a.until,
                },
                hosts: a.hosts,
                datasets: a.datasets,
                level: a.level,
                mode: match a.mode {
                    SearchMode::Hybrid => Mode::Hybrid,
                    SearchMode::Semantic => Mode::Semantic,
                    SearchMode::Lexical => Mode::Lexical,
                },
                rerank: match (a.rerank, a.no_rerank) {
                    (true, _) => RerankChoice::On,
                    (_, true) => RerankChoice::Off,
                    _ => RerankChoice::Auto,
                },
                size: a.size,
                json: a.json,
                answer: a.answer,
                llm: a.llm,
                explain: a.explain,
                terminal: search::Terminal::detect(),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            match rt.block_on(search::run(&cfg, &opts, &mut out, &mut err)) {
                Ok(search::Status::Found) => Ok(ExitCode::SUCCESS),
                Ok(search::Status::NothingRelevant) => Ok(ExitCode::from(1)),
                Err(e @ search::SearchError::Config(_)) => {
                    eprintln!("Error: configuration {}: {e}", src.name());
                    Ok(ExitCode::from(2))
                }
                Err(e) => {
                    eprintln!("Error: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Registry => {
            let (cfg, _, _) = load(&g)?;
            // Read-only: works beside a running agent and creates nothing.
            for (k, e) in oxibeat::registry::Registry::read_only(&cfg.path.data)? {
                let src = e.meta.as_ref().map(|m| m.source.as_str()).unwrap_or("");
                let off = e.offset().map_or("-".to_string(), |o| o.to_string());
                let esc = oxibeat::registry::escape_for_terminal;
                println!("{}\toffset={off}\tsource={}", esc(&k), esc(src));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq { what } => {
            let (cfg, _, _) = load(&g)?;
            let mut kind = cfg.output.selected()?;
            oxibeat::output::resolve_paths(&mut kind, &cfg.path.data);
            use oxibeat::config::OutputKind;
            use oxibeat::output::{elasticsearch as es, kafka};
            let (dir, report) = match (kind, what) {
                (OutputKind::Kafka(k), DlqWhat::Show) => {
                    let dir = kafka::producer::dead_letter_dir(&k, &cfg.path.data);
                    let r = kafka::replay::show(&dir)?;
                    print!("{}", r.render(&dir, false));
                    return Ok(ExitCode::SUCCESS);
                }
                (OutputKind::Elasticsearch(e), DlqWhat::Show) => {
                    let dir = e.dead_letter_dir();
                    let r = es::replay::show(&dir)?;
                    print!("{}", r.render(&dir, false));
                    return Ok(ExitCode::SUCCESS);
                }
                (OutputKind::Kafka(k), DlqWhat::Replay { topic, timeout, index }) => {
                    if index.is_some() {
                        anyhow::bail!("oxibeat dlq replay: --index is for output.elasticsearch; use --topic with output.kafka");
                    }
                    let dir = kafka::producer::dead_letter_dir(&k, &cfg.path.data);
                    let r = kafka::replay::replay(
                        &k,
                        &dir,
                        topic.as_deref(),
                        std::time::Duration::from_secs(timeout.max(1)),
                    )?;
                    (dir, r)
                }
                (OutputKind::Elasticsearch(e), DlqWhat::Replay { topic, index, .. }) => {
                    if topic.is_some() {
                        anyhow::bail!("oxibeat dlq replay: --topic is for output.kafka; use --index with output.elasticsearch");
                    }
                    let dir = e.dead_letter_dir();
                    let r = es::replay::replay(&e, &dir, index.as_deref())?;
                    (dir, r)
                }
                _ => anyhow::bail!("oxibeat dlq: the configured output has no dead-letter file; dead-letter files belong to output.kafka and output.elasticsearch"),
            };
            print!("{}", report.render(&dir, true));
            if report.failed_again > 0 {
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keystore { what } => keystore_command(&g, what),
        Command::Queue { what } => {
            let (cfg, _, _) = load(&g)?;
            queue_command(&cfg, what)
        }
        Command::Run => {
            let once = g.once;
            let (cfg, _, src) = load(&g)?;
            runnable(&cfg, &src)?;
            init_logging(&g, &cfg);
            log_notes(&cfg);
            for n in cfg.notes.iter().filter(|n| n.starts_with("ignored")) {
                eprintln!("warning: {n}");
            }
            raise_fd_limit();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let service = oxibeat::agent::Service {
                reload: (!once).then(|| {
                    let g = g.clone();
                    Box::new(move || {
                        let (cfg, _, src) = load(&g).map_err(|e| render_error(&e))?;
                        cfg.output
                            .selected()
                            .map_err(|e| format!("configuration {}: {e}", src.name()))?;
                        Ok(cfg)
                    }) as Box<dyn Fn() -> Result<Config, String> + Send + Sync>
                }),
                config_path: match &src {
                    ConfigSource::File(p) => Some(p.clone()),
                    ConfigSource::Quickstart => None,
                },
            };
            let result = rt.block_on(oxibeat::agent::run_service(cfg, once, service));
            // An output blocked in a write (a full stdout pipe) must not keep the process alive.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            result?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
