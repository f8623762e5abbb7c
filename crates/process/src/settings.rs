//! The whole configuration: every section some dfscan process reads,
//! listed once, whose defaults give the keys a file or `DFSCAN_*` variable
//! may set and the defaults each flag's `--help` shows. Every process
//! loads through here, so each accepts the sections of the others (one
//! file serves them all, as the Helm chart's ConfigMap does) and refuses a
//! key that none of them has. It lives in this crate, the lowest that sees
//! every section without linking libtorch, so that `dfscan-coordinator`
//! knows the worker's and the trainer's keys too.

use std::path::Path;
use std::sync::OnceLock;

use clap::Arg;
use dfscan_client::ClientSettings;
use dfscan_coordinator::CoordinatorSettings;
use dfscan_core::settings::train::TrainSettings;
use dfscan_core::settings::worker::WorkerSettings;
use dfscan_core::settings::{KnownKeys, ModelSettings, Section};
use dfscan_core::video::VideoSettings;
use dfscan_core::CoreError;
use dfscan_core::FaceSettings;
use dfscan_queue::QueueSettings;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::metrics::MetricsSettings;
use crate::LogSettings;

impl Section for LogSettings {
    const NAME: &'static str = "";
}

impl Section for MetricsSettings {
    const NAME: &'static str = "metrics";
}

/// The top-level `redis` key, the queue's Redis URL, which each process
/// that reaches the queue reads into its own configuration type.
#[derive(Default, Serialize)]
struct QueueUrl {
    redis: Option<String>,
}

impl Section for QueueUrl {
    const NAME: &'static str = "";
}

/// Every section's keys, defaults and list-valued keys; each process
/// deserializes the part it reads into its own type.
pub fn known() -> &'static KnownKeys {
    static KNOWN: OnceLock<KnownKeys> = OnceLock::new();
    KNOWN.get_or_init(|| {
        KnownKeys::default()
            .with::<ModelSettings>()
            .with::<FaceSettings>()
            .with::<VideoSettings>()
            .with::<LogSettings>()
            .with::<QueueUrl>()
            .with::<QueueSettings>()
            .with::<CoordinatorSettings>()
            .with::<WorkerSettings>()
            .with::<TrainSettings>()
            .with::<ClientSettings>()
            .with::<MetricsSettings>()
    })
}

/// Settings of type `T` from defaults ← `file` ← `DFSCAN_*` ← `overrides`
/// (see [`dfscan_core::settings::load`]), refusing keys no section has.
pub fn load<T: DeserializeOwned>(
    file: Option<&Path>,
    overrides: &[(&str, Option<String>)],
) -> Result<T, CoreError> {
    dfscan_core::settings::load(file, overrides, known())
}

/// The settings key each flag of a clap `Args` struct sets, by argument
/// id (the field's name).
pub type FlagKeys = &'static [(&'static str, &'static str)];

/// The flags of `args` that were given, as overrides for [`load`] (see
/// [`KnownKeys::overrides`]); the fields are found by the names clap gives
/// their arguments, so `keys` serves [`show_defaults`] as well.
pub fn flag_overrides<T: Serialize>(
    args: &T,
    keys: FlagKeys,
) -> Vec<(&'static str, Option<String>)> {
    known().overrides(args, keys)
}

/// Appends `[default: …]` to the help of each flag in `keys`, rendered from
/// its key's default in the settings types' `Default`, the one home of
/// every default: for `#[command(mut_args(settings::show_defaults(…)))]`
/// on the struct. The flags have no clap default of their own, which would
/// override the file's and the environment's values.
pub fn show_defaults(keys: FlagKeys) -> impl FnMut(Arg) -> Arg {
    move |arg| {
        let Some((id, key)) = keys.iter().find(|(id, _)| arg.get_id().as_str() == *id) else {
            return arg;
        };
        let default = known()
            .shown_default(key)
            .unwrap_or_else(|| panic!("flag {id}: no settings key {key}"));
        let help = match arg.get_help() {
            Some(help) => format!("{help} [default: {default}]"),
            None => format!("[default: {default}]"),
        };
        let long_help = arg
            .get_long_help()
            .map(|long| format!("{long}\n\n[default: {default}]"));
        match long_help {
            Some(long_help) => arg.help(help).long_help(long_help),
            None => arg.help(help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_key_is_a_key() {
        let keys: Vec<&str> = known().keys().collect();
        let lists: Vec<&str> = known().list_keys().collect();
        assert!(lists.contains(&"coordinator.callback_hosts"), "{lists:?}");
        for key in lists {
            assert!(keys.contains(&key), "{key} is no key");
        }
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
