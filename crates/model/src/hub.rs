//! Resolving `--model` to a checkpoint directory: a local directory as is,
//! or a Hugging Face hub id through the standard hub cache
//! (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`;
//! `models--org--name/{blobs,refs,snapshots}`), so models downloaded by
//! Python tools are reused and ours are reused by them. `HF_HUB_OFFLINE=1`
//! never touches the network; when the hub is unreachable a cached snapshot
//! is used, and with none the error names the ways out.
//!
//! Several processes may share one cache (workers on a node mounting the
//! same `HF_HOME`, or dfscan beside Python tools), so every write is made
//! safe against the others the way `huggingface_hub` makes it: a blob is
//! downloaded only under an exclusive `flock` on
//! `<cache>/.locks/models--org--name/<etag>.lock` (the lock file
//! `huggingface_hub` takes through the `filelock` package, so the two wait
//! for each other), into a temporary file of its own in `blobs/`, verified
//! (its size against `Content-Length`, its sha256 against an LFS etag) and
//! renamed into place; a process that gets the lock and finds the blob there
//! uses it. Ref files and snapshot symlinks are written under temporary
//! names and renamed over the old ones, so a reader sees the old or the new,
//! never a half-written file or a missing link.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::checkpoint::{CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};
use crate::error::{io_error, ModelError};

/// Where and how to reach the hub; `from_env` reads the variables that
/// `huggingface_hub` reads.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub cache_dir: PathBuf,
    pub endpoint: String,
    pub offline: bool,
    pub token: Option<String>,
    pub revision: String,
    /// The setting that named the model, for error messages.
    pub setting: Setting,
}

/// A setting that names a model: its flag and environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub flag: &'static str,
    pub env: &'static str,
}

/// The model that scoring runs (`--model`, `DFSCAN_MODEL`).
pub const MODEL_SETTING: Setting = Setting {
    flag: "--model",
    env: "DFSCAN_MODEL",
};

impl HubOptions {
    pub fn from_env(revision: &str) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            var("HF_HOME")
                .map(PathBuf::from)
                .or_else(|| var("XDG_CACHE_HOME").map(|x| Path::new(&x).join("huggingface")))
                .unwrap_or_else(|| home().join(".cache").join("huggingface"))
                .join("hub")
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        Self {
            cache_dir,
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            offline,
            token: var("HF_TOKEN"),
            revision: revision.to_string(),
            setting: MODEL_SETTING,
        }
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// A local checkpoint directory for `model` (a directory path or hub id),
/// and the name results report for it.
pub fn resolve(model: &str, opts: &HubOptions) -> Result<(PathBuf, String), ModelError> {
    let path = Path::new(model);
    if path.is_dir() {
        let name = path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| model.to_string());
        return Ok((path.to_path_buf(), name));
    }
    if !is_repo_id(model) {
        // Not a hub id, so it was meant as a path: say what is wrong with
        // the path, not that a hub could not be reached.
        let what = if path.exists() {
            "is not a directory"
        } else if model.starts_with('~') {
            // Only a shell expands `~`; a config file or variable keeps it.
            "no such directory (`~` is not expanded here: give the full path)"
        } else {
            "no such directory"
        };
        return Err(ModelError::Hub(format!(
            "{} {model:?}: {what}: a local checkpoint is a directory (config.json, \
             model.safetensors, preprocessor_config.json), and a hub id is name or org/name",
            opts.setting.flag
        )));
    }
    let repo = RepoCache::new(&opts.cache_dir, model);
    if opts.offline {
        return repo
            .cached_snapshot(&opts.revision)
            .ok_or_else(|| not_available(model, opts, "HF_HUB_OFFLINE is set"))
            .map(|d| (d, model.to_string()));
    }
    match download(&repo, model, opts) {
        Ok(dir) => Ok((dir, model.to_string())),
        Err(DownloadError::Unreachable(why)) => match repo.cached_snapshot(&opts.revision) {
            Some(dir) => {
                tracing::warn!(%model, "hub unreachable ({why}); using the cached snapshot");
                Ok((dir, model.to_string()))
            }
            None => Err(not_available(
                model,
                opts,
                &format!("the hub at {} is unreachable: {why}", opts.endpoint),
            )),
        },
        Err(DownloadError::Fatal(e)) => Err(e),
    }
}

