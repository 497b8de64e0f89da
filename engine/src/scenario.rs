//! Scenario files: TOML, typed with serde, validated before anything runs.
//!
//! ```toml
//! [run]
//! description = "what this scenario shows"
//! steps = 100            # steps after the setup pass
//! seed = 42
//! sample_every = 10      # metrics row every N steps (and at 0 and the last step)
//! memory_budget_mb = 64  # optional: refuse to start / stop cleanly above it
//!
//! [plugins.brownian]     # plugins by registry name, in order; their order is
//! particles = 1000       # the order of their systems inside each phase
//! ```
//!
//! Every error names the file, the key and the reason ([`ScenarioError`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A scenario error: which file, which key, why.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ScenarioError {
    /// The file as a whole (unreadable, not TOML).
    #[error("{file}: {reason}")]
    File {
        /// The scenario file.
        file: String,
        /// Why.
        reason: String,
    },
    /// One key.
    #[error("{file}: key `{key}`: {reason}")]
    Key {
        /// The scenario file.
        file: String,
        /// Dotted key path.
        key: String,
        /// Why.
        reason: String,
    },
}

/// An invalid value found by a plugin's validation: a key relative to the
/// plugin's table and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Key relative to the plugin's table (e.g. `cutoff`).
    pub key: String,
    /// Why it is invalid.
    pub reason: String,
}

impl Invalid {
    /// An invalid key.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The `[run]` table.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// One line on what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Steps after the setup pass.
    pub steps: u64,
    /// Seed of every random stream.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A metrics row every this many steps.
    #[serde(default = "one")]
    pub sample_every: u64,
    /// Steps (after setup) not counted as steady state; default ⌈steps/10⌉.
    pub warmup_steps: Option<u64>,
    /// Memory budget in MB (10⁶ bytes).
    pub memory_budget_mb: Option<f64>,
}

fn default_seed() -> u64 {
    1
}
fn one() -> u64 {
    1
}

impl RunConfig {
    /// Warm-up steps actually used.
    pub fn warmup(&self) -> u64 {
        self.warmup_steps
            .unwrap_or(self.steps.div_ceil(10))
            .min(self.steps)
    }

    /// Budget in bytes, if any.
    pub fn budget_bytes(&self) -> Option<u64> {
        self.memory_budget_mb.map(|mb| (mb * 1e6) as u64)
    }

    fn validate(&self) -> Result<(), Invalid> {
        if self.sample_every == 0 {
            return Err(Invalid::new("sample_every", "must be at least 1"));
        }
        if let Some(mb) = self.memory_budget_mb
            && !(mb.is_finite() && mb > 0.0)
        {
            return Err(Invalid::new(
                "memory_budget_mb",
                "must be a positive number",
            ));
        }
        Ok(())
    }
}

/// A parsed, overridden and validated-at-the-run-level scenario. Plugin tables
/// are validated when the registry instantiates them.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name: the bundled name (`md/lj-liquid`) or the file stem.
    pub name: String,
    /// The file it came from (for messages).
    pub file: PathBuf,
    /// Directory that relative data paths resolve against.
    pub dir: PathBuf,
    /// The `[run]` table.
    pub run: RunConfig,
    /// `[plugins.NAME]` tables in file order.
    pub plugins: Vec<(String, toml::Table)>,
    /// The whole document after overrides.
    pub document: toml::Table,
}

