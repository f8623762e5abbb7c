//! Resolving `--model` to a checkpoint directory: a local directory as is,
//! or a Hugging Face hub id through the standard hub cache
//! (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`;
//! `models--org--name/{blobs,refs,snapshots}`), so models downloaded by
//! Python tools are reused and ours are reused by them. `HF_HUB_OFFLINE=1`
//! never touches the network; when the hub is unreachable a cached snapshot
//! is used, and with none the error names the ways out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        return Err(ModelError::Hub(format!(
            "{} {model:?} is neither a checkpoint directory nor a hub id like org/name",
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
        "model {model:?} (revision {rev}) is not in the Hugging Face cache at {cache} and cannot be \
         downloaded: {why}.\nWays out:\n  - a cached model: download it once where the hub is reachable \
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

/// The cache folder of one model repository.
struct RepoCache {
    root: PathBuf,
}

impl RepoCache {
    fn new(cache_dir: &Path, repo_id: &str) -> Self {
        Self {
            root: cache_dir.join(format!("models--{}", repo_id.replace('/', "--"))),
        }
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
        let refs = repo.root.join("refs");
        std::fs::create_dir_all(&refs).map_err(io_error(&refs))?;
        std::fs::write(refs.join(&opts.revision), &files[0].1.commit).map_err(io_error(&refs))?;
    }
    Ok(snapshot)
}

/// Downloads one file into `blobs/<etag>` (unless present) and links it
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
        std::fs::create_dir_all(&blobs).map_err(io_error(&blobs))?;
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
        let partial = blobs.join(format!("{}.incomplete", remote.etag));
        let mut out = std::fs::File::create(&partial).map_err(io_error(&partial))?;
        std::io::copy(&mut resp.into_reader(), &mut out)
            .map_err(|e| DownloadError::Unreachable(format!("{url}: {e}")))?;
        out.flush().map_err(io_error(&partial))?;
        std::fs::rename(&partial, &blob).map_err(io_error(&blob))?;
    }
    let link = snapshot.join(file);
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let depth = file.matches('/').count() + 2;
    let target = Path::new(&"../".repeat(depth))
        .join("blobs")
        .join(&remote.etag);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).map_err(io_error(&link))?;
    Ok(())
}
