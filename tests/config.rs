//! Configuration keys end to end, through the binaries. A misspelt key, in
//! a config file or as a `DFSCAN_` variable, stops every command with exit
//! status 1, naming the key, where it was given and the key meant (ignored,
//! it would leave a default in force without a word). One file holding
//! every section, as the Helm chart writes one for all its processes, is
//! accepted by each of them, the libtorch-free coordinator included, and so
//! are the `DFSCAN_` variables that are not settings. Flags that would do
//! nothing are not accepted either. The README's configuration table has
//! every key once, with the code's default, and each flag it names shows
//! that default in its `--help`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A file for every process: each section with some of its keys set (and
/// no Redis URL, so that the long-running processes stop right after
/// loading it).
const SHARED: &str = r#"
model = "/nonexistent/vit"
revision = "main"
device = "cpu"
dtype = "f32"
batch_size = 8
threads = 1
decode_threads = 1
fake_label = "Fake"
labels = ["Real", "Fake"]
max_image_bytes = 1048576
max_image_pixels = 1000000
max_jpeg_scans = 100
max_decode_ms = 1000
log_format = "text"

[metrics]

[queue]
key_prefix = "shared"
visibility_timeout_ms = 30000
max_deliveries = 3

[coordinator]
listen = "127.0.0.1:0"
models = ["vit"]
task_size = 16
callback_attempts = 3

[coordinator.auth]
disabled = true

[coordinator.limits]
max_concurrent_streams = 64

[coordinator.tls]
client_cert_required = false

[worker]
max_batch = 8
max_wait_ms = 5
drain_grace_s = 5
uri_roots = ["/data"]

[train]
epochs = 1
lr = 1e-5
val_fraction = 0.1

[client]
coordinator = "http://127.0.0.1:1"
resume_for_s = 1
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every kind of command, each reading its own sections of `config`.
fn commands(config: &Path, scratch: &Path) -> Vec<(&'static str, Command)> {
    let dfscan = |args: &[&str]| {
        let mut cmd = common::dfscan();
        cmd.arg("--config").arg(config).args(args);
        cmd
    };
    let empty = scratch.to_str().unwrap();
    let output = scratch.join("out");
    let output = output.to_str().unwrap();
    let mut coordinator = common::dfscan_coordinator();
    coordinator.arg("--config").arg(config);
    vec![
        ("score", dfscan(&["score", empty])),
        (
            "train",
            dfscan(&["train", "--data", empty, "--output", output]),
        ),
        ("worker", dfscan(&["worker"])),
        ("serve", dfscan(&["serve"])),
        ("coordinator", dfscan(&["coordinator"])),
        ("dfscan-coordinator", coordinator),
        ("models", dfscan(&["models"])),
    ]
}

/// Runs `cmd`, which must fail with exit status 1; its stderr.
fn fails(name: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    stderr
}

