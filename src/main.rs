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
    about = "A Beats-compatible log and metrics shipper"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// Configuration file (TOML).
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        default_value = DEFAULT_CONFIG
    )]
    config: PathBuf,
    /// Override a setting, e.g. -E output.file.path=/tmp/out (repeatable).
    #[arg(short = 'E', global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Override path.data (registry and agent id).
    #[arg(long = "path.data", global = true, value_name = "DIR")]
    path_data: Option<PathBuf>,
    /// Log to stderr instead of the log file.
    #[arg(short = 'e', global = true)]
    stderr: bool,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log-level", global = true)]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// Read every matched file to EOF, deliver, persist the registry and exit.
        #[arg(long)]
        once: bool,
    },
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
        #[arg(long = "index-management")]
        index_management: bool,
        #[arg(long)]
        pipelines: bool,
        #[arg(long)]
        ml: bool,
        #[arg(long)]
        dashboards: bool,
    },
    /// Show the registry: one line per file with its cursor.
    Registry,
    /// The dead-letter files of the Kafka or Elasticsearch output: count their events, or send
    /// them again.
    Dlq {
        #[command(subcommand)]
        what: DlqWhat,
    },
    /// Print the version.
    Version,
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
    /// The effective configuration, with defaults, overrides and ${VAR} applied; secrets masked.
    Config,
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

/// Used when no configuration file is given and `oxibeat.toml` does not exist: tails the
/// sample logs of the repository (and the generator's demo directory) to the console.
const QUICKSTART: &str = include_str!("../examples/quickstart.toml");

fn load(g: &Global) -> anyhow::Result<(Config, toml::Value)> {
    let mut overrides = g.overrides.clone();
    if let Some(p) = &g.path_data {
        overrides.push(format!(
            "path.data={}",
            toml::Value::String(p.display().to_string())
        ));
    }
    if g.config == std::path::Path::new(DEFAULT_CONFIG) && !g.config.exists() {
        eprintln!("no {DEFAULT_CONFIG} here: using the built-in quickstart configuration (sample logs to stdout)");
        return Config::from_str_with(QUICKSTART, "built-in quickstart", &overrides, &|n| {
            std::env::var(n).ok()
        })
        .context("built-in quickstart configuration");
    }
    Config::load(&g.config, &overrides)
        .with_context(|| format!("configuration {}", g.config.display()))
}

fn init_logging(g: &Global, cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let level = g
        .log_level
        .clone()
        .unwrap_or_else(|| cfg.logging.level.clone());
    let filter = EnvFilter::try_new(format!("oxibeat={level},warn"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if g.stderr || cfg.logging.to_stderr {
        if cfg.logging.json {
            builder.json().with_writer(std::io::stderr).init();
        } else {
            builder.with_writer(std::io::stderr).init();
        }
        return;
    }
    let dir = cfg
        .path
        .logs
        .clone()
        .unwrap_or_else(|| cfg.path.data.join("logs"));
    let file = std::fs::create_dir_all(&dir).and_then(|_| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("oxibeat.log"))
    });
    match file {
        Ok(f) => {
            let f = std::sync::Mutex::new(f);
            if cfg.logging.json {
                builder.json().with_ansi(false).with_writer(f).init();
            } else {
                builder.with_ansi(false).with_writer(f).init();
            }
        }
        Err(e) => {
            eprintln!(
                "cannot open log file in {}: {e}; logging to stderr",
                dir.display()
            );
            builder.with_writer(std::io::stderr).init();
        }
    }
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = cli.global;
    match cli.command {
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
            let (cfg, _) = load(&g)?;
            cfg.output
                .selected()
                .with_context(|| format!("configuration {}", g.config.display()))?;
            println!("Config OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            what: TestWhat::Output,
        } => {
            let (cfg, _) = load(&g)?;
            let kind = cfg.output.selected()?;
            let msg = oxibeat::output::test(&kind)?;
            println!("{msg}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            what: ExportWhat::Config,
        } => {
            let (cfg, _) = load(&g)?;
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
            print!("{}", toml::to_string_pretty(&source::masked(&tree))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { what } => {
            let name = match what {
                ExportWhat::Template => "template",
                ExportWhat::IlmPolicy => "ilm-policy",
                ExportWhat::Pipelines => "pipelines",
                ExportWhat::Ml => "ml",
                ExportWhat::Dashboards => "dashboards",
                ExportWhat::Config => unreachable!("handled above"),
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
            let (cfg, _) = load(&g)?;
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
        Command::Registry => {
            let (cfg, _) = load(&g)?;
            let reg = oxibeat::registry::Registry::open(
                &cfg.path.data,
                cfg.registry.checkpoint_size.0,
                oxibeat::monitoring::Metrics::new(),
            )?;
            for (k, e) in reg.all() {
                let src = e.meta.as_ref().map(|m| m.source.as_str()).unwrap_or("");
                let off = e.offset().map_or("-".to_string(), |o| o.to_string());
                println!("{k}\toffset={off}\tsource={src}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq { what } => {
            let (cfg, _) = load(&g)?;
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
        Command::Run { once } => {
            let (cfg, _) = load(&g)?;
            init_logging(&g, &cfg);
            raise_fd_limit();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let result = rt.block_on(oxibeat::agent::run(cfg, once));
            // An output blocked in a write (a full stdout pipe) must not keep the process alive.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            result?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
