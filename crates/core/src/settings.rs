//! Layered configuration: built-in defaults ← config file ← `DFSCAN_*`
//! environment ← command-line flags. Every knob is documented once, with its
//! default, in the README's configuration table. A key that no settings type
//! has (a typo, a section that does not exist) is refused, naming the key,
//! where it came from and the nearest known key: ignored, it would leave the
//! default in force without a word. The keys known are those of every
//! process, so that one file serves all of them (the Helm chart's ConfigMap).

pub mod train;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, Source, Value, ValueKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CoreError, DTypeRequest, DeviceRequest};

/// What every settings variable's name starts with.
const PREFIX: &str = "DFSCAN_";

/// The `DFSCAN_` variables that are not settings: the config file's path and
/// the log filter (read by dfscan itself), and those of its scripts, tests
/// and docker-compose file. The README names them beside the settings; any
/// other `DFSCAN_` variable is a setting, or an error.
pub const NOT_SETTINGS: &[&str] = &[
    "DFSCAN_CONFIG",
    "DFSCAN_LOG",
    "DFSCAN_CACHE_DIR",
    "DFSCAN_PYTHON",
    "DFSCAN_BIN_DIR",
    "DFSCAN_ADVISORY_DB",
    "DFSCAN_ADVISORY_DBS",
    "DFSCAN_REDIS_SERVER",
    "DFSCAN_VERSION",
    "DFSCAN_PORT",
];

/// Prefix of the variables tests hand to their tools, none of them settings.
pub const TEST_VARIABLES: &str = "DFSCAN_TEST_";

/// A part of the configuration, held by one settings type, declared by
/// the crate that owns the type: the loader learns from the sections it is
/// given where their keys sit and which hold lists, so that a section's
/// keys change in its own crate alone.
pub trait Section: Serialize + Default {
    /// Where the section's keys sit: `worker` for `[worker]` and
    /// `DFSCAN_WORKER__*`; empty for top-level keys.
    const NAME: &'static str;
    /// Its keys whose values are lists (comma-separated in a `DFSCAN_`
    /// variable), within the section.
    const LIST_KEYS: &'static [&'static str] = &[];
}

/// The hub model scored when none is configured.
pub const DEFAULT_MODEL: &str = "prithivMLmods/Deep-Fake-Detector-Model";

/// How a model is found, placed and fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSettings {
    /// Hugging Face hub id or local checkpoint directory.
    pub model: String,
    /// Hub revision (branch, tag or commit) when `model` is a hub id.
    pub revision: String,
    pub device: DeviceRequest,
    /// `auto`: bf16 on CUDA; on CPU the faster of f32 and bf16 on this
    /// host's GEMMs (`dfscan-model`'s `dtype_choice`).
    pub dtype: DTypeRequest,
    /// Images per forward pass.
    pub batch_size: usize,
    /// libtorch intra-op threads on CPU; 0 = one per core.
    pub threads: usize,
    /// Image decoding threads; 0 = one per core.
    pub decode_threads: usize,
    /// Label whose probability is `fake_score`; default: the label named
    /// fake or deepfake (case-insensitive).
    pub fake_label: Option<String>,
    /// Replacement label names in class-index order, for checkpoints whose
    /// `id2label` is wrong.
    pub labels: Option<Vec<String>>,
    /// Largest encoded image accepted, in bytes.
    pub max_image_bytes: u64,
    /// Largest decoded image accepted, in pixels (width × height).
    pub max_image_pixels: u64,
    /// Most scans a JPEG may have (each progressive scan costs a pass over
    /// the whole image).
    pub max_jpeg_scans: u32,
    /// Longest a TIFF, WebP or BMP decode may run, in milliseconds (the
    /// other decoders' work is bounded by the file and pixel limits).
    pub max_decode_ms: u64,
}

impl Section for ModelSettings {
    const NAME: &'static str = "";
    const LIST_KEYS: &'static [&'static str] = &["labels"];
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.to_string(),
            revision: "main".to_string(),
            device: DeviceRequest::Auto,
            dtype: DTypeRequest::Auto,
            batch_size: 32,
            threads: 0,
            decode_threads: 0,
            fake_label: None,
            labels: None,
            max_image_bytes: 64 << 20,
            // Pillow's MAX_IMAGE_PIXELS: the bound past which it warns of a
            // decompression bomb.
            max_image_pixels: 89_478_485,
            // libjpeg-turbo's own TJFLAG_LIMITSCANS value.
            max_jpeg_scans: 500,
            max_decode_ms: 10_000,
        }
    }
}