fn not_available(model: &str, opts: &HubOptions, why: &str) -> ModelError {
    ModelError::Hub(format!(
        "model {model:?} (revision {rev}) is not a local directory, not in the Hugging Face cache at \
         {cache}, and cannot be downloaded: {why}.\nWays out:\n  - a cached model: download it once where the hub is reachable \
         (or copy that machine's hub cache) into {cache} (set HF_HOME or HF_HUB_CACHE to use another cache);\n  \
         - a local checkpoint directory: {flag} DIR (config.json, model.safetensors, preprocessor_config.json);\n  \
         - the same through the environment: {env}=DIR.",
        flag = opts.setting.flag,
        env = opts.setting.env,
        rev = opts.revision,
        cache = opts.cache_dir.display(),
    ))
}

/// Hub ids are `name` or `org/name` of `[A-Za-z0-9._-]`.
fn is_repo_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

/// The cache folder of one model repository, and its lock folder.
struct RepoCache {
    root: PathBuf,
    locks: PathBuf,
}

impl RepoCache {
    fn new(cache_dir: &Path, repo_id: &str) -> Self {
        let folder = format!("models--{}", repo_id.replace('/', "--"));
        Self {
            root: cache_dir.join(&folder),
            locks: cache_dir.join(".locks").join(folder),
        }
    }

    /// Holds `huggingface_hub`'s lock for blob `etag` until dropped
    /// (closing the file releases the `flock`). The file is left in place,
    /// as `filelock` leaves it, and is group-writable, as
    /// `huggingface_hub` makes it, for caches shared between users.
    fn lock_blob(&self, etag: &str) -> Result<File, ModelError> {
        use std::os::unix::fs::OpenOptionsExt;

        std::fs::create_dir_all(&self.locks).map_err(io_error(&self.locks))?;
        let path = self.locks.join(format!("{etag}.lock"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o664)
            .open(&path)
            .map_err(io_error(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(lock = %path.display(), "waiting for another process's download");
                file.lock().map_err(io_error(&path))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path)(e)),
        }
        Ok(file)
    }

    fn commit_of(&self, revision: &str) -> Option<String> {
        match std::fs::read_to_string(self.root.join("refs").join(revision)) {
            Ok(commit) => Some(commit.trim().to_string()),
            Err(_) if is_commit_hash(revision) => Some(revision.to_string()),
            Err(_) => None,
        }
    }

    /// The snapshot of `revision`, if it holds a complete checkpoint.
    fn cached_snapshot(&self, revision: &str) -> Option<PathBuf> {
        let dir = self.root.join("snapshots").join(self.commit_of(revision)?);
        let complete = dir.join(CONFIG_FILE).is_file()
            && dir.join(PREPROCESSOR_FILE).is_file()
            && (dir.join(WEIGHTS_FILE).is_file() || dir.join(WEIGHTS_INDEX_FILE).is_file());
        complete.then_some(dir)
    }
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

enum DownloadError {
    /// No answer from the hub at all: the cache may still serve.
    Unreachable(String),
    Fatal(ModelError),
}

impl From<ModelError> for DownloadError {
    fn from(e: ModelError) -> Self {
        Self::Fatal(e)
    }
}

/// One file's metadata from a HEAD on its resolve URL.
struct Remote {
    commit: String,
    etag: String,
}

impl Remote {
    /// The content's sha256 when the etag is an LFS one (64 hex digits;
    /// small files get a git blob hash of 40 instead, which is no hash of
    /// the bytes alone).
    fn sha256(&self) -> Option<&str> {
        (self.etag.len() == 64 && self.etag.chars().all(|c| c.is_ascii_hexdigit()))
            .then_some(self.etag.as_str())
    }
}

/// A name no other writer in the cache uses at the same time: the process,
/// the clock and a per-process counter (process ids alone repeat between
/// hosts sharing a volume).
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{:x}{nanos:08x}{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `contents` to `path` through a temporary file beside it and a
/// rename, so readers see the old contents or the new, never a part.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ModelError> {
    let tmp = temporary_beside(path, "tmp");
    let written = std::fs::write(&tmp, contents).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io_error(path))
}

