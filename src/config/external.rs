//! `[config.inputs]`: Filebeat's `filebeat.config.inputs`, inputs kept in a directory of
//! files (one `[[inputs]]` list per file) beside the main configuration, re-read every
//! `reload.period` when `reload.enabled` (the agent's reload then starts, stops and
//! restarts inputs as the files change).
//!
//! ```toml
//! [config.inputs]
//! path = "inputs.d/*.toml"     # relative to the main configuration file's directory
//! reload.enabled = true
//! reload.period = "10s"
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::units::Dur;
use super::{ConfigError, InputConfig};

/// `[config]`; only `inputs` for now (Filebeat also has `modules`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputsDir>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputsDir {
    #[serde(default = "crate::config::yes")]
    pub enabled: bool,
    /// A glob; relative to the directory of the main configuration file.
    pub path: String,
    #[serde(default)]
    pub reload: Reload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reload {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "Reload::default_period")]
    pub period: Dur,
}

impl Reload {
    fn default_period() -> Dur {
        Dur(Duration::from_secs(10))
    }
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            enabled: false,
            period: Self::default_period(),
        }
    }
}

impl InputsDir {
    /// The glob, anchored at the main configuration's directory.
    pub fn pattern(&self, main: &Path) -> PathBuf {
        let p = Path::new(&self.path);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        main.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(p)
    }

    /// The files the glob matches, sorted (so inputs start in a stable order).
    pub fn files(&self, main: &Path) -> Result<Vec<PathBuf>, ConfigError> {
        matching_files(&self.pattern(main), "config.inputs.path")
    }
}

/// The regular files a glob of configuration files matches, sorted; `key` names the setting
/// in errors. The same byte globs as the filestream paths (non-UTF-8 names included).
pub fn matching_files(pattern: &Path, key: &str) -> Result<Vec<PathBuf>, ConfigError> {
    let text = pattern
        .to_str()
        .ok_or_else(|| ConfigError::new(key, format!("{pattern:?} is not valid UTF-8")))?;
    let glob = crate::input::filestream::scan::Glob::new(text)
        .map_err(|e| ConfigError::new(key, format!("{text:?} is not a valid glob: {e}")))?;
    let mut out: Vec<PathBuf> = crate::input::filestream::scan::scan(&[glob], &|| false)
        .paths
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// The enabled `[config.inputs]` of `cfg`, if any.
pub fn section(cfg: &super::Config) -> Option<&InputsDir> {
    cfg.config
        .as_ref()
        .and_then(|c| c.inputs.as_ref())
        .filter(|d| d.enabled)
}

/// What the files of the directory look like now: a change (file added, removed, rewritten)
/// means the inputs must be read again.
pub fn fingerprint(dir: &InputsDir, main: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    dir.files(main)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let len = m.as_ref().map_or(0, |m| m.len());
            let mtime = m.and_then(|m| m.modified().ok());
            (p, len, mtime)
        })
        .collect()
}