/// A secret from the configuration (a key, a token): never printed,
/// `Debug` shows its length only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Every key some dfscan process reads (`section.key` inside sections),
/// with its default: the leaves of the sections' defaults, serialized. A
/// field added to a settings type is known with nothing else to update.
#[derive(Debug, Clone, Default)]
pub struct KnownKeys {
    defaults: BTreeMap<String, serde_json::Value>,
    sections: BTreeSet<String>,
    lists: BTreeSet<String>,
}

impl KnownKeys {
    /// These keys and those of section `S`.
    pub fn with<S: Section>(mut self) -> Self {
        let prefix = match S::NAME {
            "" => String::new(),
            name => {
                self.sections.insert(name.to_string());
                format!("{name}.")
            }
        };
        if let serde_json::Value::Object(map) =
            serde_json::to_value(S::default()).expect("settings serialize")
        {
            self.add(&prefix, &map);
        }
        self.lists
            .extend(S::LIST_KEYS.iter().map(|key| format!("{prefix}{key}")));
        self
    }

    fn add(&mut self, prefix: &str, map: &serde_json::Map<String, serde_json::Value>) {
        for (name, value) in map {
            let key = format!("{prefix}{name}");
            match value {
                serde_json::Value::Object(inner) => {
                    self.add(&format!("{key}."), inner);
                    self.sections.insert(key);
                }
                _ => {
                    self.defaults.insert(key, value.clone());
                }
            }
        }
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.defaults.keys().map(String::as_str)
    }

    /// The list-valued keys, sorted.
    pub fn list_keys(&self) -> impl Iterator<Item = &str> {
        self.lists.iter().map(String::as_str)
    }

    /// The overrides for [`load`] that `flags` gives: for each (field, key)
    /// of `keys`, the field's value (found by its serialized name) unless it
    /// is absent, `None` or `false` (a flag that takes no value). List-valued
    /// keys are left to the caller to set after loading, as an override is
    /// one value.
    ///
    /// # Panics
    ///
    /// When a field of `keys` is not one of `flags` holding one value.
    pub fn overrides<T: Serialize>(
        &self,
        flags: &T,
        keys: &[(&str, &'static str)],
    ) -> Vec<(&'static str, Option<String>)> {
        use serde_json::Value;
        let fields = serde_json::to_value(flags).expect("flags serialize");
        keys.iter()
            .filter(|(_, key)| !self.lists.contains(*key))
            .map(|(field, key)| {
                let value = match fields.get(field) {
                    Some(Value::Null | Value::Bool(false)) => None,
                    Some(Value::String(text)) => Some(text.clone()),
                    Some(value @ (Value::Bool(true) | Value::Number(_))) => Some(value.to_string()),
                    _ => panic!("{field} is not a field of one value"),
                };
                (*key, value)
            })
            .collect()
    }

    /// `key`'s default as `--help` and the README's configuration table
    /// show it: `none` for no value (unset, empty), a list's items
    /// comma-separated, a whole number without a fraction (`90`, not
    /// `90.0`).
    pub fn shown_default(&self, key: &str) -> Option<String> {
        self.defaults.get(key).map(shown)
    }

    /// A section given a scalar is left to deserialization, which says
    /// what it expected.
    fn knows(&self, key: &str) -> bool {
        self.defaults.contains_key(key) || self.sections.contains(key)
    }

    /// The known keys `key` was most likely meant as: the nearest by edit
    /// distance (a transposition counts one) when it is near, or else those
    /// of the same name in other sections.
    fn nearest(&self, key: &str) -> Vec<String> {
        let closest = self
            .keys()
            .map(|known| (known, strsim::osa_distance(key, known)))
            .min_by_key(|(_, distance)| *distance);
        if let Some((known, distance)) = closest {
            if distance <= (key.len() / 4).max(2) {
                return vec![known.to_string()];
            }
        }
        let name = key.rsplit('.').next().unwrap_or(key);
        self.keys()
            .filter(|known| known.rsplit('.').next() == Some(name))
            .map(str::to_string)
            .collect()
    }
}

fn shown(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "none".into(),
        Value::String(text) if text.is_empty() => "none".into(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => "none".into(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(","),
        Value::Number(number) => {
            let text = number.to_string();
            text.strip_suffix(".0").map_or(text.clone(), str::to_string)
        }
        Value::Bool(flag) => flag.to_string(),
        // Sections are not keys.
        Value::Object(_) => unreachable!("a section has no default of its own"),
    }
}

/// Where a configured key was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    /// The environment variable's name.
    Env(String),
    /// A command-line flag.
    Flag,
}

/// A key no settings type has, where it was given and the keys it may
/// have been meant as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    pub key: String,
    pub origin: Origin,
    pub nearest: Vec<String>,
}

impl std::fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.key;
        match &self.origin {
            Origin::File(path) => write!(f, "`{key}` in {}", path.display())?,
            Origin::Env(variable) => write!(f, "`{key}` from environment variable {variable}")?,
            Origin::Flag => write!(f, "`{key}` set by a command-line flag")?,
        }
        let quoted: Vec<String> = match &self.origin {
            Origin::Env(_) => self.nearest.iter().map(|k| env_name(k)).collect(),
            _ => self.nearest.iter().map(|k| format!("`{k}`")).collect(),
        };
        match (&self.origin, quoted.is_empty()) {
            (Origin::Env(_), true) => write!(
                f,
                " (the README's configuration section lists the settings and the DFSCAN_ \
                 variables that are not settings)"
            ),
            (_, true) => Ok(()),
            (_, false) => write!(f, " (did you mean {}?)", quoted.join(" or ")),
        }
    }
}