#[test]
fn a_misspelt_key_in_the_file_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    // Misspelt in another process's section too: each refuses it.
    let config = write(
        dir.path(),
        "dfscan.toml",
        &SHARED
            .replace("model = ", "modle = ")
            .replace("max_batch = 8", "max_btach = 8"),
    );
    for (name, mut cmd) in commands(&config, dir.path()) {
        let stderr = fails(name, &mut cmd);
        for expected in [
            format!("`modle` in {} (did you mean `model`?)", config.display()),
            "`worker.max_btach`".into(),
            "(did you mean `worker.max_batch`?)".into(),
        ] {
            assert!(
                stderr.contains(&expected),
                "{name}: {expected} not in {stderr}"
            );
        }
        assert!(
            stderr.contains("unknown configuration keys"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn a_misspelt_variable_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "dfscan.toml", SHARED);
    for (name, mut cmd) in commands(&config, dir.path()) {
        cmd.env("DFSCAN_WORKER__MAX_BTACH", "8");
        let stderr = fails(name, &mut cmd);
        assert!(
            stderr.contains(
                "unknown configuration key `worker.max_btach` from environment variable \
                 DFSCAN_WORKER__MAX_BTACH (did you mean DFSCAN_WORKER__MAX_BATCH?)"
            ),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn a_file_with_every_section_is_accepted_by_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "dfscan.toml", SHARED);
    let no_redis = "needs the queue's Redis URL";
    for (name, mut cmd) in commands(&config, dir.path()) {
        // Variables of the scripts and tests, not settings.
        for variable in [
            "DFSCAN_CACHE_DIR",
            "DFSCAN_PYTHON",
            "DFSCAN_BIN_DIR",
            "DFSCAN_ADVISORY_DB",
            "DFSCAN_TEST_SOMETHING",
        ] {
            cmd.env(variable, dir.path());
        }
        let stderr = fails(name, &mut cmd);
        // Each got past its configuration, to the first thing it lacks.
        let expected = match name {
            "score" => "no images or videos found",
            "train" => "expected a train/ folder",
            "worker" | "coordinator" | "dfscan-coordinator" => no_redis,
            "serve" => "/nonexistent/vit",
            "models" => "127.0.0.1:1",
            other => panic!("{other}"),
        };
        assert!(
            stderr.contains(expected),
            "{name}: {expected} not in {stderr}"
        );
        assert!(
            !stderr.contains("unknown configuration"),
            "{name}: {stderr}"
        );
    }
    // The docker-compose deployment's file, shared by its processes. Its
    // tokens file is the coordinator's: a worker, which has none, does not
    // look for it.
    let deploy = common::repo().join("deploy/config.toml");
    let mut worker = common::dfscan();
    worker
        .arg("worker")
        .env_remove("DFSCAN_COORDINATOR__AUTH__DISABLED");
    for mut cmd in [common::dfscan_coordinator(), worker] {
        let stderr = fails("deploy/config.toml", cmd.arg("--config").arg(&deploy));
        assert!(stderr.contains(no_redis), "{stderr}");
    }
}

#[test]
fn workers_take_no_batch_size_flag() {
    // A worker's batch is worker.max_batch (--max-batch); a --batch-size
    // would be accepted and do nothing, so it is refused, naming the flag
    // meant.
    for command in ["worker", "serve"] {
        let out = common::dfscan()
            .args([command, "--batch-size", "4"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("'--batch-size"), "{command}: {stderr}");
        assert!(stderr.contains("--max-batch N"), "{command}: {stderr}");
    }
}

#[test]
fn serve_on_an_address_in_use_fails_before_loading_its_model() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    // The model does not exist: failing on the address, not on it, shows
    // that the address is bound before the model loads.
    let stderr = fails(
        "serve",
        common::dfscan().args([
            "serve",
            "--no-auth",
            "--listen",
            &listen,
            "--model",
            "/nonexistent/vit",
        ]),
    );
    assert!(stderr.contains("address is in use"), "{stderr}");
    assert!(stderr.contains("--listen HOST:PORT"), "{stderr}");
    assert!(!stderr.contains("/nonexistent/vit"), "{stderr}");
}

/// A row of the README's configuration table: its keys, their flags (none,
/// or one per key) and defaults (one for all, or one per key; `None` for a
/// cell that is neither `VALUE` nor `none`, each optionally followed by a
/// parenthesised note).
#[derive(Debug)]
struct Row {
    keys: Vec<String>,
    flags: Vec<String>,
    defaults: Vec<Option<String>>,
}

impl Row {
    /// Each key with its flag (if any) and default.
    fn settings(&self) -> impl Iterator<Item = (&str, Option<&str>, Option<&str>)> {
        self.keys.iter().enumerate().map(|(i, key)| {
            let default = match self.defaults.as_slice() {
                [one] => one,
                many => &many[i],
            };
            (
                key.as_str(),
                self.flags.get(i).map(String::as_str),
                default.as_deref(),
            )
        })
    }

    /// What makes the row unreadable.
    fn shape_problem(&self) -> Option<String> {
        let keys = self.keys.len();
        if !self.flags.is_empty() && self.flags.len() != keys {
            return Some(format!(
                "{:?}: {} flags for {keys} keys",
                self.keys,
                self.flags.len()
            ));
        }
        if self.defaults.len() != 1 && self.defaults.len() != keys {
            return Some(format!(
                "{:?}: {} defaults for {keys} keys",
                self.keys,
                self.defaults.len()
            ));
        }
        self.defaults.contains(&None).then(|| {
            format!(
                "{:?}: a default is neither `VALUE` nor none (a note goes in parentheses after it)",
                self.keys
            )
        })
    }
}

fn readme_table() -> Vec<Row> {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let table = readme
        .split("| key | flag | default | meaning |")
        .nth(1)
        .expect("the README has its configuration table");
    let backticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').collect();
            let values = cells[3].split(" (").next().unwrap_or_default().trim();
            let defaults = values
                .split(", ")
                .map(|value| match value.strip_prefix('`') {
                    Some(quoted) => quoted.strip_suffix('`').map(str::to_string),
                    None => (value == "none").then(|| value.to_string()),
                })
                .collect();
            Row {
                keys: backticked(cells[1]),
                flags: backticked(cells[2]),
                defaults,
            }
        })
        .collect()
}