/// `<dir>/<name>.<unique>.<ext>` for `path` = `<dir>/<name>`.
fn temporary_beside(path: &Path, ext: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{name}.{}.{ext}", unique_suffix()))
}

/// Fetches the checkpoint files into the cache the way `huggingface_hub`
/// lays them out (blob by etag, snapshot symlink, ref → commit) and returns
/// the snapshot directory.
fn download(repo: &RepoCache, repo_id: &str, opts: &HubOptions) -> Result<PathBuf, DownloadError> {
    let builder = || {
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60))
    };
    // HEAD must read the hub's own headers, not its storage host's.
    let agent = builder().redirects(0).build();
    let downloader = builder().build();
    let url = |file: &str| {
        format!(
            "{}/{repo_id}/resolve/{}/{file}",
            opts.endpoint.trim_end_matches('/'),
            opts.revision
        )
    };
    let head = |file: &str| -> Result<Option<Remote>, DownloadError> {
        let mut req = agent.head(&url(file));
        if let Some(token) = &opts.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(ureq::Error::Status(code, r)) if (300..400).contains(&code) => r,
            Err(ureq::Error::Status(code, _)) => {
                return Err(ModelError::Hub(format!(
                    "{}: HTTP {code} from the hub (a private or gated model needs HF_TOKEN)",
                    url(file)
                ))
                .into())
            }
            Err(e) => return Err(DownloadError::Unreachable(e.to_string())),
        };
        let header = |k: &str| {
            resp.header(k)
                .map(|v| v.trim_start_matches("W/").trim_matches('"').to_string())
        };
        let commit = header("x-repo-commit")
            .ok_or_else(|| ModelError::Hub(format!("{}: no X-Repo-Commit header", url(file))))?;
        let etag = header("x-linked-etag")
            .or_else(|| header("etag"))
            .ok_or_else(|| ModelError::Hub(format!("{}: no ETag header", url(file))))?;
        Ok(Some(Remote { commit, etag }))
    };

    let config = head(CONFIG_FILE)?.ok_or_else(|| {
        ModelError::Hub(format!(
            "{repo_id} has no {CONFIG_FILE} at revision {}",
            opts.revision
        ))
    })?;
    let snapshot = repo.root.join("snapshots").join(&config.commit);
    let mut files = vec![(CONFIG_FILE.to_string(), config)];
    let pre = head(PREPROCESSOR_FILE)?
        .ok_or_else(|| ModelError::Hub(format!("{repo_id} has no {PREPROCESSOR_FILE}")))?;
    files.push((PREPROCESSOR_FILE.into(), pre));
    match head(WEIGHTS_FILE)? {
        Some(w) => files.push((WEIGHTS_FILE.into(), w)),
        None => {
            let index = head(WEIGHTS_INDEX_FILE)?.ok_or_else(|| {
                ModelError::Hub(format!("{repo_id} has no {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE} (only safetensors weights are loaded)"))
            })?;
            fetch(
                &downloader,
                repo,
                &snapshot,
                WEIGHTS_INDEX_FILE,
                &index,
                &url(WEIGHTS_INDEX_FILE),
                opts,
            )?;
            let idx_path = snapshot.join(WEIGHTS_INDEX_FILE);
            let text = std::fs::read_to_string(&idx_path).map_err(io_error(&idx_path))?;
            for shard in crate::checkpoint::shard_names(&text).map_err(|reason| {
                ModelError::InvalidCheckpoint {
                    path: idx_path.clone(),
                    reason,
                }
            })? {
                let remote = head(&shard)?.ok_or_else(|| {
                    ModelError::Hub(format!("{repo_id}: shard {shard} is listed but missing"))
                })?;
                files.push((shard, remote));
            }
        }
    }
    for (file, remote) in &files {
        fetch(&downloader, repo, &snapshot, file, remote, &url(file), opts)?;
    }
    if !is_commit_hash(&opts.revision) {
        let reference = repo.root.join("refs").join(&opts.revision);
        if let Some(dir) = reference.parent() {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        write_atomically(&reference, files[0].1.commit.as_bytes())?;
    }
    Ok(snapshot)
}