/// The variable that sets `key`.
fn env_name(key: &str) -> String {
    format!("{PREFIX}{}", key.to_uppercase().replace('.', "__"))
}

/// Loads settings of type `T` from the optional `file`, then `DFSCAN_*`
/// variables, then `overrides` (flag name → value, for the flags that were
/// given). Keys are the serde field names (`section.key` inside sections,
/// `DFSCAN_SECTION__KEY` in the environment); the list-valued keys (each
/// section's [`Section::LIST_KEYS`]) are comma-separated in the
/// environment. A key given anywhere that is not among `known` (every
/// process's keys, not only `T`'s) is an error.
pub fn load<T>(
    file: Option<&Path>,
    overrides: &[(&str, Option<String>)],
    known: &KnownKeys,
) -> Result<T, CoreError>
where
    T: DeserializeOwned,
{
    layered(file, std::env::vars_os(), overrides, known)
}

/// [`load`] with `environment` for the process's own.
fn layered<T>(
    file: Option<&Path>,
    environment: impl IntoIterator<Item = (OsString, OsString)>,
    overrides: &[(&str, Option<String>)],
    known: &KnownKeys,
) -> Result<T, CoreError>
where
    T: DeserializeOwned,
{
    let mut given: Vec<(String, Origin)> = Vec::new();
    let mut builder = Config::builder();
    if let Some(file) = file {
        let source = File::from(file);
        let mut keys = Vec::new();
        leaf_keys("", source.collect()?, &mut keys);
        keys.sort();
        given.extend(
            keys.into_iter()
                .map(|k| (k, Origin::File(file.to_path_buf()))),
        );
        builder = builder.add_source(source);
    }
    let mut variables = setting_variables(environment)?;
    variables.sort();
    given.extend(variables.iter().map(|(name, _)| {
        let key = name[PREFIX.len()..].to_lowercase().replace("__", ".");
        (key, Origin::Env(name.clone()))
    }));
    let environment = Environment::with_prefix("DFSCAN")
        .prefix_separator("_")
        .separator("__")
        .list_separator(",")
        .try_parsing(true)
        .source(Some(variables.into_iter().collect()));
    builder = builder.add_source(known.list_keys().fold(environment, |environment, key| {
        environment.with_list_parse_key(key)
    }));
    for (key, value) in overrides {
        if let Some(value) = value {
            given.push((key.to_string(), Origin::Flag));
            builder = builder.set_override(*key, value.as_str())?;
        }
    }
    let unknown: Vec<UnknownKey> = given
        .into_iter()
        .filter(|(key, _)| !known.knows(key))
        .map(|(key, origin)| UnknownKey {
            nearest: known.nearest(&key),
            key,
            origin,
        })
        .collect();
    if !unknown.is_empty() {
        return Err(CoreError::UnknownKeys(unknown));
    }
    Ok(builder.build()?.try_deserialize()?)
}

