//! The whole configuration: every section some dfscan process reads, in
//! one type whose defaults give the keys a file or `DFSCAN_*` variable may
//! set. Every process loads through here, so each accepts the sections of
//! the others (one file serves them all, as the Helm chart's ConfigMap
//! does) and refuses a key that none of them has. It lives in this crate,
//! the lowest that sees every section without linking libtorch, so that
//! `dfscan-coordinator` knows the worker's and the trainer's keys too.

use std::path::Path;
use std::sync::OnceLock;

use dfscan_client::ClientSettings;
use dfscan_coordinator::CoordinatorSettings;
use dfscan_core::settings::train::TrainSettings;
use dfscan_core::settings::worker::WorkerSettings;
use dfscan_core::settings::{KnownKeys, ModelSettings};
use dfscan_core::CoreError;
use dfscan_queue::QueueSettings;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::metrics::MetricsSettings;
use crate::LogSettings;

/// Every section, for its keys only; each process deserializes the part it
/// reads into its own type.
#[derive(Default, Serialize)]
struct Everything {
    #[serde(flatten)]
    model: ModelSettings,
    #[serde(flatten)]
    log: LogSettings,
    redis: Option<String>,
    queue: QueueSettings,
    coordinator: CoordinatorSettings,
    worker: WorkerSettings,
    train: TrainSettings,
    client: ClientSettings,
    metrics: MetricsSettings,
}

fn known() -> &'static KnownKeys {
    static KNOWN: OnceLock<KnownKeys> = OnceLock::new();
    KNOWN.get_or_init(|| KnownKeys::of(&Everything::default()))
}

/// Settings of type `T` from defaults ← `file` ← `DFSCAN_*` ← `overrides`
/// (see [`dfscan_core::settings::load`]), refusing keys no section has.
pub fn load<T: DeserializeOwned>(
    file: Option<&Path>,
    overrides: &[(&str, Option<String>)],
) -> Result<T, CoreError> {
    dfscan_core::settings::load(file, overrides, known())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of the README's configuration table, a row's first cell
    /// naming one or more.
    fn readme_keys() -> Vec<String> {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("| key | flag | default | meaning |")
            .nth(1)
            .expect("the README has its configuration table");
        table
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .flat_map(|row| {
                let cell = row.split('|').nth(1).unwrap_or_default();
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_key_is_in_the_readme_table_once() {
        let documented = readme_keys();
        let mut problems = Vec::new();
        for key in known().keys() {
            match documented.iter().filter(|d| *d == key).count() {
                1 => {}
                0 => problems.push(format!("{key}: missing")),
                n => problems.push(format!("{key}: in {n} rows")),
            }
        }
        let keys: Vec<&str> = known().keys().collect();
        for key in &documented {
            if !keys.contains(&key.as_str()) {
                problems.push(format!("{key}: documented, but no such key"));
            }
        }
        assert!(
            problems.is_empty(),
            "README configuration table: {problems:?}"
        );
    }

    #[test]
    fn every_variable_that_is_not_a_setting_is_in_the_readme() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Configuration")
            .nth(1)
            .expect("the README has a configuration section");
        let names = dfscan_core::settings::NOT_SETTINGS
            .iter()
            .copied()
            .chain([dfscan_core::settings::TEST_VARIABLES]);
        let missing: Vec<&str> = names
            .filter(|name| !section.contains(&format!("`{name}")))
            .collect();
        assert!(
            missing.is_empty(),
            "not in the README's configuration section: {missing:?}"
        );
    }
}