/// Read every input file of `[config.inputs]`: each holds `[[inputs]]` tables. Errors name
/// the file and the key path. Ids must be unique across the main file and the directory.
pub fn load(
    cfg: &super::Config,
    main: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    opts: &super::LoadOptions,
) -> Result<Vec<InputConfig>, ConfigError> {
    let Some(dir) = section(cfg) else {
        return Ok(Vec::new());
    };
    let mut ids: std::collections::HashMap<String, String> = cfg
        .inputs
        .iter()
        .enumerate()
        .map(|(i, inp)| (inp.id().to_string(), format!("inputs[{i}]")))
        .collect();
    let mut out = Vec::new();
    for file in dir.files(main)? {
        let name = file.display().to_string();
        let in_file = |e: ConfigError| {
            let key = if e.key.is_empty() {
                name.clone()
            } else {
                format!("{name}: {}", e.key)
            };
            ConfigError::new(key, e.message)
        };
        if opts.strict_perms {
            super::perms::check_config(&file)
                .map_err(|e| ConfigError::new("config.inputs", e.to_string()))?;
        }
        // Bounded like the main file: a FIFO or /dev/zero there is an error, not a hang.
        let text = super::read_config_file(&file).map_err(|e| {
            ConfigError::new("config.inputs", format!("input file {name}: {}", e.message))
        })?;
        let with_paths = |n: &str| path_setting(cfg, main, n).or_else(|| lookup(n));
        let (mut tree, lookup): (_, &super::LookupFn<'_>) =
            match super::Syntax::detect(&file, &text) {
                super::Syntax::Toml => (super::source::parse(&text, &name)?, lookup),
                // A Filebeat input file (`filebeat.config.inputs` of a filebeat.yml), where
                // `${path.logs}` and the other path settings resolve as in the main file.
                super::Syntax::Yaml => (yaml_inputs(&text, &name, &with_paths, opts)?, &with_paths),
            };
        super::source::expand_env(&mut tree, "", lookup).map_err(in_file)?;
        let mut table = match tree {
            toml::Value::Table(t) => t,
            _ => unreachable!("source::parse returns a table"),
        };
        let raw = match table.remove("inputs") {
            Some(toml::Value::Array(a)) => a,
            Some(_) => {
                return Err(in_file(ConfigError::new(
                    "inputs",
                    "must be a list of tables ([[inputs]])",
                )))
            }
            None => Vec::new(),
        };
        if let Some(k) = table.keys().next() {
            return Err(in_file(ConfigError::new(
                k.clone(),
                "unknown key; an input file of config.inputs holds only [[inputs]] tables",
            )));
        }
        for (i, input) in super::parse_inputs_in(&raw, "inputs")
            .map_err(in_file)?
            .into_iter()
            .enumerate()
        {
            let here = format!("{name}: inputs[{i}]");
            if let Some(prev) = ids.insert(input.id().to_string(), here.clone()) {
                return Err(ConfigError::new(
                    format!("{here}.id"),
                    format!(
                        "duplicate input id {:?} (also used by {prev}); ids must be unique",
                        input.id()
                    ),
                ));
            }
            out.push(input);
        }
    }
    Ok(out)
}

/// `${path.home}`, `${path.config}`, `${path.data}` and `${path.logs}` of the loaded main
/// configuration, with Filebeat's defaults (`config::filebeat_path`).
fn path_setting(cfg: &super::Config, main: &Path, name: &str) -> Option<String> {
    let p = &cfg.path;
    let set = |k: &str| {
        let v = match k {
            "path.home" => p.home.clone(),
            "path.config" => p.config.clone(),
            "path.data" => Some(p.data.clone()),
            "path.logs" => p.logs.clone(),
            _ => None,
        };
        v.map(|v| v.display().to_string())
    };
    let dir = main
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    super::filebeat_path(name, &set, dir)
}

/// A YAML input file translated as Filebeat's layout is (`filebeat::translate_input_file`):
/// its settings that oxibeat does not have are an error naming them, unless
/// `--ignore-unsupported`.
fn yaml_inputs(
    text: &str,
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    opts: &super::LoadOptions,
) -> Result<toml::Value, ConfigError> {
    let t = super::filebeat::translate_input_file(text, name, lookup)?;
    if !t.unsupported.is_empty() && !opts.ignore_unsupported {
        let list: Vec<String> = t.unsupported.iter().map(|u| u.to_string()).collect();
        return Err(ConfigError::new(
            "config.inputs",
            format!(
                "input file {name}: {} setting(s) that oxibeat does not support:\n  {}\nremove them, or run with --ignore-unsupported to run without them",
                list.len(),
                list.join("\n  ")
            ),
        ));
    }
    for n in &t.notes {
        tracing::info!(setting = %n, file = name, "configuration");
    }
    for u in &t.unsupported {
        tracing::warn!(setting = %u, file = name, "configuration: ignored (--ignore-unsupported)");
    }
    Ok(toml::Value::Table(t.tree))
}