/// The `DFSCAN_` variables of `environment` that are settings (matched
/// without regard to case, as the config crate does), by name.
fn setting_variables(
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<(String, String)>, CoreError> {
    let mut variables = Vec::new();
    for (name, value) in environment {
        // A name that is not Unicode cannot spell a key.
        let Ok(name) = name.into_string() else {
            continue;
        };
        let upper = name.to_ascii_uppercase();
        if !upper.starts_with(PREFIX)
            || upper.starts_with(TEST_VARIABLES)
            || NOT_SETTINGS.contains(&upper.as_str())
        {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| CoreError::NotUnicode(name.clone()))?;
        variables.push((name, value));
    }
    Ok(variables)
}

/// The keys of `table` and the tables in it, as `section.key`.
fn leaf_keys(prefix: &str, table: config::Map<String, Value>, keys: &mut Vec<String>) {
    for (name, value) in table {
        let key = format!("{prefix}{name}");
        match value.kind {
            // An empty section still names itself (a misspelt one is refused).
            ValueKind::Table(inner) if !inner.is_empty() => {
                leaf_keys(&format!("{key}."), inner, keys)
            }
            _ => keys.push(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file shared by the model's settings, the workers' and training's.
    fn known() -> KnownKeys {
        KnownKeys::default()
            .with::<ModelSettings>()
            .with::<worker::WorkerSettings>()
            .with::<train::TrainSettings>()
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect()
    }

    fn config_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let file = dir.path().join("dfscan.toml");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn unknown(error: CoreError) -> Vec<UnknownKey> {
        match error {
            CoreError::UnknownKeys(keys) => keys,
            other => panic!("not an unknown key: {other}"),
        }
    }

    #[test]
    fn known_keys_are_the_leaves_of_the_defaults() {
        let known = known();
        let keys: Vec<&str> = known.keys().collect();
        for key in [
            "model",
            "labels",
            "fake_label",
            "worker.max_batch",
            "worker.uri_roots",
        ] {
            assert!(keys.contains(&key), "{key} not in {keys:?}");
        }
        assert!(!keys.contains(&"worker"), "{keys:?}");
    }

    #[test]
    fn list_keys_are_the_sections_own_and_comma_separated_in_the_environment() {
        let known = known();
        let lists: Vec<&str> = known.list_keys().collect();
        assert_eq!(lists, ["labels", "worker.uri_roots"]);
        let environment = env(&[("DFSCAN_LABELS", "Real,Fake")]);
        let s: ModelSettings = layered(None, environment, &[], &known).unwrap();
        assert_eq!(
            s.labels.as_deref(),
            Some(&["Real".to_string(), "Fake".to_string()][..])
        );
        #[derive(Deserialize)]
        struct Sectioned {
            worker: worker::WorkerSettings,
        }
        let environment = env(&[("DFSCAN_WORKER__URI_ROOTS", "/data,/more")]);
        let s: Sectioned = layered(None, environment, &[], &known).unwrap();
        assert_eq!(
            s.worker.uri_roots,
            [PathBuf::from("/data"), PathBuf::from("/more")]
        );
    }

    #[test]
    fn defaults_are_shown_as_help_and_the_readme_show_them() {
        let known = known();
        let shown = |key| known.shown_default(key).unwrap();
        assert_eq!(shown("model"), DEFAULT_MODEL);
        assert_eq!(shown("batch_size"), "32");
        assert_eq!(shown("fake_label"), "none");
        assert_eq!(shown("worker.uri_roots"), "none");
        assert_eq!(shown("train.lr"), "1e-6");
        assert_eq!(shown("train.rotation"), "90");
        assert_eq!(shown("train.weight_decay"), "0.01");
        assert_eq!(shown("train.no_augment"), "false");
        assert_eq!(shown("train.schedule"), "linear");
        assert_eq!(known.shown_default("worker"), None);
    }

    #[test]
    fn overrides_are_the_fields_given_but_lists() {
        #[derive(Serialize)]
        struct Flags {
            batch_size: Option<usize>,
            model: Option<String>,
            labels: Option<String>,
            no_augment: bool,
            lr: Option<f64>,
        }
        let keys = [
            ("batch_size", "batch_size"),
            ("model", "model"),
            ("labels", "labels"),
            ("no_augment", "train.no_augment"),
            ("lr", "train.lr"),
        ];
        let flags = Flags {
            batch_size: Some(4),
            model: None,
            labels: Some("Real,Fake".into()),
            no_augment: true,
            lr: Some(1e-5),
        };
        assert_eq!(
            known().overrides(&flags, &keys),
            [
                ("batch_size", Some("4".to_string())),
                ("model", None),
                ("train.no_augment", Some("true".to_string())),
                ("train.lr", Some(1e-5.to_string())),
            ]
        );
        #[derive(Deserialize)]
        struct Train {
            train: train::TrainSettings,
        }
        let s: Train = load(None, &known().overrides(&flags, &keys), &known()).unwrap();
        assert!(s.train.no_augment);
        assert_eq!(s.train.lr, 1e-5);
        let unset = Flags {
            batch_size: None,
            model: None,
            labels: None,
            no_augment: false,
            lr: None,
        };
        assert!(known()
            .overrides(&unset, &keys)
            .iter()
            .all(|(_, value)| value.is_none()));
    }

    #[test]
    fn defaults_without_sources() {
        let s: ModelSettings = load(None, &[], &known()).unwrap();
        assert_eq!(s.model, DEFAULT_MODEL);
        assert_eq!(s.batch_size, 32);
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = config_file(
            &dir,
            "model = \"/models/vit\"\nbatch_size = 8\ndtype = \"bf16\"\nlabels = [\"Real\", \"Fake\"]\n",
        );
        let s: ModelSettings = load(
            Some(&file),
            &[("batch_size", Some("4".into())), ("device", None)],
            &known(),
        )
        .unwrap();
        assert_eq!(s.model, "/models/vit");
        assert_eq!(s.batch_size, 4);
        assert_eq!(s.dtype, DTypeRequest::Exact(crate::DType::BF16));
        assert_eq!(s.device, DeviceRequest::Auto);
        assert_eq!(
            s.labels.as_deref(),
            Some(&["Real".to_string(), "Fake".to_string()][..])
        );
    }

    #[test]
    fn bad_values_are_errors() {
        let err =
            load::<ModelSettings>(None, &[("dtype", Some("int4".into()))], &known()).unwrap_err();
        assert!(err.to_string().contains("int4"), "{err}");
    }

    #[test]
    fn a_misspelt_key_in_the_file_is_refused_with_the_nearest() {
        let dir = tempfile::tempdir().unwrap();
        let file = config_file(&dir, "modle = \"/models/vit\"\n[wroker]\nmax_batch = 2\n");
        let err = layered::<ModelSettings>(Some(&file), env(&[]), &[], &known()).unwrap_err();
        let message = err.to_string();
        let keys = unknown(err);
        let origin = Origin::File(file.clone());
        assert_eq!(
            keys,
            [
                UnknownKey {
                    key: "modle".into(),
                    origin: origin.clone(),
                    nearest: vec!["model".into()],
                },
                UnknownKey {
                    key: "wroker.max_batch".into(),
                    origin,
                    nearest: vec!["worker.max_batch".into()],
                },
            ]
        );
        assert!(
            message.contains(&format!("`modle` in {}", file.display()))
                && message.contains("did you mean `model`?"),
            "{message}"
        );
    }

    #[test]
    fn a_key_in_the_wrong_section_points_to_the_right_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = config_file(&dir, "[worker]\nbatch_size = 4\n");
        let err = layered::<ModelSettings>(Some(&file), env(&[]), &[], &known()).unwrap_err();
        let message = err.to_string();
        assert_eq!(unknown(err)[0].nearest, ["batch_size", "train.batch_size"]);
        assert!(
            message.contains("(did you mean `batch_size` or `train.batch_size`?)"),
            "{message}"
        );
    }

    #[test]
    fn a_misspelt_variable_is_refused_with_the_nearest_variable() {
        let environment = env(&[("DFSCAN_WORKER__MAX_BTACH", "8"), ("PATH", "/bin")]);
        let err = layered::<ModelSettings>(None, environment, &[], &known()).unwrap_err();
        let message = err.to_string();
        assert_eq!(
            unknown(err),
            [UnknownKey {
                key: "worker.max_btach".into(),
                origin: Origin::Env("DFSCAN_WORKER__MAX_BTACH".into()),
                nearest: vec!["worker.max_batch".into()],
            }]
        );
        assert!(
            message.contains("DFSCAN_WORKER__MAX_BTACH")
                && message.contains("did you mean DFSCAN_WORKER__MAX_BATCH?"),
            "{message}"
        );
        let err = layered::<ModelSettings>(None, env(&[("DFSCAN_FOO", "1")]), &[], &known())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DFSCAN_FOO") && err.contains("README"),
            "{err}"
        );
    }

    #[test]
    fn variables_that_are_not_settings_and_unused_sections_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let file = config_file(&dir, "model = \"/m\"\n[worker]\nmax_batch = 2\n");
        let mut vars: Vec<(&str, &str)> = NOT_SETTINGS.iter().map(|name| (*name, "x")).collect();
        vars.extend([
            ("DFSCAN_TEST_COORDINATOR", "127.0.0.1:1"),
            ("dfscan_log", "debug"),
            ("DFSCAN_BATCH_SIZE", "3"),
            ("DFSCAN_WORKER__MAX_WAIT_MS", "9"),
        ]);
        let s: ModelSettings = layered(Some(&file), env(&vars), &[], &known()).unwrap();
        assert_eq!((s.model.as_str(), s.batch_size), ("/m", 3));
    }

    #[test]
    fn a_misspelt_override_is_refused() {
        let err = load::<ModelSettings>(None, &[("batch_sise", Some("2".into()))], &known())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("command-line flag") && err.contains("batch_size"),
            "{err}"
        );
    }
}