#[test]
fn every_key_is_in_the_readme_table_once() {
    let known = dfscan_process::settings::known();
    let documented: Vec<String> = readme_table()
        .into_iter()
        .flat_map(|row| row.keys)
        .collect();
    let mut problems = Vec::new();
    for key in known.keys() {
        match documented.iter().filter(|d| *d == key).count() {
            1 => {}
            0 => problems.push(format!("{key}: missing")),
            n => problems.push(format!("{key}: in {n} rows")),
        }
    }
    let keys: Vec<&str> = known.keys().collect();
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
fn every_default_in_the_readme_table_is_the_code_s() {
    let known = dfscan_process::settings::known();
    let mut problems = Vec::new();
    for row in readme_table() {
        if let Some(problem) = row.shape_problem() {
            problems.push(problem);
            continue;
        }
        for (key, _, documented) in row.settings() {
            // A key that does not exist is every_key_is_in_the_readme_table_once's.
            if let Some(code) = known.shown_default(key) {
                if documented != Some(code.as_str()) {
                    problems.push(format!(
                        "{key}: the README's default is {documented:?}, the code's {code:?}"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "README configuration table: {problems:?}"
    );
}

/// Flags that share a name with a setting's flag without setting it.
const NOT_THE_SETTING: &[(&str, &str)] = &[
    // The job's model, as `dfscan models` lists it: not the checkpoint
    // that the `model` key loads.
    ("submit", "--model"),
    // The job's face options, which the workers' `faces.*` stand in for
    // where they are left out.
    ("submit", "--faces"),
    ("submit", "--face-scale"),
    ("submit", "--align"),
    ("submit", "--face-threshold"),
    ("submit", "--min-face-size"),
    ("submit", "--max-faces"),
    ("submit", "--face-working-size"),
    ("submit", "--face-aggregation"),
];

/// The flags `cmd --help` lists, each with the default its help shows.
fn help_defaults(name: &str, mut cmd: Command) -> Vec<(String, Option<String>)> {
    let out = cmd.arg("--help").output().unwrap();
    assert!(out.status.success(), "{name} --help: {out:?}");
    let mut flags: Vec<(Option<String>, String)> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        if indent == 0 {
            // A heading: what follows is no argument's.
            flags.push((None, String::new()));
        } else if indent <= 6 && (text.starts_with('-') || text.starts_with('<')) {
            let flag = text
                .split_whitespace()
                .find(|word| word.starts_with("--"))
                .map(|word| word.trim_end_matches(',').to_string());
            flags.push((flag, text.to_string()));
        } else if let Some((_, help)) = flags.last_mut() {
            help.push(' ');
            help.push_str(text);
        }
    }
    flags
        .into_iter()
        .filter_map(|(flag, help)| {
            let default = help.rsplit_once("[default: ").map(|(_, rest)| {
                rest.split_once(']')
                    .map_or(rest, |(default, _)| default)
                    .to_string()
            });
            Some((flag?, default))
        })
        .collect()
}

#[test]
fn every_flag_of_a_setting_shows_its_default_as_the_readme_table_does() {
    let mut helps = Vec::new();
    for sub in [
        "score",
        "eval",
        "train",
        "worker",
        "serve",
        "coordinator",
        "submit",
        "jobs",
        "models",
    ] {
        let mut cmd = common::dfscan();
        cmd.arg(sub);
        helps.push((sub, help_defaults(sub, cmd)));
    }
    helps.push((
        "dfscan-coordinator",
        help_defaults("dfscan-coordinator", common::dfscan_coordinator()),
    ));
    let table = readme_table();
    let documented: Vec<(&str, &str, &str)> = table
        .iter()
        .flat_map(Row::settings)
        .filter_map(|(key, flag, default)| Some((key, flag?, default?)))
        .collect();
    let helps: Vec<(&str, &str, Option<&str>)> = helps
        .iter()
        .flat_map(|(command, flags)| {
            flags
                .iter()
                .map(move |(flag, default)| (*command, flag.as_str(), default.as_deref()))
        })
        .filter(|(command, flag, _)| !NOT_THE_SETTING.contains(&(*command, *flag)))
        .collect();
    let mut problems = Vec::new();
    // Each documented flag exists and shows the documented default
    // somewhere (`--batch-size` is score's `batch_size` and train's
    // `train.batch_size`)...
    for (key, flag, default) in &documented {
        let shown: Vec<_> = helps.iter().filter(|(_, f, _)| f == flag).collect();
        if shown.is_empty() {
            problems.push(format!("{key}: no command has {flag}"));
        } else if !shown.iter().any(|(_, _, d)| *d == Some(*default)) {
            problems.push(format!(
                "{key}: no {flag} shows the README's default {default:?}: {shown:?}"
            ));
        }
    }
    // ...and every command's flag of that name shows a default of one of
    // the keys the README gives it.
    for (command, flag, shown) in &helps {
        let defaults: Vec<&str> = documented
            .iter()
            .filter(|(_, f, _)| f == flag)
            .map(|(_, _, default)| *default)
            .collect();
        if defaults.is_empty() {
            continue;
        }
        match shown {
            Some(shown) if defaults.contains(shown) => {}
            _ => problems.push(format!(
                "{command} {flag}: shows default {shown:?}, the README's are {defaults:?}"
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "--help against the README: {problems:#?}"
    );
}