impl Scenario {
    /// Reads a scenario file, applies `key=value` overrides, validates `[run]`.
    pub fn load(path: &Path, name: &str, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::File {
            file: path.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Scenario::parse(&text, name, path, &dir, overrides)
    }

    /// Parses scenario text (`file` is used in messages only).
    pub fn parse(
        text: &str,
        name: &str,
        file: &Path,
        dir: &Path,
        overrides: &[String],
    ) -> Result<Scenario, ScenarioError> {
        let fname = file.display().to_string();
        let file_err = |reason: String| ScenarioError::File {
            file: fname.clone(),
            reason,
        };
        let key_err = |key: &str, reason: String| ScenarioError::Key {
            file: fname.clone(),
            key: key.to_string(),
            reason,
        };
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_err(format!("not valid TOML: {}", e.message())))?;
        for o in overrides {
            apply_override(&mut doc, o).map_err(|(k, r)| key_err(&k, r))?;
        }
        for key in doc.keys() {
            if key != "run" && key != "plugins" {
                return Err(key_err(
                    key,
                    "unknown key (expected `run` or `plugins`)".into(),
                ));
            }
        }
        let run_value = doc
            .get("run")
            .cloned()
            .ok_or_else(|| key_err("run", "missing table".into()))?;
        let run: RunConfig = typed(run_value).map_err(|(k, r)| key_err(&join("run", &k), r))?;
        run.validate()
            .map_err(|i| key_err(&join("run", &i.key), i.reason))?;
        let mut plugins = Vec::new();
        if let Some(p) = doc.get("plugins") {
            let t = p
                .as_table()
                .ok_or_else(|| key_err("plugins", "must be a table of plugin tables".into()))?;
            for (k, v) in t {
                let table = v.as_table().ok_or_else(|| {
                    key_err(
                        &format!("plugins.{k}"),
                        "must be a table of parameters".into(),
                    )
                })?;
                plugins.push((k.clone(), table.clone()));
            }
        }
        if plugins.is_empty() {
            return Err(key_err(
                "plugins",
                "no plugin: a scenario needs at least one".into(),
            ));
        }
        Ok(Scenario {
            name: name.to_string(),
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
            run,
            plugins,
            document: doc,
        })
    }

    /// An error about a key of this scenario.
    pub fn key_error(&self, key: &str, reason: impl Into<String>) -> ScenarioError {
        ScenarioError::Key {
            file: self.file.display().to_string(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// Resolves a data path from the scenario against the scenario's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if key.is_empty() || key == "." {
        prefix.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Deserializes a TOML value into `T`, returning (key path, reason) on error.
pub fn typed<T: serde::de::DeserializeOwned>(v: toml::Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let key = e.path().to_string();
        let reason = e.into_inner().to_string();
        (if key == "." { String::new() } else { key }, reason)
    })
}

/// Applies `a.b.c=value` to the document. The value is read as a TOML value
/// (`3`, `2.5`, `true`, `"text"`, `[1, 2]`), or as a bare string if it is not one.
pub fn apply_override(doc: &mut toml::Table, spec: &str) -> Result<(), (String, String)> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| (spec.to_string(), "--set needs key=value".to_string()))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err((key.to_string(), "empty key segment".to_string()));
    }
    let value = format!("v = {}", raw.trim())
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let mut t = doc;
    for (i, p) in parts[..parts.len() - 1].iter().enumerate() {
        let e = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = e.as_table_mut().ok_or_else(|| {
            (
                parts[..=i].join("."),
                "is not a table, cannot set a key inside it".to_string(),
            )
        })?;
    }
    t.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "[run]\nsteps = 10\n[plugins.a]\nx = 1\n[plugins.b]\n";

    fn parse(t: &str, o: &[&str]) -> Result<Scenario, ScenarioError> {
        let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        Scenario::parse(t, "t", Path::new("t.toml"), Path::new("."), &o)
    }

    #[test]
    fn plugins_keep_file_order_and_overrides_apply() {
        let s = parse(OK, &["run.seed=7", "plugins.a.x=2.5"]).unwrap();
        assert_eq!(s.run.seed, 7);
        assert_eq!(s.run.warmup(), 1);
        let names: Vec<_> = s.plugins.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(s.plugins[0].1["x"].as_float(), Some(2.5));
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let e = parse("[run]\nsteps = 10\nstesp = 3\n[plugins.a]\n", &[]).unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("t.toml: key `run.stesp`: unknown field `stesp`"),
            "{m}"
        );
        let e = parse(OK, &["run.steps=ten"]).unwrap_err().to_string();
        assert!(
            e.contains("key `run.steps`") && e.contains("invalid type"),
            "{e}"
        );
        let e = parse(OK, &["run.sample_every=0"]).unwrap_err().to_string();
        assert_eq!(e, "t.toml: key `run.sample_every`: must be at least 1");
        let e = parse("[run]\nsteps = 1\n", &[]).unwrap_err().to_string();
        assert!(e.contains("key `plugins`"), "{e}");
        let e = parse("[run\n", &[]).unwrap_err().to_string();
        assert!(e.starts_with("t.toml: not valid TOML"), "{e}");
        let e = parse(OK, &["bogus=1"]).unwrap_err().to_string();
        assert!(e.contains("key `bogus`: unknown key"), "{e}");
        let e = parse(OK, &["run.steps.x=1"]).unwrap_err().to_string();
        assert!(e.contains("key `run.steps`"), "{e}");
    }
}