/// Downloads one file into `blobs/<etag>` (unless present, or put there by
/// another process while this one waited for the blob's lock) and links it
/// from the snapshot.
fn fetch(
    downloader: &ureq::Agent,
    repo: &RepoCache,
    snapshot: &Path,
    file: &str,
    remote: &Remote,
    url: &str,
    opts: &HubOptions,
) -> Result<(), DownloadError> {
    let blobs = repo.root.join("blobs");
    let blob = blobs.join(&remote.etag);
    if !blob.is_file() {
        let _lock = repo.lock_blob(&remote.etag)?;
        if !blob.is_file() {
            std::fs::create_dir_all(&blobs).map_err(io_error(&blobs))?;
            download_blob(downloader, &blob, remote, url, opts)?;
        }
    }
    let link = snapshot.join(file);
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let depth = file.matches('/').count() + 2;
    let target = Path::new(&"../".repeat(depth))
        .join("blobs")
        .join(&remote.etag);
    // A new link under a temporary name renamed over the old one: the path
    // never goes missing for another process reading the snapshot.
    let tmp = temporary_beside(&link, "tmp");
    let linked =
        std::os::unix::fs::symlink(&target, &tmp).and_then(|()| std::fs::rename(&tmp, &link));
    if linked.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    linked.map_err(io_error(&link))?;
    Ok(())
}

/// Downloads `url` to `blob` through `<etag>.<unique>.incomplete` (unique,
/// as `huggingface_hub` names it, so that even a writer that ignores the
/// lock cannot interleave with this one), checks it, and renames it into
/// place. Called with the blob's lock held.
fn download_blob(
    downloader: &ureq::Agent,
    blob: &Path,
    remote: &Remote,
    url: &str,
    opts: &HubOptions,
) -> Result<(), DownloadError> {
    tracing::info!(%url, "downloading");
    let mut req = downloader.get(url);
    if let Some(token) = &opts.token {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    let resp = req.call().map_err(|e| match e {
        ureq::Error::Status(code, _) => {
            DownloadError::Fatal(ModelError::Hub(format!("{url}: HTTP {code}")))
        }
        e => DownloadError::Unreachable(e.to_string()),
    })?;
    let length = resp
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let partial = temporary_beside(blob, "incomplete");
    let written = write_verified(resp.into_reader(), &partial, length, remote, url)
        .and_then(|()| std::fs::rename(&partial, blob).map_err(|e| io_error(blob)(e).into()));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Copies `body` into a new file at `path`, hashing as it goes, and checks
/// its size against `length` and its sha256 against an LFS etag; the file
/// is synced, so the rename that follows publishes complete bytes.
fn write_verified(
    mut body: impl Read,
    path: &Path,
    length: Option<u64>,
    remote: &Remote,
    url: &str,
) -> Result<(), DownloadError> {
    let mut out = File::create(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DownloadError::Unreachable(format!("{url}: {e}"))),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_error(path))?;
        size += n as u64;
    }
    out.sync_all().map_err(io_error(path))?;
    if let Some(length) = length.filter(|&l| l != size) {
        // The connection ended early: a network failure, not a bad file.
        return Err(DownloadError::Unreachable(format!(
            "{url}: got {size} of {length} bytes"
        )));
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match remote.sha256() {
        Some(expected) if !expected.eq_ignore_ascii_case(&digest) => {
            Err(DownloadError::Fatal(ModelError::Hub(format!(
                "{url}: the download's sha256 is {digest}, the hub's etag says {expected}"
            ))))
        }
        _ => Ok(()),
    }
}
